"""Linked orders, emulated in the core so a backtest and a session fill alike: OTO, OCO,
brackets and trailing stops. The kernel calls :class:`LinkedOrders` with each event of a leg
and each price of a watched instrument; it answers with commands (which go through risk like
any order) and :class:`~runtime.messages.OrderListChanged` events.

The rules, each enforced in one method below:

- **OCO** (``_sync``): the legs go out together. Each leg has a *wanted* remaining quantity,
  at first its quantity; a fill of ``x`` on any leg lowers every leg's wanted remaining by
  ``x``. An open leg whose leaves exceed what it is wanted for is shrunk (``ModifyOrder``), or
  canceled at zero. A leg that closes while still wanted (denied, rejected, canceled, expired)
  cancels the others, and the list is ``CANCELED`` with its reason.
- **OTO** (``_release``): the parent goes out; each fill of ``x`` releases the children for
  ``x``. A bracket is entry + OCO(take-profit, stop-loss): each release is a fresh OCO pair.
  A parent that closes unfilled (denied, rejected, canceled) releases nothing: the list is
  ``CANCELED``. A bracket leg that is refused also cancels the entry's remainder: a bracket
  does not go on entering without its protection.
- **Trailing stop** (``_trail``): a stop whose trigger follows the market
  (:func:`runtime.trailing.trigger_price`), moved only toward it: up for a sell stop, down for
  a buy stop. Where the venue trails stops itself (``native_trailing``: IB's ``TRAIL``) and can
  follow the trail (the last price, by an offset or basis points) it goes out with its trail
  and the venue moves it; a trail off bid/ask or mid, or in ticks, is moved here everywhere.

A shrink, cancel or trigger move waits for the venue to have accepted the leg: a leg not yet
accepted is synced on its next event or price. Both legs of an OCO can fill at the venue before
the cancel reaches it: the core cannot prevent that overfill (a broker's native OCA can).

**Native lists** (``native``: the instruments whose venue links orders itself, as its broker
declares: Interactive Brokers): every leg goes out at once, each child with its
parent's id (``SubmitOrder.parent_id``, sized as the parent: the venue holds it until the parent
fills) and each OCO leg with the list's id as ``oca_group`` (the venue cancels or reduces the
others as one fills). The core then releases and shrinks nothing itself; it still follows every
leg, reports the list's events (``RELEASED`` once the parent has filled in full: the venue
holds the children until then), cancels what a refused leg leaves behind (as above) and, when a
parent closes partly filled (the venue cancels its held children with it), sends the children
again for the filled quantity, unparented (a bracket's exits in an OCA group of their own).
A backtest and a paper session never use this: their venue is emulated, so their fills stay
the same.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable
from typing import Any

import msgspec

from runtime.errors import ConfigError
from runtime.instruments import InstrumentRegistry
from runtime.messages import (
    CancelOrder,
    Message,
    ModifyOrder,
    OrderDenied,
    OrderFilled,
    OrderListChanged,
    OrderListStatus,
    OrderRejected,
    OrderSide,
    OrderType,
    OrderUpdated,
    SubmitOrder,
    TimeInForce,
)
from runtime.orders import ClientOrderIdGenerator, Order, OrderStatus
from runtime.prices import LastPrices
from runtime.trailing import Trail, TrailReference, trigger_price
from runtime.watches import Watches, owned, unwatch, watch

__all__ = ["Contingency", "Leg", "LinkedOrders", "OrderList"]

_LIVE = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)  # a venue takes amendments now


class Contingency(enum.StrEnum):
    OTO = "oto"  # legs[0] releases legs[1:] as it fills
    OCO = "oco"  # all legs at once; a fill of one reduces the others
    BRACKET = "bracket"  # legs[0] releases OCO(legs[1], legs[2]) as it fills


class Leg(msgspec.Struct, frozen=True, kw_only=True):
    """One order of a list before it has an id. ``quantity`` 0: an OTO child, sized by each
    fill of its parent."""

    side: OrderSide
    order_type: OrderType
    quantity: int = 0
    price: int | None = None
    trigger_price: int | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    protective: bool = False


class OrderList(msgspec.Struct, frozen=True, kw_only=True):
    instrument_id: str
    contingency: Contingency
    legs: tuple[Leg, ...]


class _List(msgspec.Struct, kw_only=True):
    strategy_id: str
    instrument_id: str
    contingency: Contingency
    parent: str = ""  # OTO and bracket: the parent's id
    children: tuple[Leg, ...] = ()
    legs: list[str] = msgspec.field(default_factory=list)  # every leg sent so far
    native: bool = False  # the venue links the legs (parent ids, OCA group)


class _Trailing(msgspec.Struct, kw_only=True):
    instrument_id: str
    trail: Trail


class LinkedOrders:
    """Order lists and trailing stops of every strategy of one kernel."""

    def __init__(
        self,
        ids: ClientOrderIdGenerator,
        registry: InstrumentRegistry,
        prices: LastPrices,
        order_of: Callable[[str], Order | None],
        watches: Watches | None = None,
        native: Collection[str] = (),
        native_trailing: Collection[str] = (),
    ) -> None:
        """``native``: the instruments whose venue takes linked orders natively;
        ``native_trailing``: those whose venue trails a stop off the last price itself."""
        self._ids, self._registry, self._prices, self._order_of = ids, registry, prices, order_of
        self._native = frozenset(native)
        self._native_trailing = frozenset(native_trailing)
        self._lists: dict[str, _List] = {}
        self._list_of: dict[str, str] = {}  # leg id -> list id
        self._groups: dict[str, dict[str, int]] = {}  # OCO group -> leg id -> wanted remaining
        self._group_of: dict[str, str] = {}  # leg id -> OCO group
        self._trailing: dict[str, _Trailing] = {}  # stop id -> its trail
        #: instrument -> trailing stop ids: the kernel calls :meth:`on_price` for these only
        self.watches: Watches = {} if watches is None else watches

    def tracks(self, client_order_id: str) -> bool:
        return client_order_id in self._list_of or client_order_id in self._trailing

    def legs(self, list_id: str) -> list[str]:
        """The legs of a list still followed here ([] for an unknown or completed one)."""
        record = self._lists.get(list_id)
        return [] if record is None else list(record.legs)

    def refusal(self, command: SubmitOrder) -> tuple[str, str] | None:
        """``(reason_code, reason)`` when a leg about to go to risk must not go at all: its OCO
        group was canceled before it was sent (a sibling refused earlier in the same batch), or
        a trailing stop found no reference price."""
        cid = command.client_order_id
        group = self._group_of.get(cid)
        if group is not None and self._groups[group][cid] <= 0:
            return "order_list", f"its OCO group {group} was canceled before it was sent"
        if cid in self._trailing and command.trigger_price is None and (
            command.order_type is OrderType.STOP  # not a held stop's release: runtime.stops
        ):
            return "no_market_data", (
                f"no price yet for {command.instrument_id} to trail a stop from"
            )
        return None

    # --- new lists and trailing stops ----------------------------------------------------------
    def submit(
        self, strategy_id: str, order_list: OrderList, now: int
    ) -> tuple[str, list[Message]]:
        """The list's id, and the commands and events that start it."""
        _validate(order_list)
        list_id = self._ids.next(strategy_id)
        record = _List(
            strategy_id=strategy_id,
            instrument_id=order_list.instrument_id,
            contingency=order_list.contingency,
            native=order_list.instrument_id in self._native,
        )
        self._lists[list_id] = record
        if record.native:
            out = self._send_native(list_id, order_list, now)
        elif order_list.contingency is Contingency.OCO:
            out = self._send(list_id, order_list.legs, None, now)
            self._group(list_id, out)
        else:
            out = self._send(list_id, order_list.legs[:1], None, now)
            record.parent, record.children = out[0].client_order_id, order_list.legs[1:]
        started = self._event(list_id, OrderListStatus.SUBMITTED, record.legs, "", now)
        return list_id, [*out, started]

    def trailing_stop(
        self, strategy_id: str, instrument_id: str, leg: Leg, trail: Trail, now: int
    ) -> SubmitOrder:
        """The stop order of a new trailing stop (no trigger with no reference price yet:
        :meth:`refusal` then denies it). Where the venue trails stops itself and the trail is
        one it can follow (the last price, by a price offset or basis points), the stop goes
        out with its trail (``trail_amount``/``trail_bps``, its trigger the initial stop) and
        the venue moves it; otherwise the core moves it (:meth:`on_price`)."""
        trigger = trigger_price(trail, leg.side, self._registry.get(instrument_id), self._prices)
        cid = self._ids.next(strategy_id)
        if (instrument_id in self._native_trailing and trigger is not None
                and trail.reference is TrailReference.LAST and not trail.ticks):
            leg = msgspec.structs.replace(leg, order_type=OrderType.STOP, trigger_price=trigger)
            command = _command(cid, strategy_id, instrument_id, leg, leg.quantity, now)
            return msgspec.structs.replace(command, trail_amount=trail.offset,
                                           trail_bps=trail.bps)
        self._trailing[cid] = _Trailing(instrument_id=instrument_id, trail=trail)
        watch(self.watches, instrument_id, cid)
        leg = msgspec.structs.replace(leg, order_type=OrderType.STOP, trigger_price=trigger)
        return _command(cid, strategy_id, instrument_id, leg, leg.quantity, now)

    # --- what happens to legs -------------------------------------------------------------------
    def on_event(self, order: Order, event: Message, now: int) -> list[Message]:
        cid = order.client_order_id
        if cid in self._trailing and order.is_closed:
            self._untrail(cid)
        list_id = self._list_of.get(cid)
        if list_id is None:
            return []
        record = self._lists[list_id]
        out: list[Message] = []
        if cid == record.parent:
            out += self._on_parent(list_id, record, order, event, now)
        group = self._group_of.get(cid)
        if group is not None:
            out += self._on_grouped(list_id, group, order, event, now)
        if self._all_closed(record):
            out.append(self._event(list_id, OrderListStatus.COMPLETED, record.legs, "", now))
            self._forget(list_id, record)
        return out

    def on_price(self, instrument_id: str, now: int) -> list[Message]:
        out: list[Message] = []
        for cid in owned(self.watches, instrument_id, self._trailing):
            command = self._trail(cid, now)
            if command is not None:
                out.append(command)
        return out

    def _on_parent(
        self, list_id: str, record: _List, order: Order, event: Message, now: int
    ) -> list[Message]:
        if isinstance(event, OrderFilled):
            if record.native:  # the venue holds the children until the parent has filled
                if order.filled_qty < order.quantity:
                    return []
                held = tuple(record.legs[1:])
                return [self._event(list_id, OrderListStatus.RELEASED, held, "", now)]
            return self._release(list_id, record, event.last_qty, now)
        if not order.is_closed:
            return []
        out: list[Message] = []
        if record.native:
            out += self._reprotect(list_id, record, order, now)
        if order.filled_qty == 0:
            ids = (order.client_order_id, *record.legs[1:]) if record.native else (
                order.client_order_id,)
            out.append(self._event(list_id, OrderListStatus.CANCELED, ids, _why(order, event), now))
        return out

    def _reprotect(self, list_id: str, record: _List, parent: Order, now: int) -> list[Message]:
        """A native parent closed short of its quantity. The venue cancels the children it
        held with their parent (IB: attached orders go with a cancelled parent), so what the
        parent did fill would stand unprotected: the held children are cancelled here too (a
        venue that left them costs nothing) and, for a partial fill, sent again for the filled
        quantity, linked as before but with no parent (a bracket's exits in a new OCA group)."""
        short = parent.quantity - parent.filled_qty
        if short <= 0:
            return []
        held = record.legs[1:]
        out: list[Message] = []
        for leg in held:
            group = self._group_of.get(leg)
            if group is not None:
                self._groups[group][leg] = 0  # not wanted: its cancel cascades nothing
            out += self._cancel(leg, record, now)
        # what a child already did (a venue that worked it early) is not sent again
        filled = [o.filled_qty if o is not None else 0 for o in map(self._order_of, held)]
        again: list[SubmitOrder] = []
        if record.contingency is Contingency.BRACKET:
            left = parent.filled_qty - sum(filled)  # the exits share the entry's fill
            if left > 0:
                again = self._send(list_id, record.children, left, now)
                group = again[0].client_order_id
                again = [msgspec.structs.replace(c, oca_group=group) for c in again]
                self._group(list_id, again)
        else:
            for child, done in zip(record.children, filled, strict=False):
                if parent.filled_qty - done > 0:
                    again += self._send(list_id, (child,), parent.filled_qty - done, now)
        if not again:
            return out
        ids = tuple(c.client_order_id for c in again)
        return [*out, *again, self._event(list_id, OrderListStatus.RELEASED, ids, "", now)]

    def _release(self, list_id: str, record: _List, quantity: int, now: int) -> list[Message]:
        out = self._send(list_id, record.children, quantity, now)
        if record.contingency is Contingency.BRACKET:
            self._group(list_id, out)
        ids = tuple(c.client_order_id for c in out)
        return [*out, self._event(list_id, OrderListStatus.RELEASED, ids, "", now)]

    def _on_grouped(
        self, list_id: str, group: str, order: Order, event: Message, now: int
    ) -> list[Message]:
        wants, cid = self._groups[group], order.client_order_id
        record = self._lists[list_id]
        out: list[Message] = []
        sync = not record.native  # a native group: the venue reduces and cancels the others
        if isinstance(event, OrderFilled):
            for leg in wants:
                wants[leg] -= event.last_qty
        elif isinstance(event, OrderUpdated):
            wants[cid] = min(wants[cid], order.leaves_qty)
        elif order.is_closed and wants[cid] > 0:  # closed while still wanted: the rest goes
            others = tuple(leg for leg in wants if leg != cid)
            for leg in wants:
                wants[leg] = 0
            reason = _why(order, event)
            out.append(self._event(list_id, OrderListStatus.CANCELED, others, reason, now))
            refused = type(event) in (OrderDenied, OrderRejected)
            if refused and record.contingency is Contingency.BRACKET:
                out += self._cancel(record.parent, record, now)
            sync = True
        if sync:
            for leg in sorted(wants):
                out += self._sync(leg, wants[leg], record, now)
        return out

    def _sync(self, cid: str, wanted: int, record: _List, now: int) -> list[Message]:
        order = self._order_of(cid)
        if order is None or order.is_closed:
            return []
        if wanted <= 0:
            return self._cancel(cid, record, now)
        if order.leaves_qty > wanted and order.status in _LIVE:
            return [
                ModifyOrder(
                    seq=0,
                    ts_event=now,
                    ts_init=now,
                    client_order_id=cid,
                    strategy_id=record.strategy_id,
                    instrument_id=record.instrument_id,
                    quantity=order.filled_qty + wanted,
                )
            ]
        return []

    def _cancel(self, cid: str, record: _List, now: int) -> list[Message]:
        order = self._order_of(cid)
        if order is None or order.is_closed or order.status is OrderStatus.PENDING_CANCEL:
            return []
        return [
            CancelOrder(
                seq=0,
                ts_event=now,
                ts_init=now,
                client_order_id=cid,
                strategy_id=record.strategy_id,
                instrument_id=record.instrument_id,
            )
        ]

    # --- trailing --------------------------------------------------------------------------------
    def _trail(self, cid: str, now: int) -> ModifyOrder | None:
        order, trailing = self._order_of(cid), self._trailing[cid]
        if order is None or order.is_closed:
            self._untrail(cid)
            return None
        if order.status not in _LIVE or order.trigger_price is None:
            return None
        instrument = self._registry.get(trailing.instrument_id)
        trigger = trigger_price(trailing.trail, order.side, instrument, self._prices)
        if trigger is None or (trigger - order.trigger_price) * order.side >= 0:
            return None  # only ever toward the market: up for a sell stop, down for a buy stop
        return ModifyOrder(
            seq=0,
            ts_event=now,
            ts_init=now,
            client_order_id=cid,
            strategy_id=order.strategy_id,
            instrument_id=order.instrument_id,
            trigger_price=trigger,
        )

    def _untrail(self, cid: str) -> None:
        trailing = self._trailing.pop(cid)
        unwatch(self.watches, trailing.instrument_id, cid)

    # --- bookkeeping -----------------------------------------------------------------------------
    def _send(
        self, list_id: str, legs: tuple[Leg, ...], quantity: int | None, now: int
    ) -> list[SubmitOrder]:
        record = self._lists[list_id]
        out = []
        for leg in legs:
            cid = self._ids.next(record.strategy_id)
            self._list_of[cid] = list_id
            record.legs.append(cid)
            qty = leg.quantity if quantity is None else quantity
            out.append(_command(cid, record.strategy_id, record.instrument_id, leg, qty, now))
        return out

    def _send_native(
        self, list_id: str, order_list: OrderList, now: int
    ) -> list[SubmitOrder]:
        """Every leg at once, linked for the venue: children carry their parent's id and the
        parent's quantity; OCO legs (an OCO's, a bracket's exits) the list's id as their group."""
        record, legs = self._lists[list_id], order_list.legs
        if order_list.contingency is Contingency.OCO:
            out = self._send(list_id, legs, None, now)
        else:
            (entry,) = self._send(list_id, legs[:1], None, now)
            record.parent, record.children = entry.client_order_id, legs[1:]
            children = self._send(list_id, legs[1:], entry.quantity, now)
            out = [entry] + [
                msgspec.structs.replace(c, parent_id=entry.client_order_id) for c in children
            ]
        if order_list.contingency is not Contingency.OTO:
            grouped = out if order_list.contingency is Contingency.OCO else out[1:]
            linked = [msgspec.structs.replace(c, oca_group=list_id) for c in grouped]
            out = out[: len(out) - len(linked)] + linked
            self._group(list_id, linked)
        return out

    def _group(self, list_id: str, legs: list[SubmitOrder]) -> None:
        group = legs[0].client_order_id
        self._groups[group] = {c.client_order_id: c.quantity for c in legs}
        for c in legs:
            self._group_of[c.client_order_id] = group

    def _all_closed(self, record: _List) -> bool:
        for cid in record.legs:
            order = self._order_of(cid)
            if order is not None and not order.is_closed:
                return False
            if order is None:
                return False  # sent this drain, not yet seen by the kernel
        return True

    def _forget(self, list_id: str, record: _List) -> None:
        del self._lists[list_id]
        for cid in record.legs:
            del self._list_of[cid]
            group = self._group_of.pop(cid, None)
            if group is not None:
                self._groups.pop(group, None)

    def _event(
        self, list_id: str, status: OrderListStatus, ids: Iterable[str], reason: str, now: int
    ) -> OrderListChanged:
        record = self._lists[list_id]
        return OrderListChanged(
            seq=0,
            ts_event=now,
            ts_init=now,
            list_id=list_id,
            strategy_id=record.strategy_id,
            instrument_id=record.instrument_id,
            status=status,
            client_order_ids=tuple(ids),
            reason=reason,
        )

    # --- state (inside the kernel's state hash) -------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "lists": {k: msgspec.to_builtins(v) for k, v in sorted(self._lists.items())},
            "groups": {k: dict(sorted(v.items())) for k, v in sorted(self._groups.items())},
            "trailing": {k: msgspec.to_builtins(v) for k, v in sorted(self._trailing.items())},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._lists = {k: msgspec.convert(v, _List) for k, v in state["lists"].items()}
        self._list_of = {cid: k for k, rec in self._lists.items() for cid in rec.legs}
        self._groups = {k: dict(v) for k, v in state["groups"].items()}
        self._group_of = {cid: k for k, wants in self._groups.items() for cid in wants}
        for cid, trailing in self._trailing.items():  # this part's keys only: the map is shared
            unwatch(self.watches, trailing.instrument_id, cid)
        self._trailing = {k: msgspec.convert(v, _Trailing) for k, v in state["trailing"].items()}
        for cid, trailing in self._trailing.items():
            watch(self.watches, trailing.instrument_id, cid)


def _validate(order_list: OrderList) -> None:
    legs, kind = order_list.legs, order_list.contingency
    if kind is Contingency.BRACKET and len(legs) != 3:
        raise ConfigError(f"a bracket takes 3 legs (entry, take-profit, stop), not {len(legs)}")
    if len(legs) < 2:
        raise ConfigError(f"an {kind} list takes at least 2 legs, not {len(legs)}")
    sized = legs if kind is Contingency.OCO else legs[:1]
    if any(leg.quantity <= 0 for leg in sized):
        raise ConfigError(f"{kind}: every leg sent at once needs a positive quantity")
    if any(leg.quantity for leg in legs[len(sized) :]):
        raise ConfigError(f"{kind}: children are sized by the parent's fills: leave quantity 0")


def _command(
    cid: str, strategy_id: str, instrument_id: str, leg: Leg, quantity: int, now: int
) -> SubmitOrder:
    return SubmitOrder(
        seq=0,
        ts_event=now,
        ts_init=now,
        client_order_id=cid,
        strategy_id=strategy_id,
        instrument_id=instrument_id,
        side=leg.side,
        order_type=leg.order_type,
        quantity=quantity,
        price=leg.price,
        trigger_price=leg.trigger_price,
        time_in_force=leg.time_in_force,
        post_only=leg.post_only,
        protective=leg.protective,
    )


def _why(order: Order, event: Message) -> str:
    code = getattr(event, "reason_code", "")
    reason = order.reason or getattr(event, "reason", "") or type(event).__name__
    return f"{order.client_order_id} {type(event).__name__}: {code + ': ' if code else ''}{reason}"
