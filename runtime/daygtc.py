"""Good-till-cancelled kept alive by the core at a venue that has day orders only (Shioaji:
ROD, IOC and FOK): one order for the strategy, one day order at the venue per session.

The kernel is composed with the instruments whose venue has no GTC
(``Kernel(day_orders_only=...)``, from the broker's ``native_gtc`` declaration, or the
simulated venue's ``day_orders_only``). The rules, each in one place:

- **One logical order.** The strategy, risk, the ledger and the state hash see the GTC order
  under its own client order id, with its own quantity and fills, from submit to a terminal
  state; it never expires. Only a GTC limit is worked this way (a market order does not rest;
  a held stop is the core's until released, and its release is a new order here).
- **Legs.** The venue sees one DAY order per trading session for what is left of it: the first
  under the order's own id (:meth:`DayOnlyGtc.sent`), each later one under
  ``<id>~<n>`` (``n`` = 2, 3, …: deterministic, so a restart and the gateway's journal agree on
  it). Reports of a leg come back under the order's id (:meth:`inbound`; a fill's ``cum_qty``
  is the order's), a cancel or modify of the order goes to its current leg (:meth:`outbound`).
- **A leg ends with its trading day** (:meth:`runtime.instruments.Instrument.trading_day`: the
  day rolls at the session's last close), as a held DAY stop does (:mod:`runtime.stops`):
  whether the venue reports the expiry (the simulated venue, at the close) or never does
  (Shioaji's ROD), the leg is over, and the expiry is not the order's (it is swallowed here).
- **Resubmitted once per session** (:meth:`on_price`): at the first market message of the
  instrument on a later trading day than the leg's, the order, still live, goes out again as a
  DAY limit for its remaining quantity at its price, under the next leg id. It is not a new
  order for risk: its quantity and price were approved when it was submitted, and what is left
  of it is still counted open. An order with a cancel or modify in flight is resubmitted at the
  first message after the venue answered.
- **Between legs** (the last one ended, the next not sent) a cancel or a modify is answered by
  the core (:meth:`answer`), as for a held stop: nothing is at the venue to change.
- Legs, their numbers and what each started from are part of the kernel's state: a restore
  neither resends a leg nor loses one.
- **Risk elsewhere** (a session: the risk actor's kernel faces the gateway, each strategy
  actor's kernel hosts its strategy; both get the gateway's reports and the market data): the
  strategy's kernel ``leads``: it sends each later leg, as an intent, at the market message
  that starts the session (so a lockstep session sends it where a backtest does); the risk
  kernel follows the same legs from the same data and passes a leg on to the venue once
  (:meth:`forward`: no risk check, the order was approved; a retried leg is dropped). The
  risk kernel addresses cancels and modifies to the current leg; both read a leg's reports as
  the order's. A cancel or modify between legs is answered in the strategy's kernel and still
  goes to risk, whose kernel answers it the same way: neither sends anything to the venue.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import msgspec

from runtime.instruments import InstrumentRegistry
from runtime.ledger import OrderLedger
from runtime.messages import (
    CancelOrder,
    Message,
    ModifyOrder,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderType,
    OrderUpdated,
    SubmitOrder,
    TimeInForce,
)
from runtime.orders import Order, OrderStatus
from runtime.watches import Watches, owned, unwatch, watch

__all__ = ["LEG_SEP", "DayOnlyGtc"]

#: a later leg's client order id is ``<order id>`` + LEG_SEP + its number
LEG_SEP = "~"
_KEY = "gtc:"  # an order's key in the shared watch map: "gtc:" + its client order id
_LIVE = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


class _Leg(msgspec.Struct, array_like=True):
    instrument_id: str
    number: int  # 1: the order's own id at the venue
    day: int  # the trading day it was sent on
    offset: int  # the order's filled quantity when it was sent
    ended: bool = False  # the venue reported its expiry
    sent: bool = True  # passed on to the venue (a follower's leg waits for the leader's)


class DayOnlyGtc:
    """The GTC orders one kernel keeps alive as day orders, for the instruments whose venue has
    day orders only."""

    def __init__(
        self,
        ledger: OrderLedger,
        registry: InstrumentRegistry,
        watches: Watches,
        instruments: Collection[str] = (),
        *,
        faces_venue: bool = True,
        leads: bool = True,
    ) -> None:
        self._ledger, self._registry, self.watches = ledger, registry, watches
        self._instruments = frozenset(instruments)
        #: its commands go to the venue: it addresses cancels and modifies to legs
        self.faces_venue = faces_venue
        #: it sends each session's leg (else it follows the leader's, :meth:`forward`)
        self.leads = leads
        self._legs: dict[str, _Leg] = {}  # order id -> its current leg
        self._ids: dict[str, str] = {}  # a later leg's id -> its order's id
        self._keys: dict[str, str] = {}  # its key in the shared watch map -> order id

    def emulates(self, command: SubmitOrder | Order) -> bool:
        """Whether an order about to be sent is a GTC limit this kernel keeps alive."""
        return (
            command.time_in_force is TimeInForce.GTC
            and command.order_type is OrderType.LIMIT
            and command.instrument_id in self._instruments
        )

    def between_legs(self, client_order_id: str) -> bool:
        """Whether the order's last leg ended and the next is not sent yet."""
        leg = self._legs.get(client_order_id)
        return leg is not None and leg.ended

    # --- to the venue ---------------------------------------------------------------------------
    def sent(self, command: SubmitOrder, now: int) -> SubmitOrder:
        """An approved order on its way to the venue: its first leg, a DAY order under its own
        id, when it is emulated; else the command as it is."""
        if not self._instruments or not self.emulates(command):
            return command
        day = self._registry.get(command.instrument_id).trading_day(now)
        self._track(command.client_order_id, _Leg(command.instrument_id, 1, day, 0))
        return msgspec.structs.replace(command, time_in_force=TimeInForce.DAY)

    def follow(self, order: Order, now: int) -> None:
        """Risk elsewhere approved ``order`` (its kernel sent the first leg): follow it."""
        if self.emulates(order) and order.client_order_id not in self._legs:
            day = self._registry.get(order.instrument_id).trading_day(now)
            self._track(order.client_order_id, _Leg(order.instrument_id, 1, day, 0))

    def forward(self, command: SubmitOrder) -> bool | None:
        """A follower's answer to a leg the leader sent: ``True`` to pass it on to the venue
        (once), ``False`` to drop it (sent already, or not the next leg), ``None`` when
        ``command`` is no leg of an order followed here."""
        cid, sep, number = command.client_order_id.rpartition(LEG_SEP)
        leg = self._legs.get(cid) if sep and number.isdigit() else None
        if leg is None:
            return None
        n = int(number)
        if n == leg.number + 1:  # the leader rolled before this kernel saw the data
            order = self._ledger.get(cid)
            if order is None or order.is_closed:
                return False
            day = self._registry.get(leg.instrument_id).trading_day(command.ts_event)
            leg = self._next(cid, _Leg(leg.instrument_id, n, day, order.filled_qty, sent=False))
        if n != leg.number or leg.sent:
            return False
        leg.sent = True
        return True

    def outbound(self, command: CancelOrder | ModifyOrder) -> CancelOrder | ModifyOrder:
        """A cancel or modify of an emulated order, addressed to its current leg."""
        leg = self._legs.get(command.client_order_id)
        if leg is None or leg.number == 1 or not self.faces_venue:
            return command
        cid = _leg_id(command.client_order_id, leg.number)
        if isinstance(command, ModifyOrder) and command.quantity is not None:
            return msgspec.structs.replace(
                command, client_order_id=cid, quantity=command.quantity - leg.offset)
        return msgspec.structs.replace(command, client_order_id=cid)

    def answer(self, intent: CancelOrder | ModifyOrder, order: Order, now: int) -> Message:
        """What the venue would answer a cancel or modify between legs (nothing is there)."""
        if isinstance(intent, CancelOrder):
            return self._canceled(order, now)
        return OrderUpdated(
            seq=0, ts_event=now, ts_init=now, client_order_id=order.client_order_id,
            strategy_id=order.strategy_id, instrument_id=order.instrument_id,
            quantity=order.quantity if intent.quantity is None else intent.quantity,
            price=order.price if intent.price is None else intent.price,
            trigger_price=order.trigger_price,
        )

    @staticmethod
    def _canceled(order: Order, now: int) -> OrderCanceled:
        return OrderCanceled(
            seq=0, ts_event=now, ts_init=now, client_order_id=order.client_order_id,
            strategy_id=order.strategy_id, instrument_id=order.instrument_id,
            reason="canceled between sessions (its day order had ended at the venue)",
        )

    # --- from the venue -------------------------------------------------------------------------
    def inbound(self, report: Any) -> Any | None:
        """A venue report as the order's: a later leg's under the order's id (a fill's
        ``cum_qty`` the order's); ``None`` for a leg's expiry, which is not the order's."""
        if not self._legs:
            return report
        cid = self._ids.get(report.client_order_id)
        leg = self._legs.get(report.client_order_id if cid is None else cid)
        if leg is None:
            return report
        current = cid is None if leg.number == 1 else (
            report.client_order_id == _leg_id(cid or "", leg.number))
        if type(report) is OrderExpired:
            if not current:
                return None
            leg.ended = True
            order = self._ledger.get(report.client_order_id if cid is None else cid)
            if order is not None and order.status is OrderStatus.PENDING_CANCEL:
                return self._canceled(order, report.ts_event)  # what the cancel asked for
            return None
        if cid is None:
            return report
        if type(report) is OrderRejected:  # a later leg refused: the order ends, canceled
            return OrderCanceled(
                seq=report.seq, ts_event=report.ts_event, ts_init=report.ts_init,
                client_order_id=cid, strategy_id=report.strategy_id,
                instrument_id=report.instrument_id,
                reason=f"its day order for session {leg.number} was rejected: {report.reason}",
            )
        if type(report) is OrderFilled:
            return msgspec.structs.replace(
                report, client_order_id=cid, cum_qty=report.cum_qty + leg.offset)
        return msgspec.structs.replace(report, client_order_id=cid)

    def order_fill(self, fill: OrderFilled) -> OrderFilled:
        """A venue fill as its order's (a later leg's under the order's id): what a run's
        fills record, so they join its orders."""
        cid = self._ids.get(fill.client_order_id) if self._ids else None
        leg = None if cid is None else self._legs.get(cid)
        if cid is None or leg is None:
            return fill
        return msgspec.structs.replace(
            fill, client_order_id=cid, cum_qty=fill.cum_qty + leg.offset)

    def follows(self, client_order_id: str) -> bool:
        """``client_order_id`` is a GTC order kept alive here."""
        return client_order_id in self._legs

    def closed(self, client_order_id: str) -> None:
        """The order reached a terminal state: no more legs."""
        leg = self._legs.pop(client_order_id, None)
        if leg is None:
            return
        for n in range(2, leg.number + 1):
            self._ids.pop(_leg_id(client_order_id, n), None)
        del self._keys[_KEY + client_order_id]
        unwatch(self.watches, leg.instrument_id, _KEY + client_order_id)

    # --- sessions -------------------------------------------------------------------------------
    def on_price(self, instrument_id: str, now: int) -> list[SubmitOrder | OrderCanceled]:
        """The next legs of the live orders on ``instrument_id`` whose leg's trading day is
        over, in client order id order (deterministic); an order whose cancel was in flight
        when its leg ended is canceled (the venue never reported the end: nothing is left to
        cancel there)."""
        out: list[SubmitOrder | OrderCanceled] = []
        day: int | None = None
        for key in owned(self.watches, instrument_id, self._keys):
            cid = self._keys[key]
            leg = self._legs[cid]
            if day is None:
                day = self._registry.get(instrument_id).trading_day(now)
            if day <= leg.day:
                continue
            order = self._ledger.get(cid)
            if order is None or order.is_closed:
                self.closed(cid)
                continue
            if order.status is OrderStatus.PENDING_CANCEL:
                leg.ended = True
                out.append(self._canceled(order, now))
                continue
            if order.status not in _LIVE:
                continue  # a modify in flight: after the venue's answer
            nxt = self._next(cid, _Leg(instrument_id, leg.number + 1, day, order.filled_qty,
                                       sent=self.leads))
            if not self.leads:
                continue  # the leader sends it; :meth:`forward` passes it on
            out.append(SubmitOrder(
                seq=0, ts_event=now, ts_init=now, client_order_id=_leg_id(cid, nxt.number),
                strategy_id=order.strategy_id, instrument_id=instrument_id, side=order.side,
                order_type=OrderType.LIMIT, quantity=order.quantity - order.filled_qty,
                price=order.price, time_in_force=TimeInForce.DAY,
                reduce_only=order.reduce_only, protective=order.protective,
            ))
        return out

    def _next(self, cid: str, leg: _Leg) -> _Leg:
        self._legs[cid] = leg
        self._ids[_leg_id(cid, leg.number)] = cid
        return leg

    def _track(self, cid: str, leg: _Leg) -> None:
        self._legs[cid] = leg
        for n in range(2, leg.number + 1):
            self._ids[_leg_id(cid, n)] = cid
        self._keys[_KEY + cid] = cid
        watch(self.watches, leg.instrument_id, _KEY + cid)

    # --- state (inside the kernel's state hash) -------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {cid: msgspec.to_builtins(leg) for cid, leg in sorted(self._legs.items())}

    def load_state(self, state: dict[str, Any]) -> None:
        for cid in list(self._legs):  # this part's keys only: the map is shared
            self.closed(cid)
        for cid, leg in state.items():
            self._track(cid, msgspec.convert(leg, _Leg))


def _leg_id(cid: str, number: int) -> str:
    return f"{cid}{LEG_SEP}{number}"
