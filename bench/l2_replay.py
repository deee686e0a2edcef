"""Real-L2 replay benchmark: Tradewind's L2 engine vs hftbacktest, same market maker, same data.

    .venv/bin/python bench/l2_replay.py [--repeats 5] [--peer-python PATH] [--cold]

Data: ../shared/data/hftbacktest__btcusdt_20240808.gz (absent: a message and exit 0). Each engine
first converts the raw capture once into its own cached format (timed, printed: one-off cost),
then replays it ``--repeats`` times, each run in its own subprocess timed from the outside (whole
process: interpreter start, imports, JIT or JIT-cache load, data load, replay). Medians are printed.
``--cold`` clears Tradewind's numba cache first, so its first run shows the compile cost.

hftbacktest is a bench extra that pins numpy<2.3, so it lives in its own venv
(``bench/.peers/hftbacktest-venv``, made with ``python -m venv`` + ``pip install hftbacktest``);
``--peer-python`` or ``TRADEWIND_PEER_PYTHON`` point elsewhere.
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

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "hftbacktest__btcusdt_20240808.gz"
CACHE = ROOT / "var" / "bench" / "l2"
PEER = ROOT / "bench" / "peers" / "hftbacktest_mm.py"
DEFAULT_PEER_PYTHON = ROOT / "bench" / ".peers" / "hftbacktest-venv" / "bin" / "python"


def run_tradewind() -> None:
    """The measured body of one Tradewind subprocess: print one JSON line."""
    t0 = time.perf_counter()
    from backtest.l2 import (
        L2ReplayConfig,
        L2ReplayEngine,
        MarketMaker,
        MarketMakerParams,
        load_binance_capture,
    )
    from runtime.values import fixed

    events = load_binance_capture(DATA, cache_dir=CACHE)
    config = L2ReplayConfig(
        instrument_id="BTCUSDT-PERP.BINANCE", entry_latency_ns=10_000_000,
        response_latency_ns=10_000_000, queue_model="risk_averse", fill_model="no_partial",
        timer_interval_ns=100_000_000, maker_fee_rate=fixed("0.0002"),
    )
    strategy = MarketMaker(MarketMakerParams(
        tick_size=fixed("0.1"), order_qty=fixed("0.01"), max_position=fixed("0.1"),
        half_spread_ticks=1.0, skew_ticks=1.0, use_microprice=True,
    ))
    engine = L2ReplayEngine(events, config, strategy)
    t1 = time.perf_counter()
    result = engine.run()
    t2 = time.perf_counter()
    print(json.dumps({
        "engine": "tradewind", "events": len(events), "setup_s": t1 - t0, "replay_s": t2 - t1,
        "wakeups": result.wakeups, "fills": len(result.fills), "position": result.position / 1e9,
        "fees": result.fees / 1e9, "equity": int(result.equity[-1]) / 1e9,
        "volume": sum(f.qty for f in result.fills) / 1e9,
    }))


def _timed(cmd: list[str]) -> tuple[float, dict[str, float]]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"benchmark subprocess failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return wall, json.loads(out.stdout.strip().splitlines()[-1])


def _peer_python(arg: str | None) -> str | None:
    for candidate in (arg, os.environ.get("TRADEWIND_PEER_PYTHON"), str(DEFAULT_PEER_PYTHON)):
        if candidate and Path(candidate).exists():
            return candidate
    probe = subprocess.run([sys.executable, "-c", "import hftbacktest"], capture_output=True,
                           check=False)
    return sys.executable if probe.returncode == 0 else None


def _prepare(peer: str | None) -> dict[str, float]:
    prep: dict[str, float] = {}
    tw_cmd = [sys.executable, "-c", "from backtest.l2 import load_binance_capture as f; "
              f"f({str(DATA)!r}, cache_dir={str(CACHE)!r})"]
    prep["tradewind_convert_s"] = _time_plain(tw_cmd)  # a cache hit after the first time
    npz = CACHE / "btcusdt_20240808.hftbacktest.npz"
    if peer is not None and not npz.exists():
        wall, _ = _timed([peer, str(PEER), "prepare", str(DATA), str(npz)])
        prep["hftbacktest_convert_s"] = wall
    return prep


def _time_plain(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


def _clear_numba_cache() -> None:
    for f in (ROOT / "backtest" / "l2" / "__pycache__").glob("kernel.*.nb[ic]"):
        f.unlink()


def _bench(name: str, cmd: list[str], repeats: int) -> dict[str, object]:
    first_wall, first = _timed(cmd)
    walls, replays = [], []
    for _ in range(repeats):
        wall, res = _timed(cmd)
        walls.append(wall)
        replays.append(res["replay_s"])
    replay = statistics.median(replays)
    return {"name": name, "first_wall_s": first_wall, "wall_s": statistics.median(walls),
            "replay_s": replay, "events_per_s": res["events"] / replay, "result": res,
            "first": first}


def _print(rows: list[dict[str, object]]) -> None:
    print(f"{'engine':<12} {'events':>8} {'first run s':>11} {'process s':>10} {'replay s':>9} "
          f"{'events/s':>11} {'fills':>6} {'position':>9} {'equity':>10}")
    for r in rows:
        res = r["result"]
        assert isinstance(res, dict)
        print(f"{r['name']:<12} {res['events']:>8} {r['first_wall_s']:>11.2f} "
              f"{r['wall_s']:>10.2f} {r['replay_s']:>9.3f} {r['events_per_s']:>11,.0f} "
              f"{res['fills']:>6} {res['position']:>9.3f} {res['equity']:>10.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peer-python", default=None)
    parser.add_argument("--cold", action="store_true", help="clear Tradewind's numba cache first")
    parser.add_argument("--engine", choices=["tradewind"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not DATA.exists():
        print(f"l2_replay: {DATA} is absent (real data beside the project); nothing to measure.")
        return 0
    if args.engine == "tradewind":
        run_tradewind()
        return 0
    peer = _peer_python(args.peer_python)
    if args.cold:
        _clear_numba_cache()
    prep = _prepare(peer)
    print("one-off conversion (raw .gz -> engine format, whole process):",
          ", ".join(f"{k} {v:.2f}s" for k, v in prep.items()))
    rows = [_bench("tradewind", [sys.executable, __file__, "--engine", "tradewind"], args.repeats)]
    if peer is None:
        print("hftbacktest not found (see the module docstring): Tradewind figures only.")
    else:
        npz = CACHE / "btcusdt_20240808.hftbacktest.npz"
        rows.append(_bench("hftbacktest", [peer, str(PEER), "run", str(npz)], args.repeats))
    print(f"medians of {args.repeats} runs, each its own subprocess; 'first run' is the run "
          "before them (JIT cache cold for Tradewind only with --cold)")
    _print(rows)
    if len(rows) == 2:
        ratio = float(rows[1]["wall_s"]) / float(rows[0]["wall_s"])  # type: ignore[arg-type]
        print(f"whole-process time hftbacktest / tradewind = {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
