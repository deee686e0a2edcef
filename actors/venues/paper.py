"""The paper broker of the gateway actor: the backtester's simulated venue behind a journal.

Every call that changes the venue is journaled before it is applied (commands with the time
they were sent, report polls) and, between them, the feed position the venue reached: the
market data itself lives in the feed's log (``runtime.recovery``). The venue is snapshotted
whole (pickled, with the reports delivered and the commands sent) every ``snapshot_every``
inputs and the journal compacted, so the gateway's constructor rebuilds it exactly from the
latest snapshot and a bounded tail. A command is committed before the venue sees it, and a
command the journal already holds is never sent again (a retried call after a crash): the
outcome of an order is never guessed by sending it twice. Every report the venue delivered is
kept in order; callers ask for reports from their own cursor, so a report popped by a call that
crashed half-way is handed out again, never lost.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from actors.journals import open_journal
from actors.step import REPLY, Replies
from backtest.venue import SimulatedVenue
from runtime.errors import InvariantError
from runtime.journal import Blob, JournalRecord
from runtime.messages import (
    CancelOrder,
    MarketData,
    Message,
    ModifyOrder,
    OrderEvent,
    OrderFilled,
    SubmitOrder,
    decode,
    encode,
)
from runtime.recovery import FeedJournal, FeedLog
from runtime.statehash import state_hash

__all__ = ["PaperVenue"]

_SEND, _PEEK, _POP = "gw.send", "gw.peek", "gw.pop"
_NONE = -1


def _ts(value: int | None) -> bytes:
    return (_NONE if value is None else value).to_bytes(8, "big", signed=True)


def _key(cmd: Message) -> tuple[Any, ...]:
    if isinstance(cmd, SubmitOrder):
        return ("submit", cmd.client_order_id)
    return (type(cmd).__name__, getattr(cmd, "client_order_id", ""), cmd.ts_event, encode(cmd))


class PaperVenue:
    """A :class:`SimulatedVenue` that survives its process (see the module docstring)."""

    def __init__(self, venue_factory: Callable[[], SimulatedVenue], path: Path, feed: FeedLog,
                 *, snapshot_every: int, replies: Replies | None = None,
                 durable: bool = False) -> None:
        """``feed``: the feed's log, where the market data the journal's positions name is
        read again. ``replies``: the gateway's latest step reply, journaled (:meth:`note`) and
        snapshotted with the venue. ``durable``: fsync each command batch before sending (~3 ms
        here). A paper venue lives in the gateway's process, so a commit (which survives the
        process) is enough; a gateway to a real broker must set it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.durable = durable
        self.replies = replies if replies is not None else Replies()
        self.venue = venue_factory()
        self.reports: list[OrderEvent] = []
        self.sent: set[tuple[Any, ...]] = set()
        self.submitted: list[str] = []
        self.journal = FeedJournal.restore(
            open_journal(path), feed, snapshot_every=snapshot_every, load=self._load,
            market=self._replay_market, record=self._replay)

    @property
    def market_count(self) -> int:
        """Market messages the venue has seen: the feed index of the next one."""
        return self.journal.position

    # --- restore ---------------------------------------------------------------------------
    def _load(self, state: bytes) -> None:
        self.venue, self.reports, self.sent, self.submitted, reply = pickle.loads(state)
        self.replies.load(reply)

    def _replay_market(self, _: int, msgs: Sequence[MarketData]) -> None:
        for msg in msgs:
            self.venue.on_market(msg)

    def _replay(self, record: JournalRecord) -> None:
        if not isinstance(record, Blob):
            raise InvariantError(f"gateway journal: unexpected {type(record).__name__}")
        ts = int.from_bytes(record.payload[:8], "big", signed=True)  # the gw.* records'
        if record.kind == _SEND:
            self._send(decode(record.payload[8:]), ts)
        elif record.kind == _PEEK:
            self.venue.next_report_ts(None if ts == _NONE else ts)
        elif record.kind == _POP:
            self.reports.extend(self.venue.pop_reports(ts))
        elif record.kind == REPLY:
            self.replies.load(record.payload)
        else:
            raise InvariantError(f"gateway journal: unknown record {record.kind!r}")

    # --- journaled operations ---------------------------------------------------------------
    def _market(self, msg: MarketData) -> None:
        self.journal.market(msg)
        self.venue.on_market(msg)

    def _peek(self, before: int | None) -> int | None:
        self.journal.append(Blob(_PEEK, _ts(before)))
        return self.venue.next_report_ts(before)

    def _pop(self, ts: int) -> None:
        self.journal.append(Blob(_POP, _ts(ts)))
        self.reports.extend(self.venue.pop_reports(ts))

    def _send(self, cmd: Message, ts: int) -> None:
        self.sent.add(_key(cmd))
        if isinstance(cmd, SubmitOrder):
            self.submitted.append(cmd.client_order_id)
            self.venue.submit(cmd, ts)
        elif isinstance(cmd, CancelOrder):
            self.venue.cancel(cmd, ts)
        elif isinstance(cmd, ModifyOrder):
            self.venue.modify(cmd, ts)
        else:
            raise InvariantError(f"gateway cannot send {type(cmd).__name__}")

    # --- the calls -------------------------------------------------------------------------
    def quiet(self) -> bool:
        """Nothing can happen at the venue before a new command (no orders, nothing due)."""
        return self.venue.idle() and not self.venue.open_orders()

    def idle(self) -> bool:
        """Nothing pending at the venue (no command in flight, no report to deliver)."""
        return self.venue.idle()

    def apply(self, index: int, msgs: Sequence[MarketData]) -> None:
        """Market data from feed index ``index`` on (what the journal holds is skipped)."""
        skip = self.market_count - index
        if skip < 0:
            raise InvariantError(f"gateway: message {index} after {self.market_count}")
        for msg in msgs[skip:]:
            self._market(msg)

    def decide(self, after_ts: int | None, timer_ns: int | None) -> None:
        """Lockstep: release the next reports due before the next market message (at
        ``after_ts``; None: the end of the data) or, when a timer is due first, before the
        timer: one step of the backtest's ``catch_up`` (``drain`` at the end)."""
        limit = after_ts
        if after_ts is not None and timer_ns is not None and timer_ns <= after_ts:
            limit = timer_ns
        report_ts = self._peek(limit)
        if report_ts is not None:
            self._pop(report_ts)

    def send(self, cmds: Sequence[Message], *, lockstep: bool) -> int:
        """Journal (commit) then send; a command the journal holds is not sent again."""
        fresh = [c for c in cmds if _key(c) not in self.sent]
        if not fresh:
            return 0
        now = self.venue.now_ns
        stamped = [(c, c.ts_event if lockstep else max(c.ts_event, now)) for c in fresh]
        for cmd, ts in stamped:
            self.journal.append(Blob(_SEND, _ts(ts) + encode(cmd)))
        self.journal.flush(durable=self.durable)
        for cmd, ts in stamped:
            self._send(cmd, ts)
        return len(fresh)

    def drain(self, reports_seen: int) -> list[OrderEvent] | None:
        """At the end of the data: the next reports still to come, or None."""
        if reports_seen < len(self.reports):
            return self.reports[reports_seen:]
        report_ts = self._peek(None)
        if report_ts is None:
            return None
        self._pop(report_ts)
        return self.reports[reports_seen:]

    def reports_due(self, reports_seen: int) -> list[OrderEvent]:
        """Real time: the reports after the first ``reports_seen``, with every report due by
        the venue's clock (the latest market data) released first."""
        limit = self.venue.now_ns + 1  # what the venue does at its present instant, too
        while (report_ts := self._peek(limit)) is not None:
            self._pop(report_ts)
        return self.reports[reports_seen:]

    def note(self, record: Blob) -> None:
        """The gateway's reply to this step (``actors.step.Replies.keep``), committed with it."""
        self.journal.append(record)

    def commit(self) -> None:
        """Commit (the position reached included); a snapshot when one is due."""
        self.journal.flush()
        if self.journal.due():
            self.journal.snapshot(pickle.dumps(
                (self.venue, self.reports, self.sent, self.submitted, self.replies.state()),
                protocol=pickle.HIGHEST_PROTOCOL))

    # --- views -----------------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        """The broker's view for the reconciler: positions, open orders, fills."""
        return {
            "positions": self.venue.positions(),
            "open_orders": [o.client_order_id for o in self.venue.open_orders()],
            "fills": [f.fill_id for f in self.venue.fills_since(-1)],
        }

    def health(self) -> dict[str, Any]:
        """The watchdogs' sample: the paper broker is in process, always connected and
        answers every command within the step that sent it."""
        return {"broker": "paper", "connected": True, "breaker_open": False,
                "exec_waiting_since_ns": None,
                "foreign_reports": 0, "last_report_ns": None, "unknown": 0, "unpriced_fees": {}}

    def request_reconcile(self) -> None:
        """Nothing to reconcile: the paper broker is this process's own venue."""

    def state_hash(self) -> str:
        view = self.view()
        return state_hash({
            "market": self.market_count, "reports": len(self.reports),
            "submitted": self.submitted, "positions": view["positions"],
            "open_orders": view["open_orders"], "fills": view["fills"],
            "venue_now": self.venue.now_ns,
        })

    def fills(self) -> list[OrderFilled]:
        return self.venue.fills_since(-1)
