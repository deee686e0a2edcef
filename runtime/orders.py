"""Orders: the lifecycle state machine as a transition table, and deterministic client order ids.

Terminal states never change. Filled quantity never exceeds ordered quantity. A fill that
arrives after a cancel (or expiry) is applied to the quantities without leaving the terminal
state. A fill whose ``fill_id`` was already applied is ignored (duplicate reports are normal
with real brokers).
"""

from __future__ import annotations

import enum
from typing import Any

from runtime.errors import InvariantError
from runtime.messages import (
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderStatusUnknown,
    OrderType,
    OrderUpdated,
    SubmitOrder,
    TimeInForce,
)
from runtime.values import from_fixed

__all__ = [
    "TERMINAL",
    "TRANSITIONS",
    "ClientOrderIdGenerator",
    "Order",
    "OrderStatus",
    "Trigger",
]


class OrderStatus(enum.StrEnum):
    INITIALIZED = "initialized"
    DENIED = "denied"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    PENDING_CANCEL = "pending_cancel"
    PENDING_UPDATE = "pending_update"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Trigger(enum.StrEnum):
    """What happened to an order: the column of the transition table."""

    DENY = "deny"
    SUBMIT = "submit"
    ACCEPT = "accept"
    REJECT = "reject"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    PENDING_CANCEL = "pending_cancel"
    PENDING_UPDATE = "pending_update"
    CANCEL = "cancel"
    CANCEL_REJECT = "cancel_reject"
    UPDATE = "update"
    EXPIRE = "expire"


S, T = OrderStatus, Trigger
TERMINAL = frozenset({S.DENIED, S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED})
_PENDING = frozenset({S.PENDING_CANCEL, S.PENDING_UPDATE})
_NO_MOVE = object()  # no entry in TRANSITIONS (None there means "back to before pending")

_LIVE = {
    T.PARTIAL_FILL: S.PARTIALLY_FILLED,
    T.FILL: S.FILLED,
    T.PENDING_CANCEL: S.PENDING_CANCEL,
    T.PENDING_UPDATE: S.PENDING_UPDATE,
    T.CANCEL: S.CANCELED,
    T.EXPIRE: S.EXPIRED,
}

#: (state, trigger) -> next state. ``None`` as the next state means "back to the state before
#: the pending request" (a cancel or modify the venue refused, or a completed modify).
TRANSITIONS: dict[tuple[OrderStatus, Trigger], OrderStatus | None] = {
    (S.INITIALIZED, T.DENY): S.DENIED,
    (S.INITIALIZED, T.SUBMIT): S.SUBMITTED,
    (S.SUBMITTED, T.ACCEPT): S.ACCEPTED,
    (S.SUBMITTED, T.REJECT): S.REJECTED,
    **{(S.SUBMITTED, t): s for t, s in _LIVE.items() if t is not T.PENDING_UPDATE},
    (S.ACCEPTED, T.ACCEPT): S.ACCEPTED,
    **{(S.ACCEPTED, t): s for t, s in _LIVE.items()},
    (S.ACCEPTED, T.UPDATE): S.ACCEPTED,
    **{(S.PARTIALLY_FILLED, t): s for t, s in _LIVE.items()},
    (S.PARTIALLY_FILLED, T.ACCEPT): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, T.UPDATE): S.PARTIALLY_FILLED,
    (S.PENDING_CANCEL, T.PARTIAL_FILL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, T.FILL): S.FILLED,
    (S.PENDING_CANCEL, T.CANCEL): S.CANCELED,
    (S.PENDING_CANCEL, T.EXPIRE): S.EXPIRED,
    (S.PENDING_CANCEL, T.CANCEL_REJECT): None,
    (S.PENDING_CANCEL, T.ACCEPT): S.PENDING_CANCEL,
    # a cancel sent before the venue answered the submit: the venue may still refuse the order
    (S.PENDING_CANCEL, T.REJECT): S.REJECTED,
    (S.PENDING_UPDATE, T.PARTIAL_FILL): S.PENDING_UPDATE,
    (S.PENDING_UPDATE, T.FILL): S.FILLED,
    (S.PENDING_UPDATE, T.CANCEL): S.CANCELED,
    (S.PENDING_UPDATE, T.EXPIRE): S.EXPIRED,
    (S.PENDING_UPDATE, T.UPDATE): None,
    (S.PENDING_UPDATE, T.CANCEL_REJECT): None,
    (S.PENDING_UPDATE, T.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.PENDING_UPDATE, T.ACCEPT): S.PENDING_UPDATE,
}
# A cancel reject that reaches a live order with no cancel pending (the same reject again after
# a gateway restart, or one for a cancel already answered) changes nothing.
for _live in (S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED):
    TRANSITIONS[(_live, T.CANCEL_REJECT)] = _live
# Late fills on a canceled or expired order are applied to the quantities; the state stays.
for _terminal in (S.CANCELED, S.EXPIRED):
    TRANSITIONS[(_terminal, T.PARTIAL_FILL)] = _terminal
    TRANSITIONS[(_terminal, T.FILL)] = _terminal
del S, T


class Order:
    """The trader's view of one order. Mutated only through :meth:`apply`."""

    __slots__ = (
        "_before_pending",
        "client_order_id",
        "fees",
        "fill_ids",
        "filled_cost",
        "filled_qty",
        "instrument_id",
        "order_type",
        "post_only",
        "price",
        "protective",
        "quantity",
        "reason",
        "reduce_only",
        "side",
        "status",
        "strategy_id",
        "time_in_force",
        "trigger_price",
        "ts_init",
        "ts_last",
        "venue_order_id",
    )

    def __init__(self, command: SubmitOrder) -> None:
        self.client_order_id = command.client_order_id
        self.strategy_id = command.strategy_id
        self.instrument_id = command.instrument_id
        self.side = command.side
        self.order_type = command.order_type
        self.quantity = command.quantity
        self.price = command.price
        self.trigger_price = command.trigger_price
        self.time_in_force = command.time_in_force
        self.post_only = command.post_only
        self.reduce_only = command.reduce_only
        self.protective = command.protective
        self.status = OrderStatus.INITIALIZED
        self.filled_qty = 0
        self.filled_cost = 0  # sum of price*qty (scale 1e18): exact average price numerator
        self.fees = 0
        self.venue_order_id = ""
        self.fill_ids: set[str] = set()
        self.ts_init = command.ts_init
        self.ts_last = command.ts_init
        self._before_pending: OrderStatus | None = None
        self.reason = ""

    @property
    def leaves_qty(self) -> int:
        return 0 if self.is_closed else self.quantity - self.filled_qty

    @property
    def is_closed(self) -> bool:
        return self.status in TERMINAL

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL and self.status is not OrderStatus.INITIALIZED

    @property
    def signed_leaves(self) -> int:
        return self.leaves_qty * self.side

    def transition(self, trigger: Trigger) -> None:
        """Move along the table; an impossible move is a bug, except on terminal states."""
        move = TRANSITIONS.get((self.status, trigger), _NO_MOVE)
        if move is _NO_MOVE:
            if self.status in TERMINAL:
                return  # terminal states never change: late accepts/cancels are ignored
            raise InvariantError(
                f"order {self.client_order_id}: no transition from {self.status} on {trigger}"
            )
        target: OrderStatus | None = move  # type: ignore[assignment]  # not _NO_MOVE here
        if target is None:
            target = self._before_pending or OrderStatus.ACCEPTED
            if self.filled_qty and target is OrderStatus.ACCEPTED:
                target = OrderStatus.PARTIALLY_FILLED
        if target in _PENDING and self.status not in _PENDING:
            self._before_pending = self.status
        self.status = target

    def apply(self, event: Message) -> bool:
        """Apply a report about this order; ``False`` when it changed nothing (a duplicate)."""
        kind = type(event)
        if kind is OrderFilled:
            return self._apply_fill(event)  # type: ignore[arg-type]
        if kind is OrderStatusUnknown:
            return False  # not a state change: the gateway reconciles, then reports what it finds
        trigger = _TRIGGER_OF.get(kind)
        if trigger is None:
            raise InvariantError(f"{kind.__name__} is not an order event")
        if kind is OrderAccepted:
            self.venue_order_id = event.venue_order_id  # type: ignore[attr-defined]
        elif isinstance(event, OrderUpdated):
            if event.quantity < self.filled_qty:
                raise InvariantError(f"order {self.client_order_id}: updated below filled qty")
            self.quantity = event.quantity
            self.price = event.price
            self.trigger_price = event.trigger_price
        elif isinstance(event, OrderDenied | OrderRejected | OrderCanceled | OrderCancelRejected):
            self.reason = getattr(event, "reason", "")
        before = self.status
        self.transition(trigger)
        self.ts_last = event.ts_event
        return self.status is not before or trigger is Trigger.UPDATE

    def _apply_fill(self, fill: OrderFilled) -> bool:
        if fill.fill_id in self.fill_ids:
            return False
        new_filled = self.filled_qty + fill.last_qty
        if fill.last_qty <= 0 or new_filled > self.quantity:
            raise InvariantError(
                f"order {self.client_order_id}: fill {fill.fill_id} of "
                f"{from_fixed(fill.last_qty)} would make filled {from_fixed(new_filled)} > "
                f"ordered {from_fixed(self.quantity)}"
            )
        self.fill_ids.add(fill.fill_id)
        self.filled_qty = new_filled
        self.filled_cost += fill.last_price * fill.last_qty
        self.fees += fill.fee
        if fill.venue_order_id:
            self.venue_order_id = fill.venue_order_id
        self.transition(Trigger.FILL if new_filled == self.quantity else Trigger.PARTIAL_FILL)
        self.ts_last = fill.ts_event
        return True

    def state(self) -> dict[str, object]:
        """Canonical state for hashing and snapshots (ints and strings only)."""
        return {
            "id": self.client_order_id,
            "strategy": self.strategy_id,
            "instrument": self.instrument_id,
            "side": int(self.side),
            "type": str(self.order_type),
            "qty": self.quantity,
            "price": self.price,
            "trigger": self.trigger_price,
            "tif": str(self.time_in_force),
            "post_only": self.post_only,
            "reduce_only": self.reduce_only,
            "protective": self.protective,
            "status": str(self.status),
            "filled": self.filled_qty,
            "cost": self.filled_cost,
            "fees": self.fees,
            "venue_id": self.venue_order_id,
            "fills": sorted(self.fill_ids),
            "ts_init": self.ts_init,
            "ts_last": self.ts_last,
            "before_pending": str(self._before_pending) if self._before_pending else None,
            "reason": self.reason,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Order:
        def opt(key: str) -> int | None:
            value = state[key]
            return None if value is None else int(value)

        command = SubmitOrder(
            seq=0,
            ts_event=int(state["ts_init"]),
            ts_init=int(state["ts_init"]),
            client_order_id=str(state["id"]),
            strategy_id=str(state["strategy"]),
            instrument_id=str(state["instrument"]),
            side=OrderSide(state["side"]),
            order_type=OrderType(state["type"]),
            quantity=int(state["qty"]),
            price=opt("price"),
            trigger_price=opt("trigger"),
            time_in_force=TimeInForce(state["tif"]),
            post_only=bool(state["post_only"]),
            reduce_only=bool(state["reduce_only"]),
            protective=bool(state.get("protective", False)),
        )
        order = cls(command)
        order.status = OrderStatus(state["status"])
        order.filled_qty = int(state["filled"])
        order.filled_cost = int(state["cost"])
        order.fees = int(state["fees"])
        order.venue_order_id = str(state["venue_id"])
        order.fill_ids = set(state["fills"])
        order.ts_last = int(state["ts_last"])
        before = state["before_pending"]
        order._before_pending = OrderStatus(before) if before else None
        order.reason = str(state["reason"])
        return order


_TRIGGER_OF: dict[type, Trigger] = {
    OrderAccepted: Trigger.ACCEPT,
    OrderDenied: Trigger.DENY,
    OrderRejected: Trigger.REJECT,
    OrderCanceled: Trigger.CANCEL,
    OrderCancelRejected: Trigger.CANCEL_REJECT,
    OrderExpired: Trigger.EXPIRE,
    OrderUpdated: Trigger.UPDATE,
}


class ClientOrderIdGenerator:
    """Deterministic client order ids: ``<namespace>-<strategy>-<n>``.

    ``namespace`` identifies the run or trading session (a backtest's run id, a paper/live
    session id), so ids are unique across sessions; the counter is part of the kernel's state
    (snapshotted and journaled), so ids stay unique across restarts of the same session.
    """

    __slots__ = ("counters", "namespace")

    def __init__(self, namespace: str) -> None:
        if not namespace or "-" in namespace:
            raise InvariantError(
                f"client order id namespace {namespace!r} must be non-empty, no '-'"
            )
        self.namespace = namespace
        self.counters: dict[str, int] = {}

    def next(self, strategy_id: str) -> str:
        n = self.counters.get(strategy_id, 0) + 1
        self.counters[strategy_id] = n
        return f"{self.namespace}-{strategy_id}-{n}"

    @staticmethod
    def parse(client_order_id: str) -> tuple[str, str, int]:
        """``(namespace, strategy_id, n)`` of an id this generator made."""
        head, _, n = client_order_id.rpartition("-")
        namespace, _, strategy = head.partition("-")
        if not namespace or not strategy or not n.isdigit():
            raise InvariantError(f"not a Tradewind client order id: {client_order_id!r}")
        return namespace, strategy, int(n)
