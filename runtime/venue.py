"""The venue port: what every venue (simulated, paper, Interactive Brokers, Shioaji) offers.

Commands go in through ``submit``/``cancel``/``modify``; normalised execution reports come out of
one stream, ``drain_reports``. Reports are the order events of :mod:`runtime.messages`
(``OrderAccepted``, ``OrderFilled`` (partial or full, with cumulative quantity), ``OrderCanceled``,
``OrderRejected``, ``OrderCancelRejected``, ``OrderExpired``, ``OrderUpdated``); every report
carries the client order id, so it maps back to its order and strategy, and fills carry a
``fill_id`` that is their dedupe key.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec

from runtime.messages import (
    CancelOrder,
    ModifyOrder,
    OrderEvent,
    OrderFilled,
    OrderSide,
    OrderType,
    SubmitOrder,
)

__all__ = ["VenueOrder", "VenuePort"]


class VenueOrder(msgspec.Struct, frozen=True, kw_only=True):
    """The venue's view of one open order."""

    client_order_id: str
    venue_order_id: str
    instrument_id: str
    side: OrderSide
    order_type: OrderType
    quantity: int
    filled_qty: int
    price: int | None = None
    trigger_price: int | None = None


@runtime_checkable
class VenuePort(Protocol):
    """The one interface between the core and any venue."""

    def submit(self, command: SubmitOrder, ts_ns: int) -> None: ...

    def cancel(self, command: CancelOrder, ts_ns: int) -> None: ...

    def modify(self, command: ModifyOrder, ts_ns: int) -> None: ...

    def open_orders(self) -> list[VenueOrder]: ...

    def positions(self) -> dict[str, int]:
        """Signed net quantity per instrument, fixed point."""
        ...

    def fills_since(self, cursor: int) -> list[OrderFilled]:
        """Fills with ``seq > cursor``, in order (the venue's fill sequence)."""
        ...

    def drain_reports(self) -> list[OrderEvent]:
        """Execution reports produced since the last call, in the order they happened."""
        ...
