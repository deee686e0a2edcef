"""SMA crossover, long/flat, worked by TWAP: the target (``size`` while the fast SMA is above
the slow one, else flat) is reached by a parent order sliced into ``slices`` children over
``horizon_minutes`` (each moved by up to ``jitter_bps`` of an interval, from the run's seed),
not by one market order. A target that changes while a parent works cancels it and works the
new difference.
"""

from __future__ import annotations

from pydantic import Field

from runtime.algos import Twap
from runtime.indicators import Sma
from runtime.messages import Bar
from runtime.strategy import Qty, Strategy, StrategyParams

__all__ = ["SmaTwap", "SmaTwapParams"]


class SmaTwapParams(StrategyParams):
    fast: int = Field(10, gt=0)
    slow: int = Field(50, gt=0)
    size: Qty = Field(100 * 10**9, gt=0)
    horizon_minutes: int = Field(10, gt=0)
    slices: int = Field(5, gt=0)
    jitter_bps: int = Field(2000, ge=0, le=5000)


class SmaTwap(Strategy[SmaTwapParams]):
    def on_start(self) -> None:
        self.fast = Sma(self.params.fast)
        self.slow = Sma(self.params.slow)
        p = self.params
        self.twap = Twap(horizon_ns=p.horizon_minutes * 60 * 10**9, slices=p.slices,
                         jitter_bps=p.jitter_bps)

    def on_bar(self, bar: Bar) -> None:
        self.fast.update(bar.close)
        self.slow.update(bar.close)
        if not self.slow.ready:
            return
        want = self.params.size if self.fast.above(self.slow) else 0
        self.target_position(bar.instrument_id, want, self.twap)
