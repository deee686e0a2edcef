"""Journal before send: :class:`SendLog`, every broker adapter's record of what it sent and was
told, and how it stays bounded in a session that runs for weeks.

What a restart needs, and from where (``broker.<kind>.journal``, a :class:`Journal`):

* every order that may still be at the broker or may still be mentioned by it — the submit,
  its broker ids, whether it was sent, whether its outcome is unknown, whether it is closed,
  its fills — so it is never sent twice, a fill is counted once (by fill id), and the broker's
  events and reconciliations find their order;
* the reports from the driver's cursor on, in order, by index (the gateway hands them out);
* the positions the adapter's book starts from and, for the reconciler, every fill id.

:meth:`SendLog.compact` writes all of that as one snapshot and drops the journal's entries
before it. An order *retires* there (the gateway chooses which, ``actors.venues.gateway``):
closed, settled by a clean reconciliation, long enough ago that no broker lists it again, and
with every report of it behind the driver's cursor. A retired order leaves three things behind:
its fills' position change (folded into :attr:`SendLog.baseline`), its fill ids
(:attr:`SendLog.retired_fills`, what the reconciler compares with risk's) and one count
(:attr:`SendLog.submits`). Reports behind the cursor leave a count (:attr:`reports_base`).
Its fills themselves are appended, synced, to the archive beside the journal
(``broker.<kind>.fills``) before the journal drops them: a restart never reads it, the
session's files do (:meth:`SendLog.all_fills`: fills.csv lists every fill of the session,
however long it ran).

A journal write that fails (:class:`~runtime.errors.DiskWriteError`: the disk is full) is
kept in :attr:`SendLog.failure` and raised again by every later write: no order goes out after
it (:meth:`before_send` refuses before the broker call), and no report is handed out that the
journal does not hold; what was journaled before is untouched.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Final

import msgspec

from runtime.archive import Archive
from runtime.errors import DiskWriteError, InvariantError
from runtime.journal import Blob, Journal, JournalRecord
from runtime.messages import (
    CancelOrder,
    Command,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatusUnknown,
    OrderUpdated,
    SubmitOrder,
    decode,
    encode,
)

if TYPE_CHECKING:
    from pathlib import Path

    from actors.venues.reports import ReportBook

__all__ = ["OrderIds", "SendLog", "amend_key", "archived_fills", "fills_frame", "take_baseline"]

log = logging.getLogger("tradewind.venues.sendlog")

_IDS: Final = "venue.ids"
_UNKNOWN: Final = "venue.unknown"
_SENT: Final = "venue.sent"
_CLOSED: Final = "venue.closed"
_UNSENT: Final = "venue.unsent"
_BASELINE: Final = "venue.baseline"

#: a compaction is due once this many entries were journaled since the last snapshot, and at
#: least as many as the snapshot held (so each snapshot's writing is paid for by as many new
#: entries: the file stays within a few times what a restart needs)
COMPACT_MIN_ENTRIES: Final = 2000


class OrderIds(msgspec.Struct, kw_only=True):
    """Everything the adapter knows about one order, rebuilt from the journal after a restart."""

    command: SubmitOrder
    broker_ids: dict[str, str] = msgspec.field(default_factory=dict)
    sent: bool = False  # the send call returned (or raised): the broker may have it
    unknown: bool = False  # outcome unknown: never resend, reconcile
    closed: bool = False  # a terminal report was given (filled, canceled, rejected)
    closed_ns: int = 0  # when (wall clock): an order retires long after
    #: when (wall clock) the send call returned or raised: the broker's trading day of the
    #: order (a DAY order's expiry where the broker reports none); 0 before or from an older
    #: journal
    sent_ns: int = 0
    fills: list[OrderFilled] = msgspec.field(default_factory=list)  # fills reported


class _IdsRecord(msgspec.Struct, frozen=True):
    client_order_id: str
    ids: dict[str, str]
    at_ns: int = 0  # wall clock (a close's time)


class _BaselineRecord(msgspec.Struct, frozen=True):
    positions: dict[str, int]  # instrument id -> fixed-point quantity held before our fills


class _Snapshot(msgspec.Struct, kw_only=True):
    """What a restart needs (the module docstring), as of the snapshot's seq."""

    orders: list[OrderIds]
    amends: list[tuple[str, str, int]]
    baseline: dict[str, int] | None
    retired: int  # orders retired so far
    retired_fills: bytes  # their fill ids, a msgpack list, zlib-compressed (shared prefixes)
    reports: list[bytes]  # runtime.messages.encode of each report from reports_base on
    reports_base: int  # reports before the kept ones (all kinds) ...
    unknown_base: int  # ... of which OrderStatusUnknown
    last_report_seq: int


_REPORTS = (
    OrderAccepted,
    OrderRejected,
    OrderCanceled,
    OrderCancelRejected,
    OrderExpired,
    OrderUpdated,
    OrderStatusUnknown,
)


def amend_key(command: Command) -> tuple[str, str, int]:
    """The identity of a cancel or modify (a retried call carries the same one)."""
    return (type(command).__name__, command.client_order_id, command.ts_event)


class SendLog:
    """Journal-before-send over a :class:`runtime.journal.Journal` (one per adapter).

    With :meth:`report` as the report book's ``on_report``, every report is journaled as it is
    made: ``reports`` holds them, in order, from index :attr:`reports_base` on (the gateway
    hands them out by index), and ``fills`` per order are the reported fills."""

    def __init__(self, journal: Journal, *, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.journal, self.clock_ns = journal, clock_ns
        self.orders: dict[str, OrderIds] = {}
        self.reports: list[OrderEvent] = []
        self.reports_base = 0  # index of reports[0] among every report ever made
        self.unknown_base = 0  # OrderStatusUnknown among those before reports_base
        self.last_report_seq = 0
        self.amends: set[tuple[str, str, int]] = set()  # cancels/modifies journaled (sent)
        self.retired = 0  # orders compacted away
        self.retired_fills: list[str] = []  # their fill ids
        self._by_broker: dict[tuple[str, str], str] = {}
        # the positions the adapter's book starts from: the account's at the first
        # reconciliation, before any fill of ours (None until taken: a fresh journal), plus the
        # fills of retired orders; journaled, so a restart keeps the starting point
        self.baseline: dict[str, int] | None = None
        self.failure: DiskWriteError | None = None  # a write failed: nothing more goes out
        self._since = 0  # entries journaled since the latest snapshot
        self._held = 0  # records the latest snapshot holds
        self._archive_file = Archive(self.journal.path.with_suffix(".fills"))
        self._restore()

    # --- restore -----------------------------------------------------------------------------

    @property
    def archive(self) -> Path:
        """The retired orders' fills (``broker.<kind>.fills`` beside the journal)."""
        return self._archive_file.path

    def _restore(self) -> None:
        cut = self._archive_file.cut_torn_tail()  # a crash mid-append: that retirement again
        if cut:
            log.warning("%s: a torn tail of %d bytes cut off (an append cut short; the "
                        "journal still holds those orders)", self.archive, cut)
        snapshot, _, tail = self.journal.restore()
        if snapshot is not None:
            self._load(msgspec.msgpack.decode(snapshot, type=_Snapshot))
        for _, record in tail:
            self._apply(record)
            self._since += 1

    def _load(self, snap: _Snapshot) -> None:
        self.orders = {o.command.client_order_id: o for o in snap.orders}
        for order in self.orders.values():
            self._remember(order, dict(order.broker_ids))
        self.amends = set(snap.amends)
        self.baseline = snap.baseline
        self.retired = snap.retired
        self.retired_fills = msgspec.msgpack.decode(zlib.decompress(snap.retired_fills),
                                                    type=list[str])
        self.reports = [decode(b) for b in snap.reports]  # type: ignore[misc]
        self.reports_base, self.unknown_base = snap.reports_base, snap.unknown_base
        self.last_report_seq = snap.last_report_seq
        self._held = len(snap.reports) + sum(1 + len(o.fills) for o in snap.orders)

    def _apply(self, record: JournalRecord) -> None:
        if isinstance(record, SubmitOrder):
            self.orders[record.client_order_id] = OrderIds(command=record)
        elif isinstance(record, CancelOrder | ModifyOrder):
            self.amends.add(amend_key(record))
        elif isinstance(record, (*_REPORTS, OrderFilled)):
            self._reported(record)
        elif isinstance(record, Blob) and record.kind == _BASELINE:
            base = msgspec.msgpack.decode(record.payload, type=_BaselineRecord)
            self.baseline = dict(base.positions)
        elif isinstance(record, Blob):
            rec = msgspec.msgpack.decode(record.payload, type=_IdsRecord)
            order = self.orders.get(rec.client_order_id)
            if order is None:
                return
            if record.kind == _IDS:
                self._remember(order, rec.ids)
            elif record.kind == _SENT:
                order.sent, order.sent_ns = True, order.sent_ns or rec.at_ns
            elif record.kind == _UNKNOWN:
                order.unknown, order.sent_ns = True, order.sent_ns or rec.at_ns
            elif record.kind == _CLOSED:  # (a journal older than closing times: from now)
                order.closed, order.closed_ns = True, rec.at_ns or self.clock_ns()
            elif record.kind == _UNSENT:
                self._forget(rec.client_order_id)

    # --- writing -----------------------------------------------------------------------------

    def _write(self, record: JournalRecord) -> None:
        """Append ``record`` durably; a failure is kept and raised again by every later write."""
        if self.failure is not None:
            raise self.failure
        try:
            self.journal.append(record, durable=True)
        except DiskWriteError as exc:
            self.failure = exc
            log.critical("the send log cannot be written: no order goes out any more: %s", exc)
            raise
        self._since += 1

    @property
    def needs_baseline(self) -> bool:
        """No starting point yet and no order of ours: the next reconciliation takes one. (A
        journal with orders but no baseline predates baselines: it keeps the old rule.)"""
        return self.baseline is None and not self.orders and not self.retired

    def set_baseline(self, positions: dict[str, int]) -> None:
        """Journal the account's starting positions durably (taken once per journal)."""
        if self.baseline is not None:
            raise InvariantError("the baseline of this journal was taken already")
        start = dict(positions)
        self._write(Blob(_BASELINE, msgspec.msgpack.encode(_BaselineRecord(start))))
        self.baseline = start

    def before_send(self, command: Command) -> bool:
        """Append ``command`` durably; ``False`` when a submit with this id was journaled before
        (it must not be sent again: reconcile instead). A failed write raises
        (:class:`DiskWriteError`): the command must not be sent."""
        if isinstance(command, SubmitOrder):
            if command.client_order_id in self.orders:
                return False
            self._write(command)
            self.orders[command.client_order_id] = OrderIds(command=command)
        else:
            self._write(command)
            self.amends.add(amend_key(command))
        return True

    def report(self, report: OrderEvent) -> None:
        """Journal a report the moment it is made (durably): a fill also counts for its order
        (dedupe and positions after a restart)."""
        self._write(report)
        self._reported(report)

    def _reported(self, report: OrderEvent) -> None:
        self.reports.append(report)
        self.last_report_seq = max(self.last_report_seq, report.seq)
        if isinstance(report, OrderFilled):
            order = self.orders.get(report.client_order_id)
            if order is not None:
                order.fills.append(report)

    def _blob(self, kind: str, client_order_id: str, ids: dict[str, str] | None = None,
              at_ns: int = 0) -> None:
        payload = msgspec.msgpack.encode(_IdsRecord(client_order_id, ids or {}, at_ns))
        self._write(Blob(kind, payload))

    def sent(self, client_order_id: str) -> None:
        order = self._order(client_order_id)
        now = self.clock_ns()
        self._blob(_SENT, client_order_id, at_ns=now)
        order.sent, order.sent_ns = True, order.sent_ns or now

    def broker_ids(self, client_order_id: str, **ids: str) -> None:
        """Save broker ids (order id, perm id, seqno, ordno...) the moment they are known."""
        order = self._order(client_order_id)
        new = {k: str(v) for k, v in ids.items() if v and order.broker_ids.get(k) != str(v)}
        if new:
            self._blob(_IDS, client_order_id, new)
            self._remember(order, new)

    def unsent(self, client_order_id: str) -> None:
        """The broker refused the send before processing it (a rate limit's 429): the order
        provably did not go in, so it may be sent again (``before_send`` accepts it)."""
        order = self._order(client_order_id)
        if order.sent or order.unknown or order.fills:
            raise InvariantError(f"{client_order_id} may be at the broker: never unsent")
        self._blob(_UNSENT, client_order_id)
        self._forget(client_order_id)

    def mark_unknown(self, client_order_id: str) -> None:
        order = self._order(client_order_id)
        now = self.clock_ns()
        self._blob(_UNKNOWN, client_order_id, at_ns=now)
        order.unknown, order.sent_ns = True, order.sent_ns or now

    def closed(self, client_order_id: str) -> None:
        order = self.orders.get(client_order_id)
        if order is not None and not order.closed:
            now = self.clock_ns()
            self._blob(_CLOSED, client_order_id, at_ns=now)
            order.closed, order.closed_ns = True, now

    # --- compaction --------------------------------------------------------------------------

    @property
    def submits(self) -> int:
        """Submits journaled in this journal's life (retired ones included): a counter for
        broker tags that must not repeat."""
        return len(self.orders) + self.retired

    @property
    def compaction_due(self) -> bool:
        return self._since >= max(COMPACT_MIN_ENTRIES, self._held)

    def compact(self, *, retire: Iterable[str] = (), reports_floor: int | None = None
                ) -> list[str]:
        """Retire the closed orders of ``retire`` whose reports all lie before
        ``reports_floor`` (an index among every report made; default: all of them), drop the
        reports before it, then snapshot what is left and drop the journal's entries. Returns
        the client order ids retired. An order that is not closed is an :class:`InvariantError`.
        """
        end = self.reports_base + len(self.reports)
        floor = end if reports_floor is None else max(self.reports_base,
                                                      min(reports_floor, end))
        last = {r.client_order_id: self.reports_base + i for i, r in enumerate(self.reports)}
        gone = []
        for cid in retire:
            order = self.orders.get(cid)
            if order is None:
                continue
            if not order.closed:
                raise InvariantError(f"order {cid} is not closed: it cannot retire")
            if last.get(cid, -1) < floor:
                gone.append(cid)
        if gone:
            self._retire(gone)
        dropped = self.reports[:floor - self.reports_base]
        self.unknown_base += sum(isinstance(r, OrderStatusUnknown) for r in dropped)
        self.reports, self.reports_base = self.reports[len(dropped):], floor
        self._snapshot()
        return gone

    def _retire(self, cids: list[str]) -> None:
        self._archive([f for cid in cids for f in self.orders[cid].fills])
        start = dict(self.baseline or {})
        for cid in cids:
            for fill in self.orders[cid].fills:
                iid = fill.instrument_id
                start[iid] = start.get(iid, 0) + fill.position_change
                self.retired_fills.append(fill.fill_id)
            self._forget(cid)
        self.retired += len(cids)
        self.baseline = {iid: qty for iid, qty in start.items() if qty}
        self.amends = {key for key in self.amends if key[1] in self.orders}

    def _snapshot(self) -> None:
        if self.failure is not None:
            raise self.failure
        snap = _Snapshot(orders=list(self.orders.values()), amends=sorted(self.amends),
                         baseline=self.baseline, retired=self.retired,
                         retired_fills=zlib.compress(msgspec.msgpack.encode(self.retired_fills)),
                         reports=[encode(r) for r in self.reports],
                         reports_base=self.reports_base, unknown_base=self.unknown_base,
                         last_report_seq=self.last_report_seq)
        upto = self.journal.last_seq
        try:
            self.journal.snapshot(msgspec.msgpack.encode(snap), upto_seq=upto)
            self.journal.compact(upto)
        except DiskWriteError as exc:
            self.failure = exc
            log.critical("the send log cannot be written: no order goes out any more: %s", exc)
            raise
        self._since = 0
        self._held = len(snap.reports) + sum(1 + len(o.fills) for o in snap.orders)

    def _archive(self, fills: list[OrderFilled]) -> None:
        """Append ``fills`` to the archive and sync it, before the journal drops them (a crash
        in between retires them again: :meth:`all_fills` reads each fill id once)."""
        if self.failure is not None:
            raise self.failure
        if not fills:
            return
        try:
            what = (f"retired orders' fills not archived ({len(fills)} fills, first "
                    f"{fills[0].fill_id})")
            self._archive_file.append(fills_frame(fills), what=what)
        except DiskWriteError as exc:
            self.failure = exc
            log.critical("the send log cannot be written: no order goes out any more (the "
                         "orders stay in the journal): %s", exc)
            raise

    def all_fills(self) -> list[OrderFilled]:
        """Every fill this log was told of, retired orders' included, in report order."""
        held = [f for o in self.orders.values() for f in o.fills]
        ids = {f.fill_id for f in held}
        return sorted([*(f for f in archived_fills(self._archive_file)
                         if f.fill_id not in ids), *held],
                      key=lambda f: f.seq)

    # --- reads -------------------------------------------------------------------------------

    def find(self, kind: str, broker_id: str) -> str | None:
        """The client order id behind a broker id (e.g. ``("perm_id", "123")``)."""
        return self._by_broker.get((kind, str(broker_id)))

    def unknown(self) -> Iterator[OrderIds]:
        return (o for o in self.orders.values() if o.unknown)

    def _forget(self, client_order_id: str) -> None:
        order = self.orders.pop(client_order_id)
        for kind, value in order.broker_ids.items():
            if self._by_broker.get((kind, value)) == client_order_id:
                del self._by_broker[(kind, value)]

    def _remember(self, order: OrderIds, ids: dict[str, str]) -> None:
        order.broker_ids.update(ids)
        for kind, value in ids.items():
            self._by_broker[(kind, value)] = order.command.client_order_id

    def _order(self, client_order_id: str) -> OrderIds:
        try:
            return self.orders[client_order_id]
        except KeyError:
            raise InvariantError(f"no journaled submit for {client_order_id}") from None


def fills_frame(fills: list[OrderFilled]) -> bytes:
    """An archive's frame of ``fills`` (:func:`archived_fills` reads it)."""
    return msgspec.msgpack.encode([encode(f) for f in fills])


def archived_fills(archive: Archive) -> list[OrderFilled]:
    """The fills of ``archive``'s frames, each fill id once, in the order archived (a fill
    archived again after a crash between its append and the snapshot is read once)."""
    fills: list[OrderFilled] = []
    seen: set[str] = set()
    for frame in archive.frames():
        for raw in msgspec.msgpack.decode(frame, type=list[bytes]):
            fill = decode(raw)
            if not isinstance(fill, OrderFilled):
                raise InvariantError(f"{archive.path}: a {type(fill).__name__} among the "
                                     "fills")
            if fill.fill_id not in seen:
                seen.add(fill.fill_id)
                fills.append(fill)
    return fills


def take_baseline(
    send_log: SendLog, book: ReportBook, broker: dict[str, int], instruments: Iterable[str]
) -> None:
    """At the first reconciliation of a fresh journal, what the broker holds beyond our fills was
    there before us: journal it (a restart keeps it) and count it into the book's positions."""
    if not send_log.needs_baseline:
        return
    ours = book.positions()
    start = {i: broker.get(i, 0) - ours.get(i, 0) for i in sorted(set(instruments))}
    start = {i: q for i, q in start.items() if q}
    send_log.set_baseline(start)
    book.set_baseline(start)
