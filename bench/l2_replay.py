"""Real-L2 replay benchmark: Tradewind's L2 replay vs hftbacktest, same market maker, same data.

    .venv/bin/python bench/l2_replay.py [--repeats 5] [--peer-python PATH] [--cold] [--no-kernel]

Data: ../shared/data/hftbacktest__btcusdt_20240808.gz (absent: a message and exit 0). Each engine
first converts the raw capture once into its own cached format (timed, printed: one-off cost),
then replays it ``--repeats`` times, each run in its own subprocess timed from the outside (whole
process: interpreter start, imports, JIT or JIT-cache load, data load, replay). Medians are printed.
``--cold`` clears Tradewind's numba cache first, so its first run shows the compile cost.

Tradewind's figure is the *kernel path* (``backtest.l2.L2KernelReplay``): the market maker is a
core strategy (``backtest.strategies.market_maker_l2.L2MarketMaker``) in a ``runtime.kernel.Kernel``
with risk limits, the order state machine and the portfolio in the loop; the compiled venue
rebuilds the books and fills between 100 ms wake-ups. ``--no-kernel`` adds a row for the
standalone engine (``L2ReplayEngine``, the same quoting rule without the core) for comparison.

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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backtest.l2 import L2Events, L2ReplayConfig
    from runtime.kernel import Kernel

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "hftbacktest__btcusdt_20240808.gz"
CACHE = ROOT / "var" / "bench" / "l2"
PEER = ROOT / "bench" / "peers" / "hftbacktest_mm.py"
DEFAULT_PEER_PYTHON = ROOT / "bench" / ".peers" / "hftbacktest-venv" / "bin" / "python"


INSTRUMENT = "BTCUSDT-PERP.BINANCE"
INITIAL_CASH = "100000"


def _config(maker_fee_rate: int) -> L2ReplayConfig:
    from backtest.l2 import L2ReplayConfig

    return L2ReplayConfig(
        instrument_id=INSTRUMENT, entry_latency_ns=10_000_000, response_latency_ns=10_000_000,
        queue_model="risk_averse", fill_model="no_partial", timer_interval_ns=100_000_000,
        maker_fee_rate=maker_fee_rate,
    )


def _kernel() -> Kernel:
    """The core: BTCUSDT perp (0.1 tick, 0.001 lot, 2 bp maker), risk limits that are checked on
    every order but do not bind for this strategy (it stops quoting at 0.1 BTC itself)."""
    from backtest.strategies.market_maker_l2 import L2MarketMaker
    from runtime.instruments import FeeSchedule, Instrument, InstrumentRegistry
    from runtime.kernel import Kernel
    from runtime.risk import RiskLimits
    from runtime.values import fixed

    btc = Instrument(
        instrument_id=INSTRUMENT, venue="BINANCE", asset_class="crypto_perp", currency="USDT",
        price_precision=1, size_precision=3, lot_size=fixed("0.001"), min_quantity=fixed("0.001"),
        fees=FeeSchedule(maker_rate=fixed("0.0002"), taker_rate=fixed("0.0005")),
    )
    risk = RiskLimits(
        max_position="0.2", max_order_notional="10000", price_band_pct="1", stale_data_s=5.0,
        max_orders_per_window=100, order_window_s=1.0,
    )
    mm = L2MarketMaker(
        "mm", {"order_qty": "0.01", "max_position": "0.1", "half_spread_ticks": 1.0,
               "skew_ticks": 1.0, "use_microprice": True, "requote_ms": 100},
        instruments=(INSTRUMENT,),
    )
    return Kernel(registry=InstrumentRegistry([btc]), strategies=[mm], risk_limits=risk,
                  initial_cash=fixed(INITIAL_CASH), currency="USDT", namespace="bench", seed=7)


def run_tradewind(kernel: bool) -> None:
    """The measured body of one Tradewind subprocess: print one JSON line."""
    t0 = time.perf_counter()
    from backtest.l2 import load_binance_capture
    from runtime.values import fixed

    events = load_binance_capture(DATA, cache_dir=CACHE)
    config = _config(fixed("0.0002"))
    figures = _kernel_run(events, config, t0) if kernel else _standalone_run(events, config, t0)
    print(json.dumps({"events": len(events), **figures}))


def _kernel_run(events: L2Events, config: L2ReplayConfig, t0: float) -> dict[str, object]:
    from backtest.l2 import L2KernelReplay
    from runtime.values import fixed

    replay = L2KernelReplay(events, config, _kernel())
    t1 = time.perf_counter()
    result = replay.run()
    t2 = time.perf_counter()
    return {
        "engine": "tradewind", "setup_s": t1 - t0, "replay_s": t2 - t1,
        "wakeups": result.wakeups, "fills": len(result.fills),
        "position": result.position / 1e9, "fees": result.fees / 1e9,
        "equity": (int(result.equity[-1]) - fixed(INITIAL_CASH)) / 1e9,
        "volume": sum(f.last_qty for f in result.fills) / 1e9,
        "denials": len(result.denials), "identity_gap": result.kernel.portfolio.identity_gap(),
        "state_hash": result.state_hash[:16], "orders": result.orders,
    }


def _standalone_run(events: L2Events, config: L2ReplayConfig, t0: float) -> dict[str, object]:
    from backtest.l2 import L2ReplayEngine, MarketMaker, MarketMakerParams
    from runtime.values import fixed

    strategy = MarketMaker(MarketMakerParams(
        tick_size=fixed("0.1"), order_qty=fixed("0.01"), max_position=fixed("0.1"),
        half_spread_ticks=1.0, skew_ticks=1.0, use_microprice=True,
    ))
    engine = L2ReplayEngine(events, config, strategy)
    t1 = time.perf_counter()
    result = engine.run()
    t2 = time.perf_counter()
    return {
        "engine": "tw-no-kernel", "setup_s": t1 - t0, "replay_s": t2 - t1,
        "wakeups": result.wakeups, "fills": len(result.fills),
        "position": result.position / 1e9, "fees": result.fees / 1e9,
        "equity": int(result.equity[-1]) / 1e9, "volume": sum(f.qty for f in result.fills) / 1e9,
    }


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


def _bench(engines: dict[str, list[str]], repeats: int) -> list[dict[str, object]]:
    """One first run per engine, then ``repeats`` rounds running every engine once each, in
    turn: interleaved, so a change in machine load affects all engines alike."""
    firsts = {name: _timed(cmd) for name, cmd in engines.items()}
    walls: dict[str, list[float]] = {name: [] for name in engines}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in engines}
    for _ in range(repeats):
        for name, cmd in engines.items():
            wall, res = _timed(cmd)
            walls[name].append(wall)
            results[name].append(res)
    rows: list[dict[str, object]] = []
    for name in engines:
        replay = statistics.median(r["replay_s"] for r in results[name])
        res = results[name][-1]
        rows.append({"name": name, "first_wall_s": firsts[name][0],
                     "wall_s": statistics.median(walls[name]), "replay_s": replay,
                     "events_per_s": res["events"] / replay, "result": res})
    return rows


def _print(rows: list[dict[str, object]]) -> None:
    print(f"{'engine':<12} {'events':>8} {'first run s':>11} {'process s':>10} {'replay s':>9} "
          f"{'events/s':>11} {'fills':>6} {'position':>9} {'equity':>10}")
    for r in rows:
        res = r["result"]
        assert isinstance(res, dict)
        print(f"{r['name']:<12} {res['events']:>8} {r['first_wall_s']:>11.2f} "
              f"{r['wall_s']:>10.2f} {r['replay_s']:>9.3f} {r['events_per_s']:>11,.0f} "
              f"{res['fills']:>6} {res['position']:>9.3f} {res['equity']:>10.2f}")


def _print_kernel_facts(row: dict[str, object]) -> None:
    res = row["result"]
    assert isinstance(res, dict)
    print(f"tradewind kernel path: {res['denials']} risk denials, identity gap "
          f"{res['identity_gap']}, state hash {res['state_hash']}…, orders {res['orders']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peer-python", default=None)
    parser.add_argument("--cold", action="store_true", help="clear Tradewind's numba cache first")
    parser.add_argument("--no-kernel", action="store_true",
                        help="also measure the standalone engine (no core kernel) for comparison")
    parser.add_argument("--engine", choices=["tradewind", "tw-no-kernel"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not DATA.exists():
        print(f"l2_replay: {DATA} is absent (real data beside the project); nothing to measure.")
        return 0
    if args.engine is not None:
        run_tradewind(kernel=args.engine == "tradewind")
        return 0
    peer = _peer_python(args.peer_python)
    if args.cold:
        _clear_numba_cache()
    prep = _prepare(peer)
    print("one-off conversion (raw .gz -> engine format, whole process):",
          ", ".join(f"{k} {v:.2f}s" for k, v in prep.items()))
    engines = {"tradewind": [sys.executable, __file__, "--engine", "tradewind"]}
    if args.no_kernel:
        engines["tw-no-kernel"] = [sys.executable, __file__, "--engine", "tw-no-kernel"]
    if peer is None:
        print("hftbacktest not found (see the module docstring): Tradewind figures only.")
    else:
        npz = CACHE / "btcusdt_20240808.hftbacktest.npz"
        engines["hftbacktest"] = [peer, str(PEER), "run", str(npz)]
    rows = _bench(engines, args.repeats)
    print(f"medians of {args.repeats} interleaved rounds, each run its own subprocess; 'first run' "
          "is the run before them (JIT cache cold for Tradewind only with --cold)")
    _print(rows)
    _print_kernel_facts(rows[0])
    peer_rows = [r for r in rows if r["name"] == "hftbacktest"]
    if peer_rows:
        ratio = float(peer_rows[0]["wall_s"]) / float(rows[0]["wall_s"])  # type: ignore[arg-type]
        print(f"whole-process time hftbacktest / tradewind (kernel path) = {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
