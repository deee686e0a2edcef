"""The L2 replay's market maker as a core strategy: it runs in the kernel, through risk.

The same quoting rule as :class:`backtest.l2.strategy.MarketMaker` (and the hftbacktest peer in
``bench/peers/hftbacktest_mm.py``), written against the strategy API: every ``requote_ms`` it reads
the features (fed from the L2 book), computes

    fair = microprice in ticks (or mid)
    reservation = fair - skew_ticks * position / order_qty
    bid = min(floor(reservation - half_spread_ticks), best bid)
    ask = max(ceil(reservation + half_spread_ticks), best ask)

and keeps one post-only order per side at those prices: an accepted order at another price is
canceled; a side with no open order at its wanted price (in any state) gets a new one; a side whose
fill would take ``|position|`` to ``max_position`` or beyond is not quoted.

The best bid/ask come back exactly from the features' mid and spread (rounded to the tick, far
inside float precision); the microprice weight stays a float, as in the reference.
"""

from __future__ import annotations

import math

from pydantic import Field

from runtime.messages import OrderSide, OrderType, TimerFired
from runtime.orders import OrderStatus
from runtime.strategy import Qty, Strategy, StrategyParams
from runtime.values import FIXED_SCALE, Rounding

__all__ = ["L2MarketMaker", "L2MarketMakerParams"]

_CANCELABLE = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


class L2MarketMakerParams(StrategyParams):
    order_qty: Qty = Field(gt=0, description="quantity per quote")
    max_position: Qty = Field(gt=0, description="stop quoting the side that would grow |position|")
    half_spread_ticks: float = Field(1.0, ge=0)
    skew_ticks: float = Field(1.0, ge=0, description="quote shift in ticks per order_qty held")
    use_microprice: bool = True
    requote_ms: int = Field(100, gt=0)


class L2MarketMaker(Strategy[L2MarketMakerParams]):
    wants_features = True

    def on_start(self) -> None:
        self.set_timer("requote", self.params.requote_ms * 1_000_000)

    def on_timer(self, timer: TimerFired) -> None:
        for instrument_id in self.instruments:
            self._requote(instrument_id)

    def quotes(self, instrument_id: str) -> tuple[int | None, int | None] | None:
        """Wanted (bid, ask) prices (fixed point, None = side not quoted); None without a book."""
        f = self.features(instrument_id)
        mid, spread, micro = f["mid"], f["spread"], f["microprice"]
        if math.isnan(mid) or math.isnan(spread):
            return None
        p = self.params
        instrument = self.instrument(instrument_id)
        bid = instrument.quantize_price(round((mid - spread / 2) * FIXED_SCALE), Rounding.HALF_EVEN)
        ask = instrument.quantize_price(round((mid + spread / 2) * FIXED_SCALE), Rounding.HALF_EVEN)
        tick = instrument.tick_at(bid)
        bid_t, ask_t = bid // tick, ask // tick
        if p.use_microprice and not math.isnan(micro) and ask > bid:
            weight = (micro * FIXED_SCALE - bid) / (ask - bid)  # 0 at the bid, 1 at the ask
            fair = round(bid_t + weight * (ask_t - bid_t), 9)
        else:
            fair = (bid_t + ask_t) / 2.0
        position = self.position(instrument_id)
        reservation = fair - p.skew_ticks * (position / p.order_qty)
        want_bid = min(math.floor(reservation - p.half_spread_ticks), bid_t)
        want_ask = max(math.ceil(reservation + p.half_spread_ticks), ask_t)
        return (
            None if position >= p.max_position else want_bid * tick,
            None if position <= -p.max_position else want_ask * tick,
        )

    def _requote(self, instrument_id: str) -> None:
        quotes = self.quotes(instrument_id)
        if quotes is None:
            return
        want = {OrderSide.BUY: quotes[0], OrderSide.SELL: quotes[1]}
        have: set[tuple[OrderSide, int | None]] = set()
        for order in self.open_orders(instrument_id):
            have.add((order.side, order.price))
            if order.status in _CANCELABLE and order.price != want[order.side]:
                self.cancel(order.client_order_id)
        for side, price in want.items():
            if price is not None and (side, price) not in have:
                self.submit(
                    instrument_id,
                    side,
                    self.params.order_qty,
                    order_type=OrderType.LIMIT,
                    price=price,
                    post_only=True,
                )
