"""The gateway actor: the paper broker (the simulated venue with the backtest's models, behind
its journal) or a broker adapter (``actors/venues/``): journal before send.

Like every actor of the step (``actors.step``): a thin shell that owns one runtime object,
rebuilds it in ``__init__`` from its snapshot and journal, and delegates. Synchronous, one call
at a time: a carrier (``actors.carriers``) may call ``hot_step`` from a thread of its own, and
every call takes the actor's lock (``actors.base.serialized``), so a step and a call never
interleave. A step that comes again (a carrier's retry) gets the reply it got
(``actors.step.Replies``: kept in the paper venue's journal and snapshots; a broker adapter's
in memory); what else it sees twice after a crash it dedupes: market data by feed index,
commands by the send journal.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from actors.base import ACTOR_OPTIONS, WATCH_GROUPS, Child, actor, serialized
from actors.kernels import INTENT_TYPES
from actors.setup import SessionSetup
from actors.step import (
    Replies,
    decode_answer,
    decode_input,
    decode_messages,
    encode,
    encode_result,
    taken,
)
from actors.venues.gateway import BrokerGateway
from actors.venues.paper import PaperVenue
from runtime.errors import InvariantError
from runtime.messages import (
    MarketData,
    Message,
    OrderDenied,
    OrderFilled,
)
from runtime.reconcile import View, as_of

__all__ = ["GatewayActor"]

@actor(concurrency_groups=WATCH_GROUPS, **ACTOR_OPTIONS)
@serialized
class GatewayActor(Child):
    """The paper broker (the simulated venue with the backtest's models, behind its journal),
    or with ``broker`` an IB / Shioaji adapter (``actors.venues.gateway.BrokerGateway``)."""

    def __init__(self, setup: SessionSetup, broker: Any = None,
                 confirmed_live: bool = False) -> None:
        self.setup = setup
        self.venue: PaperVenue | BrokerGateway
        self.replies = Replies()
        if broker is None or broker.kind == "paper":
            self.venue = PaperVenue(setup.venue, setup.path("gateway"), setup.feed_log(),
                                    snapshot_every=setup.snapshot_every, replies=self.replies)
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
        """One step (``actors.step``): the venue sees the market data the strategies took
        (in real time every message, those the feed conflated too: the venue is the market,
        and its fill model keeps its own book from every delta), then the approved commands
        are journaled and sent; the step's result: the strategies'
        answers and risk's outputs passed on, and the reports the venue releases (real time:
        those due by its clock; lockstep: the next ones before the next event, once nothing
        must come first)."""
        inp = decode_input(data)
        if inp.index < 0:  # a carrier's warm-up: nothing to take
            return encode_result(answers, risk_out, encode([]), inp.reports_seen)
        key = Replies.digest(data, risk_out, *answers)
        again = self.replies.get(key)
        if again is not None:  # the same step again (a carrier's retry): the same reply
            return again
        venue = self.venue
        out = decode_messages(risk_out)
        decided = False
        if inp.exact:
            decoded = [decode_answer(a) for a in answers]
            n, r = taken(inp, decoded)
            venue.apply(inp.index, cast(list[MarketData], inp.msgs[:n]))
            sent = self._send([m for m in out if isinstance(m, INTENT_TYPES)])
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
            reports = (venue.reports_after(inp.reports_seen) if isinstance(venue, PaperVenue)
                       else venue.reports[inp.reports_seen - venue.report_base:])
        else:
            venue.apply(inp.index, cast(list[MarketData], inp.msgs))
            sent = self._send([m for m in out if isinstance(m, INTENT_TYPES)])
            reports = (venue.drain(inp.reports_seen) or [] if inp.final
                       else venue.reports_due(inp.reports_seen))
        if not inp.exact:  # a broker's idle and quiet cost a call on its thread
            result = encode_result(answers, risk_out, encode(reports), inp.reports_seen)
        else:
            result = encode_result(answers, risk_out, encode(reports), inp.reports_seen,
                                   decided=decided, idle=venue.idle(), quiet=venue.quiet())
        record = self.replies.keep(key, result)
        if isinstance(venue, PaperVenue) and (decided or sent or reports):
            venue.note(record)
        venue.commit()
        return result

    def send_times(self) -> list[int]:
        """CLOCK_MONOTONIC times of the latest sends (for latency measurements)."""
        return list(self.sent_ns)

    def view(self, delivered: int | None = None) -> dict[str, Any]:
        """The venue's view for the reconciler; with ``delivered`` (how many of this gateway's
        reports the session has handed risk) as of that watermark: what is beyond it is in
        flight (``runtime.reconcile.as_of``)."""
        view = self.venue.view()
        if delivered is None:
            return view
        venue = self.venue  # its reports are kept from a base on (those before were handed)
        base = venue.report_base
        return {**view, **as_of(View.from_dict(view), venue.reports,
                                max(delivered - base, 0)).to_dict()}

    def health(self) -> dict[str, Any]:
        """The broker link's health (watchdogs, metrics): ``BrokerGateway.health``."""
        return self.venue.health()

    def request_reconcile(self) -> None:
        self.venue.request_reconcile()

    def rehearse(self, fault: str, args: dict[str, Any]) -> dict[str, Any]:
        """A rehearsal's fault at the paper broker (``PaperVenue.inject``); what is on. Only
        ``tradewind rehearse`` calls it; a broker's gateway and a lockstep replay refuse."""
        if not isinstance(self.venue, PaperVenue):
            raise InvariantError(f"faults are injected into the paper broker only, not "
                                 f"{self.venue.kind!r}")
        if self.setup.lockstep:  # the faults run on the wall clock: no replay would repeat them
            raise InvariantError("faults are injected into a real-time paper session only, "
                                 "not a lockstep replay (its fills must equal the backtest's)")
        return self.venue.inject(fault, args)

    def state_hash(self) -> str:
        return self.venue.state_hash()

    def fills(self) -> list[OrderFilled]:
        return self.venue.fills()

    def submitted(self) -> list[str]:
        return list(self.venue.submitted)
