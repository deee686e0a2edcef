"""The venue's mutable view of one order, shared by the venue and its fill model.

:class:`SimOrder` is internal to the simulated venue (the trader sees reports and
:class:`~runtime.venue.VenueOrder`). :class:`FillSink` is what a fill model calls back into:
the venue applies slippage, fees, positions and writes the reports.
"""

from __future__ import annotations

from typing import Protocol

from runtime.instruments import Instrument
from runtime.messages import OrderSide, OrderType, SubmitOrder, TimeInForce

__all__ = ["FillSink", "SimOrder"]


class SimOrder:
    """One open order at the simulated venue. ``priority`` orders the queue (lower is earlier);
    ``queue_ahead`` is the displayed size ahead of it at its price (None: not known yet).

    ``side`` and ``time_in_force`` never change (a modify changes quantity and prices only), so
    ``is_buy`` and ``immediate`` are plain attributes set once: fill models read them often."""

    __slots__ = (
        "arrival_ts",
        "client_order_id",
        "closed",
        "expire_ts",
        "filled",
        "immediate",
        "instrument",
        "is_buy",
        "level_seen",
        "order_type",
        "post_only",
        "price",
        "priority",
        "quantity",
        "queue_ahead",
        "resting",
        "seen_bars",
        "side",
        "strategy_id",
        "time_in_force",
        "trigger_price",
        "triggered",
        "venue_order_id",
    )

    def __init__(
        self,
        command: SubmitOrder,
        *,
        instrument: Instrument,
        venue_order_id: str,
        arrival_ts: int,
        priority: int,
    ) -> None:
        self.client_order_id = command.client_order_id
        self.strategy_id = command.strategy_id
        self.instrument = instrument
        self.venue_order_id = venue_order_id
        self.side: OrderSide = command.side
        self.order_type: OrderType = command.order_type
        self.time_in_force: TimeInForce = command.time_in_force
        self.is_buy = command.side is OrderSide.BUY
        self.immediate = command.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)
        self.post_only = command.post_only
        self.quantity = command.quantity
        self.price = command.price
        self.trigger_price = command.trigger_price
        self.filled = 0
        self.triggered = command.order_type not in (OrderType.STOP, OrderType.STOP_LIMIT)
        self.resting = False  # a limit that has been passive in the book at least once
        self.queue_ahead: int | None = None
        self.level_seen = 0  # the level size the queue position was last reconciled with
        self.arrival_ts = arrival_ts
        self.priority = priority
        self.expire_ts: int | None = None
        self.closed = False
        self.seen_bars = 0  # bars this order has taken part in (IOC/FOK live for one)

    @property
    def leaves(self) -> int:
        return self.quantity - self.filled

    @property
    def market_like(self) -> bool:
        """A market order, or a stop whose trigger has been hit."""
        return self.order_type is OrderType.MARKET or (
            self.order_type is OrderType.STOP and self.triggered
        )

    def __repr__(self) -> str:
        return (
            f"SimOrder({self.client_order_id!r}, {self.side.name} {self.order_type.value} "
            f"{self.filled}/{self.quantity} px={self.price} trg={self.trigger_price})"
        )


class FillSink(Protocol):
    """The venue side of a fill model."""

    def fill(
        self, order: SimOrder, *, qty: int, price: int, taker: bool, ts_ns: int, volume: int
    ) -> None:
        """Record a fill of ``qty`` at model ``price`` (slippage is applied here for takers)."""
        ...

    def cancel_rest(self, order: SimOrder, *, reason: str, ts_ns: int) -> None:
        """Cancel what is left of an IOC/FOK order."""
        ...
