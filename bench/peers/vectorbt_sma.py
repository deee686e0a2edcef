"""vectorbt peer: the same SMA long/flat crossover, vectorised, plus a 100-parameter sweep.

Signals come from ``vbt.MA`` (float rolling means) with a strict ``>``; the "want long" mask is
shifted one event forward and handed to ``Portfolio.from_signals`` as entries (and its negation as
exits) with ``price`` = the next bar's open (bars) or, per event, the ask where an entry executes
and the bid elsewhere (quotes) — so fills follow the benchmark rule exactly. ``size`` is an amount
of shares, ``direction="longonly"``, no fees, ample cash.

``backtest_s`` covers the MA indicator and ``from_signals``; numba compiles (or loads from its
on-disk cache) on the first call, so ``backtest_s`` is the cold first call in a fresh process and
``backtest_warm_s`` a second identical call.

``sweep``: a 10 x 10 (fast, slow) grid = 100 parameter sets over the first 100k bars, one
``from_signals`` call over 100 columns. ``python -m bench.peers.vectorbt_sma --data PATH --sweep``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import pandas as pd
import vectorbt as vbt

from bench.common import load_arrays, peak_rss_mb, peer_main

INIT_CASH = 1e12
SWEEP_FAST = (5, 8, 10, 12, 15, 20, 25, 30, 35, 40)
SWEEP_SLOW = (50, 60, 70, 80, 90, 100, 120, 150, 200, 250)


def _signal(arrays: dict[str, np.ndarray], kind: str) -> np.ndarray:
    return arrays["close"] if kind == "bars" else (arrays["bid"] + arrays["ask"]) / 2.0


def _backtest(
    arrays: dict[str, np.ndarray], kind: str, fast: int, slow: int, size: int
) -> vbt.Portfolio:
    signal = pd.Series(_signal(arrays, kind))
    fast_ma = vbt.MA.run(signal, window=fast).ma.to_numpy()
    slow_ma = vbt.MA.run(signal, window=slow).ma.to_numpy()
    want = np.zeros(len(signal), dtype=bool)
    want[1:] = (fast_ma > slow_ma)[:-1]  # decided at i, executed at i + 1 (NaN > x is False)
    decided = np.zeros(len(signal), dtype=bool)
    decided[slow:] = True  # first decision at slow - 1, executable from slow on
    price = arrays["open"] if kind == "bars" else np.where(want, arrays["ask"], arrays["bid"])
    return vbt.Portfolio.from_signals(
        close=signal,
        entries=want,
        exits=decided & ~want,
        price=price,
        size=float(size),
        size_type="amount",
        direction="longonly",
        init_cash=INIT_CASH,
        fees=0.0,
        slippage=0.0,
        freq="1min",
    )


def _fills(pf: vbt.Portfolio, ts: np.ndarray) -> list[tuple[int, str, float, float]]:
    rec = pf.orders.values
    return [
        (int(ts[i]), "BUY" if s == 0 else "SELL", float(q), float(p))
        for i, s, q, p in zip(
            rec["idx"].tolist(),
            rec["side"].tolist(),
            rec["size"].tolist(),
            rec["price"].tolist(),
            strict=True,
        )
    ]


def run(
    dataset_path: str,
    *,
    kind: str = "bars",
    fast: int = 10,
    slow: int = 50,
    size: int = 100,
    limit: int | None = None,
) -> dict[str, Any]:
    arrays = load_arrays(dataset_path, limit=limit)
    start = time.perf_counter()
    pf = _backtest(arrays, kind, fast, slow, size)
    cold_s = time.perf_counter() - start
    start = time.perf_counter()
    pf = _backtest(arrays, kind, fast, slow, size)
    warm_s = time.perf_counter() - start
    return {
        "engine": "vectorbt",
        "version": vbt.__version__,
        "kind": kind,
        "fills": _fills(pf, arrays["ts_ns"]),
        "events": len(arrays["ts_ns"]),
        "backtest_s": cold_s,
        "backtest_warm_s": warm_s,
        "fill_price_rule": "next open" if kind == "bars" else "next ask/bid",
    }


def sweep(dataset_path: str, *, n_bars: int = 100_000, size: int = 100) -> dict[str, Any]:
    """100 (fast, slow) pairs over the first ``n_bars`` bars in one vectorised portfolio."""
    arrays = load_arrays(dataset_path, limit=n_bars)
    close = pd.Series(arrays["close"])
    start = time.perf_counter()
    fast_ma = vbt.MA.run(close, window=list(SWEEP_FAST)).ma.to_numpy()
    slow_ma = vbt.MA.run(close, window=list(SWEEP_SLOW)).ma.to_numpy()
    pairs = [(f, s) for f in SWEEP_FAST for s in SWEEP_SLOW]
    fi = [SWEEP_FAST.index(f) for f, _ in pairs]
    si = [SWEEP_SLOW.index(s) for _, s in pairs]
    want = np.zeros((len(close), len(pairs)), dtype=bool)
    want[1:] = (fast_ma[:, fi] > slow_ma[:, si])[:-1]
    decided = np.arange(len(close))[:, None] >= np.array([s for _, s in pairs])[None, :]
    columns = pd.MultiIndex.from_tuples(pairs, names=["fast", "slow"])
    pf = vbt.Portfolio.from_signals(
        close=pd.DataFrame(
            np.repeat(arrays["close"][:, None], len(pairs), axis=1), columns=columns
        ),
        entries=pd.DataFrame(want, columns=columns),
        exits=pd.DataFrame(decided & ~want, columns=columns),
        price=arrays["open"][:, None],
        size=float(size),
        size_type="amount",
        direction="longonly",
        init_cash=INIT_CASH,
        fees=0.0,
        freq="1min",
    )
    pnl = pf.total_profit()
    elapsed = time.perf_counter() - start
    return {
        "engine": "vectorbt",
        "version": vbt.__version__,
        "bars": len(close),
        "param_sets": len(pairs),
        "sweep_s": elapsed,
        "orders": int(pf.orders.count().sum()),
        "best": [int(x) for x in pnl.idxmax()],
        "best_pnl": float(pnl.max()),
    }


def _sweep_main() -> None:
    parser = argparse.ArgumentParser(prog="bench.peers.vectorbt_sma --sweep")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--data", required=True)
    parser.add_argument("--n-bars", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = sweep(args.data, n_bars=args.n_bars)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result) if args.json else result)


if __name__ == "__main__":
    import sys

    if "--sweep" in sys.argv:
        _sweep_main()
    else:
        peer_main("vectorbt_sma", run)
