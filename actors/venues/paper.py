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

Bounded in a session that runs for weeks: the reports behind the driver's cursor go, all but
the latest :data:`KEEP_REPORTS` (a restarted driver asks again from what risk has, a few
reports back; :attr:`PaperVenue.report_base` counts those gone), and the keys that dedupe a
retried command are kept for :data:`runtime.retirement.DEFAULT_RETIRE_AFTER_NS` of the venue's
clock (a retried call comes within seconds). The venue's fills made as long before leave its
memory at the same hourly sweep, before a snapshot: appended, synced, to the archive beside the
journal (``gateway.fills``, ``runtime.archive``), leaving their fill ids
(:attr:`PaperVenue.archived_fills`, what the reconciler and the state hash read). A crash
between the append and the snapshot releases them again: :meth:`PaperVenue.fills` (the
session's ``fills.csv``) reads each fill id once.

Faults (:class:`PaperFaults`): a rehearsal (``tradewind rehearse``, through the gateway actor's
``rehearse`` call) makes the paper broker misbehave as a real one does, so the session's guards
fire through the same fields a broker adapter feeds them (``health`` and ``view``, read by the
reconciler's watchdogs): its execution stream stalls (reports held, the commands sent meanwhile
owed: ``exec_waiting_since_ns``), it reports orders this session never sent (counted and dropped,
as :class:`actors.venues.reports.ReportBook` does: ``foreign_reports``), its positions drift from
its fills, or its sends fail until its :class:`~actors.venues.common.CircuitBreaker` opens (new
orders refused, ``gateway.breaker_open``; cancels still go) and a clean reconciliation closes it.
No config turns a fault on: a paper session that is not rehearsed never calls ``rehearse``.
A failed send is journaled as its rejection (a restart hands out the same reports); the faults
themselves live in the process (a restarted gateway comes back without them).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from actors.journals import open_journal
from actors.step import REPLY, Replies
from actors.venues.common import CircuitBreaker
from actors.venues.send_log import archived_fills, fills_frame
from backtest.venue import SimulatedVenue
from runtime.archive import Archive
from runtime.errors import ConfigError, InvariantError
from runtime.journal import Blob, JournalRecord
from runtime.messages import (
    CancelOrder,
    MarketData,
    Message,
    ModifyOrder,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
    decode,
    encode,
)
from runtime.recovery import FeedJournal, FeedLog
from runtime.retirement import DEFAULT_RETIRE_AFTER_NS, SWEEP_NS, next_sweep
from runtime.statehash import state_hash

__all__ = ["FAULTS", "PaperFaults", "PaperVenue"]

_SEND, _PEEK, _POP, _REJECT = "gw.send", "gw.peek", "gw.pop", "gw.reject"
_NONE = -1
#: reports kept behind the driver's cursor (a restarted driver asks again from risk's, a few
#: reports back); those before go once twice as many are held
KEEP_REPORTS = 10_000
_S = 10**9
#: what :meth:`PaperVenue.inject` takes, and its arguments
FAULTS = {"stall": ("seconds",), "foreign": ("seconds", "per_s"), "fail_sends": ("count",),
          "shift": ("instrument", "qty"), "clear": ()}


class PaperFaults:
    """What a rehearsal turned on (module docstring), on the wall clock (``clock``, ns)."""

    def __init__(self, clock: Callable[[], int] = time.time_ns, *,
                 breaker_threshold: int = 3, reconcile_every_s: float = 5.0) -> None:
        self.clock = clock
        self.stall_until_ns = 0  # the execution stream holds its reports until then
        self.awaiting: dict[str, int] = {}  # client order id -> when a command went out, stalled
        self.storm_from_ns = self.storm_until_ns = 0
        self.storm_per_s = 0.0
        self.storm_made = 0  # foreign reports made by the current storm
        self.foreign = 0  # reports about orders never sent, counted since the start
        self.fail_sends = 0  # the next this many submits fail (known not sent)
        self.breaker = CircuitBreaker(threshold=breaker_threshold)
        self.refused = 0  # submits the open breaker refused
        self.reconcile_every_ns = int(reconcile_every_s * _S)
        self.reconciled_ns = 0  # the latest reconciliation while the breaker was open
        self.shift: dict[str, int] = {}  # instrument -> raw quantity the positions drift by

    def reconcile_due(self) -> bool:
        """The breaker is open and a reconciliation is due (every ``reconcile_every_s``, as a
        broker adapter's loop reconciles)."""
        if self.breaker.allows_new_orders:
            return False
        now = self.clock()
        if now - self.reconciled_ns < self.reconcile_every_ns:
            return False
        self.reconciled_ns = now
        return True

    def stalled(self) -> bool:
        return self.clock() < self.stall_until_ns

    def due_foreign(self) -> int:
        """How many foreign reports the storm has made by now that it had not yet."""
        if not self.storm_until_ns:
            return 0
        now = min(self.clock(), self.storm_until_ns)
        made = int((now - self.storm_from_ns) / _S * self.storm_per_s)
        fresh, self.storm_made = max(made - self.storm_made, 0), max(made, self.storm_made)
        if now >= self.storm_until_ns:
            self.storm_until_ns = 0
        return fresh

    def state(self) -> dict[str, Any]:
        now = self.clock()
        return {"stalled_s": max(self.stall_until_ns - now, 0) / _S,
                "storm_s": max(self.storm_until_ns - now, 0) / _S,
                "fail_sends": self.fail_sends, "breaker_reason": self.breaker.reason,
                "refused": self.refused,
                "shift": dict(self.shift)}


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
        self.reports: list[OrderEvent] = []  # handed out by index, from :attr:`report_base`
        self.report_base = 0  # reports before the kept ones (behind the driver's cursor)
        #: what dedupes a retried command: its key -> the venue's clock when it was sent
        self.sent: dict[tuple[Any, ...], int] = {}
        #: the orders sent, as (the venue's clock, id), for a day as the keys are
        self.sent_orders: list[tuple[int, str]] = []
        self.submitted_count = 0  # orders sent in all
        self._sweep_ns = 0  # the venue's clock of the next sweep of old keys
        self._seen = 0  # the driver's latest cursor
        #: the ids of the fills released to the archive (``gateway.fills``), in order
        self.archived_fills: list[str] = []
        self.archive = Archive(path.with_suffix(".fills"))
        self.archive.cut_torn_tail()  # a crash mid-append: those fills are released again
        self.faults = PaperFaults()
        self.journal = FeedJournal.restore(
            open_journal(path), feed, snapshot_every=snapshot_every, load=self._load,
            market=self._replay_market, record=self._replay)

    @property
    def market_count(self) -> int:
        """Market messages the venue has seen: the feed index of the next one."""
        return self.journal.position

    # --- restore ---------------------------------------------------------------------------
    def _load(self, state: bytes) -> None:
        loaded = pickle.loads(state)
        if len(loaded) == 7:  # a snapshot from before the fills archive: none released
            loaded = (*loaded, [])
        (self.venue, self.reports, self.report_base, self.sent, self.sent_orders,
         self.submitted_count, reply, self.archived_fills) = loaded
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
        elif record.kind == _REJECT:
            self._reject(decode(record.payload[8:]))
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

    def _reject(self, report: Message) -> None:
        """A submit that failed before the venue saw it: its rejection, handed out in turn."""
        if not isinstance(report, OrderRejected):
            raise InvariantError(f"gateway journal: a rejection, not {type(report).__name__}")
        self.sent[("submit", report.client_order_id)] = self.venue.now_ns
        self.reports.append(report)

    def _fault(self, cmd: Message, ts: int) -> OrderRejected | None:
        """The rejection of a submit an injected fault stops (a failed send counts toward the
        breaker; an open breaker refuses new orders), or None: it goes to the venue."""
        faults = self.faults
        if not isinstance(cmd, SubmitOrder):
            return None
        if not faults.breaker.allows_new_orders:
            code = "breaker_open"
            faults.refused += 1
            reason = f"new orders blocked: breaker_open ({faults.breaker.reason})"
        elif faults.fail_sends > 0:
            faults.fail_sends -= 1
            code = "disconnected"
            reason = "rehearsal: the send failed before any byte left (known not sent)"
            faults.breaker.failure(f"{faults.breaker.failures + 1} sends failed in a row")
            faults.reconciled_ns = faults.clock()  # the next reconciliation: one period on
        else:
            return None
        return OrderRejected(seq=0, ts_event=ts, ts_init=ts, client_order_id=cmd.client_order_id,
                             strategy_id=cmd.strategy_id, instrument_id=cmd.instrument_id,
                             reason=reason, venue_code=f"gateway.{code}")

    def _send(self, cmd: Message, ts: int) -> None:
        self.sent[_key(cmd)] = ts
        if isinstance(cmd, SubmitOrder):
            self.sent_orders.append((ts, cmd.client_order_id))
            self.submitted_count += 1
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
        faults, wall = self.faults, self.faults.clock()
        stalled = faults.stalled()
        failed = {id(c): r for c, ts in stamped if (r := self._fault(c, ts)) is not None}
        for cmd, ts in stamped:
            if id(cmd) in failed:
                self.journal.append(Blob(_REJECT, _ts(ts) + encode(failed[id(cmd)])))
            else:
                self.journal.append(Blob(_SEND, _ts(ts) + encode(cmd)))
        self.journal.flush(durable=self.durable)
        for cmd, ts in stamped:
            if id(cmd) in failed:
                self._reject(failed[id(cmd)])
                continue
            self._send(cmd, ts)
            if stalled and isinstance(cmd, SubmitOrder | CancelOrder | ModifyOrder):
                faults.awaiting.setdefault(cmd.client_order_id, wall)  # owed an answer
        return len(fresh)

    def reports_after(self, reports_seen: int) -> list[OrderEvent]:
        """The reports after the first ``reports_seen`` (the driver's cursor)."""
        if reports_seen < self.report_base:
            raise InvariantError(
                f"the driver asks for reports from {reports_seen}; the paper broker holds them "
                f"from {self.report_base} on (those before were behind its cursor)")
        self._seen = reports_seen
        return self.reports[reports_seen - self.report_base:]

    @property
    def reports_total(self) -> int:
        """Reports made so far (the kept ones and those before)."""
        return self.report_base + len(self.reports)

    def drain(self, reports_seen: int) -> list[OrderEvent] | None:
        """At the end of the data: the next reports still to come, or None."""
        if reports_seen < self.reports_total:
            return self.reports_after(reports_seen)
        report_ts = self._peek(None)
        if report_ts is None:
            return None
        self._pop(report_ts)
        return self.reports_after(reports_seen)

    def reports_due(self, reports_seen: int) -> list[OrderEvent]:
        """Real time: the reports after the first ``reports_seen``, with every report due by
        the venue's clock (the latest market data) released first."""
        self._storm()
        if self.faults.reconcile_due():
            self.request_reconcile()
        if self.faults.stalled():  # the stream holds what the venue did meanwhile
            return self.reports_after(reports_seen)
        self.faults.awaiting.clear()  # it flows again: what was owed comes now, in order
        limit = self.venue.now_ns + 1  # what the venue does at its present instant, too
        while (report_ts := self._peek(limit)) is not None:
            self._pop(report_ts)
        return self.reports_after(reports_seen)

    def _storm(self) -> None:
        """The storm's reports since the last look: each about an order id this session never
        sent, so counted and dropped, never handed out (as a broker adapter's report book
        does: ``ReportBook.note_foreign``)."""
        self.faults.foreign += self.faults.due_foreign()

    # --- faults (a rehearsal's: module docstring) --------------------------------------------
    def inject(self, fault: str, args: dict[str, Any]) -> dict[str, Any]:
        """Turn on ``fault`` (one of :data:`FAULTS`, with its arguments); the faults' state.
        ``stall`` the execution stream for ``seconds``; ``foreign`` reports about orders never
        sent, ``per_s`` a second for ``seconds``; ``fail_sends``: the next ``count`` submits
        fail; ``shift`` the broker's position in ``instrument`` by ``qty`` (raw) from its
        fills; ``clear`` every fault (the breaker stays open until a clean reconciliation)."""
        if fault not in FAULTS:
            raise ConfigError(f"no such paper broker fault {fault!r}: one of "
                              f"{', '.join(FAULTS)}", field="fault")
        missing = [a for a in FAULTS[fault] if a not in args]
        extra = sorted(set(args) - set(FAULTS[fault]))
        if missing or extra:
            raise ConfigError(f"fault {fault!r} takes {', '.join(FAULTS[fault]) or 'nothing'}"
                              f" (missing {missing}, unknown {extra})", field="fault")
        faults, now = self.faults, self.faults.clock()
        if fault == "stall":
            faults.stall_until_ns = now + int(float(args["seconds"]) * _S)
        elif fault == "foreign":
            faults.storm_from_ns, faults.storm_made = now, 0
            faults.storm_until_ns = now + int(float(args["seconds"]) * _S)
            faults.storm_per_s = float(args["per_s"])
        elif fault == "fail_sends":
            faults.fail_sends = int(args["count"])
        elif fault == "shift":
            iid = str(args["instrument"])
            faults.shift[iid] = faults.shift.get(iid, 0) + int(args["qty"])
        else:
            faults.stall_until_ns = faults.storm_until_ns = faults.fail_sends = 0
            faults.shift.clear()
        return faults.state()

    def note(self, record: Blob) -> None:
        """The gateway's reply to this step (``actors.step.Replies.keep``), committed with it."""
        self.journal.append(record)

    def commit(self) -> None:
        """Commit (the position reached included); a snapshot when one is due, after the
        reports and keys no retry or restart asks for again went (module docstring)."""
        self.journal.flush()
        if self.journal.due():
            self._trim()
            self.journal.snapshot(pickle.dumps(
                (self.venue, self.reports, self.report_base, self.sent, self.sent_orders,
                 self.submitted_count, self.replies.state(), self.archived_fills),
                protocol=pickle.HIGHEST_PROTOCOL))

    def _trim(self) -> None:
        """Drop the reports behind the driver's cursor but the latest :data:`KEEP_REPORTS`,
        and, once an hour of the venue's clock, the dedupe keys of commands sent longer than
        a day before and the fills made as long before (to the archive)."""
        floor = min(self._seen, self.reports_total - KEEP_REPORTS)
        if floor - self.report_base >= KEEP_REPORTS:
            self.reports = self.reports[floor - self.report_base:]
            self.report_base = floor
        now = self.venue.now_ns
        if now >= self._sweep_ns:
            self._sweep_ns = next_sweep(now)
            cutoff = self._sweep_ns - SWEEP_NS - DEFAULT_RETIRE_AFTER_NS
            self.sent = {k: ts for k, ts in self.sent.items() if ts > cutoff}
            self.sent_orders = [s for s in self.sent_orders if s[0] > cutoff]
            self.venue.release_fills(cutoff + 1, self._archive)

    def _archive(self, fills: list[OrderFilled]) -> None:
        """Append ``fills`` to the archive, synced (a :class:`DiskWriteError`: they stay)."""
        what = (f"the paper broker's fills not archived ({len(fills)} fills, first "
                f"{fills[0].fill_id})")
        self.archive.append(fills_frame(fills), what=what)
        self.archived_fills += [f.fill_id for f in fills]

    def _fill_ids(self) -> list[str]:
        """Every fill id, the archived ones' first, in order."""
        return [*self.archived_fills, *(f.fill_id for f in self.venue.fills_since(-1))]

    # --- views -----------------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        """The broker's view for the reconciler: positions, open orders, fills."""
        positions = self.venue.positions()
        for iid, qty in self.faults.shift.items():
            positions[iid] = positions.get(iid, 0) + qty
        return {
            "positions": {k: v for k, v in sorted(positions.items()) if v},
            "open_orders": [o.client_order_id for o in self.venue.open_orders()],
            "fills": self._fill_ids(),
        }

    def health(self) -> dict[str, Any]:
        """The watchdogs' sample, as a broker gateway's (``BrokerGateway.health``): the paper
        broker is in process and always connected; it owes answers, reports foreign orders or
        has its breaker open only when a rehearsal injected it (``faults``: what is on)."""
        faults = self.faults
        return {"broker": "paper", "connected": True,
                "breaker_open": not faults.breaker.allows_new_orders,
                "exec_waiting_since_ns": min(faults.awaiting.values(), default=None),
                "foreign_reports": faults.foreign, "last_report_ns": None, "unknown": 0,
                "unpriced_fees": {}, "faults": faults.state()}

    def request_reconcile(self) -> None:
        """The paper broker is this process's own venue: its reconciliation is clean unless
        its sends are failing (then the breaker stays open, as at a broker)."""
        self.faults.breaker.reconciled(clean=self.faults.fail_sends == 0)

    def state_hash(self) -> str:
        return state_hash({
            "market": self.market_count, "reports": self.reports_total,
            "submitted": self.submitted_count, "positions": self.venue.positions(),
            "open_orders": [o.client_order_id for o in self.venue.open_orders()],
            "fills": self._fill_ids(),
            "venue_now": self.venue.now_ns,
        })

    def fills(self) -> list[OrderFilled]:
        """Every fill of the session, archived ones first, each fill id once."""
        held = self.venue.fills_since(-1)
        ids = {f.fill_id for f in held}
        return [*(f for f in archived_fills(self.archive) if f.fill_id not in ids), *held]

    @property
    def submitted(self) -> list[str]:
        """The ids of the orders sent in the last day of the venue's clock, in order (each
        once, unless a retried call sent one twice)."""
        return [cid for _, cid in self.sent_orders]
