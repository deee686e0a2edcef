"""The in-process backtest loop: data in (ts, seq) order through the venue and the kernel.

Before each market data message stamped ``t``: every report the venue delivers before ``t``
reaches the kernel, interleaved in time with the kernel's timers due at or before ``t`` (commands
these trigger are sent at the report's delivery time or the timer's time). Then the venue sees
the message (filling resting orders with it), then the kernel and its strategies see it, and
the commands they produce are sent stamped ``t``. A strategy never sees data stamped after the
simulated clock, and hears of a fill only at its delivery time (venue time + response latency).
Auxiliary data (funding rates, open interest, marks, borrow rates) takes the same path: the
venue's clock moves with it and nothing fills on it; the kernel charges funding and borrow.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from runtime.kernel import Kernel
from runtime.messages import (
    CancelOrder,
    CarryCharged,
    Message,
    ModifyOrder,
    OrderDenied,
    OrderFilled,
    SubmitOrder,
    TimerFired,
    TradingStateChanged,
)

__all__ = ["EventLog", "rare_gc", "run_loop"]

Progress = Callable[[int], None]


@dataclass
class EventLog:
    """What a run produced, for the results and the record."""

    fills: list[OrderFilled] = field(default_factory=list)
    carry: list[CarryCharged] = field(default_factory=list)  # funding and borrow, in order
    denials: list[OrderDenied] = field(default_factory=list)
    state_changes: list[TradingStateChanged] = field(default_factory=list)
    commands: int = 0
    reports: int = 0
    events: int = 0


def run_loop(
    kernel: Kernel,
    venue: Any,
    messages: Iterable[Message],
    *,
    start_ns: int,
    progress: Progress | None = None,
    progress_every: int = 100_000,
) -> EventLog:
    """Drive ``messages`` (already in (ts_event, seq) order) through venue and kernel."""
    with rare_gc():
        return _run(kernel, venue, messages, start_ns, progress, progress_every)


@contextmanager
def rare_gc(young: int = 50_000) -> Iterator[None]:
    """Collect cyclic garbage rarely while the loop runs (restored after).

    The loop allocates millions of short-lived objects and almost no cycles, yet with the
    default threshold (700) the collector runs every few hundred bars and, as the order history
    grows, keeps walking it: ~15% of a bar backtest's time. Messages are ``gc=False`` already.
    """
    before = gc.get_threshold()
    gc.set_threshold(max(young, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _run(
    kernel: Kernel,
    venue: Any,
    messages: Iterable[Message],
    start_ns: int,
    progress: Progress | None,
    progress_every: int,
) -> EventLog:
    log = EventLog()
    router = _Router(kernel, venue, log)
    router.send(kernel.start(start_ns), start_ns)
    handlers, on_market = kernel.market_handlers(), venue.on_market
    timers = kernel.timers  # peeked at (``next_due``), never changed here
    send, catch_up = router.send, router.catch_up
    quiet = getattr(venue, "quiet", lambda: False)
    lazy = getattr(venue, "market_may_wait", lambda: False)()
    held: dict[tuple[type, str], Message] = {}  # data a quiet venue has not been shown yet
    busy = True  # False only while the venue is quiet and nothing was sent since
    n = 0
    last_ts = start_ns
    for msg in messages:
        ts = msg.ts_event
        if busy or timers.next_due <= ts:
            if held:
                _show(held, on_market)
            catch_up(ts)
            busy = not quiet()
        if busy or not lazy:
            on_market(msg)
        else:  # the venue is quiet: it needs only the latest of each kind and instrument
            held[type(msg), msg.instrument_id] = msg  # type: ignore[attr-defined]
        out = handlers[type(msg)](msg)
        if out:
            if held:
                _show(held, on_market)
            send(out, ts)
            busy = True
        last_ts = ts
        n += 1
        if progress is not None and n % progress_every == 0:
            progress(n)
    if held:
        _show(held, on_market)
    router.drain()
    router.send(kernel.stop(max(last_ts, kernel.now)), max(last_ts, kernel.now))
    router.drain()
    log.events = n
    return log


def _show(held: dict[tuple[type, str], Message], on_market: Callable[[Any], None]) -> None:
    """Show a quiet venue the data it was spared, before it is next used (each entry is the
    latest of its kind and instrument; the venue's clock is their maximum, whatever the order)."""
    for msg in held.values():
        on_market(msg)
    held.clear()


class _Router:
    """Sends kernel outputs to the venue and venue reports (and timers) to the kernel."""

    def __init__(self, kernel: Kernel, venue: Any, log: EventLog) -> None:
        self.kernel, self.venue, self.log = kernel, venue, log
        self._timers = kernel.timers  # peeked at (``next_due``), never changed here
        # reports go straight to the kernel's handler for their type (handle() dispatches so)
        self._on_report = kernel.report_handlers()

    def send(self, out: Sequence[Message], ts: int) -> None:
        venue, log = self.venue, self.log
        for message in out:
            kind = type(message)
            if kind is SubmitOrder:
                log.commands += 1
                venue.submit(message, ts)
            elif kind is CancelOrder:
                log.commands += 1
                venue.cancel(message, ts)
            elif kind is ModifyOrder:
                log.commands += 1
                venue.modify(message, ts)
            elif kind is OrderDenied:
                log.denials.append(message)  # type: ignore[arg-type]
            elif kind is TradingStateChanged:
                log.state_changes.append(message)  # type: ignore[arg-type]
            elif kind is CarryCharged:
                log.carry.append(message)  # type: ignore[arg-type]

    def deliver(self, at_ns: int) -> None:
        kernel, log, portfolio = self.kernel, self.log, self.kernel.portfolio
        on_report = self._on_report
        for report in self.venue.pop_reports(at_ns):
            log.reports += 1
            fills_before = portfolio.n_fills
            as_order = kernel.gtc.order_fill(report) if type(report) is OrderFilled else report
            out = on_report.get(type(report), kernel.handle)(report)
            if portfolio.n_fills != fills_before:
                log.fills.append(as_order)  # only a fill moves n_fills
            if out:
                self.send(out, kernel.now)

    def catch_up(self, ts: int) -> None:
        """Reports delivered before ``ts`` and timers due at or before it, in time order."""
        kernel, venue, timers = self.kernel, self.venue, self._timers
        while True:
            timer_ts = timers.next_due
            limit = ts if timer_ts > ts else timer_ts
            report_ts = venue.next_report_ts(limit)
            if report_ts is not None:
                self.deliver(report_ts)
                continue
            if timer_ts > ts:
                return
            idle_until = ts if venue.idle() else None
            out = kernel.on_timer(
                TimerFired(seq=0, ts_event=timer_ts, ts_init=timer_ts, name=""),
                idle_until=idle_until,
            )
            self.send(out, timer_ts)

    def drain(self) -> None:
        """Every report still to come (the end of the data)."""
        while (report_ts := self.venue.next_report_ts(None)) is not None:
            self.deliver(report_ts)
