"""The gateway actor's broker side: an IB or Shioaji adapter behind the calls the session's driver
makes to the paper broker (``actors.venues.paper.PaperVenue``: ``send``, ``apply``, ``reports_due``,
``drain``, ``view``, ``fills``...), so :class:`actors.gateway.GatewayActor` runs either.

What survives a SIGKILL of the gateway's process, and how (``<journal_dir>/<session>/``):

* ``gateway.journal`` — every command the gateway received, appended (fsync) *before* the
  adapter sees it. A command a retried call brings again is recognised and dropped; a command
  received but never handed to the broker (it waited for a rate-limit token) is sent after the
  restart — it provably never left. Every :attr:`BrokerGateway.compact_every` commands a
  snapshot keeps the latest :attr:`BrokerGateway.keep_commands` (what a retried step can bring
  again) and any older one the adapter has not taken yet, and the entries before it go: the
  file stays bounded however long the session runs.
* ``broker.<kind>.journal`` — the adapter's :class:`~actors.venues.send_log.SendLog`: each
  order journaled (fsync) before it is sent, broker ids as they come, and **every report the
  moment it is made**. The reports handed to the session are exactly that list, by index, so a
  report made just before the crash is handed out after it, and none twice. An order journaled
  before the crash is never sent again: the adapter reconciles instead (open orders,
  executions, positions), and reports what the broker did meanwhile, deduplicated by fill id.
  When the log has grown by as much as its last snapshot held, :meth:`BrokerGateway.commit`
  compacts it (:meth:`BrokerGateway.compact_send_log`): orders closed more than
  :attr:`~BrokerGateway.retire_after_s` ago retire — when the adapter is settled (connected,
  breaker closed, its last reconciliation clean, none pending), when no command of the
  journal above names them and every report of theirs is behind the driver's cursor as it was
  :attr:`~BrokerGateway.cursor_settle_s` ago — and so do the reports behind that cursor.

A journal that cannot be written (:class:`~runtime.errors.DiskWriteError`: the disk is
full), or the session log in this process (:func:`actors.logs.write_failure`), stops the
gateway's sending for good: the commands of the step are not handed to the
adapter, the error (naming the file and what was not written) is raised to the step, so the
session's feed stops with it, and every later send raises it again; what both journals held
before is untouched, and a restart (space freed) reconciles as after a crash.

Replayed data and broker time: the driver's timers and market data are data time; the broker
runs on the wall clock. There is no lockstep against a broker (config validation refuses it).
``OrderStatusUnknown`` (a send whose outcome is unknown) goes to the log and the view, never to
the kernel: the adapter's reconciliation settles the order with an ordinary report.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import msgspec

from actors.journals import open_journal
from actors.logs import write_failure
from actors.venues.common import broker_positions
from actors.venues.send_log import SendLog, amend_key
from runtime.errors import DiskWriteError, InvariantError
from runtime.messages import (
    CancelOrder,
    MarketData,
    Message,
    ModifyOrder,
    OrderEvent,
    OrderFilled,
    OrderStatusUnknown,
    OrderType,
    SubmitOrder,
    decode,
    encode,
)
from runtime.statehash import state_hash

__all__ = ["BrokerGateway", "command_key"]

log = logging.getLogger("tradewind.venues.gateway")
_TERMINAL = ("filled", "canceled", "rejected", "expired", "closed")


def _commands(snapshot: bytes | None) -> list[Message]:
    """The commands a ``gateway.journal`` snapshot kept (:meth:`BrokerGateway.compact`)."""
    if snapshot is None:
        return []
    return [decode(b) for b in msgspec.msgpack.decode(snapshot, type=list[bytes])]


def _link_up(venue: Any) -> bool:
    """The broker link: CCXT and Alpaca say ``connected``; IB the link and the client
    (``link_up``); Shioaji the logged-in session."""
    up = getattr(venue, "connected", None)
    if up is None:
        up = getattr(venue, "link_up", None)
        up = getattr(venue, "session_up", False) if up is None else up
    return bool(up)


def _lock(venue: Any) -> contextlib.AbstractContextManager[Any]:
    """The adapter's lock where its client's callbacks run on other threads (re-entrant)."""
    return cast(contextlib.AbstractContextManager[Any],
                getattr(venue, "lock", contextlib.nullcontext()))


def command_key(cmd: Message) -> tuple[Any, ...]:
    if isinstance(cmd, SubmitOrder):
        return ("submit", cmd.client_order_id)
    return (type(cmd).__name__, getattr(cmd, "client_order_id", ""), cmd.ts_event, encode(cmd))


class BrokerGateway:
    """A broker adapter (through a link: :mod:`actors.venues.links`) behind the driver's calls.

    ``open_link(send_log)`` builds the link (the adapter on its own thread, connected and
    reconciled, or reconnecting in the background)."""

    #: the latest commands a snapshot keeps (a retried step's come again at once) ...
    keep_commands = 1000
    #: ... taken every this many commands
    compact_every = 1000
    #: an order leaves the send log this long after it closed: beyond the days a broker lists
    #: again on a reconnect (IB's executions, Shioaji's trades: the day's), so no event after a
    #: restart names an order the log no longer knows
    retire_after_s = 86_400.0
    #: reports the driver had taken this long ago are behind any cursor it asks from again (the
    #: feed saves what it delivered several times a second)
    cursor_settle_s = 60.0

    def __init__(self, open_link: Callable[[SendLog], Any], folder: Path, *, kind: str,
                 settle_s: float = 5.0, clock_ns: Callable[[], int] = time.time_ns) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.kind, self.settle_s, self.clock_ns = kind, settle_s, clock_ns
        self.journal = open_journal(folder / "gateway.journal")
        self.send_log = SendLog(open_journal(folder / f"broker.{kind}.journal"),
                                clock_ns=clock_ns)
        self.failure: DiskWriteError | None = None  # a journal write failed: sending stops
        snapshot, _, tail = self.journal.restore()
        received = _commands(snapshot) + [cast(Message, record) for _, record in tail]
        self.commands = received  # received, in order, since the snapshot's oldest kept
        self._since = len(received)  # commands journaled since the latest snapshot
        self.received = {command_key(c) for c in received}
        self.reports: list[OrderEvent] = []  # handed out by index (the driver's cursor) ...
        # ... from this index on (those before were compacted away)
        self.report_base = self.send_log.reports_base - self.send_log.unknown_base
        self.unknown: list[OrderStatusUnknown] = []
        self.awaiting: dict[str, int] = {}  # client order id -> when a command for it went out
        self.last_report_ns: int | None = None
        self._seen = self.send_log.reports_base  # the send log's reports pulled (all kinds)
        self._cursors: deque[tuple[int, int]] = deque()  # (ns, the driver's reports_seen)
        self.market_count = 0
        self.link = open_link(self.send_log)
        self.venue = self.link.venue
        self._pull()
        self.link.call(self.venue.book.resume_seq, self.send_log.last_report_seq)
        unsent = [c for c in received if not self._handed(c)]
        if unsent:
            log.info("gateway restart: %d command(s) received but never sent: sending", len(unsent))
            self.link.call(self._hand, unsent)

    # --- commands --------------------------------------------------------------------------

    def _handed(self, cmd: Message) -> bool:
        """Did the adapter take ``cmd`` before a restart (so it must not be handed again)?"""
        if isinstance(cmd, SubmitOrder):
            cid = cmd.client_order_id
            return cid in self.send_log.orders or any(
                r.client_order_id == cid for r in self.reports)
        if isinstance(cmd, CancelOrder | ModifyOrder):
            if amend_key(cmd) in self.send_log.amends:
                return True
            order = self.venue.book.get(cmd.client_order_id)
            return order is None or order.terminal in _TERMINAL
        return True

    def _hand(self, cmds: Sequence[Message]) -> None:
        """On the adapter's thread: each command to the port (wall-clock send time)."""
        for cmd in cmds:
            now = time.time_ns()
            if isinstance(cmd, SubmitOrder | CancelOrder | ModifyOrder):
                self.awaiting.setdefault(cmd.client_order_id, now)  # answered: any report of it
            if isinstance(cmd, SubmitOrder):
                self.venue.submit(cmd, now)
            elif isinstance(cmd, CancelOrder):
                self.venue.cancel(cmd, now)
            elif isinstance(cmd, ModifyOrder):
                self.venue.modify(cmd, now)

    def send(self, cmds: Sequence[Message], *, lockstep: bool = False) -> int:
        """Journal (fsync) then hand to the broker; a command received before is dropped. A
        journal that cannot be written raises :class:`DiskWriteError`, now and for every
        later call: nothing is handed to the broker after it."""
        self._check_writable()
        fresh = [c for c in cmds if command_key(c) not in self.received]
        if not fresh:
            return 0
        try:
            for cmd in fresh:
                self.journal.append(cmd)  # type: ignore[arg-type]
            self.journal.flush(durable=True)
        except DiskWriteError as exc:
            self._failed(exc)
            raise
        self.received.update(command_key(c) for c in fresh)
        self.commands.extend(fresh)
        self._since += len(fresh)
        try:
            self.link.call(self._hand, fresh)
        except DiskWriteError as exc:  # the adapter's send log refused: nothing went out
            self._failed(exc)
            raise
        self._check_writable()  # refused on the adapter's own thread (its sender)
        return len(fresh)

    def _check_writable(self) -> None:
        if self.failure is None:
            failure = self.send_log.failure or write_failure()
            if failure is not None:
                self._failed(failure)
        if self.failure is not None:
            raise self.failure

    def _failed(self, exc: DiskWriteError) -> None:
        if self.failure is None:
            self.failure = exc
            log.critical("the %s gateway stops sending: %s", self.kind, exc)

    # --- reports ---------------------------------------------------------------------------

    def _pull(self) -> None:
        """Reports journaled since the last look (the adapter's send queue pumped first)."""
        if getattr(self, "venue", None) is not None:
            self.link.call(self.venue.drain_reports)
        made, base = self.send_log.reports, self.send_log.reports_base
        new = made[self._seen - base:]
        self._seen = base + len(made)
        if new:
            self.last_report_ns = time.time_ns()
        for report in new:
            self.awaiting.pop(report.client_order_id, None)
            if isinstance(report, OrderStatusUnknown):
                log.warning("order %s: outcome unknown (%s): reconciling",
                            report.client_order_id, report.reason)
                self.unknown.append(report)
            else:
                self.reports.append(report)

    def _in_flight(self) -> bool:
        """Something the broker will still answer: an order not acknowledged yet, a market
        order not filled, a cancel not confirmed, a command waiting for a token."""
        def check() -> bool:
            if len(self.venue.queue):
                return True
            canceling: set[str] = getattr(self.venue, "_cancel_requested", set())
            return any(o.is_open and (not o.acked or o.command.order_type is OrderType.MARKET
                                      or cid in canceling)
                       for cid, o in self.venue.book.orders.items())
        return bool(self.link.call(check))

    def quiet(self) -> bool:
        def check() -> bool:
            return not len(self.venue.queue) and not any(
                o.is_open for o in self.venue.book.orders.values())
        return bool(self.link.call(check))

    # --- the driver's calls ------------------------------------------------------------------

    def apply(self, index: int, msgs: Sequence[MarketData]) -> None:
        """The feed's market data reached here: counted (the broker has its own)."""
        self.market_count = max(self.market_count, index + len(msgs))

    def idle(self) -> bool:
        return not self._in_flight()

    def drain(self, reports_seen: int) -> list[OrderEvent] | None:
        """The reports still to come: waits up to ``settle_s`` while the broker owes answers."""
        deadline = time.monotonic() + self.settle_s
        while True:
            self._pull()
            if reports_seen < self.report_base + len(self.reports):
                return self._after(reports_seen)
            if time.monotonic() >= deadline or not self._in_flight():
                self._pull()  # what settled between the look and the check
                return self._after(reports_seen) or None
            time.sleep(0.02)

    def reports_due(self, reports_seen: int) -> list[OrderEvent]:
        """Real time: the reports after the first ``reports_seen`` that have arrived."""
        self._pull()
        return self._after(reports_seen)

    def _after(self, reports_seen: int) -> list[OrderEvent]:
        """The reports from index ``reports_seen`` on; the driver's cursor noted."""
        if reports_seen < self.report_base:
            raise InvariantError(
                f"the driver asks for reports from {reports_seen}; the gateway holds them from "
                f"{self.report_base} on (the send log's compaction dropped those before)")
        now = self.clock_ns()
        if not self._cursors or now - self._cursors[-1][0] >= 1_000_000_000:
            self._cursors.append((now, reports_seen))
        settled = now - int(self.cursor_settle_s * 1e9)
        while len(self._cursors) > 1 and self._cursors[1][0] <= settled:
            self._cursors.popleft()  # the oldest kept is the newest one settled
        return self.reports[reports_seen - self.report_base:]

    def _cursor_floor(self) -> int:
        """Reports every cursor the driver may ask from again is past (its lowest since the
        newest one at least :attr:`cursor_settle_s` old); the base when none is that old."""
        settled = self.clock_ns() - int(self.cursor_settle_s * 1e9)
        if not self._cursors or self._cursors[0][0] > settled:
            return self.report_base
        return max(self.report_base, min(seen for _, seen in self._cursors))

    def commit(self) -> None:
        try:
            self.journal.flush()
            if self._since >= self.compact_every:
                self.compact()
            if self.send_log.compaction_due and self.send_log.failure is None:
                self.compact_send_log()
        except DiskWriteError as exc:
            self._failed(exc)
            raise

    def compact(self) -> None:
        """A snapshot of the commands a restart still needs (the latest
        :attr:`keep_commands`, and older ones the adapter has not taken), then the entries
        before it go."""
        old, recent = self.commands[:-self.keep_commands], self.commands[-self.keep_commands:]
        pending = self.link.call(lambda: [c for c in old if not self._handed(c)])
        kept = [*pending, *recent]
        upto = self.journal.last_seq
        self.journal.snapshot(msgspec.msgpack.encode([encode(c) for c in kept]), upto_seq=upto)
        self.journal.compact(upto)
        self.commands, self._since = kept, 0
        self.received = {command_key(c) for c in kept}

    def compact_send_log(self) -> list[str]:
        """Retire what no restart needs from the send log (the module docstring), snapshot the
        rest and drop the log's entries; the client order ids retired."""
        window = {c.client_order_id for c in self.commands if isinstance(c, SubmitOrder)}
        closed_by = self.clock_ns() - int(self.retire_after_s * 1e9)
        handed = self._cursor_floor()

        def run() -> list[str]:
            send_log, book = self.send_log, self.venue.book
            with _lock(self.venue):  # Shioaji's callbacks report from threads of their own
                retire = [cid for cid, o in send_log.orders.items()
                          if o.closed and o.closed_ns <= closed_by and cid not in window
                          and ((t := book.get(cid)) is None or t.terminal)
                          ] if self._settled() else []
                gone = send_log.compact(retire=retire, reports_floor=self._log_index(handed))
                book.retire(gone)
                return gone

        gone: list[str] = self.link.call(run)
        base = self.send_log.reports_base - self.send_log.unknown_base
        self.reports, self.report_base = self.reports[base - self.report_base:], base
        retired = set(gone)
        self.unknown = [u for u in self.unknown if u.client_order_id not in retired]
        if gone:
            log.info("send log compacted: %d order(s) retired, reports kept from %d",
                     len(gone), base)
        return gone

    def _log_index(self, handed: int) -> int:
        """The send log's index of the ``handed``-th report handed out (its reports count the
        unknown outcomes too, which are never handed)."""
        send_log = self.send_log
        count = send_log.reports_base - send_log.unknown_base
        for i, report in enumerate(send_log.reports):
            if count >= handed:
                return send_log.reports_base + i
            count += not isinstance(report, OrderStatusUnknown)
        return send_log.reports_base + len(send_log.reports)

    def _settled(self) -> bool:
        """On the adapter's thread: connected, breaker closed, no reconciliation pending, the
        last one clean."""
        venue = self.venue
        breaker = getattr(venue, "breaker", None)
        drifts = getattr(self._reconciled_by(), "last_drifts", [])
        return (_link_up(venue) and (breaker is None or breaker.allows_new_orders)
                and not getattr(venue, "reconcile_requested", False) and not drifts)

    def _reconciled_by(self) -> Any:
        """What holds the adapter's last reconciliation (``last_drifts``, ``reconciled``): its
        reconciler, or the venue that reconciles itself."""
        reconciler = getattr(self.venue, "reconciler", None)
        return reconciler if hasattr(reconciler, "last_drifts") else self.venue

    # --- views -----------------------------------------------------------------------------

    @property
    def submitted(self) -> list[str]:
        return list(self.send_log.orders)

    def view(self) -> dict[str, Any]:
        """The broker's view for the reconciler: positions, open orders, fills, and where the
        broker's own positions stood apart from our fills at its last reconciliation."""
        self._pull()

        def read() -> dict[str, Any]:  # one hop to the adapter's thread for all of it
            with _lock(self.venue):  # the retired fills' ids are kept apart (no archive read)
                held = [f.fill_id for o in self.send_log.orders.values() for f in o.fills]
            return {"positions": self.venue.positions(),
                    "open_orders": [o.client_order_id for o in self.venue.open_orders()],
                    "fills": self.send_log.retired_fills + held,
                    # the broker's own positions apart from our fills, by its last reconciliation
                    "broker_positions": broker_positions(self._reconciled_by())}

        view: dict[str, Any] = self.link.call(read)
        return {**view, "broker": self.kind,
                "unknown": [u.client_order_id for u in self.unknown]}

    def fills(self) -> list[OrderFilled]:
        """Every fill of the session, retired orders' included (``SendLog.all_fills``), in
        report order."""
        def read() -> list[OrderFilled]:
            with _lock(self.venue):
                return self.send_log.all_fills()
        return list(self.link.call(read))

    def health(self) -> dict[str, Any]:
        """What the watchdogs and metrics read (wall clock, ns): the broker link, the oldest
        command the broker has not answered, reports about orders never sent, the last report,
        fees charged in an asset no report could value (``unpriced_fees``: currency -> total).
        Called without the actor's lock (``actors.base``), beside a step: it reads what the
        steps' pulls left and asks the adapter on its own thread, and changes nothing."""

        def read() -> tuple[bool, int, bool, dict[str, str]]:
            venue = self.venue
            up = _link_up(venue)
            breaker = getattr(venue, "breaker", None)
            blocked = breaker is not None and not breaker.allows_new_orders
            unpriced = {c: str(v) for c, v in sorted(venue.book.unpriced_fees.items())}
            return bool(up), int(venue.book.foreign), blocked, unpriced

        connected, foreign, breaker_open, unpriced = self.link.call(read)
        return {"broker": self.kind, "connected": connected, "breaker_open": breaker_open,
                "exec_waiting_since_ns": min(list(self.awaiting.values()), default=None),
                "foreign_reports": foreign, "last_report_ns": self.last_report_ns,
                "unknown": len(self.unknown), "unpriced_fees": unpriced,
                "journal_error": None if self.failure is None else str(self.failure)}

    def request_reconcile(self) -> None:
        """Ask the adapter to reconcile at its next turn (an unknown-order storm)."""
        def ask() -> None:
            self.venue.reconcile_requested = True
        self.link.call(ask)

    def state_hash(self) -> str:
        view = self.view()
        return state_hash({"reports": self.report_base + len(self.reports),
                           "submitted": self.submitted,
                           "positions": view["positions"], "open_orders": view["open_orders"],
                           "fills": view["fills"]})

    def close(self) -> None:
        self.link.close()
        self.journal.close()
