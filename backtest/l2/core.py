"""The L2 replay through the core: compiled book and venue between wake-ups, the kernel at them.

``L2KernelReplay(events, config, kernel).run()`` replays one instrument's
:class:`~backtest.l2.data.L2Events` against a :class:`runtime.kernel.Kernel` and its strategies
(ordinary :class:`runtime.strategy.Strategy` subclasses). Python runs only at *wake-ups*: the
kernel's timers (``kernel.next_timer_ns()``; every ``config.timer_interval_ns`` when no timer is
set). At each wake-up ``t``, in this order:

1. the compiled venue replays the data up to ``t`` (:meth:`CompiledVenue.advance`): exchange and
   local books, queue positions, fills, acks and cancels of commands that reached it;
2. venue reports that have *arrived* by ``t`` (exchange time + ``response_latency_ns``) go to
   ``kernel.handle`` as order events (:mod:`backtest.l2.reports`), in arrival order, so the
   kernel's order state machine and portfolio apply them; ``ts_init`` is the arrival time;
3. when the local book changed since the last wake-up, ``kernel.on_book_view`` gets a conflated
   ``BookDeltas`` (the current top of book, stamped with the local time of the last update) and
   the compiled book itself (a :class:`~backtest.l2.strategy.BookView`): features, the mark and
   strategies' ``on_book`` follow it;
4. ``kernel.on_timer(t)``: strategies act; their intents go through risk (``OrderDenied`` or an
   approved ``SubmitOrder``/``CancelOrder`` with the kernel's client order id);
5. approved commands go to the compiled venue, arriving ``entry_latency_ns`` after ``t``;
   commands it cannot carry are refused as venue events (``OrderRejected``,
   ``OrderCancelRejected``) arriving a round trip later;
6. the position is marked to the local mid and the equity sampled.

Commands produced while reports are handled (step 2) are sent at ``t`` too. Same events, config,
kernel construction and seed ⇒ same fills and the same ``kernel.state_hash()``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from backtest.l2.data import L2Events
from backtest.l2.engine import L2ReplayConfig
from backtest.l2.reports import ReportBook, unsupported_reason
from backtest.l2.venue import CompiledVenue, ResponseRow
from runtime.errors import ConfigError, InvariantError
from runtime.kernel import Kernel
from runtime.messages import (
    BookDeltas,
    CancelOrder,
    Message,
    ModifyOrder,
    OrderCancelRejected,
    OrderDenied,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
    TimerFired,
    TradingStateChanged,
)

__all__ = ["L2KernelReplay", "L2KernelResult"]

_COUNTED = {
    "OrderAccepted": "accepted",
    "OrderCanceled": "canceled",
    "OrderRejected": "rejected",
    "OrderCancelRejected": "cancel_rejected",
}


@dataclass
class L2KernelResult:
    """What a kernel-path run produced; money and sizes are fixed point."""

    fills: list[OrderFilled]  # as the kernel applied them, in arrival order
    denials: list[OrderDenied]
    state_changes: list[TradingStateChanged]
    equity_ts: np.ndarray  # int64 ns, one per wake-up
    equity: np.ndarray  # int64 portfolio equity (cash + marked positions) at each wake-up
    position: int
    cash: int
    fees: int
    realized_pnl: int
    state_hash: str
    events: int
    wakeups: int
    kernel: Kernel
    orders: dict[str, int] = field(default_factory=dict)  # counts by outcome


class L2KernelReplay:
    """Replays one instrument's L2 events through ``kernel`` (see the module docstring)."""

    def __init__(self, events: L2Events, config: L2ReplayConfig, kernel: Kernel) -> None:
        self.config, self.kernel = config, kernel
        instrument = kernel.registry.get(config.instrument_id)
        if config.maker_fee_rate and config.maker_fee_rate != instrument.fees.maker_rate:
            raise ConfigError(
                "the kernel path charges the instrument's fee schedule: maker_fee_rate "
                f"{config.maker_fee_rate} differs from {instrument.fees.maker_rate}",
                field="maker_fee_rate",
            )
        self.venue = CompiledVenue(
            events,
            response_latency_ns=config.response_latency_ns,
            partial_fills=config.fill_model == "partial",
            response_capacity=config.response_capacity,
        )
        self.reports = ReportBook(instrument)
        self._pending: list[tuple[int, int, ResponseRow | OrderEvent]] = []
        self._seq = 0
        self._cursor = 0
        self._started = False
        self.fills: list[OrderFilled] = []
        self.denials: list[OrderDenied] = []
        self.state_changes: list[TradingStateChanged] = []
        self.counts = dict.fromkeys(
            ("submitted", "denied", "cancel_requests", "filled", *_COUNTED.values()), 0
        )

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> L2KernelResult:
        """Replay everything once (a replay, like its kernel, is used for one run)."""
        if self._started:
            raise InvariantError("an L2KernelReplay runs once: build a new one (and kernel)")
        self._started = True
        venue, kernel, interval = self.venue, self.kernel, self.config.timer_interval_ns
        start, stop_at = venue.start_ns, venue.end_ns + interval
        self._route(kernel.start(start), start)
        wakes: list[int] = []
        equity: list[int] = []
        events, now = 0, start
        while True:
            due = kernel.next_timer_ns()
            now = now + interval if due is None else max(due, now + 1)
            if now >= stop_at:
                break
            events += self._wake(now)
            wakes.append(now)
            equity.append(kernel.portfolio.equity())
        last = wakes[-1] if wakes else start
        self._route(kernel.stop(last), last)
        return self._result(
            np.array(wakes, dtype=np.int64), np.array(equity, dtype=np.int64), events
        )

    def _wake(self, ts: int) -> int:
        venue, kernel = self.venue, self.kernel
        processed = venue.advance(ts)
        for row in venue.take_responses():
            self._schedule(row[0], row)
        self._deliver(ts)
        if venue.local_cursor != self._cursor:
            self._cursor = venue.local_cursor
            self._route(self._book_update(), ts)
        self._route(kernel.on_timer(TimerFired(seq=0, ts_event=ts, ts_init=ts, name="wake")), ts)
        mid = venue.local_view(ts).mid()
        if mid is not None:
            kernel.portfolio.mark(self.config.instrument_id, mid)
        return processed

    def _book_update(self) -> list[Message]:
        venue = self.venue
        ts = venue.last_local_ts()
        view = venue.local_view(ts)
        bid, ask = view.best_bid(), view.best_ask()
        update = BookDeltas(
            seq=venue.local_cursor,
            ts_event=ts,
            ts_init=ts,
            instrument_id=self.config.instrument_id,
            bids=(bid,) if bid is not None else (),
            asks=(ask,) if ask is not None else (),
        )
        return self.kernel.on_book_view(update, view)

    # --- reports in ------------------------------------------------------------------------

    def _schedule(self, arrival_ns: int, item: ResponseRow | OrderEvent) -> None:
        self._seq += 1
        heapq.heappush(self._pending, (arrival_ns, self._seq, item))

    def _deliver(self, now: int) -> None:
        pending, kernel = self._pending, self.kernel
        while pending and pending[0][0] <= now:
            _, _, item = heapq.heappop(pending)
            report = self.reports.report(item) if isinstance(item, tuple) else item
            fills_before = kernel.portfolio.n_fills
            out = kernel.handle(report)
            if type(report) is OrderFilled:
                if kernel.portfolio.n_fills != fills_before:
                    self.fills.append(report)
                if report.leaves_qty == 0:
                    self.counts["filled"] += 1
            else:
                name = _COUNTED.get(type(report).__name__)
                if name is not None:
                    self.counts[name] += 1
            if out:
                self._route(out, now)

    # --- commands out ----------------------------------------------------------------------

    def _route(self, out: list[Message], ts: int) -> None:
        for message in out:
            if isinstance(message, SubmitOrder):
                self._submit(message, ts)
            elif isinstance(message, CancelOrder):
                self._cancel(message, ts)
            elif isinstance(message, ModifyOrder):
                self._refuse(OrderCancelRejected, message, ts, "modify is not supported here")
            elif isinstance(message, OrderDenied):
                self.denials.append(message)
                self.counts["denied"] += 1
            elif isinstance(message, TradingStateChanged):
                self.state_changes.append(message)

    def _submit(self, command: SubmitOrder, ts: int) -> None:
        reason = unsupported_reason(command, self.config.instrument_id)
        if reason is not None:
            self._refuse(OrderRejected, command, ts, reason)
            return
        assert command.price is not None
        self.counts["submitted"] += 1
        self.venue.send_new(
            ts + self.config.entry_latency_ns,
            order_id=self.reports.register(command),
            side=int(command.side),
            price=command.price,
            qty=command.quantity,
        )

    def _cancel(self, command: CancelOrder, ts: int) -> None:
        oid = self.reports.venue_id_of(command.client_order_id)
        if oid is None:  # never reached the venue (refused here): nothing to cancel
            self._refuse(OrderCancelRejected, command, ts, "unknown order")
            return
        self.counts["cancel_requests"] += 1
        order = self.kernel.orders[command.client_order_id]
        self.venue.send_cancel(
            ts + self.config.entry_latency_ns, order_id=oid, side=int(order.side)
        )

    def _refuse(
        self,
        kind: type[OrderRejected] | type[OrderCancelRejected],
        command: SubmitOrder | CancelOrder | ModifyOrder,
        ts: int,
        reason: str,
    ) -> None:
        at_venue = ts + self.config.entry_latency_ns
        arrival = at_venue + self.config.response_latency_ns
        report = self.reports.refused(
            kind, command, ts_event=at_venue, ts_init=arrival, reason=reason
        )
        self._schedule(arrival, report)

    # --- result ----------------------------------------------------------------------------

    def _result(self, wakes: np.ndarray, equity: np.ndarray, events: int) -> L2KernelResult:
        portfolio = self.kernel.portfolio
        return L2KernelResult(
            fills=self.fills,
            denials=self.denials,
            state_changes=self.state_changes,
            equity_ts=wakes,
            equity=equity,
            position=portfolio.quantity(self.config.instrument_id),
            cash=portfolio.cash,
            fees=portfolio.fees,
            realized_pnl=portfolio.realized_pnl,
            state_hash=self.kernel.state_hash(),
            events=events,
            wakeups=len(wakes),
            kernel=self.kernel,
            orders=dict(self.counts),
        )
