"""Parent orders worked by execution algorithms (:mod:`runtime.algos`), in the core, so a
backtest and a session send the same children.

The kernel calls :class:`ExecutionAlgorithms` with each market message of an instrument that
has a working parent (:attr:`ExecutionAlgorithms.watches`) and each event of a child; it answers
with child commands (``SubmitOrder``, ``CancelOrder``: each goes through risk like any order)
and :class:`~runtime.messages.AlgoOrderChanged` events. The rules, each enforced in one place:

- a parent's filled quantity is the sum of its children's fills, its working quantity the
  leaves of its open children, and a slice never takes filled + working beyond the parent's
  quantity (``_release``);
- a parent is ``WORKING`` until its children have filled it (``COMPLETED``), the strategy
  cancels it (``CANCELED``: every open child is canceled, and a child that opens later is
  canceled as it does), a child is denied or rejected (``FAILED``: the others are canceled), or
  its algorithm reports that it cannot complete (``FAILED``); those four states are terminal
  (``_close``). A parent is ``DENIED`` at once when there is no price for its arrival;
- its arrival price is the mid at submission (the latest price where the data has no quotes),
  and :func:`slippage_bps` compares its children's average fill price with it;
- children get ids from the kernel's generator and each parent's algorithm a generator seeded
  by the kernel's seed, the strategy and the parent's number: same data and seed, same
  children, in a backtest and in a session;
- a closed parent retires with its children (:meth:`ExecutionAlgorithms.retire`, at the
  kernel's sweep, ``runtime.retirement``) once every child closed at or before the sweep's
  cutoff (a parent without children: started by then); its children are then followed no
  more and retire from the ledger in the same sweep. A backtest keeps retired parents'
  summaries and children for its results (``keep_retired``), outside the state.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from runtime.algos import ExecAlgorithm, MarketView, ParentView, Slice, algorithm_type
from runtime.errors import ConfigError
from runtime.instruments import InstrumentRegistry
from runtime.ledger import cancel_of
from runtime.messages import (
    AlgoOrderChanged,
    AlgoStatus,
    Message,
    OrderDenied,
    OrderRejected,
    OrderSide,
    SubmitOrder,
)
from runtime.orders import ClientOrderIdGenerator, Order, OrderStatus
from runtime.prices import LastPrices
from runtime.values import from_fixed
from runtime.watches import Watches, owned, unwatch, watch

__all__ = ["AlgoOrder", "ExecutionAlgorithms", "ParentSummary", "slippage_bps"]


class AlgoOrder(msgspec.Struct, frozen=True, kw_only=True):
    """A parent order: ``quantity`` on ``side``, worked by ``algorithm``; ``limit_price``: the
    children's limit (an iceberg's price, a completion order's cap), else children are market."""

    instrument_id: str
    side: OrderSide
    quantity: int
    algorithm: ExecAlgorithm
    limit_price: int | None = None


class _Parent(msgspec.Struct, kw_only=True):
    strategy_id: str
    instrument_id: str
    side: OrderSide
    quantity: int
    limit_price: int | None
    algorithm: str
    status: AlgoStatus
    start_ns: int
    arrival_price: int | None
    volume: int = 0  # traded on the instrument since submission
    children: dict[str, int] = msgspec.field(default_factory=dict)  # child id -> its quantity
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ParentSummary:
    """A parent as the results show it (prices and quantities fixed point)."""

    parent_id: str
    strategy_id: str
    instrument_id: str
    algorithm: str
    side: OrderSide
    quantity: int
    filled_qty: int
    avg_price: int | None
    arrival_price: int | None
    status: AlgoStatus
    start_ns: int
    reason: str

    @property
    def slippage_bps(self) -> float | None:
        return slippage_bps(self.side, self.arrival_price, self.avg_price)


def slippage_bps(side: int, arrival_price: int | None, price: int | None) -> float | None:
    """What ``price`` cost against the arrival price, in basis points (positive: worse)."""
    if arrival_price is None or price is None or arrival_price == 0:
        return None
    return side * (price - arrival_price) / arrival_price * 10_000


class ExecutionAlgorithms:
    """The parent orders of every strategy of one kernel."""

    def __init__(
        self,
        ids: ClientOrderIdGenerator,
        registry: InstrumentRegistry,
        prices: LastPrices,
        order_of: Callable[[str], Order | None],
        *,
        seed: int,
        watches: Watches | None = None,
        keep_retired: bool = False,
    ) -> None:
        self._ids, self._registry, self._prices, self._order_of = ids, registry, prices, order_of
        self._seed = seed
        self._parents: dict[str, _Parent] = {}
        self._algos: dict[str, ExecAlgorithm] = {}
        self._parent_of: dict[str, str] = {}  # child id -> parent id
        #: instrument -> working parent ids: the kernel calls :meth:`on_market` for these only
        self.watches: Watches = {} if watches is None else watches
        #: retired parents' summaries and their children's parents, when kept (``keep_retired``)
        self._retired: dict[str, ParentSummary] | None = {} if keep_retired else None
        self._retired_parent_of: dict[str, str] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """From a pickle (a kernel's snapshot); one written before parents retired keeps no
        retired parents."""
        self.__dict__.update(state)
        self.__dict__.setdefault("_retired", None)
        self.__dict__.setdefault("_retired_parent_of", {})

    # --- reads ---------------------------------------------------------------------------------
    def tracks(self, client_order_id: str) -> bool:
        """``client_order_id`` is a child of a parent here."""
        return client_order_id in self._parent_of

    def is_parent(self, parent_id: str) -> bool:
        return parent_id in self._parents

    def parent_of(self, client_order_id: str) -> str | None:
        """The parent of a child (a retired one's too, when kept)."""
        pid = self._parent_of.get(client_order_id)
        return pid if pid is not None else self._retired_parent_of.get(client_order_id)

    def unreleased(self, strategy_id: str, instrument_id: str) -> int:
        """Signed quantity of the strategy's working parents not yet in an order the kernel
        holds: what the strategy's committed position does not count yet (a child released
        on this market message is queued, not yet pending, when the strategy hears it)."""
        total = 0
        for pid in owned(self.watches, instrument_id, self._parents):
            parent = self._parents[pid]
            if parent.strategy_id == strategy_id:
                total += self._view(parent, queued=False).remaining * parent.side
        return total

    def working(self, strategy_id: str, instrument_id: str | None) -> list[str]:
        """The strategy's working parents (on ``instrument_id`` when given), oldest first."""
        return [
            pid
            for pid, p in self._parents.items()
            if p.status is AlgoStatus.WORKING
            and p.strategy_id == strategy_id
            and (instrument_id is None or p.instrument_id == instrument_id)
        ]

    def summaries(self) -> list[ParentSummary]:
        """Every parent (the retired ones kept too), by submission."""
        out = [self._summary(pid, parent) for pid, parent in self._parents.items()]
        if self._retired:
            out = sorted([*self._retired.values(), *out], key=lambda p: p.start_ns)
        return out

    def _summary(self, pid: str, parent: _Parent) -> ParentSummary:
        filled, cost = self._fills(parent)
        return ParentSummary(
            parent_id=pid,
            strategy_id=parent.strategy_id,
            instrument_id=parent.instrument_id,
            algorithm=parent.algorithm,
            side=parent.side,
            quantity=parent.quantity,
            filled_qty=filled,
            avg_price=cost // filled if filled else None,
            arrival_price=parent.arrival_price,
            status=parent.status,
            start_ns=parent.start_ns,
            reason=parent.reason,
        )

    # --- retirement ----------------------------------------------------------------------------
    def retire(self, closed_by_ns: int) -> list[str]:
        """Retire the closed parents whose children all closed at or before ``closed_by_ns``
        (a parent without children: started by then); their ids. Their children are followed
        no more (the ledger retires them next)."""
        gone = [pid for pid, parent in self._parents.items()
                if self._settled(parent, closed_by_ns)]
        for pid in gone:
            if self._retired is not None:
                self._retired[pid] = self._summary(pid, self._parents[pid])
            parent = self._parents.pop(pid)
            del self._algos[pid]
            for cid in parent.children:
                del self._parent_of[cid]
                if self._retired is not None:
                    self._retired_parent_of[cid] = pid
        return gone

    def _settled(self, parent: _Parent, closed_by_ns: int) -> bool:
        if parent.status is AlgoStatus.WORKING:
            return False
        if not parent.children:
            return parent.start_ns <= closed_by_ns
        for cid in parent.children:
            order = self._order_of(cid)
            if order is not None and (not order.is_closed or order.ts_last > closed_by_ns):
                return False
        return True

    # --- a new parent, a cancel --------------------------------------------------------------
    def submit(self, strategy_id: str, order: AlgoOrder, now: int) -> tuple[str, list[Message]]:
        """The parent's id, and the commands and events that start it."""
        algo = order.algorithm
        _validate(order, self._registry.get(order.instrument_id).lot_size)
        pid = self._ids.next(strategy_id)
        arrival = self._prices.mid(order.instrument_id)
        if arrival is None:
            arrival = self._prices.price.get(order.instrument_id)
        parent = _Parent(
            strategy_id=strategy_id,
            instrument_id=order.instrument_id,
            side=order.side,
            quantity=order.quantity,
            limit_price=order.limit_price,
            algorithm=algo.name,
            status=AlgoStatus.WORKING,
            start_ns=now,
            arrival_price=arrival,
        )
        self._parents[pid] = parent
        # its own deep copy (the strategy may reuse the object): it keeps the parent's progress
        algo = self._algos[pid] = msgspec.convert(msgspec.to_builtins(algo), type(algo))
        if arrival is None:
            parent.status = AlgoStatus.DENIED
            parent.reason = f"no_market_data: no price yet for {order.instrument_id}"
            return pid, [self._event(pid, now)]
        algo.start(self._view(parent), self._market(parent, now), self._rng(pid))
        watch(self.watches, order.instrument_id, pid)
        return pid, [self._event(pid, now), *self._work(pid, now)]

    def _rng(self, parent_id: str) -> np.random.Generator:
        """The parent's generator: from the kernel's seed, its strategy and its number (not
        the session's namespace: a backtest and a session draw the same)."""
        _, strategy_id, n = ClientOrderIdGenerator.parse(parent_id)
        entropy = [self._seed, zlib.crc32(strategy_id.encode()), n]
        return np.random.default_rng(np.random.SeedSequence(entropy))

    def cancel(self, parent_id: str, now: int) -> list[Message]:
        """Cancel a working parent and its open children (nothing for a closed one)."""
        parent = self._parents.get(parent_id)
        if parent is None or parent.status is not AlgoStatus.WORKING:
            return []
        return self._close(parent_id, AlgoStatus.CANCELED, "canceled by the strategy", now)

    def cancel_all(self, strategy_id: str, now: int) -> list[Message]:
        """Cancel every working parent (of ``strategy_id`` when set): an operator's cancel-all."""
        out: list[Message] = []
        for pid, parent in list(self._parents.items()):
            if parent.status is AlgoStatus.WORKING and strategy_id in ("", parent.strategy_id):
                out += self._close(pid, AlgoStatus.CANCELED, "canceled by the operator", now)
        return out

    # --- what moves a parent -------------------------------------------------------------------
    def on_market(self, instrument_id: str, now: int, volume: int) -> list[Message]:
        out: list[Message] = []
        for pid in owned(self.watches, instrument_id, self._parents):
            self._parents[pid].volume += volume
            out += self._work(pid, now)
        return out

    def on_event(self, order: Order, event: Message, now: int) -> list[Message]:
        pid = self._parent_of.get(order.client_order_id)
        if pid is None:
            return []
        parent = self._parents[pid]
        if parent.status is not AlgoStatus.WORKING:
            return _cancel(order, now) if order.is_open else []  # a late child: canceled
        if isinstance(event, OrderDenied | OrderRejected):
            code = event.reason_code if isinstance(event, OrderDenied) else event.venue_code
            why = f"{order.client_order_id} {type(event).__name__}: {code}: {event.reason}"
            return self._close(pid, AlgoStatus.FAILED, why, now)
        return self._work(pid, now)

    def _work(self, pid: str, now: int) -> list[Message]:
        """Complete the parent, or release what its algorithm wants now, or fail it."""
        parent, algo = self._parents[pid], self._algos[pid]
        view, market = self._view(parent), self._market(parent, now)
        if view.filled_qty >= parent.quantity:
            return self._close(pid, AlgoStatus.COMPLETED, "", now)
        out: list[Message] = self._release(pid, parent, algo.decide(view, market), now)
        reason = algo.failure(self._view(parent), market)
        if reason:
            out += self._close(pid, AlgoStatus.FAILED, reason, now)
        return out

    def _release(self, pid: str, parent: _Parent, slices: list[Slice], now: int) -> list[Message]:
        out: list[Message] = []
        room = self._view(parent).remaining
        for piece in slices:
            quantity = min(piece.quantity, room)
            if quantity <= 0:
                continue
            room -= quantity
            cid = self._ids.next(parent.strategy_id)
            parent.children[cid] = quantity
            self._parent_of[cid] = pid
            out.append(
                SubmitOrder(
                    seq=0,
                    ts_event=now,
                    ts_init=now,
                    client_order_id=cid,
                    strategy_id=parent.strategy_id,
                    instrument_id=parent.instrument_id,
                    side=parent.side,
                    order_type=piece.order_type,
                    quantity=quantity,
                    price=piece.price,
                    time_in_force=piece.time_in_force,
                    post_only=piece.post_only,
                )
            )
        return out

    def _close(self, pid: str, status: AlgoStatus, reason: str, now: int) -> list[Message]:
        parent = self._parents[pid]
        parent.status, parent.reason = status, reason
        unwatch(self.watches, parent.instrument_id, pid)
        out: list[Message] = []
        for cid in parent.children:
            order = self._order_of(cid)
            if order is not None and order.is_open:
                out += _cancel(order, now)
        return [*out, self._event(pid, now)]

    # --- views ---------------------------------------------------------------------------------
    def _fills(self, parent: _Parent) -> tuple[int, int]:
        filled = cost = 0
        for cid in parent.children:
            order = self._order_of(cid)
            if order is not None:
                filled += order.filled_qty
                cost += order.filled_cost
        return filled, cost

    def _view(self, parent: _Parent, *, queued: bool = True) -> ParentView:
        """``queued``: children sent but not yet seen by the kernel count as working."""
        filled = working = 0
        for cid, quantity in parent.children.items():
            order = self._order_of(cid)
            if order is None:  # sent this drain, not yet seen by the kernel
                working += quantity if queued else 0
                continue
            filled += order.filled_qty
            working += order.leaves_qty
        return ParentView(
            side=parent.side,
            quantity=parent.quantity,
            filled_qty=filled,
            working_qty=working,
            start_ns=parent.start_ns,
            limit_price=parent.limit_price,
        )

    def _market(self, parent: _Parent, now: int) -> MarketView:
        instrument = self._registry.get(parent.instrument_id)
        return MarketView(now_ns=now, volume=parent.volume, instrument=instrument)

    def _event(self, pid: str, now: int) -> AlgoOrderChanged:
        parent = self._parents[pid]
        filled, cost = self._fills(parent)
        return AlgoOrderChanged(
            seq=0,
            ts_event=now,
            ts_init=now,
            parent_id=pid,
            strategy_id=parent.strategy_id,
            instrument_id=parent.instrument_id,
            algorithm=parent.algorithm,
            status=parent.status,
            side=parent.side,
            quantity=parent.quantity,
            filled_qty=filled,
            arrival_price=parent.arrival_price,
            avg_price=cost // filled if filled else None,
            reason=parent.reason,
        )

    # --- state (inside the kernel's state hash) -------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            pid: {**msgspec.to_builtins(p), "algo": msgspec.to_builtins(self._algos[pid])}
            for pid, p in sorted(self._parents.items())
        }

    def load_state(self, state: dict[str, Any]) -> None:
        for pid, parent in self._parents.items():  # this part's keys only: the map is shared
            unwatch(self.watches, parent.instrument_id, pid)
        self._parents, self._algos, self._parent_of = {}, {}, {}
        for pid, saved in state.items():
            fields = {k: v for k, v in saved.items() if k != "algo"}
            parent = self._parents[pid] = msgspec.convert(fields, _Parent)
            kind = algorithm_type(parent.algorithm)
            self._algos[pid] = msgspec.convert(saved["algo"], kind)
            self._parent_of.update(dict.fromkeys(parent.children, pid))
            if parent.status is AlgoStatus.WORKING:
                watch(self.watches, parent.instrument_id, pid)


def _validate(order: AlgoOrder, lot_size: int) -> None:
    algo = order.algorithm
    if order.quantity <= 0 or order.quantity % lot_size:
        raise ConfigError(
            f"{algo.name}: a parent order needs a positive quantity in whole lots of "
            f"{from_fixed(lot_size)} for {order.instrument_id}, not {from_fixed(order.quantity)}"
        )
    if algo.needs_limit and order.limit_price is None:
        raise ConfigError(f"{algo.name}: a parent order needs a limit_price")
    algo.check()


def _cancel(order: Order, now: int) -> list[Message]:
    if order.status is OrderStatus.PENDING_CANCEL:
        return []
    return [cancel_of(order, now)]
