"""What every peer shares: loading a dataset, the result shape, the command line, the fill checks.

Kept to numpy, pyarrow and the standard library: the peers run in their own interpreters (the
NautilusTrader peer in its own venv, bench/.peers/nautilus, because it pins pandas<3), so nothing
here may import Tradewind or a peer library.

A peer's ``run(dataset_path, *, kind, fast, slow, size, limit) -> dict`` returns::

    {"engine": str, "kind": "bars"|"quotes", "fills": [[ts_ns, "BUY"|"SELL", qty, price], ...],
     "events": int, "backtest_s": float, ...extra keys a peer wants to report}

``backtest_s`` is the engine's run only (``perf_counter`` around it), not loading the Parquet file
or building the engine's own data objects; the bench script times whole processes separately.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

__all__ = [
    "TICKS_PER_UNIT",
    "compare_fills",
    "exact_fills",
    "explain_decisions",
    "load_arrays",
    "peak_rss_mb",
    "peer_main",
    "to_ticks",
]

TICKS_PER_UNIT = 100  # the synthetic datasets' 0.01 tick
Fill = tuple[int, str, float, float]


def load_arrays(path: str | Path, *, limit: int | None = None) -> dict[str, np.ndarray]:
    """The dataset's columns as numpy arrays (first ``limit`` rows if given)."""
    table = pq.read_table(path)
    if limit is not None:
        table = table.slice(0, limit)
    return {name: table.column(name).to_numpy() for name in table.column_names}


def kind_of(arrays: dict[str, np.ndarray]) -> str:
    return "bars" if "close" in arrays else "quotes"


def to_ticks(prices: np.ndarray) -> np.ndarray:
    """Float cent prices to exact integer ticks."""
    ticks: np.ndarray = np.rint(np.asarray(prices) * TICKS_PER_UNIT).astype(np.int64)
    return ticks


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def exact_fills(arrays: dict[str, np.ndarray], *, fast: int, slow: int, size: int) -> list[Fill]:
    """The benchmark strategy's fills, exactly (integer tick sums), for bars or quotes.

    Bars: signal on closes, fill at the next bar's open. Quotes: signal on mids (bid + ask in
    ticks, which is 2 x mid and compares the same), buy at the next quote's ask, sell at its bid.
    Fill ts = ts_ns of the event that carries the fill price. Same conventions as
    tests/backtest/sma_reference.py (an independent implementation of the bars case).
    """
    ts = arrays["ts_ns"]
    signal = _signal_ticks(arrays)
    if kind_of(arrays) == "bars":
        buy_px = sell_px = arrays["open"]
    else:
        buy_px, sell_px = arrays["ask"], arrays["bid"]
    n = len(signal)
    if n < slow:
        return []
    csum = np.concatenate(([0], np.cumsum(signal, dtype=np.int64)))
    idx = np.arange(slow - 1, n)
    fast_sum = csum[idx + 1] - csum[idx + 1 - fast]
    slow_sum = csum[idx + 1] - csum[idx + 1 - slow]
    target = np.zeros(n + 1, dtype=np.int64)
    target[slow:] = np.where(fast_sum * slow > slow_sum * fast, size, 0)
    change = np.diff(target)[:-1]
    out: list[Fill] = []
    for i in np.flatnonzero(change).tolist():
        buy = change[i] > 0
        price = float(buy_px[i + 1] if buy else sell_px[i + 1])
        out.append((int(ts[i + 1]), "BUY" if buy else "SELL", float(abs(change[i])), price))
    return out


def _signal_ticks(arrays: dict[str, np.ndarray]) -> np.ndarray:
    if kind_of(arrays) == "bars":
        return to_ticks(arrays["close"])
    twice_mid: np.ndarray = to_ticks(arrays["bid"]) + to_ticks(arrays["ask"])  # exact
    return twice_mid


def explain_decisions(
    arrays: dict[str, np.ndarray],
    fills: list[Any],
    *,
    fast: int,
    slow: int,
    size: int,
    fill_lag: int = 1,
) -> dict[str, Any]:
    """Where a peer's decisions differ from the exact rule, and the exact SMA gap there.

    The peer's target position after each event is rebuilt from its fills (a fill at event j
    came from the decision at event j - ``fill_lag``). ``gap = fast_sum*slow - slow_sum*fast`` in
    ticks at each differing decision: 0 means an exact tie (equal SMAs) that float means broke.
    """
    ts = arrays["ts_ns"]
    signal = _signal_ticks(arrays)
    n = len(signal)
    pos_of_ts = {int(t): k for k, t in enumerate(ts.tolist())}
    delta = np.zeros(n + 1, dtype=np.int64)
    for t, side, qty, _ in fills:
        j = pos_of_ts[int(t)] - fill_lag  # decision event
        delta[j + 1] += int(qty) if side == "BUY" else -int(qty)
    peer_target = np.cumsum(delta)[1:]  # target decided at each event
    csum = np.concatenate(([0], np.cumsum(signal, dtype=np.int64)))
    idx = np.arange(n)
    ok = idx >= slow - 1
    gap = np.zeros(n, dtype=np.int64)
    i = idx[ok]
    gap[ok] = (csum[i + 1] - csum[i + 1 - fast]) * slow - (csum[i + 1] - csum[i + 1 - slow]) * fast
    exact_target = np.where(ok & (gap > 0), size, 0)
    if fill_lag:
        exact_target[-fill_lag:] = peer_target[-fill_lag:]  # the last decisions cannot fill
    differ = np.flatnonzero(exact_target != peer_target)
    gaps = gap[differ]
    return {
        "n_decisions_differ": len(differ),
        "n_exact_ties": int(np.sum(gaps == 0)),
        "max_abs_gap_ticks": int(np.abs(gaps).max(initial=0)),
        "examples": [(int(k), int(g)) for k, g in zip(differ[:10], gaps[:10], strict=True)],
    }


def compare_fills(expected: list[Any], actual: list[Any]) -> dict[str, Any]:
    """Fills equal exactly? If not: counts, first mismatch, and the differing fills by ts."""
    exp = [(int(t), s, float(q), round(float(p) * TICKS_PER_UNIT)) for t, s, q, p in expected]
    act = [(int(t), s, float(q), round(float(p) * TICKS_PER_UNIT)) for t, s, q, p in actual]
    if exp == act:
        return {"equal": True, "n": len(exp)}
    first = next(
        (k for k, (a, b) in enumerate(zip(exp, act, strict=False)) if a != b),
        min(len(exp), len(act)),
    )
    only_exp = sorted(set(exp) - set(act))
    only_act = sorted(set(act) - set(exp))
    return {
        "equal": False,
        "n_expected": len(exp),
        "n_actual": len(act),
        "first_mismatch": first,
        "only_expected": only_exp[:20],
        "only_actual": only_act[:20],
        "n_only_expected": len(only_exp),
        "n_only_actual": len(only_act),
    }


def peer_main(engine: str, run: Callable[..., dict[str, Any]], *, quotes: bool = True) -> None:
    """``python -m bench.peers.<peer> --data PATH --kind bars|quotes [--limit N] [--json]``."""
    parser = argparse.ArgumentParser(prog=f"bench.peers.{engine}")
    parser.add_argument("--data", required=True, help="a Parquet file from bench.datasets")
    parser.add_argument("--kind", choices=["bars", "quotes"], required=True)
    parser.add_argument("--fast", type=int, default=10)
    parser.add_argument("--slow", type=int, default=50)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N events")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--check", action="store_true", help="compare fills with exact_fills")
    args = parser.parse_args()
    if args.kind == "quotes" and not quotes:
        sys.exit(f"{engine}: quotes are not supported by this peer")
    result = run(
        args.data, kind=args.kind, fast=args.fast, slow=args.slow, size=args.size, limit=args.limit
    )
    result["peak_rss_mb"] = peak_rss_mb()
    if args.check:
        arrays = load_arrays(args.data, limit=args.limit)
        result["check"] = compare_fills(
            exact_fills(arrays, fast=args.fast, slow=args.slow, size=args.size), result["fills"]
        )
        result["decisions"] = explain_decisions(
            arrays,
            result["fills"],
            fast=args.fast,
            slow=args.slow,
            size=args.size,
            fill_lag=result.get("fill_lag", 1),
        )
    if args.json:
        print(json.dumps(result))
        return
    rate = result["events"] / result["backtest_s"] if result["backtest_s"] else float("nan")
    print(
        f"{engine} {args.kind}: {result['events']} events, {len(result['fills'])} fills, "
        f"backtest {result['backtest_s']:.3f} s ({rate:,.0f} events/s), "
        f"peak RSS {result['peak_rss_mb']:.0f} MB"
    )
    if "check" in result:
        print("check vs exact_fills:", json.dumps(result["check"])[:1500])
        print("decisions vs exact rule:", json.dumps(result["decisions"]))
