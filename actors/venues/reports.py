"""Normalised, deduplicated execution reports: the book every broker adapter feeds.

Adapters translate broker callbacks into calls on :class:`ReportBook` (``accepted``, ``filled``,
``canceled``, ``rejected``, ``cancel_rejected``, ``updated``, ``unknown``); the book turns them
into the runtime order events with the client order id, the broker's ids and cumulative
quantities, and holds them for :meth:`ReportBook.drain`. Rules:

* an ack is reported once; a fill that arrives before the ack reports a synthetic ack first;
* a fill is reported once per ``fill_id`` (the dedupe key; adapters build it from the broker's
  execution id), with ``cum_qty``/``leaves_qty`` from the fills seen so far; a fill that would
  overfill the order is a :class:`~runtime.errors.VenueProtocolError`;
* a terminal report (filled, canceled, rejected) is final: later cancels or rejects are dropped,
  a late fill after a cancel is still reported (the kernel applies it to the quantities);
* positions are the replay of the reported fills; ``fills_since`` pages fills by report ``seq``.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

from runtime.errors import VenueProtocolError
from runtime.messages import (
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderStatusUnknown,
    OrderUpdated,
    SubmitOrder,
)
from runtime.values import from_fixed
from runtime.venue import VenueOrder

__all__ = ["BookViews", "ReportBook", "Tracked"]


class Tracked:
    """The adapter's view of one order."""

    __slots__ = (
        "acked",
        "command",
        "cum_qty",
        "fill_ids",
        "price",
        "quantity",
        "terminal",
        "trigger_price",
        "venue_order_id",
    )

    def __init__(self, command: SubmitOrder) -> None:
        self.command = command
        self.quantity = command.quantity
        self.price = command.price
        self.trigger_price = command.trigger_price
        self.venue_order_id = ""
        self.acked = False
        self.terminal = ""  # "", "filled", "canceled", "rejected", "expired"
        self.cum_qty = 0
        self.fill_ids: set[str] = set()

    @property
    def is_open(self) -> bool:
        return not self.terminal


class ReportBook:
    """Orders, reports, fills and positions of one adapter (see the module docstring)."""

    def __init__(
        self,
        *,
        currency: str,
        clock_ns: Callable[[], int],
        on_fill: Callable[[OrderFilled], None] | None = None,
        on_terminal: Callable[[str], None] | None = None,
        on_report: Callable[[OrderEvent], None] | None = None,
    ) -> None:
        """``on_report``: called with every report as it is made, before anything else sees it
        (the gateway journals it there, so a report made just before a crash is not lost)."""
        self.currency = currency
        self._on_fill = on_fill
        self._on_report = on_report
        self._on_terminal = on_terminal
        self._clock_ns = clock_ns
        self.orders: dict[str, Tracked] = {}
        self._reports: list[OrderEvent] = []
        self._fills: list[OrderFilled] = []
        self._positions: dict[str, int] = {}
        self._fills_per_instrument: dict[str, int] = {}  # fills recorded by this process
        self._seq = 0
        self.foreign = 0  # reports about orders this adapter never sent
        # fees charged in an asset the fill could not value (BNB on Binance): currency -> total
        self.unpriced_fees: dict[str, Decimal] = {}

    # --- orders --------------------------------------------------------------------------------

    def track(self, command: SubmitOrder) -> Tracked:
        return self.orders.setdefault(command.client_order_id, Tracked(command))

    def untrack(self, client_order_id: str) -> None:
        """Forget an order the broker provably never took (nothing was reported about it)."""
        order = self.orders.get(client_order_id)
        if order is not None and not order.acked and not order.terminal and not order.cum_qty:
            del self.orders[client_order_id]

    def restore(
        self, command: SubmitOrder, *, venue_order_id: str, closed: bool, fills: list[OrderFilled]
    ) -> None:
        """Know an order from an earlier session again, without reporting anything."""
        order = self.track(command)
        order.venue_order_id = venue_order_id
        order.acked = bool(venue_order_id) or bool(fills)
        for fill in fills:
            order.fill_ids.add(fill.fill_id)
            order.cum_qty += fill.last_qty
            iid = command.instrument_id
            self._positions[iid] = self._positions.get(iid, 0) + fill.position_change
        if closed or order.cum_qty >= order.quantity:
            order.terminal = order.terminal or "closed"

    def retire(self, client_order_ids: list[str]) -> None:
        """Forget closed orders the send log retired (their positions stay counted): an event
        naming one now is foreign, as after a restart."""
        gone = set(client_order_ids)
        for cid in gone:
            order = self.orders.get(cid)
            if order is not None and order.terminal:
                del self.orders[cid]
        self._fills = [f for f in self._fills if f.client_order_id not in gone]

    def set_baseline(self, positions: dict[str, int]) -> None:
        """Positions held before this adapter's first order (the account's starting point)."""
        for iid, qty in positions.items():
            self._positions[iid] = self._positions.get(iid, 0) + qty

    def resume_seq(self, seq: int) -> None:
        """Number new reports after ``seq`` (the last report journaled before a restart)."""
        self._seq = max(self._seq, seq)

    def get(self, client_order_id: str) -> Tracked | None:
        return self.orders.get(client_order_id)

    def note_foreign(self) -> None:
        """A report about an order this adapter never sent, seen before any lookup (the
        unknown-order-storm watchdog counts them)."""
        self.foreign += 1

    def note_unpriced_fee(self, currency: str, cost: Decimal) -> None:
        """A fee the broker charged in ``currency``, which no report could value in ours."""
        self.unpriced_fees[currency] = self.unpriced_fees.get(currency, Decimal(0)) + cost

    def _order(self, client_order_id: str) -> Tracked | None:
        order = self.orders.get(client_order_id)
        if order is None:
            self.foreign += 1
        return order

    # --- broker events -------------------------------------------------------------------------

    def accepted(self, client_order_id: str, *, venue_order_id: str, ts_event: int) -> None:
        order = self._order(client_order_id)
        if order is None or order.acked or order.terminal == "rejected":
            return
        order.acked = True
        order.venue_order_id = order.venue_order_id or venue_order_id
        self._emit(OrderAccepted, order, ts_event, venue_order_id=order.venue_order_id)

    def filled(
        self,
        client_order_id: str,
        *,
        fill_id: str,
        qty: int,
        price: int,
        fee: int,
        ts_event: int,
        venue_order_id: str = "",
        liquidity: Liquidity = Liquidity.TAKER,
        fee_qty: int = 0,
    ) -> bool:
        """Report a fill once per ``fill_id``; ``False`` for a duplicate or a foreign order.
        ``fee_qty``: the part of the fee the venue took in kind, in the instrument's units (its
        value is included in ``fee``; see :class:`~runtime.messages.OrderFilled`)."""
        order = self._order(client_order_id)
        if order is None or fill_id in order.fill_ids:
            return False
        if qty <= 0 or order.cum_qty + qty > order.quantity:
            raise VenueProtocolError(
                f"fill {fill_id} of {from_fixed(qty)} for {client_order_id} would make filled "
                f"{from_fixed(order.cum_qty + qty)} > ordered {from_fixed(order.quantity)}"
            )
        if fee_qty < 0 or (order.command.side is OrderSide.BUY and fee_qty > qty):
            raise VenueProtocolError(
                f"fill {fill_id} for {client_order_id}: a fee in kind of {from_fixed(fee_qty)} "
                f"does not fit a {order.command.side.name.lower()} of {from_fixed(qty)}"
            )
        if not order.acked:
            self.accepted(client_order_id, venue_order_id=venue_order_id, ts_event=ts_event)
        order.fill_ids.add(fill_id)
        order.cum_qty += qty
        done = order.cum_qty == order.quantity and not order.terminal
        if done:
            order.terminal = "filled"
        fill = self._emit(
            OrderFilled,
            order,
            ts_event,
            venue_order_id=venue_order_id or order.venue_order_id,
            fill_id=fill_id,
            side=order.command.side,
            last_qty=qty,
            last_price=price,
            cum_qty=order.cum_qty,
            leaves_qty=0 if order.terminal else order.quantity - order.cum_qty,
            fee=fee,
            currency=self.currency,
            liquidity=liquidity,
            fee_qty=fee_qty,
        )
        self._record_fill(fill)  # type: ignore[arg-type]
        if done:
            self._closed(client_order_id)
        return True

    def _record_fill(self, fill: OrderFilled) -> None:
        """Keep the fill (paging, positions) and journal it before the order is marked closed."""
        self._fills.append(fill)
        if self._on_fill is not None:
            self._on_fill(fill)
        iid = fill.instrument_id
        self._positions[iid] = self._positions.get(iid, 0) + fill.position_change
        self._fills_per_instrument[iid] = self._fills_per_instrument.get(iid, 0) + 1

    def canceled(self, client_order_id: str, *, reason: str, ts_event: int) -> None:
        order = self._order(client_order_id)
        if order is None or order.terminal:
            return
        order.terminal = "canceled"
        self._emit(OrderCanceled, order, ts_event, reason=reason)
        self._closed(client_order_id)

    def expired(self, client_order_id: str, *, ts_event: int) -> None:
        """The order's time in force ran out at the venue (a DAY order at the session's close)."""
        order = self._order(client_order_id)
        if order is None or order.terminal:
            return
        order.terminal = "expired"
        self._emit(OrderExpired, order, ts_event)
        self._closed(client_order_id)

    def rejected(self, client_order_id: str, *, code: str, reason: str, ts_event: int) -> None:
        order = self._order(client_order_id)
        if order is None or order.terminal:
            return
        order.terminal = "rejected"
        self._emit(OrderRejected, order, ts_event, reason=reason, venue_code=code)
        self._closed(client_order_id)

    def cancel_rejected(
        self,
        client_order_id: str,
        *,
        strategy_id: str,
        instrument_id: str,
        reason: str,
        ts_event: int,
    ) -> None:
        """A cancel or modify the venue refused (also for orders this adapter does not know)."""
        self._seq += 1
        self._append(
            OrderCancelRejected(
                seq=self._seq,
                ts_event=ts_event,
                ts_init=self._clock_ns(),
                client_order_id=client_order_id,
                strategy_id=strategy_id,
                instrument_id=instrument_id,
                reason=reason,
            )
        )

    def updated(
        self, client_order_id: str, *, quantity: int, price: int | None, ts_event: int,
        trigger_price: int | None = None,
    ) -> None:
        """The venue shows the order amended (``trigger_price`` None: its trigger unchanged)."""
        order = self._order(client_order_id)
        if order is None or order.terminal:
            return
        trigger = order.trigger_price if trigger_price is None else trigger_price
        if (quantity, price, trigger) == (order.quantity, order.price, order.trigger_price):
            return
        order.quantity, order.price, order.trigger_price = quantity, price, trigger
        self._emit(
            OrderUpdated,
            order,
            ts_event,
            quantity=quantity,
            price=price,
            trigger_price=trigger,
        )

    def unknown(self, client_order_id: str, *, command: str, reason: str, ts_event: int) -> None:
        order = self._order(client_order_id)
        if order is not None:
            self._emit(OrderStatusUnknown, order, ts_event, command=command, reason=reason)

    # --- the port's read side ------------------------------------------------------------------

    def drain(self) -> list[OrderEvent]:
        out, self._reports = self._reports, []
        return out

    def open_orders(self) -> list[VenueOrder]:
        return [
            VenueOrder(
                client_order_id=cid,
                venue_order_id=o.venue_order_id,
                instrument_id=o.command.instrument_id,
                side=o.command.side,
                order_type=o.command.order_type,
                quantity=o.quantity,
                filled_qty=o.cum_qty,
                price=o.price,
                trigger_price=o.trigger_price,
            )
            for cid, o in self.orders.items()
            if o.is_open and o.acked
        ]

    def positions(self) -> dict[str, int]:
        return {k: v for k, v in sorted(self._positions.items()) if v}

    def fill_marks(self) -> dict[str, int]:
        """How many fills of each instrument this book has recorded so far (two marks differ
        for an instrument that had a fill in between)."""
        return dict(self._fills_per_instrument)

    def fills_since(self, cursor: int) -> list[OrderFilled]:
        start = bisect.bisect_right(self._fills, cursor, key=lambda f: f.seq)
        return self._fills[start:]

    def fill_ids(self) -> set[str]:
        return {f.fill_id for f in self._fills}

    def _closed(self, client_order_id: str) -> None:
        if self._on_terminal is not None:
            self._on_terminal(client_order_id)

    def _emit(self, kind: type[Any], order: Tracked, ts_event: int, **fields: Any) -> OrderEvent:
        self._seq += 1
        command = order.command
        report: OrderEvent = kind(
            seq=self._seq,
            ts_event=ts_event,
            ts_init=self._clock_ns(),
            client_order_id=command.client_order_id,
            strategy_id=command.strategy_id,
            instrument_id=command.instrument_id,
            **fields,
        )
        self._append(report)
        return report

    def _append(self, report: OrderEvent) -> None:
        if self._on_report is not None:
            self._on_report(report)
        self._reports.append(report)


class BookViews:
    """The reads every broker adapter answers from its :class:`ReportBook` (the
    :class:`runtime.venue.VenuePort` views), under the adapter's ``lock`` where its client's
    callbacks run on another thread (a no-op lock where they do not). ``drain_reports`` sends
    what is queued first unless the adapter sends from a thread of its own (``pump_on_drain``)."""

    book: ReportBook
    lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    pump_on_drain: ClassVar[bool] = True

    def pump(self) -> None:
        raise NotImplementedError

    def open_orders(self) -> list[VenueOrder]:
        with self.lock:
            return self.book.open_orders()

    def positions(self) -> dict[str, int]:
        with self.lock:
            return self.book.positions()

    def fills_since(self, cursor: int) -> list[OrderFilled]:
        with self.lock:
            return self.book.fills_since(cursor)

    def drain_reports(self) -> list[OrderEvent]:
        if self.pump_on_drain:
            self.pump()
        with self.lock:
            return self.book.drain()
