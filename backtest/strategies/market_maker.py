"""A market maker on L1 quotes or an L2 book: post-only quotes around a fair value, skewed
against inventory, widened by realised volatility, on a ladder of ``levels``.

The fair value blends the strategy's own estimate, the microprice (the mid weighted toward the
side with less size: where the next trade is likelier), with the market's mid:
``fair_weight · microprice + (1 − fair_weight) · mid`` (1: the microprice alone; 0: the mid).

It requotes on a timer (``requote_ms``) rather than on every tick: real venues rate-limit,
and every cancel/replace loses queue position.
"""

from __future__ import annotations

import math

from pydantic import Field

from runtime.messages import (
    BookDeltas,
    BookSnapshot,
    Message,
    OrderSide,
    OrderType,
    QuoteTick,
    TimerFired,
    TradeTick,
)
from runtime.strategy import Qty, Strategy, StrategyParams
from runtime.values import FIXED_SCALE, Rounding

__all__ = ["MarketMaker", "MarketMakerParams"]


class MarketMakerParams(StrategyParams):
    size: Qty = Field(gt=0, description="quantity per level")
    levels: int = Field(1, ge=1, le=10)
    level_spacing_ticks: int = Field(1, ge=1)
    half_spread_ticks: int = Field(1, ge=1, description="minimum half spread")
    vol_mult: float = Field(0.0, ge=0, description="half spread += vol_mult × realised vol × price")
    skew_ticks: float = Field(1.0, ge=0, description="quote shift in ticks at full inventory")
    max_inventory: Qty = Field(gt=0)
    requote_ms: int = Field(100, gt=0)
    fair_weight: float = Field(
        1.0, ge=0, le=1, description="weight of the microprice in the fair value; the rest: mid"
    )


class MarketMaker(Strategy[MarketMakerParams]):
    wants_features = True

    def on_start(self) -> None:
        self.dirty: set[str] = set(self.instruments)
        self.set_timer("requote", self.params.requote_ms * 1_000_000)

    # anything that can move a quote marks its instrument; the timer requotes only those
    def on_quote(self, quote: QuoteTick) -> None:
        self.dirty.add(quote.instrument_id)

    def on_trade(self, trade: TradeTick) -> None:
        self.dirty.add(trade.instrument_id)

    def on_book(self, book: BookDeltas | BookSnapshot) -> None:
        self.dirty.add(book.instrument_id)

    def on_order_event(self, event: Message) -> None:
        instrument_id = getattr(event, "instrument_id", None)
        if instrument_id is not None:
            self.dirty.add(instrument_id)

    def on_timer(self, timer: TimerFired) -> None:
        if not self.dirty:
            return
        dirty, self.dirty = self.dirty, set()
        for instrument_id in sorted(dirty):
            self._requote(instrument_id)

    def _requote(self, instrument_id: str) -> None:
        f = self.features(instrument_id)
        p = self.params
        mid, micro = f["mid"], f["microprice"]
        fair = mid if math.isnan(micro) else p.fair_weight * micro + (1 - p.fair_weight) * mid
        if math.isnan(fair):
            return
        instrument = self.instrument(instrument_id)
        fair_raw = int(fair * FIXED_SCALE)
        tick = instrument.tick_at(fair_raw)
        vol = f["realized_vol"] if not math.isnan(f["realized_vol"]) else 0.0
        half = max(p.half_spread_ticks * tick, int(p.vol_mult * vol * fair_raw))
        inventory = self.position(instrument_id)
        skew = int(-p.skew_ticks * tick * inventory / p.max_inventory)
        best_bid = int((f["mid"] - f["spread"] / 2) * FIXED_SCALE)
        best_ask = int((f["mid"] + f["spread"] / 2) * FIXED_SCALE)
        wanted: dict[tuple[OrderSide, int], int] = {}
        for level in range(p.levels):
            offset = level * p.level_spacing_ticks * tick
            bid = instrument.quantize_price(
                min(fair_raw - half + skew - offset, best_ask - tick), Rounding.FLOOR
            )
            ask = instrument.quantize_price(
                max(fair_raw + half + skew + offset, best_bid + tick), Rounding.CEILING
            )
            if inventory + p.size <= p.max_inventory:
                wanted[(OrderSide.BUY, bid)] = p.size
            if inventory - p.size >= -p.max_inventory:
                wanted[(OrderSide.SELL, ask)] = p.size
        for order in self.open_orders(instrument_id):
            key = (order.side, order.price or 0)
            if key in wanted and order.status in ("accepted", "partially_filled", "submitted"):
                del wanted[key]  # keep it: it holds queue position
            else:
                self.cancel(order.client_order_id)
        for (side, price), qty in sorted(wanted.items()):
            self.submit(
                instrument_id, side, qty, order_type=OrderType.LIMIT, price=price, post_only=True
            )
