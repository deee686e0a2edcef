"""backtrader peer: SMA fast/slow long/flat crossover.

Bars: closes drive two ``bt.ind.SMA``; ``order_target_size`` market orders fill at the next bar's
open (backtrader's default; ``cheat_on_open`` stays off). Quotes: backtrader has no quote type, so
each quote is fed as a bar with open = high = low = close = mid; signals match the benchmark but
fills are at the NEXT MID, not at the next ask/bid (a half-spread better than the benchmark rule).
Quotes get synthetic one-second datetimes (see ``_feed_arrays``); fills carry the real ts_ns.

Data is fed from numpy arrays through a minimal ``DataBase`` subclass (no pandas); backtrader
preloads it inside ``cerebro.run()``, which is what ``backtest_s`` times. ``stdstats=False``:
no observers, the fairest (fastest) setting for a throughput figure.
"""

from __future__ import annotations

import time
from typing import Any

import backtrader as bt
import numpy as np

from bench.common import load_arrays, peer_main

ORDINAL_1970 = 719_163.0  # bt.date2num(datetime(1970, 1, 1))
NS_PER_DAY = 86_400 * 10**9


class ArrayFeed(bt.feed.DataBase):  # type: ignore[misc]
    """OHLCV lines from pre-built numpy arrays (datetime already in backtrader's float days)."""

    params = (("arrays", None),)

    def start(self) -> None:
        super().start()
        self._rows = zip(*(a.tolist() for a in self.p.arrays), strict=True)

    def _load(self) -> bool:
        row = next(self._rows, None)
        if row is None:
            return False
        lines = self.lines
        (
            lines.datetime[0],
            lines.open[0],
            lines.high[0],
            lines.low[0],
            lines.close[0],
            lines.volume[0],
        ) = row
        lines.openinterest[0] = 0.0
        return True


class SmaCross(bt.Strategy):  # type: ignore[misc]
    params = (("fast", 10), ("slow", 50), ("size", 100), ("fills", None))

    def __init__(self) -> None:
        self.fast_sma = bt.ind.SMA(self.data.close, period=self.p.fast)
        self.slow_sma = bt.ind.SMA(self.data.close, period=self.p.slow)

    def next(self) -> None:  # called from bar slow-1 on (indicator minimum period)
        want = self.p.size if self.fast_sma[0] > self.slow_sma[0] else 0
        if want != self.position.size:
            self.order_target_size(target=want)

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            bar_index = len(self.data) - 1  # the bar whose open filled the order
            side = "BUY" if order.isbuy() else "SELL"
            self.p.fills.append((bar_index, side, abs(order.executed.size), order.executed.price))


def _feed_arrays(arrays: dict[str, np.ndarray], kind: str) -> tuple[np.ndarray, ...]:
    if kind == "bars":
        days = ORDINAL_1970 + arrays["ts_ns"] / NS_PER_DAY
        cols = [arrays[k].astype(float) for k in ("open", "high", "low", "close", "volume")]
        return (days, *cols)
    # backtrader's datetime is a float day count (~10 us resolution); quotes closer than that
    # share a datetime and then trip its clock (double orders). Feed one-second synthetic times;
    # fills are mapped back to the real ts_ns by index.
    days = ORDINAL_1970 + (arrays["ts_ns"][0] // 10**9 + np.arange(len(arrays["ts_ns"]))) / 86_400
    mid = (arrays["bid"] + arrays["ask"]) / 2.0
    volume = (arrays["bid_size"] + arrays["ask_size"]).astype(float)
    return (days, mid, mid, mid, mid, volume)


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
    fills: list[tuple[int, str, float, float]] = []
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=False)
    cerebro.adddata(ArrayFeed(arrays=_feed_arrays(arrays, kind)))
    cerebro.broker.setcash(1e12)
    cerebro.addstrategy(SmaCross, fast=fast, slow=slow, size=size, fills=fills)
    start = time.perf_counter()
    cerebro.run()
    backtest_s = time.perf_counter() - start
    ts = arrays["ts_ns"]
    return {
        "engine": "backtrader",
        "version": bt.__version__,
        "kind": kind,
        "fills": [(int(ts[i]), side, float(q), float(p)) for i, side, q, p in fills],
        "events": len(ts),
        "backtest_s": backtest_s,
        "fill_price_rule": "next open" if kind == "bars" else "next mid (no ask/bid in backtrader)",
    }


if __name__ == "__main__":
    peer_main("backtrader_sma", run)
