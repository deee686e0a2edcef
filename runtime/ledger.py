"""The order ledger of a kernel: every order, the open ones, and per strategy and instrument
what ``target_position`` and risk read.

Kept together, incrementally, as orders move:

* ``positions[(strategy, instrument)]``: the strategy's position, from its fills;
* ``pending[(strategy, instrument)]``: the signed leaves of its open orders, and of those sent
  to a risk check elsewhere and not answered yet (:meth:`OrderLedger.hold`);
* the committed view (:meth:`OrderLedger.committed_view`): position plus pending, protective
  legs left out (a stop closes what is held: it is not part of the target);
* the protective view: open protective legs per instrument.

Closed orders retire once old enough (:meth:`OrderLedger.retire`, the rule in
:mod:`runtime.retirement`): out of ``orders``, leaving their id's watermark and fill ids in
``retired``.

Invariant: after any call, ``pending`` and the views equal what :meth:`OrderLedger.load_state`
recomputes from the orders and positions (the restore path recomputes; every other path
adds deltas).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from runtime.errors import InvariantError
from runtime.messages import CancelOrder, Message, OrderDenied, OrderSide, SubmitOrder
from runtime.orders import TERMINAL, Order, OrderStatus
from runtime.retirement import RetiredOrders

__all__ = ["OrderLedger", "cancel_of", "command_of", "denial_of"]

Key = tuple[str, str]  # (strategy id, instrument id)


class OrderLedger:
    """Orders by client order id, the open ones, and the per-strategy views."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.open: dict[str, Order] = {}
        self.positions: dict[Key, int] = {}
        self.pending: dict[Key, int] = {}
        # committed and protective per strategy, then instrument: the inner dicts live as long
        # as the ledger (strategies hold them as live views)
        self._committed: dict[str, dict[str, int]] = {}
        self._protective: dict[str, dict[str, int]] = {}
        # sent to risk elsewhere and not answered yet (a superset: answered ones leave lazily)
        self._awaiting: dict[str, Order] = {}
        self.retired = RetiredOrders()

    def get(self, client_order_id: str) -> Order | None:
        return self.orders.get(client_order_id)

    # --- orders in -----------------------------------------------------------------------------
    def add(self, order: Order) -> None:
        """A new order (initialized: not open yet)."""
        self.orders[order.client_order_id] = order

    def hold(self, order: Order) -> None:
        """``order`` went to a risk check elsewhere: pending from now on (as it is in a kernel
        that checks at once), until the answer."""
        self._awaiting[order.client_order_id] = order
        self._add_pending(order, order.quantity * order.side)

    def awaiting(self, order: Order) -> bool:
        return order.client_order_id in self._awaiting and order.status is OrderStatus.INITIALIZED

    def resize(self, order: Order, quantity: int) -> None:
        """Risk approved less than was asked (a close-only rule)."""
        if order.client_order_id in self._awaiting:
            self._add_pending(order, (quantity - order.quantity) * order.side)
        order.quantity = quantity

    def opened(self, order: Order) -> None:
        """An approved order is open (its leaves pending, unless :meth:`hold` counted them)."""
        self.open[order.client_order_id] = order
        if order.protective:
            self._count_protective(order, 1)
        if order.client_order_id not in self._awaiting:
            self._add_pending(order, (order.quantity - order.filled_qty) * order.side)

    def release(self, order: Order, command: SubmitOrder) -> None:
        """A stop held in the core (accepted there, never sent: ``runtime.stops``) is released
        as ``command``, a market or limit order under the same id: out of the open orders and
        pending, it becomes a new order of that type (initialized), to be approved or denied
        as one."""
        if order.status is not OrderStatus.ACCEPTED or order.filled_qty:
            raise InvariantError(f"order {order.client_order_id}: released from {order.status}")
        if self.open.pop(order.client_order_id, None) is not None:
            if order.protective:
                self._count_protective(order, -1)
            self._add_pending(order, -order.signed_leaves)
        order.order_type, order.price = command.order_type, command.price
        order.trigger_price, order.time_in_force = command.trigger_price, command.time_in_force
        order.status, order.ts_last = OrderStatus.INITIALIZED, command.ts_init

    def apply(self, order: Order, event: Message) -> bool:
        """A report (or a denial from risk elsewhere) applied to its order: False for a
        duplicate. Open orders and pending follow the order's new state."""
        cid = order.client_order_id
        was_open = cid in self.open
        if type(event) is OrderDenied and self.awaiting(order):
            self._add_pending(order, -order.quantity * order.side)  # counted when sent
        before = (order.quantity - order.filled_qty) * order.side if was_open else 0
        if not order.apply(event):
            return False
        if order.status in TERMINAL:
            if was_open:
                del self.open[cid]
                if order.protective:
                    self._count_protective(order, -1)
            after = 0
        else:
            after = (order.quantity - order.filled_qty) * order.side if was_open else 0
        if after != before:
            self._add_pending(order, after - before)
        return True

    def filled(self, key: Key, signed_qty: int) -> None:
        """A fill moved the strategy's position."""
        self.positions[key] = self.positions.get(key, 0) + signed_qty
        self._add_committed(key, signed_qty)

    def unanswered(self) -> list[Order]:
        """Orders sent to risk elsewhere and not answered yet, in the order they were sent."""
        awaiting = self._awaiting
        for cid in [c for c, o in awaiting.items() if o.status is not OrderStatus.INITIALIZED]:
            del awaiting[cid]
        return list(awaiting.values())

    def retire(self, closed_by_ns: int, followed: Callable[[str], bool]) -> list[Order]:
        """Retire the closed orders last changed at or before ``closed_by_ns`` that nothing
        ``followed`` (:mod:`runtime.retirement`); the orders retired, oldest first."""
        gone = [o for o in self.orders.values()
                if o.status in TERMINAL and o.ts_last <= closed_by_ns
                and not followed(o.client_order_id)]
        for order in gone:
            cid = order.client_order_id
            del self.orders[cid]
            self._awaiting.pop(cid, None)
            self.retired.add(cid, order.fill_ids)
        return gone

    @property
    def total(self) -> int:
        """Orders made: held and retired."""
        return len(self.orders) + self.retired.count

    def fill_ids(self) -> list[str]:
        """Every fill id applied, retired orders' included, sorted."""
        held = [f for o in self.orders.values() for f in o.fill_ids]
        return sorted(self.retired.fill_ids.union(held))

    # --- reads ---------------------------------------------------------------------------------
    def committed_view(self, strategy_id: str) -> Mapping[str, int]:
        """Position plus what open orders would add, per instrument, for one strategy (a live
        mapping, the same for the life of the ledger, restores included)."""
        return self._view(strategy_id)

    def protective_view(self, strategy_id: str) -> Mapping[str, int]:
        """Open protective legs per instrument for one strategy (live, as the committed view)."""
        return self._protective.setdefault(strategy_id, {})

    def open_orders(self, strategy_id: str, instrument_id: str | None) -> list[Order]:
        return [
            o
            for o in self.open.values()
            if o.strategy_id == strategy_id
            and (instrument_id is None or o.instrument_id == instrument_id)
        ]

    def protective_orders(self, strategy_id: str, instrument_id: str) -> list[Order]:
        return [
            o
            for o in self.open.values()
            if o.protective and o.strategy_id == strategy_id and o.instrument_id == instrument_id
        ]

    def pending_sides(self, instrument_id: str) -> tuple[int, int]:
        """Open leaves per side that risk counts: not protective legs (they only close), nor
        orders already being canceled (an exit must not wait for their cancel to confirm)."""
        buys = sells = 0
        for order in self.open.values():  # open orders are never terminal: leaves = qty - filled
            if (
                order.instrument_id == instrument_id
                and not order.protective
                and order.status is not OrderStatus.PENDING_CANCEL
            ):
                if order.side is OrderSide.BUY:
                    buys += order.quantity - order.filled_qty
                else:
                    sells += order.quantity - order.filled_qty
        return buys, sells

    # --- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        state = {
            "orders": [self.orders[k].state() for k in sorted(self.orders)],
            "strategy_positions": sorted([[*list(k), v] for k, v in self.positions.items()]),
        }
        if self.retired.count:  # only once an order retired: states before keep their hash
            state["retired"] = self.retired.state()
        return state

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state`: the views are recomputed, in place."""
        self.orders = {o["id"]: Order.from_state(o) for o in state["orders"]}
        self.open = {k: o for k, o in self.orders.items() if o.is_open}
        self.positions = {(a, b): v for a, b, v in state["strategy_positions"]}
        self.retired.load_state(state.get("retired"))
        self.pending = {}
        self._awaiting = {}
        for view in self._committed.values():
            view.clear()  # cleared in place: strategies hold these mappings
        for counts in self._protective.values():
            counts.clear()
        for key, quantity in self.positions.items():
            self._add_committed(key, quantity)
        for order in self.orders.values():
            if order.is_open:
                self._add_pending(order, order.signed_leaves)
                if order.protective:
                    self._count_protective(order, 1)

    # --- inside --------------------------------------------------------------------------------
    def _add_pending(self, order: Order, delta: int) -> None:
        """A protective leg's leaves are pending but not committed."""
        key = (order.strategy_id, order.instrument_id)
        self.pending[key] = self.pending.get(key, 0) + delta
        if not order.protective:
            self._add_committed(key, delta)

    def _add_committed(self, key: Key, delta: int) -> None:
        strategy_id, instrument_id = key
        view = self._committed.get(strategy_id) or self._view(strategy_id)
        view[instrument_id] = view.get(instrument_id, 0) + delta

    def _view(self, strategy_id: str) -> dict[str, int]:
        view = self._committed.get(strategy_id)
        if view is None:
            view = self._committed[strategy_id] = {}
        return view

    def _count_protective(self, order: Order, n: int) -> None:
        view = self._protective.setdefault(order.strategy_id, {})
        view[order.instrument_id] = view.get(order.instrument_id, 0) + n


def command_of(order: Order) -> SubmitOrder:
    """The (approved) command of an order, rebuilt from the order."""
    return SubmitOrder(
        seq=0, ts_event=order.ts_init, ts_init=order.ts_init,
        client_order_id=order.client_order_id, strategy_id=order.strategy_id,
        instrument_id=order.instrument_id, side=order.side, order_type=order.order_type,
        quantity=order.quantity, price=order.price, trigger_price=order.trigger_price,
        time_in_force=order.time_in_force, post_only=order.post_only,
        reduce_only=order.reduce_only, protective=order.protective,
    )


def denial_of(command: SubmitOrder | Order, now_ns: int, code: str, reason: str) -> OrderDenied:
    """The denial of ``command`` (a new order, or the order it made), stamped ``now_ns``."""
    return OrderDenied(seq=0, ts_event=now_ns, ts_init=now_ns,
                       client_order_id=command.client_order_id, strategy_id=command.strategy_id,
                       instrument_id=command.instrument_id, reason_code=code, reason=reason)


def cancel_of(order: Order, now_ns: int) -> CancelOrder:
    """A cancel of ``order``, stamped ``now_ns``."""
    return CancelOrder(seq=0, ts_event=now_ns, ts_init=now_ns,
                       client_order_id=order.client_order_id, strategy_id=order.strategy_id,
                       instrument_id=order.instrument_id)
