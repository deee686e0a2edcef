"""The venue side of the L2 kernel path: numeric order ids and the core's execution reports.

The compiled venue knows orders by a small integer id and answers with int64 rows
(:data:`backtest.l2.venue.ResponseRow`). :class:`ReportBook` assigns those ids to the kernel's
approved ``SubmitOrder`` commands and turns each row into the order event the core expects:

==========================  ===============================================================
venue response              order event (``ts_event`` = exchange time, ``ts_init`` = arrival)
==========================  ===============================================================
``RESP_ACK``                ``OrderAccepted`` (``venue_order_id`` ``{venue}-{n}``)
``RESP_FILL``               ``OrderFilled`` (maker, at the order price; ``fill_id``
                            ``{venue}-F{n}``; ``cum_qty``/``leaves_qty``; fee from the
                            instrument's fee schedule)
``RESP_CANCELED``           ``OrderCanceled``
``RESP_EXPIRED``            ``OrderRejected`` (``venue_code="post_only"``: it would have
                            taken liquidity, or the venue's order table was full)
``RESP_CANCEL_REJECTED``    ``OrderCancelRejected`` (the order had already left the book)
==========================  ===============================================================

Commands the compiled venue cannot carry (anything but a post-only limit order on the replayed
instrument, a modify) are refused here with the same kind of events, as a venue would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backtest.l2 import kernel as k
from backtest.l2.venue import ResponseRow
from runtime.errors import InvariantError
from runtime.instruments import Instrument
from runtime.messages import (
    Command,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderType,
    SubmitOrder,
)

__all__ = ["ReportBook", "unsupported_reason"]


@dataclass(frozen=True, slots=True)
class _Sent:
    client_order_id: str
    strategy_id: str
    side: OrderSide
    quantity: int


def unsupported_reason(command: SubmitOrder, instrument_id: str) -> str | None:
    """Why the compiled venue cannot take ``command`` (None when it can)."""
    if command.instrument_id != instrument_id:
        return f"the L2 replay venue trades {instrument_id} only"
    if command.order_type is not OrderType.LIMIT or command.price is None:
        return "the L2 replay venue takes limit orders only"
    if not command.post_only:
        return "the L2 replay venue takes post-only orders only"
    return None


class ReportBook:
    """Numeric venue ids for the kernel's orders, and venue responses as order events."""

    def __init__(self, instrument: Instrument, *, venue_id: str = "L2SIM") -> None:
        self.instrument = instrument
        self.venue_id = venue_id
        self._sent: dict[int, _Sent] = {}
        self._ids: dict[str, int] = {}
        self._fills = 0
        self._seq = 0

    def register(self, command: SubmitOrder) -> int:
        """The venue id of a newly sent order."""
        if command.client_order_id in self._ids:
            raise InvariantError(f"order {command.client_order_id} was sent twice")
        oid = len(self._sent) + 1
        self._sent[oid] = _Sent(
            command.client_order_id, command.strategy_id, command.side, command.quantity
        )
        self._ids[command.client_order_id] = oid
        return oid

    def venue_id_of(self, client_order_id: str) -> int | None:
        return self._ids.get(client_order_id)

    def report(self, row: ResponseRow) -> OrderEvent:
        """The order event for one venue response row."""
        ts_local, ts_exch, kind, oid, price, qty, leaves = row
        sent = self._sent[oid]
        self._seq += 1
        common: dict[str, Any] = {
            "seq": self._seq,
            "ts_event": ts_exch,
            "ts_init": ts_local,
            "client_order_id": sent.client_order_id,
            "strategy_id": sent.strategy_id,
            "instrument_id": self.instrument.instrument_id,
        }
        if kind == k.RESP_FILL:
            return self._filled(sent, common, oid, price, qty, leaves)
        if kind == k.RESP_ACK:
            return OrderAccepted(**common, venue_order_id=f"{self.venue_id}-{oid}")
        if kind == k.RESP_CANCELED:
            return OrderCanceled(**common, reason="canceled")
        if kind == k.RESP_EXPIRED:
            return OrderRejected(
                **common,
                reason="post-only order would take liquidity (or the order table is full)",
                venue_code="post_only",
            )
        if kind == k.RESP_CANCEL_REJECTED:
            return OrderCancelRejected(**common, reason="order is no longer on the book")
        raise InvariantError(f"unknown L2 venue response kind {kind}")

    def _filled(
        self, sent: _Sent, common: dict[str, Any], oid: int, price: int, qty: int, leaves: int
    ) -> OrderFilled:
        self._fills += 1
        instrument = self.instrument
        fee = instrument.fees.fee(
            notional=instrument.notional(price, qty),
            quantity=qty,
            is_maker=True,
            is_sell=sent.side is OrderSide.SELL,
        )
        return OrderFilled(
            **common,
            venue_order_id=f"{self.venue_id}-{oid}",
            fill_id=f"{self.venue_id}-F{self._fills}",
            side=sent.side,
            last_qty=qty,
            last_price=price,
            cum_qty=sent.quantity - leaves,
            leaves_qty=leaves,
            fee=fee,
            currency=instrument.currency,
            liquidity=Liquidity.MAKER,
        )

    def refused(
        self,
        kind: type[OrderRejected] | type[OrderCancelRejected],
        command: Command,
        *,
        ts_event: int,
        ts_init: int,
        reason: str,
    ) -> OrderEvent:
        """A refusal made on the Python side (a command the compiled venue cannot carry)."""
        self._seq += 1
        fields: dict[str, Any] = {
            "seq": self._seq,
            "ts_event": ts_event,
            "ts_init": ts_init,
            "client_order_id": command.client_order_id,
            "strategy_id": command.strategy_id,
            "instrument_id": command.instrument_id,
            "reason": reason,
        }
        if kind is OrderRejected:
            fields["venue_code"] = "unsupported"
        return kind(**fields)
