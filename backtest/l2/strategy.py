"""The strategy boundary of the L2 replay, and the reference market maker.

The engine wakes a strategy every ``timer_interval_ns`` of local time:

1. fills whose responses reached the strategy since the last wake-up go to ``on_fill`` (in local
   receive order) and closed orders leave the local order table;
2. ``on_timer(ts, book, orders)`` reads the local book (:class:`BookView`, what the strategy has
   received by ``ts``) and acts through ``orders`` (:class:`OrderSink`): submit and cancel.

That sink is the only way orders leave a strategy. This protocol is the standalone engine's; to run
with risk checks, the order state machine and the portfolio, write a core strategy and use
:class:`backtest.l2.core.L2KernelReplay` (see ``backtest/strategies/market_maker_l2.py``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from runtime.messages import OrderSide

__all__ = [
    "BookView",
    "L2Fill",
    "L2Strategy",
    "LocalOrder",
    "LocalOrderStatus",
    "MarketMaker",
    "MarketMakerParams",
    "OrderSink",
]


@dataclass(frozen=True, slots=True)
class L2Fill:
    """One fill as the strategy learns it. Prices, sizes and fees are fixed point."""

    ts_exch: int  # when the venue matched it
    ts_local: int  # when its report reached the strategy
    order_id: int
    side: OrderSide
    price: int
    qty: int
    leaves_qty: int
    maker: bool
    fee: int


class LocalOrderStatus(enum.StrEnum):
    PENDING_NEW = "pending_new"
    OPEN = "open"
    PENDING_CANCEL = "pending_cancel"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"  # post-only order that would have taken liquidity


class LocalOrder:
    """The strategy-side view of one order (updated only by venue responses)."""

    __slots__ = ("leaves", "order_id", "price", "quantity", "side", "status")

    def __init__(self, order_id: int, side: OrderSide, price: int, quantity: int) -> None:
        self.order_id = order_id
        self.side = side
        self.price = price
        self.quantity = quantity
        self.leaves = quantity
        self.status = LocalOrderStatus.PENDING_NEW

    @property
    def closed(self) -> bool:
        return self.status in (
            LocalOrderStatus.FILLED,
            LocalOrderStatus.CANCELED,
            LocalOrderStatus.EXPIRED,
        )

    def __repr__(self) -> str:
        return f"LocalOrder({self.order_id}, {self.side.name}, {self.price}, {self.status})"


class BookView:
    """The local book at a wake-up: read-only, the same read API as :class:`runtime.book.L2Book`.

    Built over the engine's arrays without copying; valid only during the callback.
    """

    __slots__ = ("_asks", "_bids", "_ia", "_ib", "_prices", "ts_event")

    def __init__(
        self,
        prices: np.ndarray,
        bids: np.ndarray,
        asks: np.ndarray,
        best_bid: int,
        best_ask: int,
        ts_event: int,
    ) -> None:
        self._prices, self._bids, self._asks = prices, bids, asks
        self._ib, self._ia = best_bid, best_ask
        self.ts_event = ts_event

    def best_bid(self) -> tuple[int, int] | None:
        i = self._ib
        return None if i < 0 else (int(self._prices[i]), int(self._bids[i]))

    def best_ask(self) -> tuple[int, int] | None:
        i = self._ia
        return None if i >= len(self._prices) else (int(self._prices[i]), int(self._asks[i]))

    def bids(self, n: int | None = None) -> list[tuple[int, int]]:
        i = self._ib
        return [] if i < 0 else self._walk(self._bids, i, -1, n)

    def asks(self, n: int | None = None) -> list[tuple[int, int]]:
        i = self._ia
        return [] if i >= len(self._prices) else self._walk(self._asks, i, 1, n)

    def _walk(
        self, sizes: np.ndarray, start: int, step: int, n: int | None
    ) -> list[tuple[int, int]]:
        """The first ``n`` non-empty levels from ``start`` in direction ``step``: a window that
        grows until it holds them, so the top levels cost O(window), not O(book)."""
        width = 64 if n is not None else len(sizes)
        while True:
            if step < 0:
                lo = max(start - width + 1, 0)
                window, exhausted = sizes[lo : start + 1][::-1], lo == 0
            else:
                hi = min(start + width, len(sizes))
                window, exhausted = sizes[start:hi], hi == len(sizes)
            idx = np.flatnonzero(window)
            if n is None or len(idx) >= n or exhausted:
                idx = idx[:n]
                prices = self._prices[start + step * idx].tolist()
                return list(zip(prices, window[idx].tolist(), strict=True))
            width *= 8

    def mid(self) -> int | None:
        bid, ask = self.best_bid(), self.best_ask()
        return None if bid is None or ask is None else (bid[0] + ask[0]) // 2


class OrderSink(Protocol):
    """How a strategy acts. ``position`` and ``open_orders`` reflect responses received so far."""

    @property
    def position(self) -> int: ...

    def open_orders(self) -> Sequence[LocalOrder]: ...

    def submit_limit(
        self, *, side: OrderSide, price: int, quantity: int, post_only: bool = True
    ) -> int: ...

    def cancel(self, order_id: int) -> None: ...


class L2Strategy(Protocol):
    def on_timer(self, ts: int, book: BookView, orders: OrderSink) -> None: ...

    def on_fill(self, fill: L2Fill) -> None: ...


@dataclass(frozen=True, kw_only=True)
class MarketMakerParams:
    """Quote ``half_spread_ticks`` around the fair price, skewed by inventory."""

    tick_size: int  # fixed point
    order_qty: int  # fixed point
    max_position: int  # fixed point: stop quoting the side that would grow it
    half_spread_ticks: float = 1.0
    skew_ticks: float = 1.0  # ticks the quotes move per ``order_qty`` of inventory
    use_microprice: bool = True


class MarketMaker:
    """Post-only two-sided quoting around microprice (or mid) with inventory skew.

    Each wake-up: fair = microprice in ticks; reservation = fair - skew * position / order_qty;
    bid = min(floor(reservation - half_spread), best bid), ask = max(ceil(reservation +
    half_spread), best ask). An open order at another price is canceled; a side with no order at
    its wanted price (in any state) gets a new one.
    """

    def __init__(self, params: MarketMakerParams) -> None:
        self.params = params
        self.fills = 0

    def on_fill(self, fill: L2Fill) -> None:
        self.fills += 1

    def quotes(self, book: BookView, position: int) -> tuple[int | None, int | None]:
        """Wanted (bid, ask) prices in fixed point; None for a side not quoted."""
        p = self.params
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None:
            return None, None
        bid_t, ask_t = bid[0] // p.tick_size, ask[0] // p.tick_size
        if p.use_microprice and bid[1] + ask[1] > 0:
            fair = (bid_t * ask[1] + ask_t * bid[1]) / (bid[1] + ask[1])
        else:
            fair = (bid_t + ask_t) / 2.0
        reservation = fair - p.skew_ticks * (position / p.order_qty)
        want_bid = min(math.floor(reservation - p.half_spread_ticks), bid_t)
        want_ask = max(math.ceil(reservation + p.half_spread_ticks), ask_t)
        return (
            None if position >= p.max_position else want_bid * p.tick_size,
            None if position <= -p.max_position else want_ask * p.tick_size,
        )

    def on_timer(self, ts: int, book: BookView, orders: OrderSink) -> None:
        want = dict(
            zip((OrderSide.BUY, OrderSide.SELL), self.quotes(book, orders.position), strict=True)
        )
        if want[OrderSide.BUY] is None and want[OrderSide.SELL] is None and book.mid() is None:
            return
        have: set[tuple[OrderSide, int]] = set()
        for order in orders.open_orders():
            have.add((order.side, order.price))
            if order.status is LocalOrderStatus.OPEN and order.price != want[order.side]:
                orders.cancel(order.order_id)
        for side, price in want.items():
            if price is not None and (side, price) not in have:
                orders.submit_limit(side=side, price=price, quantity=self.params.order_qty)
