"""SMA crossover, long/flat: hold ``size`` while the fast SMA is above the slow one.

On bars it averages closes; on quotes it averages mids (``(bid + ask) // 2``, exact ints).
"""

from __future__ import annotations

from pydantic import Field

from runtime.indicators import Sma
from runtime.messages import Bar, QuoteTick
from runtime.strategy import Qty, Strategy, StrategyParams

__all__ = ["SmaCross", "SmaCrossParams"]


class SmaCrossParams(StrategyParams):
    fast: int = Field(10, gt=0)
    slow: int = Field(50, gt=0)
    size: Qty = Field(100 * 10**9, gt=0)


class SmaCross(Strategy[SmaCrossParams]):
    def on_start(self) -> None:
        if self.params.fast >= self.params.slow:
            from runtime.errors import ConfigError

            raise ConfigError(
                f"fast ({self.params.fast}) must be below slow ({self.params.slow})",
                field=f"strategies.{self.strategy_id}.params",
            )
        self.fast = Sma(self.params.fast)
        self.slow = Sma(self.params.slow)

    def on_bar(self, bar: Bar) -> None:
        self.fast.update(bar.close)
        self.slow.update(bar.close)
        if not self.slow.ready:
            return
        want = self.params.size if self.fast.above(self.slow) else 0  # exact comparison
        self.target_position(bar.instrument_id, want)

    def on_quote(self, quote: QuoteTick) -> None:
        mid = (quote.bid_price + quote.ask_price) // 2
        self.fast.update(mid)
        self.slow.update(mid)
        if not self.slow.ready:
            return
        want = self.params.size if self.fast.above(self.slow) else 0
        self.target_position(quote.instrument_id, want)
