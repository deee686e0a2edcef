"""The strategy actor: one unchanged strategy in a kernel whose risk decides elsewhere (the
risk actor), behind its journal.

Like every actor of the step (``actors.step``): a thin shell that owns one runtime object,
rebuilds it in ``__init__`` from its snapshot and journal, and delegates. Synchronous, one call
at a time: a carrier (``actors.carriers``) may call ``hot_step`` from a thread of its own, and
every call takes the actor's lock (``actors.base.serialized``), so a step and a call never
interleave. A step that comes again (a carrier's retry) gets the reply it got
(``actors.step.Replies``); what else it sees twice after a crash it dedupes: market data by feed
index, intents by client order id, reports by fill id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from actors.base import ACTOR_OPTIONS, WATCH_GROUPS, Child, actor, serialized
from actors.kernels import INTENT_TYPES, Views, idle_timer, open_journaled
from actors.operator import checked
from actors.setup import SessionSetup
from actors.step import (
    HotAnswer,
    Replies,
    decode_input,
    encode,
)
from runtime.journal import Blob
from runtime.messages import (
    MarketData,
    Message,
    OperatorCommand,
    SubmitOrder,
)
from runtime.statehash import state_hash

__all__ = ["Answer", "StrategyActor"]

Answer = tuple[list[Message], int | None]  # (intents, next timer due, ns)


def _acted(out: Sequence[Message]) -> bool:
    return any(isinstance(m, INTENT_TYPES) for m in out)


@actor(concurrency_groups=WATCH_GROUPS, **ACTOR_OPTIONS)
@serialized
class StrategyActor(Child):
    """One unchanged runtime strategy in its kernel (risk decides elsewhere), behind its
    journal."""

    def __init__(self, setup: SessionSetup, strategy_id: str) -> None:
        self.setup = setup
        self.strategy_id = strategy_id
        self.replies = Replies()
        self.jk, self.cursor, self.started = open_journaled(
            lambda: setup.strategy_host(strategy_id), setup.path(f"strategy.{strategy_id}"),
            setup.feed_log(), snapshot_every=setup.snapshot_every, replies=self.replies)
        self.host = self.jk.kernel

    def _answer(self, out: list[Message],
                reply: Callable[[list[Message], int | None], Blob] | None = None) -> Answer:
        """The intents ``out`` holds plus those risk has not answered, and the next timer;
        ``reply(intents, timer)``: the step's reply, journaled (when the step acted) in the
        same commit as its inputs."""
        intents: list[Message] = [m for m in out if isinstance(m, INTENT_TYPES)]
        sent = {m.client_order_id for m in intents if isinstance(m, SubmitOrder)}
        acted = bool(intents)
        intents += [m for m in self.host.unanswered() if m.client_order_id not in sent]
        timer = self.host.next_timer_ns()
        if reply is not None:
            record = reply(intents, timer)
            if acted:
                self.jk.append(record)
        self.jk.flush()
        return intents, timer

    def _take(self, answers: Sequence[Message]) -> list[Message]:
        """Risk's answers to earlier intents: approvals (and denials), applied first."""
        out: list[Message] = []
        for answer in answers:
            out.extend(self.jk.handle(answer))
        return out

    def start(self, ts_ns: int) -> Answer:
        """The strategies' start (once); their intents also ride on every answer until risk
        has answered them (``Kernel.unanswered``)."""
        out: list[Message] = []
        if not self.started:
            self.started = True
            out = self.jk.start(ts_ns)
        return self._answer(out)

    def hot_step(self, data: bytes, books: bytes) -> bytes:
        """One step (``actors.step``): risk's answers, this strategy's reports, then the
        market data in order (read with the book actors' views, ``books``), then the timers
        due by the data clock; the intents, the next timer and how far it got.

        Real time takes everything, firing the timers due before each message, but passes
        over the messages the feed conflated (``inp.dropped``). Lockstep
        (``exact``) stops at the first report or message the strategy acts on, and before a
        message at which one of its timers is due; a step a restarted feed sends again
        stops where the first execution did (the cursor the journal holds)."""
        inp = decode_input(data)
        if inp.index < 0:  # a carrier's warm-up: nothing to take
            return encode(HotAnswer([], None))
        key = Replies.digest(data, books)
        again = self.replies.get(key)
        if again is not None:  # the same step again (a carrier's retry): the same reply
            return again
        sid, exact = self.strategy_id, inp.exact
        out = self._take(inp.answers.get(sid, ()))
        kernel, handle = self.jk.kernel, self.jk.handle
        reports_taken = 0
        for report in inp.reports:
            if report.strategy_id == sid:  # type: ignore[union-attr]
                if exact and _acted(out):
                    break
                out.extend(handle(report))
            reports_taken += 1
        msgs = cast(list[MarketData], inp.msgs)
        skip = min(max(self.cursor - inp.index, 0), len(msgs))
        n = skip
        if not (exact and (skip or _acted(out) or reports_taken < len(inp.reports))):
            views = Views(self.jk, inp.index, msgs, books, skip, inp.dropped)
            for msg in msgs[skip:]:
                if not views.take(inp.index + n, msg):  # conflated: a later one supersedes it
                    n += 1
                    continue
                timer = kernel.next_timer_ns()
                if timer is not None and timer <= msg.ts_event:
                    if exact:
                        break
                    views.note(inp.index + n)  # before the timer: a replay reads them first
                    out.extend(handle(idle_timer(msg.ts_event, None)))
                produced = handle(msg)
                out.extend(produced)
                n += 1
                if exact and produced:
                    break
            views.note(inp.index + n)
            self.cursor = max(self.cursor, inp.index + n)
        timer = kernel.next_timer_ns()
        if timer is not None and timer <= inp.now_ns:
            out.extend(handle(idle_timer(inp.now_ns, inp.idle_until)))

        def reply(intents: list[Message], timer: int | None) -> Blob:
            return self.replies.keep(key, encode(HotAnswer(
                intents, timer, n, reports_taken)))  # type: ignore[arg-type]

        self._answer(out, reply)
        return self.replies.reply

    def stop(self, ts_ns: int) -> Answer:
        return self._answer(self.jk.stop(ts_ns))

    def operate(self, name: str, args: dict[str, Any]) -> Any:
        """An operator's read or action (``actors.operator.strategy_<name>``): actions
        become typed commands (:meth:`command`)."""
        from actors.operator import dispatch

        return dispatch("strategy", self, name, args)

    def command(self, command: OperatorCommand) -> dict[str, Any]:
        """An operator's command for this strategy (enable, disable, params): refused
        (``OperatorError``, naming what was wrong) before anything is journaled when it is
        malformed or the strategy cannot take it as given; else journaled and handled like any
        input, between the messages it came between, so a restarted strategy replays it at the
        same point and comes back with it by itself. What the strategy runs now."""
        command = checked(command)
        self.host.check(command)
        self.jk.handle(command)
        self.jk.flush()
        return self.view()

    def view(self) -> dict[str, Any]:
        """The strategy's params (the core's units) and whether it is enabled."""
        (strategy,) = self.host.strategies
        return {
            "strategy_id": strategy.strategy_id,
            "class": type(strategy).__name__,
            "params": strategy.params.model_dump(mode="json"),
            "enabled": self.host.roster.enabled(strategy.strategy_id),
            # what a strategy says of itself, if it says anything (``report()``: plain values)
            **({"report": report()} if callable(report := getattr(strategy, "report", None))
               else {}),
        }

    def state_hash(self) -> str:
        return self.jk.kernel.state_hash()

    def summary(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "orders": self.jk.kernel.ledger.total,
                "state_hash": state_hash(self.jk.kernel.state_hash())}
