"""Orders from intent to venue and back: a kernel's order flow.

Intents (from the kernel's strategies, or from strategies hosted elsewhere) go through the
approval the kernel was composed with (:mod:`runtime.approval`): a new order is approved and
open, denied (its strategy hears the denial), or held, pending, for risk's answer from
elsewhere. Cancels and modifies of open orders go out as they are. The venue's reports come
back into the order ledger and, for fills, the portfolio. What it produces (approved commands,
denials, position changes) collects in ``out``, which the kernel hands back from ``handle``.

``intents`` and ``out`` are the kernel's own lists, shared and only ever changed in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.approval import Approval
from runtime.daygtc import DayOnlyGtc
from runtime.execution import ExecutionAlgorithms
from runtime.instruments import InstrumentRegistry
from runtime.ledger import OrderLedger, command_of, denial_of
from runtime.linked import LinkedOrders
from runtime.messages import (
    AlgoOrderChanged,
    CancelOrder,
    Message,
    ModifyOrder,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderListChanged,
    PositionChanged,
    SubmitOrder,
)
from runtime.orders import Order, OrderStatus, Trigger
from runtime.portfolio import Portfolio
from runtime.risk import RiskEngine
from runtime.roster import Roster
from runtime.stops import EmulatedStops
from runtime.timers import Clock

__all__ = ["OrderFlow"]

_EMPTY: list[Message] = []


class OrderFlow:
    """Intents through risk, reports into the ledger and the portfolio."""

    def __init__(
        self,
        *,
        clock: Clock,
        ledger: OrderLedger,
        approval: Approval,
        linked: LinkedOrders,
        algos: ExecutionAlgorithms,
        roster: Roster,
        portfolio: Portfolio,
        risk: RiskEngine,
        registry: InstrumentRegistry,
        intents: list[Message],
        out: list[Message],
        check_loss: Callable[[int], None],
        stops: EmulatedStops,
        gtc: DayOnlyGtc,
    ) -> None:
        self.clock, self.ledger, self.approval, self.linked = clock, ledger, approval, linked
        self.algos, self.stops, self.gtc = algos, stops, gtc
        self.roster, self.portfolio, self.risk, self.registry = roster, portfolio, risk, registry
        self.intents, self.out = intents, out
        self._check_loss = check_loss  # the kernel's daily-loss check, run on every fill
        self.unknown_reports = 0
        self.late_reports = 0  # of retired orders (``runtime.retirement``)

    # --- intents -------------------------------------------------------------------------------
    def on_intent(self, intent: SubmitOrder | CancelOrder | ModifyOrder) -> list[Message]:
        """An order intent from a strategy that runs outside this kernel: through risk, exactly
        as if a local strategy had sent it; a denial goes back out as an event."""
        self.clock.ns = max(self.clock.ns, intent.ts_event)
        self.intents.append(intent)
        return self.drain()

    def on_submit(self, command: SubmitOrder) -> list[Message]:
        """Risk elsewhere: its answer (the approved command). Risk here: an intent from a
        strategy hosted elsewhere; one seen before (a retried call after a crash) gets the
        answer it got the first time, and is not applied twice."""
        forward = self.gtc.forward(command) if not self.approval.answers else None
        if forward is not None:  # a GTC order's next day order, from its strategy's kernel
            if forward:
                self.out.append(command)
            return self.drain() if forward else _EMPTY
        order = self.ledger.orders.get(command.client_order_id)
        if self.approval.answers:
            if order is not None and self.ledger.awaiting(order):
                if command.quantity != order.quantity:  # reduced by a close-only rule
                    self.ledger.resize(order, command.quantity)
                order.transition(Trigger.SUBMIT)
                self.ledger.opened(order)
                self.gtc.follow(order, self.clock.ns)  # risk's kernel sent its first leg
            return _EMPTY  # a repeated answer changes nothing
        if order is not None:
            return [_previous_answer(order)]
        if self.ledger.retired.knows(command.client_order_id):
            self.late_reports += 1  # answered long ago, since retired: not applied again
            return _EMPTY
        return self.on_intent(command)

    def drain(self) -> list[Message]:
        """Every queued intent through risk (and what they set off), then what was produced."""
        intents = self.intents
        while intents:
            batch = intents[:]
            intents.clear()
            for intent in batch:
                self._process(intent)
        if not self.out:
            return _EMPTY
        out = self.out[:]
        self.out.clear()
        return out

    def take(self, produced: list[Message]) -> None:
        """What linked orders, parent orders, time stops and held stops produced: list and
        parent events out (and to their strategy), the expiry of a held stop applied as a
        report, commands into the intents risk checks."""
        for message in produced:
            if type(message) is OrderExpired:
                self._report(message)
            elif isinstance(message, OrderListChanged | AlgoOrderChanged):
                self.out.append(message)
                strategy = self.roster.by_id.get(message.strategy_id)
                if strategy is not None:
                    strategy.on_order_event(message)
            else:
                self.intents.append(message)

    def _process(self, intent: Message) -> None:
        if isinstance(intent, SubmitOrder):
            self._submit(intent)
        elif isinstance(intent, CancelOrder):
            live = self.ledger.open.get(intent.client_order_id)
            if live is not None and self.stops.holds(live.client_order_id):
                self._report(self.stops.answer(intent, live, self.clock.ns))  # never sent
            elif live is not None and self.gtc.between_legs(live.client_order_id):
                self._report(self.gtc.answer(intent, live, self.clock.ns))  # nothing sent
                if not self.gtc.faces_venue:
                    self.out.append(intent)  # for risk's kernel to answer alike
            elif live is not None and live.status is not OrderStatus.PENDING_CANCEL:
                live.transition(Trigger.PENDING_CANCEL)
                self.out.append(self.gtc.outbound(intent))
        elif isinstance(intent, ModifyOrder):
            live = self.ledger.open.get(intent.client_order_id)
            if live is not None and live.status in (
                OrderStatus.ACCEPTED,
                OrderStatus.PARTIALLY_FILLED,
            ):
                if self.stops.holds(live.client_order_id):
                    self._report(self.stops.answer(intent, live, self.clock.ns))  # never sent
                    return
                if self.gtc.between_legs(live.client_order_id):
                    self._report(self.gtc.answer(intent, live, self.clock.ns))  # nothing sent
                    if not self.gtc.faces_venue:
                        self.out.append(intent)  # for risk's kernel to answer alike
                    return
                live.transition(Trigger.PENDING_UPDATE)
                self.out.append(self.gtc.outbound(intent))

    def _submit(self, intent: SubmitOrder) -> None:
        """A new order: approved and open, denied (the strategy hears it), or sent to risk
        elsewhere and held pending until the answer."""
        now = self.clock.ns
        held = self.ledger.orders.get(intent.client_order_id)
        releasing = held is not None and self.stops.releasing(intent)
        if held is not None and releasing:  # a stop held here, triggered: a new order now
            self.stops.release(intent)
            self.ledger.release(held, intent)
            order = held
        else:
            order = Order(intent)
            self.ledger.add(order)
        linked = self.linked.tracks(intent.client_order_id)
        approved: SubmitOrder | None = None
        if not releasing and self.stops.emulates(intent):  # held here: risk sees its release
            refusal = (self.linked.refusal(intent) if linked else None) or self.stops.refusal(
                intent)
            if refusal is None:
                order.transition(Trigger.SUBMIT)
                self.ledger.opened(order)
                self._report(self.stops.hold(order, now))
                return
            denial: OrderDenied | None = denial_of(intent, now, *refusal)
        else:
            approved, denial = self.approval.decide(intent, now, linked=linked)
        if denial is not None:
            order.apply(denial)
            self.out.append(denial)
            strategy = self.roster.by_id.get(intent.strategy_id)
            if strategy is not None:
                strategy.on_order_event(denial)
            if linked:
                self.take(self.linked.on_event(order, denial, now))
            if self.algos.tracks(intent.client_order_id):
                self.take(self.algos.on_event(order, denial, now))
            return
        if approved is None:  # risk decides elsewhere: initialized until it answers
            self.ledger.hold(order)
            self.out.append(intent)
            return
        if approved.quantity != order.quantity:
            self.ledger.resize(order, approved.quantity)  # reduced by a close-only rule
        order.transition(Trigger.SUBMIT)
        self.ledger.opened(order)
        self.out.append(self.gtc.sent(approved, now))  # a DAY leg where the venue has no GTC

    def resubmit(self, legs: list[SubmitOrder | OrderCanceled]) -> None:
        """The next session's day orders of GTC orders kept alive here: straight to the venue
        (the orders they continue are approved and open already); a cancel the session's end
        completed applied as a report."""
        for leg in legs:
            if type(leg) is SubmitOrder:
                self.out.append(leg)  # to the venue, or to risk's kernel as an intent
            else:
                self._report(leg)

    # --- reports from the venue ----------------------------------------------------------------
    def on_order_event(self, event: Any) -> list[Message]:
        if not self._report(event):
            return _EMPTY
        return self.drain() if self.intents or self.out else _EMPTY

    def _report(self, event: Any) -> bool:
        """A report applied (the venue's, or the core's own for a stop it holds): False when
        it changed nothing (unknown order, duplicate)."""
        clock = self.clock
        if event.ts_init > clock.ns:
            clock.ns = event.ts_init  # its delivery time, as the backtest loop delivers it
        event = self.gtc.inbound(event)  # a day leg's report as its GTC order's
        if event is None:
            return False  # a day leg ended, not its order
        order = self.ledger.orders.get(event.client_order_id)
        if order is None:
            if self.ledger.retired.knows(event.client_order_id):
                self.late_reports += 1  # ours, retired: applied long ago, never again
            else:
                self.unknown_reports += 1
            return False
        if event.ts_event > clock.ns:
            clock.ns = event.ts_event
        if not self.ledger.apply(order, event):
            return False  # duplicate report
        if type(event) is OrderFilled:
            self._on_fill(event)
        strategy = self.roster.by_id.get(order.strategy_id)
        if strategy is not None:
            strategy.on_order_event(event)
        if self.linked.tracks(order.client_order_id):
            self.take(self.linked.on_event(order, event, clock.ns))
        if self.algos.tracks(order.client_order_id):
            self.take(self.algos.on_event(order, event, clock.ns))
        if order.is_closed:
            if self.stops.holds(order.client_order_id):
                self.stops.closed(order.client_order_id)
            self.gtc.closed(order.client_order_id)
        return True

    def _on_fill(self, fill: OrderFilled) -> None:
        self.risk.on_fill(fill)  # the strategy's budget book
        before = self.portfolio.realized_pnl
        pos = self.portfolio.apply_fill(fill)
        realized = self.portfolio.realized_pnl - before
        if realized < 0:  # only a loss starts the risk cooldown
            self.risk.on_realized(realized, fill.ts_event)
        self.ledger.filled((fill.strategy_id, fill.instrument_id), fill.position_change)
        instrument = self.registry.get(fill.instrument_id)
        self.out.append(
            PositionChanged(
                seq=0,
                ts_event=fill.ts_event,
                ts_init=fill.ts_event,
                instrument_id=fill.instrument_id,
                quantity=pos.quantity,
                avg_price=pos.avg_price(instrument.multiplier),
                realized_pnl=pos.realized_pnl,
            )
        )
        self._check_loss(fill.ts_event)


def _previous_answer(order: Order) -> Message:
    """What risk answered an order the first time: its denial, or its approved command."""
    if order.status is OrderStatus.DENIED:
        return denial_of(order, order.ts_last, "repeat", order.reason)
    return command_of(order)
