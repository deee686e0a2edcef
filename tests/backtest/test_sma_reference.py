"""The independent SMA-crossover reference is right: by hand, exactly, and against backtrader."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from tests.backtest.sma_reference import sma_cross_fills

SCALE = 10**9


def raw(values: list[str]) -> np.ndarray:
    return np.array([int(Decimal(v) * SCALE) for v in values], dtype=np.int64)


def test_hand_made_series_fast2_slow3() -> None:
    """Derived by hand (fast=2, slow=3; long iff 3*fast_sum > 2*slow_sum):

    bar  close  fast_sum slow_sum  3f vs 2s   decision   fill (at next open)
     2    12      23       33      69 > 66    long       BUY  at open[3]
     3    12      24       35      72 > 70    long       -
     4    12      24       36      72 = 72    flat (tie) SELL at open[5]
     5     9      21       33      63 < 66    flat       -
     6    10      19       31      57 < 62    flat       -
     7    12      22       31      66 > 62    long       BUY  at open[8]
     8    12      24       34      72 > 68    long       last bar: nothing to fill
    """
    close = raw(["10", "11", "12", "12", "12", "9", "10", "12", "12"])
    open_ = raw(["9.9", "10.1", "11.2", "12.05", "11.95", "11.5", "9.25", "10.5", "12.01"])
    ts = np.arange(1, 10, dtype=np.int64) * 60 * 10**9
    fills = sma_cross_fills(ts, open_, close, fast=2, slow=3, qty_raw=5)
    assert fills == [
        (4 * 60 * 10**9, "BUY", 5, 12_050_000_000),
        (6 * 60 * 10**9, "SELL", 5, 11_500_000_000),
        (9 * 60 * 10**9, "BUY", 5, 12_010_000_000),
    ]


def test_exact_tie_where_float_means_say_long() -> None:
    """Closes 0.2, 0.3, 0.1: both SMAs are exactly 0.2, but float means give 0.2 > 0.19999…"""
    assert (0.3 + 0.1) / 2 > (0.2 + 0.3 + 0.1) / 3  # the float trap the reference avoids
    close = raw(["0.2", "0.3", "0.1", "0.1"])
    open_ = raw(["0.2", "0.3", "0.1", "0.1"])
    ts = np.arange(4, dtype=np.int64)
    assert sma_cross_fills(ts, open_, close, fast=2, slow=3, qty_raw=1) == []


def test_no_decision_before_warm_up_and_none_on_the_last_bar() -> None:
    rising = raw([str(p) for p in range(1, 51)])  # fast > slow from bar 49 = the last bar
    ts = np.arange(50, dtype=np.int64)
    assert sma_cross_fills(ts, rising, rising, fast=10, slow=50) == []
    rising51 = raw([str(p) for p in range(1, 52)])
    fills = sma_cross_fills(np.arange(51, dtype=np.int64), rising51, rising51, fast=10, slow=50)
    assert fills == [(50, "BUY", 1, 51 * SCALE)]


def _load_nvda(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    rows = [line.split(",") for line in path.read_text().splitlines()[1:] if line.strip()]
    dates = [r[0] for r in rows]
    ts = np.array([np.datetime64(d, "ns").astype(np.int64) for d in dates], dtype=np.int64)
    return dates, ts, raw([r[1] for r in rows]), raw([r[4] for r in rows])


def _backtrader_fills(
    path: Path, *, fast: int, slow: int, size: int
) -> list[tuple[str, str, int, float]]:
    import backtrader as bt

    fills: list[tuple[str, str, int, float]] = []

    class SmaCross(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.fast = bt.ind.SMA(self.data.close, period=fast)
            self.slow = bt.ind.SMA(self.data.close, period=slow)

        def next(self) -> None:
            want = size if self.fast[0] > self.slow[0] else 0
            if want != self.position.size:
                self.order_target_size(target=want)

        def notify_order(self, order: bt.Order) -> None:
            if order.status == order.Completed:
                day = bt.num2date(self.data.datetime[0]).date().isoformat()
                side = "BUY" if order.isbuy() else "SELL"
                fills.append((day, side, abs(int(order.executed.size)), order.executed.price))

    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=False)
    feed = bt.feeds.GenericCSVData(
        dataname=str(path),
        dtformat="%Y-%m-%d",
        datetime=0,
        open=1,
        high=2,
        low=3,
        close=4,
        volume=6,
        openinterest=-1,
        time=-1,
    )
    cerebro.adddata(feed)
    cerebro.broker.setcash(1e12)
    cerebro.addstrategy(SmaCross)
    cerebro.run()
    return fills


def test_nvda_daily_matches_backtrader(shared_data: Callable[[str], Path]) -> None:
    path = shared_data("backtrader__nvda-1999-2014.txt")
    if importlib.util.find_spec("backtrader") is None:
        pytest.skip("backtrader is not installed (pip install -e '.[bench]')")
    dates, ts, open_raw, close_raw = _load_nvda(path)
    ours = sma_cross_fills(ts, open_raw, close_raw, fast=10, slow=50, qty_raw=100)
    theirs = _backtrader_fills(path, fast=10, slow=50, size=100)
    day_of = dict(zip(ts.tolist(), dates, strict=True))
    assert len(ours) > 50  # a real test: NVDA crosses many times in 16 years
    assert [(day_of[t], s, q, p) for t, s, q, p in ours] == [
        (d, s, q, int(Decimal(repr(p)) * SCALE)) for d, s, q, p in theirs
    ]
