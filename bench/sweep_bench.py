"""Sweep benchmark: 100 (fast, slow) SMA-crossover parameter sets × 100k one-minute bars through
Tradewind's event-driven engine as Ray tasks, against vectorbt's vectorised parameter grid on the
same data, in the same run; and Tradewind's scaling from 1 to 2 CPUs.

Each figure is the wall time of a whole fresh process (interpreter start, imports, Ray start-up,
building the feed, every backtest with its equity curve and metrics), measured by this script:

    python bench/sweep_bench.py [--bars 100000] [--repeat 1] [--json]

Tradewind's side is the sweep's own machinery (:class:`backtest.research.fanout.TrialRunner`,
:func:`backtest.research.trial.run_trial`): the feed put once in the object store, one task per
parameter set. The grid is vectorbt peer's (``bench/peers/vectorbt_sma.py``): fast in
(5…40) × slow in (50…250).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SWEEP_FAST = (5, 8, 10, 12, 15, 20, 25, 30, 35, 40)  # = bench.peers.vectorbt_sma.SWEEP_FAST
SWEEP_SLOW = (50, 60, 70, 80, 90, 100, 120, 150, 200, 250)


def _tradewind_worker(data: str, n_bars: int, cpus: int) -> dict[str, Any]:
    """In a fresh process: Ray with ``cpus`` CPUs, 100 trials, one line of JSON."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from backtest.feed import Feed
    from backtest.research.fanout import TrialRunner
    from backtest.research.trial import TrialSpec
    from bench.common import load_arrays
    from bench.peers.tradewind_sma import _config, _table

    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    start = time.perf_counter()
    table = _table(load_arrays(data, limit=n_bars), "bars")
    feed = Feed(tables={("bars", "X"): table}, dataset_hash="bench")
    feed.index()
    runner = TrialRunner(
        feed,
        _config("bars", 10, 50, 100),
        options={"strategy": "sma", "objective": "total_return", "n_blocks": 16},
    )
    jobs = [("bench", TrialSpec({"fast": f, "slow": s})) for f in SWEEP_FAST for s in SWEEP_SLOW]
    trials = [t for _, t in runner.run(jobs)]
    elapsed = time.perf_counter() - start
    best = max(trials, key=lambda t: t.metrics.get("final_equity") or 0.0)
    ray.shutdown()
    return {"engine": "tradewind", "cpus": cpus, "param_sets": len(trials),
            "ok": sum(t.status == "ok" for t in trials), "sweep_s": elapsed,
            "fills": sum(t.n_fills for t in trials), "best": [best.params["fast"],
                                                               best.params["slow"]]}  # fmt: skip


def _timed(cmd: list[str]) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1]
    return wall, json.loads(line)


def _median_run(cmd: list[str], repeat: int) -> tuple[float, dict[str, Any]]:
    runs = [_timed(cmd) for _ in range(repeat)]
    return statistics.median(w for w, _ in runs), runs[-1][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.worker:
        print(json.dumps(_tradewind_worker(args.data, args.bars, args.worker)))
        return
    from bench.datasets import dataset_path

    data = str(dataset_path("bars", 1_000_000, 7))  # the peers' dataset; first --bars rows
    py = sys.executable
    vbt_wall, vbt = _median_run([py, "-m", "bench.peers.vectorbt_sma", "--sweep", "--data", data,
                                 "--n-bars", str(args.bars), "--json"], args.repeat)  # fmt: skip
    tw = {cpus: _median_run([py, "bench/sweep_bench.py", "--worker", str(cpus), "--data", data,
                             "--bars", str(args.bars)], args.repeat) for cpus in (1, 2)}  # fmt: skip
    result = {
        "bars": args.bars, "param_sets": 100, "cpu_count": os.cpu_count(),
        "vectorbt": {"wall_s": vbt_wall, "sweep_s": vbt["sweep_s"], "best": vbt["best"]},
        "tradewind_1cpu": {"wall_s": tw[1][0], "sweep_s": tw[1][1]["sweep_s"]},
        "tradewind_2cpu": {"wall_s": tw[2][0], "sweep_s": tw[2][1]["sweep_s"],
                           "best": tw[2][1]["best"]},
        "ratio_vs_vectorbt": tw[2][0] / vbt_wall,
        "scaling_1_to_2_wall": tw[1][0] / tw[2][0],
        "scaling_1_to_2_sweep": tw[1][1]["sweep_s"] / tw[2][1]["sweep_s"],
    }  # fmt: skip
    if args.json:
        print(json.dumps(result))
        return
    print(f"100 parameter sets × {args.bars:,} bars, SMA crossover (whole-process wall time)")
    print(
        f"  vectorbt (vectorised grid)      {vbt_wall:7.2f} s  (grid itself {vbt['sweep_s']:.2f} s)"
    )
    for cpus in (1, 2):
        print(
            f"  tradewind, event-driven, {cpus} CPU  {tw[cpus][0]:7.2f} s  "
            f"(sweep {tw[cpus][1]['sweep_s']:.2f} s)"
        )
    print(
        f"  tradewind 2 CPUs / vectorbt: {result['ratio_vs_vectorbt']:.2f}×   "
        f"scaling 1→2 CPUs: {result['scaling_1_to_2_wall']:.2f}× wall, "
        f"{result['scaling_1_to_2_sweep']:.2f}× sweep"
    )


if __name__ == "__main__":
    main()
