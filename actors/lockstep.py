"""The replay driver: the backtest loop (``backtest.engine.run_loop``), step for step, across
actors.

For each market message, as ``_Router.catch_up`` does: the reports the venue delivers before it
and the timers due at or before it, in time order; then the venue (gateway) sees the message,
then the strategies; their intents go through risk and the approved commands to the venue,
stamped with the strategy's clock. The gateway makes the same sequence of venue calls as the
backtest, so the fills equal the backtest's on the same data, models and seed.

Fewer hops, same order (an actor round trip costs ~0.6 ms): what an actor needs only before its
*next* call rides on that call. Market data and reports for risk wait in ``risk_queue`` until
risk is asked something (intents, a halt, a flush) and are applied first; approved commands ride
on the next gateway call, before the venue moves; approvals ride on the strategy's next call
(a denial goes at once: the strategy may act on it). While the venue is quiet (no open order,
nothing in flight) and one strategy runs, it scans ahead to its next intent and the gateway
takes that batch in one call.

Pacing (a speed factor) only spaces the steps in wall time; it never changes what happens.

Real time with ``hot`` (an :class:`actors.carriers.Carrier`): each step instead runs the step
protocol once (``actors.step``) with the market data whose time has come, risk's answers and
the reports not delivered yet; the operations (halt, cancel all, flush, the end) keep their
plain calls, between two steps, after a step that delivers what waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.carriers import Carrier
from actors.kernels import INTENT_TYPES
from actors.market import pack
from actors.recording import encode_batch
from actors.step import HotInput, HotResult
from runtime.messages import (
    CancelAllOrders,
    MarketData,
    Message,
    OperatorCommand,
    OrderDenied,
    OrderFilled,
    SetTradingState,
    SubmitOrder,
    TradingState,
    TradingStateChanged,
)

__all__ = ["Counters", "Driver", "Ports"]

Batch = tuple[int | None, Sequence[Message]]  # (feed index of market data, or None; messages)


@dataclass
class Ports:
    """The actors the driver talks to (Ray actor handles)."""

    gateway: Any
    risk: Any
    hosts: dict[str, Any]  # strategy id -> strategy actor, in config order
    books: dict[str, Any] = field(default_factory=dict)  # instrument -> book actor
    recorder: Any = None
    recorder_source: str = "paper"


@dataclass
class Counters:
    events: int = 0
    commands: int = 0
    fills: int = 0
    denials: int = 0
    reports: int = 0
    state_changes: list[dict[str, Any]] = field(default_factory=list)


class Driver:
    """Drives ``messages`` through the actors from ``cursor`` (see the module docstring)."""

    def __init__(self, ports: Ports, messages: Sequence[MarketData], *, start_ns: int,
                 batch_size: int = 512, speed: float | None = None,
                 hot: Carrier | None = None) -> None:
        self.ports, self.messages, self.start_ns = ports, messages, start_ns
        self.batch_size, self.speed = batch_size, speed
        self.hot = hot  # the real-time carrier, or None (lockstep)
        #: telemetry hook: ``observe(stage, seconds)``; a real-time step with market data
        #: that sent commands reports its ``tick_to_order``
        self.observe: Callable[[str, float], None] | None = None
        self.hot_reports: list[Message] = []  # for the strategies and risk, with the next step
        self.cursor = 0
        self.reports_seen = 0
        self.catching_up = False
        self.quiet = False
        self.timers: dict[str, int | None] = dict.fromkeys(ports.hosts)
        self.counters = Counters()
        self.risk_queue: list[Batch] = []
        self.cmds: list[Message] = []  # approved, for the gateway's next call
        self.answers: dict[str, list[Message]] = {sid: [] for sid in ports.hosts}
        self.book_sent: dict[str, int] = {}  # last feed index sent to each book actor
        self._wall0 = 0.0

    # --- the loop ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start (or, resumed, re-sync): timers and unanswered intents from the strategies;
        the carrier is ready before the first tick."""
        answers = await asyncio.gather(*(h.start.remote([], self.start_ns)
                                         for h in self.ports.hosts.values()))
        await self.ports.risk.start.remote(self.start_ns)
        await self._route(self._collect(answers))
        if self.hot is not None:
            await self.hot.ready()

    async def step(self) -> bool:
        """One step (a message, a batch, a report delivery or a timer); False at the end."""
        if self.hot is not None:
            return await self._hot_step()
        if self.cursor >= len(self.messages):
            return False
        await self._pace(self.messages[self.cursor].ts_event)
        if self.quiet and not self.cmds and len(self.ports.hosts) == 1 and not self.catching_up:
            await self._fast()
        else:
            await self._slow()
        if len(self.risk_queue) >= self.batch_size:
            await self._risk([])
        return True

    async def flush(self) -> None:
        """Everything queued for risk, the gateway and the strategies, delivered now."""
        await self._hot_flush()
        await self._risk([])
        if self.cmds:
            await self._gateway_send()
        ids = [sid for sid in self.ports.hosts if self.answers[sid]]
        replies = await asyncio.gather(*(self.ports.hosts[sid].on_events.remote(
            self._take_answers(sid), []) for sid in ids))
        await self._route(self._collect(replies, ids))

    async def finish(self, *, cancel_open: bool) -> None:
        """The end of the data: remaining reports, cancels per config, the strategies' stop."""
        await self._hot_flush()
        await self._drain()
        if cancel_open:
            await self.cancel_all()
            await self._drain()
        end = max(self.messages[-1].ts_event if self.messages else self.start_ns, self.start_ns)
        answers = await asyncio.gather(*(h.stop.remote(self._take_answers(sid), end)
                                         for sid, h in self.ports.hosts.items()))
        await self._route(self._collect(answers))
        await self._drain()
        await self.flush()
        await self.ports.risk.stop.remote(end)

    async def suspend(self, *, cancel_open: bool) -> None:
        """Stopped before the end of the data (the session resumes from here)."""
        await self._hot_flush()
        if cancel_open:
            await self.cancel_all()
            await self._drain()
        await self.flush()

    async def command(self, command: OperatorCommand) -> list[Message]:
        """An operator's command between two steps: what waits for risk is delivered first,
        risk journals and handles it (``RiskActor.command``); its outputs are recorded and the
        orders it approved (cancels, close-outs) sent."""
        await self._hot_flush()
        await self._risk([])
        out: list[Message] = await self.ports.risk.command.remote(command)
        self._record(out)
        cmds = [m for m in out if isinstance(m, INTENT_TYPES)]
        if cmds:
            self.cmds += cmds
            await self._gateway_send()
        return out

    async def cancel_all(self) -> None:
        now = self.data_now()
        await self.command(CancelAllOrders(seq=0, ts_event=now, ts_init=now, reason="cancel all"))

    async def set_state(self, state: str, reason: str) -> None:
        now = self.data_now()
        await self.command(SetTradingState(seq=0, ts_event=now, ts_init=now,
                                           state=TradingState(state), reason=reason))
        if state == "halted":
            await self.cancel_all()

    def data_now(self) -> int:
        """The data clock (ns): where the session is in its data (what operator commands are
        stamped with)."""
        return self._data_now(None)

    # --- steps ---------------------------------------------------------------------------------
    async def _hot_step(self) -> bool:
        """Real time over the carrier: one step with the data whose time
        has come or, with nothing due, with what waits (answers, reports, a due timer), and
        its result taken; else a wait for the next message. False at the end of the data."""
        i = self.cursor
        if i >= len(self.messages):
            await self._hot_flush()
            return False
        n = self._due(i)
        if n:
            batch = self.messages[i:i + n]
            await self._hot_run(i, batch, batch[-1].ts_event)
            self._publish(i, batch)
            self.cursor, self.counters.events = i + n, self.counters.events + n
        elif self._hot_pending() or self._timer_due():
            await self._hot_run(i, [], self._data_now(i))
        else:
            await self._wait_due(i)
        return True

    async def _hot_run(self, i: int, batch: Sequence[MarketData], now_ns: int) -> None:
        assert self.hot is not None
        t0, commands = time.perf_counter(), self.counters.commands
        await self._hot_submit(i, batch, now_ns)
        result = await self.hot.collect()
        if result is not None:
            self._hot_result(result)
        if self.observe is not None and batch and self.counters.commands > commands:
            self.observe("tick_to_order", time.perf_counter() - t0)

    async def _hot_submit(self, i: int, batch: Sequence[MarketData], now_ns: int) -> None:
        answers = {sid: self._take_answers(sid) for sid in self.ports.hosts}
        reports, self.hot_reports = self.hot_reports, []
        assert self.hot is not None
        await self.hot.submit(HotInput(i, list(batch), now_ns, answers,  # type: ignore[arg-type]
                                       reports, self.reports_seen))  # type: ignore[arg-type]

    def _hot_result(self, result: HotResult) -> None:
        """A step's result (``actors.step.HotResult``): timers, risk's outputs (answers
        queue for their strategy), and the reports not taken before."""
        for sid, reply in zip(self.ports.hosts, result.answers, strict=True):
            self.timers[sid] = reply.timer
        out = result.out
        self._record(out)
        cmds = [m for m in out if isinstance(m, INTENT_TYPES)]
        self.counters.commands += len(cmds)
        self._forward(cmds)
        for m in out:
            if isinstance(m, SubmitOrder | OrderDenied) and m.strategy_id in self.answers:
                self.answers[m.strategy_id].append(m)
        new = result.reports[max(self.reports_seen - result.offset, 0):]
        self.reports_seen += len(new)
        self.counters.reports += len(new)
        self.counters.fills += sum(isinstance(r, OrderFilled) for r in new)
        self.hot_reports += new
        self._forward(list(new))

    async def _hot_flush(self) -> None:
        """What waits for the strategies and risk delivered (before a plain-call operation,
        and at the end)."""
        while self.hot is not None and self._hot_pending():
            await self._hot_run(self.cursor, [], self._data_now(None))

    def _hot_pending(self) -> bool:
        return bool(self.hot_reports) or any(self.answers.values())

    def _due(self, i: int) -> int:
        """How many messages from ``i`` on are due by now; at speed max, one: each message
        is a step, so the venue sees the orders a message provoked before the next one."""
        end = min(len(self.messages), i + self.batch_size)
        if self.speed is None:
            return 1
        now = self._data_now(i)
        n = 0
        while i + n < end and self.messages[i + n].ts_event <= now:
            n += 1
        return n

    def _data_now(self, i: int | None) -> int:
        """The data clock: where the wall clock is in the data (paced), or the latest data."""
        if self.speed is None or not self.messages:
            last = self.messages[min(self.cursor, len(self.messages)) - 1] if self.cursor else None
            return last.ts_event if last is not None else self.start_ns
        first = self.messages[0].ts_event
        if self._wall0 == 0.0:  # the message at the cursor (a resumed session's) is due now
            at = self.messages[min(self.cursor, len(self.messages) - 1)].ts_event
            self._wall0 = time.monotonic() - (at - first) / 1e9 / self.speed
        return first + int((time.monotonic() - self._wall0) * self.speed * 1e9)

    def _timer_due(self) -> bool:
        due = self._timer()
        return due is not None and due <= self._data_now(None)

    async def _wait_due(self, i: int) -> None:
        """Sleep until the next message (or timer) is due: at most 10 ms at a time."""
        assert self.speed is not None
        due = self.messages[i].ts_event
        timer = self._timer()
        if timer is not None:
            due = min(due, timer)
        delay = (due - self._data_now(i)) / 1e9 / self.speed
        if delay > 0.002:  # the event loop's timers are as coarse as 1 ms: wake up early
            await asyncio.sleep(min(delay - 0.001, 0.01))
        elif delay > 0:
            time.sleep(delay)  # precise to tens of µs; the loop is blocked at most 2 ms

    async def _slow(self) -> None:
        i, msg = self.cursor, self.messages[self.cursor]
        kind, payload, quiet = await self.ports.gateway.advance.remote(
            self._take_cmds(), i, msg, self._timer(), self.catching_up, self.reports_seen)
        if kind == "report":
            self.catching_up = True
            await self._deliver(payload)
            return
        if kind == "timer":
            self.catching_up = True
            await self._fire_timer(msg.ts_event if payload else None)
            return
        self.catching_up, self.quiet = False, quiet
        self.risk_queue.append((i, [msg]))
        answers = await asyncio.gather(*(h.on_market.remote(self._take_answers(sid), i, [msg])
                                         for sid, h in self.ports.hosts.items()))
        self._publish(i, [msg])
        self.cursor, self.counters.events = i + 1, self.counters.events + 1
        await self._route(self._collect(answers))

    async def _fast(self) -> None:
        i = self.cursor
        batch = self.messages[i:i + self._batch_limit(i)]
        (sid, host), = self.ports.hosts.items()
        n, intents, timer = await host.scan.remote(self._take_answers(sid), i, batch)
        self.timers[sid] = timer
        if n == 0:
            self.quiet = False  # a timer is due: the slow path handles it
            return
        done = batch[:n]
        self.quiet = await self.ports.gateway.apply.remote([], i, done)
        self.risk_queue.append((i, done))
        self._publish(i, done)
        self.cursor, self.counters.events = i + n, self.counters.events + n
        await self._route({sid: intents} if intents else {})

    async def _deliver(self, reports: Sequence[Message]) -> None:
        """Reports in order, each strategy's reaction before the next report (as the backtest):
        a strategy takes a run of its reports and stops at the first it acts on."""
        i = 0
        while i < len(reports):
            sid = reports[i].strategy_id  # type: ignore[attr-defined]
            host = self.ports.hosts.get(sid)
            n, intents = 1, []
            if host is not None:
                j = i
                while j < len(reports) and reports[j].strategy_id == sid:  # type: ignore[attr-defined]
                    j += 1
                n, intents, self.timers[sid] = await host.on_reports.remote(
                    self._take_answers(sid), reports[i:j])
            for report in reports[i:i + n]:
                self.risk_queue.append((None, [report]))
                self.counters.fills += isinstance(report, OrderFilled)
            self.reports_seen += n
            self.counters.reports += n
            i += n
            if intents:
                await self._route({sid: intents})
        self._forward(list(reports))

    async def _fire_timer(self, idle_until: int | None) -> None:
        due = self._timer()
        assert due is not None
        for sid, host in self.ports.hosts.items():
            timer = self.timers[sid]
            if timer is not None and timer <= due:
                answer = await host.on_timer.remote(self._take_answers(sid), due, idle_until)
                await self._route(self._collect([answer], [sid]))

    async def _drain(self) -> None:
        while (reports := await self.ports.gateway.drain.remote(
                self._take_cmds(), self.reports_seen)) is not None:
            await self._deliver(reports)

    # --- routing -------------------------------------------------------------------------------
    def _collect(self, answers: Sequence[tuple[list[Message], int | None]],
                 ids: Sequence[str] | None = None) -> dict[str, list[Message]]:
        out: dict[str, list[Message]] = {}
        for sid, (intents, timer) in zip(list(self.ports.hosts) if ids is None else ids, answers,
                                          strict=True):
            self.timers[sid] = timer
            if intents:
                out[sid] = intents
        return out

    async def _route(self, intents: dict[str, list[Message]]) -> None:
        """Intents through risk; approvals queue for their strategy, denials go at once."""
        while intents:
            flat = [m for sid in self.ports.hosts for m in intents.get(sid, ())]
            out = await self._risk(flat)
            self.cmds += [m for m in out if isinstance(m, INTENT_TYPES)]
            denied: set[str] = set()
            for m in out:
                if isinstance(m, SubmitOrder | OrderDenied) and m.strategy_id in self.answers:
                    self.answers[m.strategy_id].append(m)
                    if isinstance(m, OrderDenied):
                        denied.add(m.strategy_id)
            ids = [sid for sid in self.ports.hosts if sid in denied]
            replies = await asyncio.gather(*(self.ports.hosts[sid].on_events.remote(
                self._take_answers(sid), []) for sid in ids))
            intents = self._collect(replies, ids)
        if self.cmds:
            self.quiet = False

    async def _risk(self, intents: list[Message]) -> list[Message]:
        batches = self.risk_queue + ([(None, intents)] if intents else [])
        if not batches:
            return []
        self.risk_queue = []
        out: list[Message] = await self.ports.risk.step.remote(batches)
        self._record(out)
        return out

    async def _gateway_send(self) -> None:
        await self.ports.gateway.send.remote(self._take_cmds())

    def _take_cmds(self) -> list[Message]:
        cmds, self.cmds = self.cmds, []
        self.counters.commands += len(cmds)
        self._forward(cmds)
        return cmds

    def _take_answers(self, sid: str) -> list[Message]:
        answers, self.answers[sid] = self.answers[sid], []
        return answers

    def _record(self, out: Sequence[Message]) -> None:
        for m in out:
            if isinstance(m, OrderDenied):
                self.counters.denials += 1
            elif isinstance(m, TradingStateChanged):
                self.counters.state_changes.append(
                    {"ts": m.ts_event, "state": str(m.state), "reason": m.reason})
        self._forward([m for m in out if not isinstance(m, INTENT_TYPES)])

    def _forward(self, events: Sequence[Message]) -> None:
        """Copies to the recorder, batched, fire-and-forget (it never blocks trading)."""
        if events and self.ports.recorder is not None:
            self.ports.recorder.record.remote(encode_batch(events), self.ports.recorder_source)

    def _publish(self, index: int, msgs: Sequence[MarketData]) -> None:
        """Copies of market data to the book actors (fire-and-forget, in feed order)."""
        books = self.ports.books
        if not books:
            return
        per: dict[str, tuple[list[int], list[MarketData]]] = {}
        for k, m in enumerate(msgs):
            indices, part = per.setdefault(m.instrument_id, ([], []))
            indices.append(index + k)
            part.append(m)
        for instrument, (indices, part) in per.items():
            book = books.get(instrument)
            if book is not None:
                book.on_packed.remote(self.book_sent.get(instrument), pack(indices, part))
                self.book_sent[instrument] = indices[-1]

    # --- time ----------------------------------------------------------------------------------
    def _timer(self) -> int | None:
        due = [t for t in self.timers.values() if t is not None]
        return min(due) if due else None

    def _batch_limit(self, i: int) -> int:
        if self.speed is None:
            return self.batch_size
        horizon = self.messages[i].ts_event + int(0.05 * self.speed * 1e9)  # ~50 ms of wall
        end = min(len(self.messages), i + self.batch_size)
        n = 1
        while i + n < end and self.messages[i + n].ts_event <= horizon:
            n += 1
        return n

    async def _pace(self, ts_ns: int) -> None:
        if self.speed is None:
            return
        first = self.messages[0].ts_event
        if self._wall0 == 0.0:
            self._wall0 = time.monotonic() - (ts_ns - first) / 1e9 / self.speed
        delay = self._wall0 + (ts_ns - first) / 1e9 / self.speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(min(delay, 1.0))
