"""SMA crossover entries protected by a bracket: each time the fast SMA crosses above the slow
one while flat, buy ``size`` with a take-profit ``take_profit_pct`` above the close and a
stop-loss ``stop_loss_pct`` below it (an OCO pair the core releases as the entry fills); with
``max_hold_minutes``, a time stop closes what is still held after that long.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from runtime.indicators import Sma
from runtime.messages import Bar, OrderSide
from runtime.strategy import Qty, Strategy, StrategyParams
from runtime.values import Rounding

__all__ = ["SmaBracket", "SmaBracketParams"]

_MINUTE_NS = 60 * 10**9


class SmaBracketParams(StrategyParams):
    fast: int = Field(10, gt=0)
    slow: int = Field(50, gt=0)
    size: Qty = Field(100 * 10**9, gt=0)
    take_profit_pct: Decimal = Field(Decimal("0.5"), gt=0)
    stop_loss_pct: Decimal = Field(Decimal("0.3"), gt=0)
    max_hold_minutes: int = Field(0, ge=0)  # 0: no time stop


class SmaBracket(Strategy[SmaBracketParams]):
    def on_start(self) -> None:
        self.fast = Sma(self.params.fast)
        self.slow = Sma(self.params.slow)
        self.was_above = False
        self.entries = 0

    def on_bar(self, bar: Bar) -> None:
        self.fast.update(bar.close)
        self.slow.update(bar.close)
        if not self.slow.ready:
            return
        above = self.fast.above(self.slow)
        crossed, self.was_above = above and not self.was_above, above
        inst = bar.instrument_id
        if not crossed or self.position(inst) or self.open_orders(inst):
            return
        close = Decimal(self.to_float(bar.close))
        p = self.params
        take = self.to_price(inst, close * (1 + p.take_profit_pct / 100), Rounding.UP)
        stop = self.to_price(inst, close * (1 - p.stop_loss_pct / 100), Rounding.DOWN)
        entry = self.bracket(inst, OrderSide.BUY, p.size, take_profit=take, stop_loss=stop)
        if p.max_hold_minutes:
            self.time_stop(inst, p.max_hold_minutes * _MINUTE_NS, cancel=entry, close=True)
        self.entries += 1
