"""Mean reversion on a rolling z-score, sized by fractional Kelly on its own trades.

Per instrument: enter long when the close is ``entry_z`` standard deviations below its rolling
mean (short above, unless ``long_only``), exit when it is back within ``exit_z``. The notional of
an entry is a fraction of the equity: fractional Kelly (``kelly_fraction`` of mean / variance) of
the returns of the strategy's last ``kelly_window`` closed trades, capped at ``kelly_cap``; until
``min_trades`` trades have closed, or while the estimated edge is not positive, it bets
``probe_fraction`` (small, so it keeps learning what its edge is).
"""

from __future__ import annotations

import statistics
from collections import deque

from pydantic import Field, model_validator

from runtime.indicators import ZScore
from runtime.messages import Bar, Message, OrderFilled
from runtime.sizing import kelly_fraction
from runtime.strategy import Strategy, StrategyParams

__all__ = ["ZScoreRevert", "ZScoreRevertParams"]


class ZScoreRevertParams(StrategyParams):
    period: int = Field(60, ge=2)
    entry_z: float = Field(2.0, gt=0)
    exit_z: float = Field(0.5, ge=0)
    long_only: bool = False
    kelly_fraction: float = Field(0.5, gt=0, le=1)
    kelly_cap: float = Field(0.5, gt=0, description="max notional per entry, times equity")
    kelly_window: int = Field(30, ge=2, description="closed trades the edge is estimated on")
    min_trades: int = Field(10, ge=2)
    probe_fraction: float = Field(0.05, gt=0, description="notional per entry, times equity")

    @model_validator(mode="after")
    def _exit_inside_entry(self) -> ZScoreRevertParams:
        if self.exit_z >= self.entry_z:
            raise ValueError(f"exit_z ({self.exit_z}) must be below entry_z ({self.entry_z})")
        return self


class ZScoreRevert(Strategy[ZScoreRevertParams]):
    def on_start(self) -> None:
        self.z = {i: ZScore(self.params.period) for i in self.instruments}
        self.returns: deque[float] = deque(maxlen=self.params.kelly_window)
        self.entry_price: dict[str, float] = {}
        self.fractions: list[float] = []  # the fraction of equity bet on each entry

    def fraction(self) -> float:
        """The share of equity to put into the next entry."""
        p = self.params
        if len(self.returns) < p.min_trades:
            return p.probe_fraction
        mean = statistics.fmean(self.returns)
        variance = statistics.variance(self.returns)
        f = kelly_fraction(mean, variance, fraction=p.kelly_fraction, cap=p.kelly_cap)
        return f if f > 0 else p.probe_fraction

    def on_bar(self, bar: Bar) -> None:
        inst = bar.instrument_id
        z = self.z[inst]
        z.update(bar.close)
        if not z.ready or self.open_orders(inst):
            return
        held = self.position(inst)
        value = z.value
        if held == 0:
            side = 1 if value <= -self.params.entry_z else (
                -1 if value >= self.params.entry_z and not self.params.long_only else 0
            )
            if side:
                f = self.fraction()
                self.fractions.append(f)
                equity = self.to_float(self.account.equity)
                price = self.to_float(bar.close) * self.to_float(self.instrument(inst).multiplier)
                size = self.to_qty(inst, f * equity / price)
                if size:
                    self.target_position(inst, side * size)
        else:
            entry = self.params.entry_z
            through = value >= entry if held > 0 else value <= -entry  # to the other extreme
            if abs(value) <= self.params.exit_z or through:
                self.close_position(inst)

    def on_order_event(self, event: Message) -> None:
        if not isinstance(event, OrderFilled) or event.leaves_qty:
            return
        inst = event.instrument_id
        price = self.to_float(event.last_price)
        held = self.position(inst)
        if held and inst not in self.entry_price:
            self.entry_price[inst] = price
        elif held == 0 and inst in self.entry_price:
            entry = self.entry_price.pop(inst)
            long = event.side < 0  # a sell closed a long
            self.returns.append((price / entry - 1) if long else (entry / price - 1))
