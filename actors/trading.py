"""The actors where orders live: risk (the single place orders and positions change), the paper
gateway, and one actor per strategy. Thin shells: each owns one runtime object, rebuilds it in
``__init__`` from its journal (Ray re-runs the constructor on restart) and delegates.

All three are synchronous with ``max_concurrency=1``: calls from one caller run in the order
they were made, one at a time. In real time they run the steps of the step protocol
(``hot_step``; ``actors.step``) over a carrier (``actors.carriers``) that may call them from a
thread of their own: every call takes the actor's lock (``actors.base.serialized``), so a step
and a call never interleave. Market data
carries its feed index, so a call retried after a crash is not applied twice; intents dedupe
by client order id, reports by fill id.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import msgspec

from actors.base import ACTOR_OPTIONS, WATCH_GROUPS, Child, actor, incarnate, serialized
from actors.kernels import (
    INTENT_TYPES,
    OPERATION,
    StrategyHost,
    idle_timer,
    open_journaled,
)
from actors.paper_venue import PaperVenue
from actors.setup import SessionSetup
from actors.step import (
    HotAnswer,
    decode_answer,
    decode_input,
    decode_messages,
    encode,
    encode_result,
    taken,
)
from actors.venues.gateway import BrokerGateway
from runtime.errors import InvariantError
from runtime.journal import Blob
from runtime.kernel import Kernel
from runtime.messages import (
    CancelOrder,
    MarketData,
    Message,
    OrderDenied,
    OrderFilled,
    SubmitOrder,
    TradingState,
    TradingStateChanged,
)
from runtime.statehash import state_hash

__all__ = ["Answer", "GatewayActor", "RiskActor", "StrategyActor"]

Answer = tuple[list[Message], int | None]  # (intents, next timer due, ns)

#: operator actions that change a strategy: journaled before they are applied
_CHANGES = ("params", "enable")

def _acted(out: Sequence[Message]) -> bool:
    return any(isinstance(m, INTENT_TYPES) for m in out)


def _fresh(cursor: int, index: int, msgs: Sequence[MarketData]) -> Sequence[MarketData]:
    skip = cursor - index
    return msgs if skip <= 0 else msgs[skip:]


@actor(concurrency_groups=WATCH_GROUPS, **ACTOR_OPTIONS)
@serialized
class RiskActor(Child):
    """The kernel without strategies, behind its journal: risk checks, orders, portfolio."""

    def __init__(self, setup: SessionSetup) -> None:
        self.setup = setup
        self._incarnation = incarnate(setup.path("risk.incarnation"))
        self.jk, self.cursor, self.started = open_journaled(
            setup.risk_kernel, setup.path("risk"), setup.feed_log(),
            snapshot_every=setup.snapshot_every)

    def start(self, ts_ns: int) -> list[Message]:
        if self.started:
            return []
        self.started = True
        out = self.jk.start(ts_ns)
        self.jk.journal.flush()
        return out

    def _step(self, batches: Sequence[tuple[int | None, Sequence[Message]]]) -> list[Message]:
        """Batches in order: market data (with its feed index), reports, intents; the outputs
        (approved commands, denials, position and trading-state changes)."""
        out: list[Message] = []
        handle = self.jk.handle
        for index, msgs in batches:
            if index is not None:
                msgs = _fresh(self.cursor, index, msgs)  # type: ignore[arg-type]
                self.cursor += len(msgs)
            for msg in msgs:
                out.extend(handle(msg))
        self.jk.journal.flush()
        return out

    def hot_step(self, data: bytes, *answers: bytes) -> bytes:
        """One step (``actors.step``): the reports and the market data the strategies took,
        then their intents (in config order); the outputs, encoded."""
        inp = decode_input(data)
        if inp.index < 0:  # a carrier's warm-up: nothing to take
            return encode([])
        decoded = [decode_answer(a) for a in answers]
        n, r = taken(inp, decoded)
        intents = [m for a in decoded for m in a.intents]
        return encode(self._step([(None, inp.reports[:r]), (inp.index, inp.msgs[:n]),
                                  (None, intents)]))

    def apply(self, index: int | None, msgs: Sequence[Message]) -> list[Message]:
        return self._step([(index, msgs)])

    def set_state(self, state: str, reason: str) -> list[Message]:
        kernel = self.jk.kernel
        change = TradingStateChanged(seq=0, ts_event=kernel.now, ts_init=kernel.now,
                                     state=TradingState(state), reason=reason)
        return self.apply(None, [change])

    def cancel_all(self) -> list[Message]:
        """Cancel every open order (halt, stop): the cancels, journaled, for the gateway."""
        kernel = self.jk.kernel
        cancels = [CancelOrder(seq=0, ts_event=kernel.now, ts_init=kernel.now,
                               client_order_id=o.client_order_id, strategy_id=o.strategy_id,
                               instrument_id=o.instrument_id)
                   for o in kernel.open.values()]
        return [m for m in self.apply(None, cancels) if isinstance(m, INTENT_TYPES)]

    def stop(self, ts_ns: int) -> list[Message]:
        return self.jk.stop(ts_ns)

    def state_hash(self) -> str:
        return self.jk.kernel.state_hash()

    def view(self) -> dict[str, Any]:
        kernel = self.jk.kernel
        return {
            "positions": {k: p.quantity for k, p in sorted(kernel.portfolio.positions.items())
                          if p.quantity},
            "open_orders": sorted(kernel.open),
            "fills": sorted(f for o in kernel.orders.values() for f in o.fill_ids),
        }

    def summary(self) -> dict[str, Any]:
        kernel = self.jk.kernel
        portfolio = kernel.portfolio
        return {
            "cursor": self.cursor, "now": kernel.now, "state": str(kernel.risk.state),
            "state_reason": kernel.risk.state_reason, "orders": len(kernel.orders),
            "open": len(kernel.open), "fills": portfolio.n_fills, "cash": portfolio.cash,
            "equity": portfolio.equity(), "realized": portfolio.realized_pnl,
            "unrealized": portfolio.unrealized_pnl(), "fees": portfolio.fees,
            "initial_cash": portfolio.initial_cash, "state_hash": kernel.state_hash(),
        }

    def operate(self, name: str, args: dict[str, Any]) -> Any:
        """An operator's read or action (``actors.operator.risk_<name>``; issue 4)."""
        from actors.operator import dispatch

        return dispatch("risk", self, name, args)

    def records(self) -> dict[str, Any]:
        """Orders and positions for the session's files."""
        kernel = self.jk.kernel
        registry = kernel.registry
        return {
            "orders": [o.state() for o in kernel.orders.values()],
            "positions": [
                {"instrument_id": k, "quantity": p.quantity, "realized_pnl": p.realized_pnl,
                 "fees": p.fees, "mark": p.mark,
                 "avg_price": p.avg_price(registry.get(k).multiplier)}
                for k, p in sorted(kernel.portfolio.positions.items())
            ],
        }


@actor(concurrency_groups=WATCH_GROUPS, **ACTOR_OPTIONS)
@serialized
class GatewayActor(Child):
    """The paper broker (the simulated venue with the backtest's models, behind its journal),
    or with ``broker`` an IB / Shioaji adapter (``actors.venues.gateway.BrokerGateway``)."""

    def __init__(self, setup: SessionSetup, broker: Any = None,
                 confirmed_live: bool = False) -> None:
        self.setup = setup
        self._incarnation = incarnate(setup.path("gateway.incarnation"))
        self.venue: PaperVenue | BrokerGateway
        if broker is None or broker.kind == "paper":
            self.venue = PaperVenue(setup.venue, setup.path("gateway"), setup.feed_log(),
                                    snapshot_every=setup.snapshot_every)
        else:
            from actors.venues.links import open_broker_gateway

            self.venue = open_broker_gateway(
                broker, Path(setup.journal_dir), instruments=dict(setup.registry().as_mapping()),
                confirmed_live=confirmed_live)
        self.sent_ns: deque[int] = deque(maxlen=100_000)

    def send(self, cmds: Sequence[Message]) -> int:
        return self._send(cmds)

    def _send(self, cmds: Sequence[Message]) -> int:
        """Journal and send; each command sent stamps the clock (for latency figures)."""
        if not cmds:
            return 0
        sent: int = self.venue.send(cmds, lockstep=self.setup.lockstep)
        if sent:
            self.sent_ns.extend([time.monotonic_ns()] * sent)
        return sent

    def hot_step(self, data: bytes, risk_out: bytes, *answers: bytes) -> bytes:
        """One step (``actors.step``): the venue sees the market data the strategies took,
        then the approved commands are journaled and sent; the step's result: the strategies'
        answers and risk's outputs passed on, and the reports the venue releases (real time:
        those due by its clock; lockstep: the next ones before the next event, once nothing
        must come first)."""
        inp = decode_input(data)
        if inp.index < 0:  # a carrier's warm-up: nothing to take
            return encode_result(answers, risk_out, encode([]), inp.reports_seen)
        venue = self.venue
        out = decode_messages(risk_out)
        decided = False
        if inp.exact:
            decoded = [decode_answer(a) for a in answers]
            n, r = taken(inp, decoded)
            venue.apply(inp.index, cast(list[MarketData], inp.msgs[:n]))
            self._send([m for m in out if isinstance(m, INTENT_TYPES)])
            # a denial goes back to its strategy, and held reports to theirs, before the venue
            # moves on (the backtest answers them in the same call)
            if (inp.queued == 0 and r == len(inp.reports)
                    and not any(isinstance(m, OrderDenied) for m in out)):
                if not isinstance(venue, PaperVenue):
                    raise InvariantError("lockstep replays against the paper broker only")
                after = inp.msgs[n].ts_event if n < len(inp.msgs) else inp.after_ts
                timers = [a.timer for a in decoded if a.timer is not None]
                venue.decide(after, min(timers) if timers else None)
                decided = True
            reports = venue.reports[inp.reports_seen:]
        else:
            venue.apply(inp.index, cast(list[MarketData], inp.msgs))
            self._send([m for m in out if isinstance(m, INTENT_TYPES)])
            reports = (venue.drain(inp.reports_seen) or [] if inp.final
                       else venue.reports_due(inp.reports_seen))
        venue.commit()
        if not inp.exact:  # a broker's idle and quiet cost a call on its thread
            return encode_result(answers, risk_out, encode(reports), inp.reports_seen)
        return encode_result(answers, risk_out, encode(reports), inp.reports_seen,
                             decided=decided, idle=venue.idle(), quiet=venue.quiet())

    def send_times(self) -> list[int]:
        """CLOCK_MONOTONIC times of the latest sends (for latency measurements)."""
        return list(self.sent_ns)

    def view(self) -> dict[str, Any]:
        return self.venue.view()

    def state_hash(self) -> str:
        return self.venue.state_hash()

    def fills(self) -> list[OrderFilled]:
        return self.venue.fills()

    def submitted(self) -> list[str]:
        return list(self.venue.submitted)


class _Shell:
    """What ``actors.operator``'s strategy actions read of an actor: ``.jk.kernel``."""

    def __init__(self, kernel: Kernel) -> None:
        self.jk = self
        self.kernel = kernel


def _check_change(kernel: Kernel, name: str, args: dict[str, Any]) -> None:
    """Refuse (an answer, before the journal) what ``actors.operator`` would refuse."""
    if name == "enable":
        if set(args) != {"enabled"}:
            raise ValueError(f"enable takes 'enabled' only, not {sorted(args)}")
        return
    (strategy,) = kernel.strategies
    unknown = set(args["params"]) - set(type(strategy.params).model_fields)
    if unknown or set(args) != {"params"}:
        raise ValueError(f"unknown params {sorted(unknown or set(args) - {'params'})}")


def _reapply(kernel: Kernel, payload: bytes) -> None:
    """A journaled operator change, applied again where the journal holds it."""
    from actors.operator import dispatch

    name, args = msgspec.msgpack.decode(payload)
    dispatch("strategy", _Shell(kernel), name, args)


@actor(concurrency_groups=WATCH_GROUPS, **ACTOR_OPTIONS)
@serialized
class StrategyActor(Child):
    """One unchanged runtime strategy in a :class:`StrategyHost`, behind its journal."""

    def __init__(self, setup: SessionSetup, strategy_id: str) -> None:
        self.setup = setup
        self.strategy_id = strategy_id
        self._incarnation = incarnate(setup.path(f"strategy.{strategy_id}.incarnation"))
        self.jk, self.cursor, self.started = open_journaled(
            lambda: setup.strategy_host(strategy_id), setup.path(f"strategy.{strategy_id}"),
            setup.feed_log(), snapshot_every=setup.snapshot_every, operate=_reapply)
        host = self.jk.kernel
        assert isinstance(host, StrategyHost)
        self.host = host
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.snapshots_seen = 0

    def _answer(self, out: list[Message]) -> Answer:
        self.jk.journal.flush()
        intents: list[Message] = [m for m in out if isinstance(m, INTENT_TYPES)]
        sent = {m.client_order_id for m in intents if isinstance(m, SubmitOrder)}
        intents += [m for m in self.host.unanswered() if m.client_order_id not in sent]
        return intents, self.host.next_timer_ns()

    def _take(self, answers: Sequence[Message]) -> list[Message]:
        """Risk's answers to earlier intents: approvals (and denials), applied first."""
        out: list[Message] = []
        for answer in answers:
            out.extend(self.jk.handle(answer))
        return out

    def start(self, ts_ns: int) -> Answer:
        """The strategies' start (once); their intents also ride on every answer until risk
        has answered them (``StrategyHost.unanswered``)."""
        out: list[Message] = []
        if not self.started:
            self.started = True
            out = self.jk.start(ts_ns)
        return self._answer(out)

    def hot_step(self, data: bytes) -> bytes:
        """One step (``actors.step``): risk's answers, this strategy's reports, then the
        market data in order, then the timers due by the data clock; the intents, the next
        timer and how far it got.

        Real time takes everything, firing the timers due before each message. Lockstep
        (``exact``) stops at the first report or message the strategy acts on, and before a
        message at which one of its timers is due; a step executed again after a crash stops
        where the first execution did (the cursor the journal holds)."""
        inp = decode_input(data)
        if inp.index < 0:  # a carrier's warm-up: nothing to take
            return encode(HotAnswer([], None))
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
            for msg in msgs[skip:]:
                timer = kernel.next_timer_ns()
                if timer is not None and timer <= msg.ts_event:
                    if exact:
                        break
                    out.extend(handle(idle_timer(msg.ts_event, None)))
                produced = handle(msg)
                out.extend(produced)
                n += 1
                if exact and produced:
                    break
            self.cursor = max(self.cursor, inp.index + n)
        timer = kernel.next_timer_ns()
        if timer is not None and timer <= inp.now_ns:
            out.extend(handle(idle_timer(inp.now_ns, inp.idle_until)))
        intents, timer = self._answer(out)
        return encode(HotAnswer(intents, timer, n, reports_taken))  # type: ignore[arg-type]

    def stop(self, ts_ns: int) -> Answer:
        return self._answer(self.jk.stop(ts_ns))

    def operate(self, name: str, args: dict[str, Any]) -> Any:
        """An operator's read or action (``actors.operator.strategy_<name>``; issue 4).

        A change (new params, enable/disable) is journaled before it is applied, between the
        messages it came between: a restarted strategy replays it at the same point and comes
        back with it by itself."""
        from actors.operator import dispatch

        if name in _CHANGES and (name != "params" or args.get("params")):
            payload = msgspec.msgpack.encode((name, args))
            if msgspec.msgpack.decode(payload) != [name, args]:
                raise ValueError(f"strategy {name} {args!r}: values must be plain data "
                                 "(int, float, str, bool, lists, dicts) to be journaled")
            _check_change(self.jk.kernel, name, args)
            self.jk.journal.append(Blob(OPERATION, payload))
            self.jk.journal.flush()
        return dispatch("strategy", self, name, args)

    def on_snapshot(self, snapshot: dict[str, Any]) -> None:
        """The book actor's latest snapshot (conflated: only the newest is ever queued)."""
        self.snapshots[snapshot["instrument_id"]] = snapshot
        self.snapshots_seen += 1

    def state_hash(self) -> str:
        return self.jk.kernel.state_hash()

    def summary(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "orders": len(self.jk.kernel.orders),
                "snapshots_seen": self.snapshots_seen,
                "state_hash": state_hash(self.jk.kernel.state_hash())}
