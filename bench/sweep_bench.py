"""Sweep benchmark: 100 (fast, slow) SMA-crossover parameter sets × 100k one-minute bars through
Tradewind's event-driven engine as Ray tasks, against vectorbt's vectorised parameter grid on the
same data, in the same run; and Tradewind's scaling from 1 to 2 CPUs.

Each figure is the wall time of a whole fresh process (interpreter start, imports, Ray start-up,
building the feed, every backtest with its equity curve and metrics, Ray shutdown), measured by
this script; the Tradewind process also reports where its time went (phases):

    python -m bench.sweep_bench [--bars 100000] [--repeat 3] [--full] [--cluster] [--json]

The last line printed is always one JSON object: the ratios the research issue sets targets for
(2 CPUs / vectorbt whole process, 1 → 2 CPUs scaling of the sweep and of the whole process, the
workers' RSS growth over their trials), the targets, whether each is met, the loads, and every
figure; ``--json`` prints only that line.

One round runs vectorbt, Tradewind on a 1-CPU Ray and Tradewind on a 2-CPU Ray, one after the
other (the same process layout, only ``num_cpus`` differs); ``--repeat N`` runs N rounds and
reports medians, with the load average around each run (the machine is shared). ``--cluster``:
the timed process joins a 1-node Ray cluster of that many CPUs started beforehand (as a study
submitted to a running research cluster does) instead of starting and stopping its own Ray.

Tradewind's side is the sweep's own machinery (:class:`backtest.research.fanout.TrialRunner`:
the feed put once in the object store, chunked streaming tasks). ``--full`` runs the whole
``tradewind sweep`` path instead (:func:`backtest.research.run_sweep`: the data read and checked
from a Parquet file, results written to an embedded ClickHouse store in a temporary directory,
DSR and PBO, the HTML report). The grid is the vectorbt peer's (``bench/peers/vectorbt_sma.py``):
fast in (5…40) × slow in (50…250).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

_T0 = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
SWEEP_FAST = (5, 8, 10, 12, 15, 20, 25, 30, 35, 40)  # = bench.peers.vectorbt_sma.SWEEP_FAST
SWEEP_SLOW = (50, 60, 70, 80, 90, 100, 120, 150, 200, 250)


def _bench_feed(data: str, n_bars: int) -> Any:
    """The first ``n_bars`` of the peers' dataset as an indexed in-memory feed."""
    from backtest.feed import Feed
    from bench.common import load_arrays
    from bench.peers.tradewind_sma import _table

    feed = Feed(tables={("bars", "X"): _table(load_arrays(data, limit=n_bars), "bars")},
                dataset_hash="bench")  # fmt: skip
    feed.index()
    return feed


def _runner_sweep(feed: Any, mark: Any) -> dict[str, Any]:
    """The sweep machinery alone: 100 trials of the loaded feed through the TrialRunner."""
    from backtest.research.fanout import TrialRunner
    from backtest.research.trial import TrialSpec
    from bench.peers.tradewind_sma import _config

    options = {"strategy": "sma", "objective": "total_return", "n_blocks": 16}
    runner = TrialRunner(feed, _config("bars", 10, 50, 100), options=options)
    mark("put")
    jobs = [("bench", TrialSpec({"fast": f, "slow": s})) for f in SWEEP_FAST for s in SWEEP_SLOW]
    trials = []
    for _, trial in runner.run(jobs):
        trials.append(trial)
        if len(trials) == 1:
            mark("first_result")
    mark("trials")
    best = max(trials, key=lambda t: t.metrics.get("final_equity") or 0.0)
    return {"param_sets": len(trials), "ok": sum(t.status == "ok" for t in trials),
            "fills": sum(t.n_fills for t in trials),
            "trials_cpu_s": sum(getattr(t, "cpu_s", 0.0) for t in trials),
            "workers": len({t.pid for t in trials}), "rss_growth_mb": _rss_growth(trials),
            "best": [best.params["fast"], best.params["slow"]]}  # fmt: skip


def _rss_growth(trials: list[Any]) -> float:
    """The largest growth of a worker's RSS from its first trial to its last, in MB. With ~50
    trials a worker this includes the allocator's warm-up; "flat over 1,000 trials after the
    warm-up" is what tests/research/test_memory.py checks."""
    by_pid: dict[int, list[float]] = {}
    for trial in trials:
        by_pid.setdefault(trial.pid, []).append(trial.rss_mb)
    return round(max((rss[-1] - rss[0] for rss in by_pid.values()), default=0.0), 2)


def _full_sweep(data: str, n_bars: int, mark: Any) -> dict[str, Any]:
    """``tradewind sweep`` end to end on a Parquet file, into a fresh embedded store."""
    from backtest.research.sweep import run_sweep
    from bench.common import load_arrays

    with tempfile.TemporaryDirectory(prefix="tw-sweep-bench-") as work:  # not left behind
        return _full_sweep_in(Path(work), data, n_bars, mark, run_sweep, load_arrays)


def _full_sweep_in(tmp: Path, data: str, n_bars: int, mark: Any, run_sweep: Any,
                   load_arrays: Any) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = load_arrays(data, limit=n_bars)
    stamps = pa.array(arrays["ts_ns"].astype("datetime64[ns]")).cast(pa.timestamp("ns", "UTC"))
    pq.write_table(pa.table({"timestamp": stamps, **{k: arrays[k] for k in
                             ("open", "high", "low", "close", "volume")}}),
                   tmp / "bars.parquet")  # fmt: skip
    from bench.peers.tradewind_sma import _config

    backtest = _config("bars", 10, 50, 100).model_dump(mode="json", by_alias=True,
                                                      exclude={"base_dir"})  # fmt: skip
    backtest["data"] = [{"kind": "bars", "instrument": "X", "path": "bars.parquet",
                         "interval": "1m"}]  # fmt: skip
    study = {"name": "bench", "backtest": backtest, "base_dir": str(tmp),
             "grid": {"fast": list(SWEEP_FAST), "slow": list(SWEEP_SLOW)},
             "objective": {"metric": "total_return"}, "heatmap": ["fast", "slow"],
             "output_dir": str(tmp / "runs")}  # fmt: skip
    mark("feed")
    outcome = run_sweep(study, store_dsn=f"chdb://{tmp / 'store'}")
    mark("trials")
    best = outcome.best
    return {"param_sets": len(outcome.ranked), "ok": outcome.stats.n_valid,
            "fills": sum(t.n_fills for t in outcome.ranked), "n_run": outcome.n_run,
            "best": None if best is None else [best.params["fast"], best.params["slow"]],
            "dsr": outcome.stats.dsr, "pbo": outcome.stats.pbo}  # fmt: skip


def _tradewind_worker(
    data: str, n_bars: int, cpus: int, *, full: bool, address: str | None
) -> dict[str, Any]:
    """In a fresh process: Ray with ``cpus`` CPUs (started here, or the running cluster at
    ``address``), 100 trials, one line of JSON with phases.

    As ``tradewind sweep`` does (``backtest.research.study``), a private session starts while
    another thread loads the data: ``ray_init`` is Ray's start with the feed built meanwhile,
    ``feed`` what was left of building it once Ray was up (usually nothing).
    """
    phases: dict[str, float] = {}
    last = [_T0]

    def mark(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(now - last[0], 3)
        last[0] = now

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.pop("RAY_ADDRESS", None)
    from backtest.research import fanout  # the driver's imports, timed as such

    mark("imports")
    # the sweep's own connect/disconnect (a private session: no dashboard, as --no-dashboard;
    # num_cpus fixed here, which a sweep leaves to Ray: the machine's CPUs)
    with ThreadPoolExecutor(1, thread_name_prefix="bench-feed") as pool:
        loading = None if full else pool.submit(_bench_feed, data, n_bars)
        fanout.connect(address, num_cpus=None if address else cpus)
        mark("ray_init")  # a --full sweep joins this session, as it would any running cluster
        if loading is not None:
            feed = loading.result()
            mark("feed")
    out = _full_sweep(data, n_bars, mark) if full else _runner_sweep(feed, mark)
    fanout.disconnect()
    mark("ray_shutdown")
    sweep = sum(phases.get(k, 0.0) for k in ("feed", "put", "first_result", "trials"))
    return {"engine": "tradewind", "cpus": cpus, "full": full, "sweep_s": sweep,
            "phases": phases, "driver_cpu_s": time.process_time(), **out}  # fmt: skip


@contextlib.contextmanager
def _cluster(cpus: int, wanted: bool) -> Iterator[str | None]:
    """A running 1-node Ray cluster of ``cpus`` CPUs for the timed process to join (or None)."""
    if not wanted:
        yield None
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": cpus, "include_dashboard": False})  # fmt: skip
    try:
        yield str(cluster.address)
    finally:
        cluster.shutdown()


def _timed(cmd: list[str]) -> tuple[float, dict[str, Any]]:
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1]
    result = json.loads(line)
    result.update(wall_s=round(wall, 3), load_before=load, load_after=os.getloadavg()[0])
    return wall, result


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "sweep_s": statistics.median(r["sweep_s"] for r in runs),
        "walls": [r["wall_s"] for r in runs],
        "loads": [round(r["load_before"], 1) for r in runs],
    }
    for key in ("trials_cpu_s", "driver_cpu_s", "rss_growth_mb"):
        if key in runs[0]:
            out[key] = statistics.median(r[key] for r in runs)
    if "phases" in runs[0]:
        out["phases"] = {k: statistics.median(r["phases"].get(k, 0.0) for r in runs)
                         for k in runs[0]["phases"]}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="run the whole `tradewind sweep`")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cluster", action="store_true",
                        help="join a Ray cluster started beforehand (not timed), as "
                        "`tradewind sweep --address` does, instead of starting one")  # fmt: skip
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--address", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.worker:
        print(json.dumps(_tradewind_worker(args.data, args.bars, args.worker, full=args.full,
                                           address=args.address)))  # fmt: skip
        return
    from bench.datasets import dataset_path

    data = str(dataset_path("bars", 1_000_000, 7))  # the peers' dataset; first --bars rows
    py, script = sys.executable, str(Path(__file__).resolve())
    vbt_cmd = [py, "-m", "bench.peers.vectorbt_sma", "--sweep", "--data", data,
               "--n-bars", str(args.bars), "--json"]  # fmt: skip
    tw_cmd = [py, script, "--data", data, "--bars", str(args.bars)] + (["--full"] * args.full)
    runs: dict[str, list[dict[str, Any]]] = {"vectorbt": [], "tw1": [], "tw2": []}
    for _ in range(args.repeat):  # rounds: each engine once per round, same conditions
        runs["vectorbt"].append(_timed(vbt_cmd)[1])
        for cpus in (1, 2):
            with _cluster(cpus, args.cluster) as address:
                extra = ["--address", address] if address else []
                runs[f"tw{cpus}"].append(_timed([*tw_cmd, "--worker", str(cpus), *extra])[1])
    vbt, tw1, tw2 = (_summary(runs[k]) for k in ("vectorbt", "tw1", "tw2"))
    ratios = {
        "tradewind_2cpu_over_vectorbt": round(tw2["wall_s"] / vbt["wall_s"], 3),
        "scaling_1_to_2_sweep": round(tw1["sweep_s"] / tw2["sweep_s"], 3),
        "scaling_1_to_2_wall": round(tw1["wall_s"] / tw2["wall_s"], 3),
        "rss_growth_mb_2cpu": tw2.get("rss_growth_mb"),
    }
    targets = {"tradewind_2cpu_over_vectorbt": "<= 1.0", "scaling_1_to_2_sweep": ">= 1.8",
               "rss_growth_mb_2cpu": "flat over 1,000 trials after warm-up: "
               "tests/research/test_memory.py (here: 100 trials, warm-up included)"}  # fmt: skip
    met = {
        "tradewind_2cpu_over_vectorbt": ratios["tradewind_2cpu_over_vectorbt"] <= 1.0,
        "scaling_1_to_2_sweep": ratios["scaling_1_to_2_sweep"] >= 1.8,
        "rss_growth_mb_2cpu": None,  # not decided by 100 trials: see the target
    }
    result = {
        "bench": "sweep", "bars": args.bars, "param_sets": 100, "repeat": args.repeat,
        "full": args.full, "cluster": args.cluster, "cpu_count": os.cpu_count(),
        "loads": vbt["loads"] + tw1["loads"] + tw2["loads"],
        "ratios": ratios, "targets": targets, "met": met,
        "vectorbt": vbt, "tradewind_1cpu": tw1,
        "tradewind_2cpu": {**tw2, "best": runs["tw2"][-1]["best"]},
    }  # fmt: skip
    if not args.json:
        what = "tradewind sweep, end to end" if args.full else "sweep machinery"
        what += ", joining a running cluster" if args.cluster else ""
        print(f"100 parameter sets × {args.bars:,} bars, SMA crossover; whole-process wall time, "
              f"median of {args.repeat} (load averages {vbt['loads']})")  # fmt: skip
        print(f"  vectorbt (vectorised grid)        {vbt['wall_s']:7.2f} s  {vbt['walls']}")
        for cpus, tw in ((1, tw1), (2, tw2)):
            print(f"  tradewind ({what}), {cpus} CPU  {tw['wall_s']:7.2f} s  {tw['walls']}  "
                  f"(sweep {tw['sweep_s']:.2f} s)")  # fmt: skip
            print(f"      phases: {json.dumps(tw.get('phases', {}))}")
            print(f"      CPU: trials {tw.get('trials_cpu_s', 0.0):.1f} s (workers), driver "
                  f"{tw.get('driver_cpu_s', 0.0):.1f} s; worker RSS growth "
                  f"{tw.get('rss_growth_mb', 0.0)} MB")  # fmt: skip
        print(f"  tradewind 2 CPUs / vectorbt: {ratios['tradewind_2cpu_over_vectorbt']:.2f}×   "
              f"scaling 1→2 CPUs: {ratios['scaling_1_to_2_wall']:.2f}× wall, "
              f"{ratios['scaling_1_to_2_sweep']:.2f}× sweep")  # fmt: skip
    print(json.dumps(result))  # always the last line: the ratios, targets and verdicts


if __name__ == "__main__":
    main()
