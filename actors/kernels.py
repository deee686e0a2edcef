"""The two halves of the kernel that the actors hold, and their journals.

In a backtest one :class:`runtime.kernel.Kernel` runs the strategies and the risk check together.
In paper trading they live in different actors, so the kernel is split in two, without changing
what either half computes:

* :class:`StrategyHost` (in a strategy actor) runs unchanged strategies. Their intents leave
  as messages for risk; an order stays ``initialized`` (pending, not open) until the risk
  actor's answer comes back: the approved command (``handle(SubmitOrder)``) or an
  ``OrderDenied``. Reports from the venue come in through ``handle`` as in the kernel.
* :class:`RiskKernel` (in the risk actor) has no strategies: intents come in through
  ``handle`` (``Kernel.on_intent``) and go through the same risk engine, orders and portfolio.

Both set their clock to a report's delivery time (``ts_init``) before applying it, as the
backtest loop does, so a replay of their journal reproduces the same state (and hash).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.journals import open_journal
from runtime.kernel import Kernel
from runtime.messages import (
    Bar,
    BookDeltas,
    BookSnapshot,
    CancelOrder,
    Message,
    ModifyOrder,
    OrderDenied,
    QuoteTick,
    SubmitOrder,
    TimerFired,
    TradeTick,
)
from runtime.orders import Order, OrderStatus, Trigger
from runtime.recovery import FeedLog, JournaledKernel

__all__ = [
    "INTENT_TYPES",
    "MARKET_TYPES",
    "OPERATION",
    "RiskKernel",
    "StrategyHost",
    "command_of",
    "idle_timer",
    "open_journaled",
]

INTENT_TYPES = (SubmitOrder, CancelOrder, ModifyOrder)
MARKET_TYPES = (QuoteTick, TradeTick, Bar, BookDeltas, BookSnapshot)
_IDLE_PREFIX = "idle_until="
#: an operator's change to a strategy (params, enable), journaled between the messages it
#: came between, so a replay applies it at the same point
OPERATION = "strategy.operation"


def idle_timer(ts_ns: int, idle_until: int | None) -> TimerFired:
    """A timer tick as a journalable message; ``idle_until`` rides in its name."""
    name = "" if idle_until is None else f"{_IDLE_PREFIX}{idle_until}"
    return TimerFired(seq=0, ts_event=ts_ns, ts_init=ts_ns, name=name)


def _idle_until(timer: TimerFired) -> int | None:
    return int(timer.name[len(_IDLE_PREFIX):]) if timer.name.startswith(_IDLE_PREFIX) else None


class _ReportClock(Kernel):
    def handle(self, message: Message) -> list[Message]:
        if type(message).__name__.startswith("Order") and not isinstance(message, OrderDenied):
            self.now = max(self.now, message.ts_init)  # delivery time, as the backtest loop
        return super().handle(message)


def command_of(order: Order) -> SubmitOrder:
    """The (approved) command of an order, rebuilt from the order."""
    return SubmitOrder(
        seq=0, ts_event=order.ts_init, ts_init=order.ts_init,
        client_order_id=order.client_order_id, strategy_id=order.strategy_id,
        instrument_id=order.instrument_id, side=order.side, order_type=order.order_type,
        quantity=order.quantity, price=order.price, trigger_price=order.trigger_price,
        time_in_force=order.time_in_force, post_only=order.post_only,
        reduce_only=order.reduce_only,
    )


class RiskKernel(_ReportClock):
    """The kernel of the risk actor: no strategies; intents come in as messages.

    A repeated ``SubmitOrder`` (a retried call after a crash) is not applied twice: it gets the
    answer it got the first time (the approved command again, or a denial).
    """

    def handle(self, message: Message) -> list[Message]:
        if isinstance(message, SubmitOrder):
            order = self.orders.get(message.client_order_id)
            if order is not None:
                return [self._previous_answer(order)]
        return super().handle(message)

    def _previous_answer(self, order: Order) -> Message:
        if order.status is OrderStatus.DENIED:
            return OrderDenied(
                seq=0, ts_event=order.ts_last, ts_init=order.ts_last,
                client_order_id=order.client_order_id, strategy_id=order.strategy_id,
                instrument_id=order.instrument_id, reason_code="repeat", reason=order.reason,
            )
        return command_of(order)


class StrategyHost(_ReportClock):
    """The kernel of a strategy actor: strategies run here; risk decides elsewhere."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # orders sent to risk and not answered yet (a superset: answered ones leave lazily in
        # unanswered()); kept so that a call never scans every order of the session
        self._awaiting: dict[str, Order] = {}

    def handle(self, message: Message) -> list[Message]:
        if isinstance(message, SubmitOrder):
            return self.on_approved(message)
        if isinstance(message, OrderDenied):
            order = self.orders.get(message.client_order_id)
            if order is not None and order.status is OrderStatus.INITIALIZED:
                self._add_pending((order.strategy_id, order.instrument_id),
                                  -order.quantity * order.side)  # counted when sent
        if isinstance(message, TimerFired):
            return self.on_timer(message, idle_until=_idle_until(message))
        return super().handle(message)

    def _process_intent(self, intent: Message) -> None:
        if isinstance(intent, SubmitOrder):
            order = self.orders[intent.client_order_id] = Order(intent)
            self._awaiting[intent.client_order_id] = order
            # pending from now on, as in the backtest (where risk answers at once): a
            # strategy that runs again before the answer (the pipelined hot path) sees it
            self._add_pending((order.strategy_id, order.instrument_id),
                              order.quantity * order.side)
            self._out.append(intent)  # initialized until risk answers
            return
        super()._process_intent(intent)

    def on_approved(self, command: SubmitOrder) -> list[Message]:
        order = self.orders.get(command.client_order_id)
        if order is None or order.status is not OrderStatus.INITIALIZED:
            return []  # a repeated answer
        if command.quantity != order.quantity:  # reduced by a close-only rule
            self._add_pending((order.strategy_id, order.instrument_id),
                              (command.quantity - order.quantity) * order.side)
            order.quantity = command.quantity
        order.transition(Trigger.SUBMIT)
        self.open[command.client_order_id] = order
        return []

    def unanswered(self) -> list[SubmitOrder]:
        """Intents risk has not answered yet (re-sent after a crash; risk dedupes them)."""
        awaiting = self._awaiting
        for coid in [c for c, o in awaiting.items() if o.status is not OrderStatus.INITIALIZED]:
            del awaiting[coid]
        return [command_of(o) for o in awaiting.values()]


Operate = Callable[[Kernel, bytes], None]


def open_journaled(kernel_factory: Callable[[], Kernel], path: Path, feed: FeedLog, *,
                   snapshot_every: int,
                   operate: Operate | None = None) -> tuple[JournaledKernel, int, bool]:
    """A journaled kernel restored from ``path`` (its latest snapshot, then its tail with the
    market data re-read from ``feed``, the feed's log); its market cursor; whether it had
    started.

    ``operate(kernel, payload)`` re-applies an :data:`OPERATION` record where the journal holds
    it (a strategy's params changed by the operator); without it such records are an error.
    ``snapshot_every``: a snapshot (the whole kernel) every this many inputs, compacting what
    it covers (``runtime.recovery``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    journal = open_journal(path)
    started = journal.last_seq > 0
    jk = JournaledKernel.restore(kernel_factory, journal, feed, snapshot_every=snapshot_every,
                                 blobs=None if operate is None else {OPERATION: operate})
    return jk, jk.position, started
