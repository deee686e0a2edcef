"""The feed's driver: the session's market data, one step of the step protocol at a time.

Every step goes feed → books → strategies → risk → gateway over a carrier
(``actors.carriers``) and runs the same ``hot_step`` of each actor in lockstep and in real time
(``actors.step``); the two differ only in pacing, i.e. in how much a step carries:

* **Lockstep** (``exact``): one event of the backtest loop (``backtest.engine``) per step, in
  the backtest's order, so the fills equal the backtest's on the same data, models and seed:
  first a denial's answer (the strategy may act on it), then the reports the gateway released
  (one strategy's run at a time, each strategy's reaction before the next report), then a
  timer due before the next message, then the next message — several at once while the venue
  is quiet and one strategy runs (it stops at the first it acts on). After each step the
  gateway decides what comes before the next message (it releases the reports due first).
* **Real time**: a step carries the market data whose time has come (by the wall clock times
  ``speed``), every report not delivered yet and the data clock; with nothing due, a step
  delivers what waits (answers, reports, a due timer), else the driver sleeps until the next
  message is due. When more than ``conflate_after`` messages are due (the chain fell behind
  the data), the step conflates per instrument (``actors.step.conflate``): the strategies and
  risk read only the latest quote and the latest book of each instrument in it, every trade
  and bar, and every report, so a backlog is worked off at the pace of what matters instead of
  queueing without bound; the book actors and the venue still apply every message.

``speed`` paces lockstep too (it spaces the steps in wall time and never changes what
happens). An operator's command (halt, cancel all, close positions: typed messages risk
journals and handles like any input) and the end are plain calls between two steps, after the
steps that deliver what waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.carriers import Carrier
from actors.kernels import INTENT_TYPES
from actors.recording import encode_batch
from actors.step import HotInput, HotResult, conflate
from runtime.messages import (
    CancelAllOrders,
    CancelOrder,
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


@dataclass
class Ports:
    """The actors the driver talks to (Ray actor handles)."""

    gateway: Any
    risk: Any
    hosts: dict[str, Any]  # strategy id -> strategy actor, in config order
    books: dict[str, Any] = field(default_factory=dict)  # instrument -> book actor (a stage)
    recorder: Any = None
    recorder_source: str = "paper"


@dataclass
class Counters:
    events: int = 0
    conflated: int = 0  # real time: messages the strategies and risk passed over (superseded)
    commands: int = 0
    fills: int = 0
    denials: int = 0
    reports: int = 0
    state_changes: list[dict[str, Any]] = field(default_factory=list)


_DUE_SCAN = 100_000  # last_heard: due messages looked at, at most
_CANCEL_ROUNDS = 5  # cancel-all rounds at most when a session stops before its data ends


class Driver:
    """Drives ``messages`` through the actors from ``cursor`` (see the module docstring)."""

    def __init__(self, ports: Ports, messages: Sequence[MarketData], *, start_ns: int,
                 carrier: Carrier | None = None, exact: bool = True, batch_size: int = 512,
                 speed: float | None = None, conflate_after: int | None = None,
                 record_feed: bool = False) -> None:
        self.ports, self.messages, self.start_ns = ports, messages, start_ns
        #: copies of the feed's data (market and auxiliary) to the recorder, as it is stepped:
        #: a broker's stream is recorded into the store (a replayed feed is there already)
        self.record_feed = record_feed
        self.carrier = carrier  # set before start() (the feed opens it in its loop)
        self.exact, self.batch_size, self.speed = exact, batch_size, speed
        #: real time: a step with more messages due than this conflates (None: never)
        self.conflate_after = conflate_after
        #: telemetry hook: ``observe(stage, seconds)``: every ``step``, and ``tick_to_order``
        #: for a step with market data that sent commands
        self.observe: Callable[[str, float], None] | None = None
        self.cursor = 0
        self.reports_seen = 0  # reports taken from the gateway (delivered or held)
        self.reports: list[Message] = []  # taken, not delivered to the strategies and risk yet
        self.answers: dict[str, list[Message]] = {sid: [] for sid in ports.hosts}
        self.timers: dict[str, int | None] = dict.fromkeys(ports.hosts)
        self.decided = False  # lockstep: the gateway has decided what comes before `cursor`
        self.idle = self.quiet = False  # lockstep: the venue, as of its decision
        self.counters = Counters()
        # step ids: unique per step sent, across restarts of the feed too (a new driver
        # starts above every id an earlier one can have used: a step takes more than 1 ns)
        self._step_id = time.monotonic_ns()
        self._wall0 = 0.0
        #: the data clock while the session stops (``suspend``, ``finish``): it stands still,
        #: so no strategy timer comes due and requotes while the stop cancels and settles
        self._stopped_at: int | None = None
        #: real time: when each instrument's data last reached the strategies and risk (wall
        #: clock, ns): the replay's stream health (``FeedActor.market_health``)
        self.heard: dict[str, int] = {}
        #: a rehearsal's silence (``mute``): instrument -> until when (wall clock, ns) its data
        #: reaches no strategy and no risk (passed over as conflated data is: the venue, the
        #: market, still applies it)
        self.muted: dict[str, int] = {}

    @property
    def delivered(self) -> int:
        """Reports the strategies and risk have (a restarted feed asks again from here)."""
        return self.reports_seen - len(self.reports)

    @delivered.setter
    def delivered(self, value: int) -> None:
        self.reports_seen, self.reports = value, []

    # --- the loop ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start (or, resumed, re-sync): the strategies and risk; the carrier ready before
        the first tick. The strategies' first intents go with the first step."""
        answers = await asyncio.gather(*(h.start.remote(self.start_ns)
                                         for h in self.ports.hosts.values()))
        for sid, (_, timer) in zip(self.ports.hosts, answers, strict=True):
            self.timers[sid] = timer
        self._record(await self.ports.risk.start.remote(self.start_ns))
        self.decided = False
        await self._carrier().ready()

    async def step(self) -> bool:
        """One step; False at the end of the data (with nothing left to deliver)."""
        return await (self._exact_step() if self.exact else self._timed_step())

    async def flush(self) -> None:
        """What waits for the strategies and risk (answers, reports) delivered now."""
        while self._pending():
            await self._deliver_step()

    async def finish(self, *, cancel_open: bool) -> None:
        """The end of the data: every report still to come, cancels per config, the
        strategies' stop, and risk's."""
        self._stopped_at = self.data_now()
        await self._settle()
        if cancel_open:
            await self.cancel_all()
            await self._settle()
        end = max(self.messages[-1].ts_event if self.messages else self.start_ns, self.start_ns)
        answers = await asyncio.gather(*(h.stop.remote(end) for h in self.ports.hosts.values()))
        for sid, (_, timer) in zip(self.ports.hosts, answers, strict=True):
            self.timers[sid] = timer
        self.decided = False
        await self._settle()
        self._record(await self.ports.risk.stop.remote(end))

    async def suspend(self, *, cancel_open: bool) -> None:
        """Stopped before the end of the data (the session resumes from here): cancels per
        config, and what waits delivered — in real time every report the venue still owes
        (the fills that happened are the session's), in lockstep what comes before the next
        message (the rest comes when it resumes, as in the backtest). The data clock stands
        still from here: in real time it would go on with the wall clock, and a strategy's
        timers (a market maker requoting) would keep placing orders while the cancels settle,
        more slowly the busier the machine (beside two CPU burners five cancel rounds did not
        catch up, and a SIGTERM left orders resting)."""
        self._stopped_at = self.data_now()
        if cancel_open:
            await self.cancel_all()
        await self._settle()
        # a strategy may requote while the cancels settle (a due timer, an order event): cancel
        # again until nothing is open; data time stands still here, so this ends quickly
        for _ in range(_CANCEL_ROUNDS):
            if not cancel_open or not await self.cancel_all():
                break
            await self._settle()

    async def command(self, command: OperatorCommand) -> list[Message]:
        """An operator's command between two steps: what waits is delivered first, risk
        journals and handles it (``RiskActor.command``); its outputs are recorded and the
        orders it approved (cancels, close-outs) sent."""
        await self.flush()
        out: list[Message] = await self.ports.risk.command.remote(command)
        self._record(out)
        await self._send([m for m in out if isinstance(m, INTENT_TYPES)])
        return out

    async def cancel_all(self) -> int:
        """Cancel every open order; how many cancels went out."""
        now = self.data_now()
        out = await self.command(CancelAllOrders(seq=0, ts_event=now, ts_init=now,
                                                 reason="cancel all"))
        return sum(isinstance(m, CancelOrder) for m in out)

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

    # --- lockstep ------------------------------------------------------------------------------
    async def _exact_step(self) -> bool:
        i = self.cursor
        if self._denials() or self.reports or not self.decided:
            await self._exact_deliver()
        elif i >= len(self.messages):
            return False
        else:
            ts = self.messages[i].ts_event
            timer = self._timer()
            if timer is not None and timer <= ts:
                await self._run(i, [], now_ns=timer, idle_until=ts if self.idle else None)
            else:
                await self._pace(ts)
                n = self._batch_limit(i) if self.quiet and len(self.ports.hosts) == 1 else 1
                await self._run(i, self.messages[i:i + n], now_ns=-1)
        return True

    async def _settle(self) -> None:
        """Until nothing waits and the venue has nothing more to give (the end of the data
        in lockstep; in real time the broker's answers still owed, within its settle time)."""
        if self.exact:
            while self.cursor >= len(self.messages) and await self._exact_step():
                pass
            while self._pending() or not self.decided:
                await self._exact_deliver()
            return
        while True:
            await self.flush()
            seen = self.reports_seen
            await self._run(self.cursor, [], now_ns=self._data_now(None), final=True)
            if self.reports_seen == seen and not self._pending():
                return

    def _denials(self) -> bool:
        return any(isinstance(m, OrderDenied) for a in self.answers.values() for m in a)

    # --- real time -----------------------------------------------------------------------------
    async def _timed_step(self) -> bool:
        """The data whose time has come or, with nothing due, what waits (answers, reports, a
        due timer); else a wait for the next message. False at the end of the data."""
        i = self.cursor
        if i >= len(self.messages):
            await self.flush()
            return False
        n = self._due(i)
        if n:
            batch = self.messages[i:i + n]
            dropped = self._conflated(batch)
            self.counters.conflated += len(dropped)
            silent = self._silent(batch)
            if silent:
                dropped = sorted(set(dropped) | set(silent))
            await self._run(i, batch, now_ns=batch[-1].ts_event, dropped=dropped)
            self._heard(batch, silent)
        elif self._pending() or self._timer_due():
            await self._run(i, [], now_ns=self._data_now(i))
        else:
            await self._wait_due(i)
        return True

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

    def _conflated(self, batch: Sequence[MarketData]) -> list[int]:
        """The positions in a real-time step's ``batch`` its readers pass over: none unless
        more than ``conflate_after`` messages are due at once (lockstep never conflates)."""
        limit = self.conflate_after
        if self.exact or limit is None or len(batch) <= limit:
            return []
        return conflate(batch)

    def mute(self, instrument: str, seconds: float) -> None:
        """A rehearsal's fault: ``instrument``'s data reaches no strategy and no risk for
        ``seconds`` of wall time (the stream stays connected: the rest flows)."""
        self.muted[instrument] = time.time_ns() + int(seconds * 1e9)

    def _silent(self, batch: Sequence[MarketData]) -> list[int]:
        """The positions in ``batch`` of the instruments muted now (none, at once, when no
        instrument is)."""
        if not self.muted:
            return []
        now = time.time_ns()
        self.muted = {k: until for k, until in self.muted.items() if until > now}
        muted = self.muted
        return [k for k, m in enumerate(batch) if m.instrument_id in muted]

    def last_heard(self) -> dict[str, int]:
        """Real time: when each instrument's data last came (wall clock, ns), as a broker
        stream counts arrivals: what the steps delivered, and what is due by the data clock but
        not stepped yet (a chain held up by a restarting actor is not a silent market); a
        muted instrument's data does not come."""
        heard = dict(self.heard)
        if self.speed is None:
            return heard
        now, due, muted = time.time_ns(), self.data_now(), self.muted
        end = min(len(self.messages), self.cursor + _DUE_SCAN)
        for k in range(self.cursor, end):
            msg = self.messages[k]
            if msg.ts_event > due:
                break
            if muted.get(msg.instrument_id, 0) <= now:
                heard[msg.instrument_id] = now
        return heard

    def _heard(self, batch: Sequence[MarketData], silent: Sequence[int]) -> None:
        now, heard, gone = time.time_ns(), self.heard, set(silent)
        for k, msg in enumerate(batch):
            if k not in gone:
                heard[msg.instrument_id] = now

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

    # --- one step --------------------------------------------------------------------------------
    async def _deliver_step(self) -> None:
        """A step that delivers what waits and moves no data."""
        if self.exact:
            await self._exact_deliver()
        else:
            await self._run(self.cursor, [], now_ns=self._data_now(None))

    async def _exact_deliver(self) -> None:
        """Lockstep: answers (a denial first) and the gateway's decision, or the next run of
        one strategy's reports."""
        if self._denials() or not self.reports:
            await self._run(self.cursor, [], now_ns=-1)
            return
        sid = getattr(self.reports[0], "strategy_id", None)
        n = 1
        while n < len(self.reports) and getattr(self.reports[n], "strategy_id", None) == sid:
            n += 1
        await self._run(self.cursor, [], now_ns=-1, reports=self.reports[:n],
                        queued=len(self.reports) - n)

    async def _run(self, i: int, batch: Sequence[MarketData], *, now_ns: int,
                   reports: Sequence[Message] | None = None, queued: int = 0,
                   idle_until: int | None = None, final: bool = False,
                   dropped: Sequence[int] = ()) -> None:
        """One step over the carrier, and its result taken."""
        carrier = self._carrier()
        if reports is None:
            reports = self.reports
        answers = {sid: self._take_answers(sid) for sid in self.ports.hosts}
        after = self.messages[i + len(batch)].ts_event if i + len(batch) < len(self.messages) \
            else None
        t0, commands = time.perf_counter(), self.counters.commands
        self._step_id += 1
        await carrier.submit(HotInput(
            i, list(batch), now_ns, answers, list(reports), self.reports_seen,  # type: ignore[arg-type]
            exact=self.exact, idle_until=idle_until, after_ts=after, queued=queued,
            final=final, step=self._step_id, dropped=list(dropped)))
        result = await carrier.collect()
        assert result is not None
        self._take(i, batch, reports, result)
        if self.observe is not None:
            seconds = time.perf_counter() - t0
            self.observe("step", seconds)
            if batch and self.counters.commands > commands:
                self.observe("tick_to_order", seconds)

    def _take(self, i: int, batch: Sequence[MarketData], reports: Sequence[Message],
              result: HotResult) -> None:
        """A step's result: how far the strategies got, timers, risk's outputs (answers queue
        for their strategy), the reports the gateway released, its decision."""
        n, r = len(batch), len(reports)
        for sid, answer in zip(self.ports.hosts, result.answers, strict=True):
            self.timers[sid] = answer.timer
            if self.exact:
                n, r = min(n, answer.taken), min(r, answer.reports_taken)
        if n:
            if self.record_feed:  # what the step took, once
                self._forward(batch[:n])
            self.cursor, self.counters.events = i + n, self.counters.events + n
        if r:
            del self.reports[:r]
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
        self.counters.fills += sum(isinstance(m, OrderFilled) for m in new)
        self.reports += new
        self._forward(list(new))
        self.decided, self.idle, self.quiet = result.decided, result.idle, result.quiet

    async def _send(self, cmds: Sequence[Message]) -> None:
        """Commands from an operation (cancel all), sent outside a step."""
        if cmds:
            self.counters.commands += len(cmds)
            self._forward(cmds)
            await self.ports.gateway.send.remote(list(cmds))
            self.decided = False

    def _pending(self) -> bool:
        return bool(self.reports) or any(self.answers.values())

    def _carrier(self) -> Carrier:
        if self.carrier is None:
            raise RuntimeError("the driver has no carrier: open one (actors.carriers) first")
        return self.carrier

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

    # --- time ----------------------------------------------------------------------------------
    def _timer(self) -> int | None:
        due = [t for t in self.timers.values() if t is not None]
        return min(due) if due else None

    def _data_now(self, i: int | None) -> int:
        """The data clock: where the wall clock is in the data (paced), or the latest data;
        where it was when the session began to stop, from then on."""
        if self._stopped_at is not None:
            return self._stopped_at
        if self.speed is None or not self.messages:
            last = self.messages[min(self.cursor, len(self.messages)) - 1] if self.cursor else None
            return last.ts_event if last is not None else self.start_ns
        first = self.messages[0].ts_event
        if self._wall0 == 0.0:  # the message at the cursor (a resumed session's) is due now
            at = self.messages[min(self.cursor, len(self.messages) - 1)].ts_event
            self._wall0 = time.monotonic() - (at - first) / 1e9 / self.speed
        return first + int((time.monotonic() - self._wall0) * self.speed * 1e9)

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
