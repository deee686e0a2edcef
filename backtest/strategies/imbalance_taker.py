"""A mean-reversion taker on microprice and book imbalance.

When the last trade prints more than ``entry_spreads`` spreads away from the microprice, and
the book imbalance does not lean against the trade, take the other side with a market order
(expecting reversion toward the microprice); flatten once the deviation falls below
``exit_spreads`` or after ``max_hold_ms``.
"""

from __future__ import annotations

import math

from pydantic import Field

from runtime.messages import TradeTick
from runtime.strategy import Qty, Strategy, StrategyParams

__all__ = ["ImbalanceTaker", "ImbalanceTakerParams"]


class ImbalanceTakerParams(StrategyParams):
    size: Qty = Field(gt=0)
    entry_spreads: float = Field(2.0, gt=0)
    exit_spreads: float = Field(0.5, ge=0)
    imbalance_filter: float = Field(0.2, ge=0, le=1)
    max_hold_ms: int = Field(5_000, gt=0)


class ImbalanceTaker(Strategy[ImbalanceTakerParams]):
    wants_features = True

    def on_start(self) -> None:
        self.entered_ns: dict[str, int] = {}

    def on_trade(self, trade: TradeTick) -> None:
        inst = trade.instrument_id
        f = self.features(inst)
        spread, micro, imbalance = f["spread"], f["microprice"], f["imbalance"]
        if math.isnan(micro) or math.isnan(spread) or spread <= 0:
            return
        p = self.params
        deviation = (trade.price / 1e9 - micro) / spread
        position = self.position(inst)
        if position == 0:
            imb = 0.0 if math.isnan(imbalance) else imbalance
            if deviation > p.entry_spreads and imb < p.imbalance_filter:
                self.target_position(inst, -p.size)
                self.entered_ns[inst] = trade.ts_event
            elif deviation < -p.entry_spreads and imb > -p.imbalance_filter:
                self.target_position(inst, p.size)
                self.entered_ns[inst] = trade.ts_event
            return
        held_ms = (trade.ts_event - self.entered_ns.get(inst, trade.ts_event)) / 1e6
        if abs(deviation) < p.exit_spreads or held_ms >= p.max_hold_ms:
            self.target_position(inst, 0)
