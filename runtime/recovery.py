"""Components behind a write-ahead journal whose market data lives once, in the feed's log.

Market data is durable in one place, the feed's log, where it has an index (0, 1, 2, ...). A
component journals only its *own* inputs (answers, reports, intents, timers, operator actions,
start and stop) and, between them, the feed position it reached: a small *marker* record
(:data:`MARK`: the index after the last market message applied, and that message's
``ts_event`` and ``seq``). :class:`FeedJournal` writes a marker lazily, just before the next
own input or the next commit, so the journal's order is the order things happened::

    journal:  mark(3)  OrderAccepted  mark(7)  TimerFired  mark(8) ...
    replay:   feed[0:3]  OrderAccepted  feed[3:7]  TimerFired  feed[7:8] ...

An owner that skips market messages (a real-time step's conflated quotes and book updates,
which a later message of the same kind and instrument supersedes) still moves its position over
them (:meth:`FeedJournal.market`), and :meth:`FeedJournal.drop` notes their indices before the
marker that covers them (a :data:`DROP` record); a replay hands the owner the data up to that
marker without them, in runs of consecutive indices, so it re-reads exactly what it took.

A snapshot holds the component's whole state (compressed) and its feed position; it is taken
at the first commit after the inputs since the last one (own journal entries plus market
messages) reach ``snapshot_every`` (never in the middle of the owner's unit of work), and the
journal entries it covers are deleted (compaction). A restore reads the latest snapshot, then
replays the tail: each marker re-reads the market data up to it from the feed's log
(:class:`FeedLog`, by index), checks that the last message read is the one the marker names,
and applies it; the other records are applied as they are. So a restore costs one snapshot
and about ``snapshot_every`` inputs, however long the component ran.

Each snapshot carries the version of its owner's state (``runtime.snapshots``): a restore
that finds another version, or a snapshot that does not load, rebuilds an owner whose state is
the feed's log's alone (a book) from the feed's index 0, and refuses any other owner with a
:class:`DataError` naming its journal and both versions.

A feed log that is missing, corrupt, shorter than a marker, or holds another message where a
marker expects one is a :class:`~runtime.errors.DataError`: nothing is ever silently skipped.

:class:`JournaledKernel` puts a :class:`~runtime.kernel.Kernel` behind a :class:`FeedJournal`;
its snapshot is the pickled kernel (strategies included: a strategy's state is captured whole,
whatever it keeps) and its owner's latest record of each kind. A kernel that does not pickle
cannot be snapshotted: :func:`check_snapshot` says so, naming its strategies, before a session
starts. Snapshots are read back only from the owner's own journal (pickle trusts its input).
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Final, Protocol

from runtime.errors import ConfigError, DataError, InvariantError
from runtime.journal import Blob, Journal, JournalReader, JournalRecord
from runtime.kernel import Kernel
from runtime.messages import (
    AuxData,
    Bar,
    BookDeltas,
    BookSnapshot,
    BorrowRate,
    FundingRate,
    IndexMarkPrice,
    MarketData,
    Message,
    OpenInterest,
    QuoteTick,
    TradeTick,
)
from runtime.snapshots import HEADER_SIZE, SNAPSHOT_VERSION, load_state, pack, read_header

__all__ = ["DROP", "MARK", "FeedJournal", "FeedLog", "JournaledKernel", "check_snapshot",
           "snapshot_position"]

MARK: Final = "feed.mark"
DROP: Final = "feed.drop"  # feed indices the owner skipped, before the marker covering them
#: what comes from the feed's log (market and auxiliary data): never journaled again here
_MARKET = (QuoteTick, TradeTick, Bar, BookDeltas, BookSnapshot,
           FundingRate, OpenInterest, IndexMarkPrice, BorrowRate)
_START = "kernel.start"
_STOP = "kernel.stop"
_POSITION = struct.Struct(">qqq")  # position, ts_event and seq of the message before it


class FeedLog(Protocol):
    """The feed's durable market data, by index."""

    def read(self, start: int, stop: int) -> Sequence[MarketData]:
        """Messages ``start`` .. ``stop - 1``; a :class:`DataError` when it cannot."""
        ...


class FeedJournal:
    """A component's journal of its own inputs and the feed position it reached (see the
    module docstring). The owner calls :meth:`market` for each market message it applies
    (the feed's message at :attr:`position`), :meth:`append` for its own inputs, :meth:`flush`
    before it answers, and :meth:`snapshot` when :meth:`due`."""

    def __init__(self, journal: Journal, *, snapshot_every: int, position: int = 0,
                 last: tuple[int, int] = (0, 0), since: int = 0,
                 version: int = SNAPSHOT_VERSION) -> None:
        if snapshot_every < 1:
            raise ConfigError(f"snapshot_every must be >= 1, got {snapshot_every}",
                              field="snapshot_every")
        self.journal = journal
        self.snapshot_every = snapshot_every
        self.position = position  # feed index of the next market message
        self._marked = position  # the position the journal (or the snapshot) holds
        self._last = last  # ts_event and seq of the message before ``position``
        self._since = since  # inputs since the latest snapshot
        self.version = version  # the owner's state version its snapshots are written as

    def market(self, msg: MarketData | AuxData) -> None:
        """``msg`` (the feed's message at :attr:`position`) is being applied."""
        self.position += 1
        self._last = (msg.ts_event, msg.seq)
        self._since += 1

    def reach(self, index: int, msg: MarketData) -> None:
        """The feed's messages up to ``index`` (``msg``) are applied, as far as the owner
        wants them (a book takes its instrument's only)."""
        self._since += index + 1 - self.position
        self.position = index + 1
        self._last = (msg.ts_event, msg.seq)

    def append(self, record: JournalRecord, *, durable: bool = False) -> int:
        """An own input, after a marker for the market data applied since the last one."""
        self._mark()
        self._since += 1
        return self.journal.append(record, durable=durable)

    def note(self, record: JournalRecord) -> None:
        """A record about the market data applied since the last marker (the book views they
        were read with): journaled before that marker, so a replay has it before the data."""
        self._since += 1
        self.journal.append(record)

    def drop(self, indices: Sequence[int]) -> None:
        """The market messages at feed ``indices`` (ascending, passed over with :meth:`market`
        since the last marker) were skipped, not applied: noted before the marker, so a
        replay skips them too."""
        if indices:
            self.note(Blob(DROP, struct.pack(f">{len(indices)}q", *indices)))

    def flush(self, *, durable: bool = False) -> None:
        """Commit (the position reached included): call before answering."""
        self._mark()
        self.journal.flush(durable=durable)

    def close(self) -> None:
        """Flush (the position reached included) and close the journal."""
        self.flush()
        self.journal.close()

    def due(self) -> bool:
        return self._since >= self.snapshot_every

    def snapshot(self, state: bytes) -> None:
        """``state`` as of now (every input so far and :attr:`position`); the journal
        entries it covers are deleted."""
        upto = self.journal.last_seq
        self.journal.snapshot(pack(state, version=self.version, position=self.position,
                                   last=self._last), upto_seq=upto)
        self.journal.compact(upto)
        self._marked = self.position
        self._since = 0

    def _mark(self) -> None:
        if self.position != self._marked:
            self.journal.append(Blob(MARK, _POSITION.pack(self.position, *self._last)))
            self._marked = self.position

    @classmethod
    def restore(
        cls,
        journal: Journal,
        feed: FeedLog,
        *,
        snapshot_every: int,
        load: Callable[[bytes], None],
        market: Callable[[int, Sequence[MarketData]], None],
        record: Callable[[JournalRecord], None],
        version: int = SNAPSHOT_VERSION,
        rebuild: Callable[[str], None] | None = None,
    ) -> FeedJournal:
        """The owner's state brought back: ``load(state)`` with the latest snapshot (if any),
        then, in journal order, ``market(start_index, msgs)`` with the market data re-read
        from ``feed`` up to each marker and ``record(r)`` with every other record.

        ``version``: the owner's state version (its snapshots are written as it). A snapshot
        of another version, or one that does not load, is a :class:`DataError`; with
        ``rebuild`` (an owner whose state is the feed's log's alone) ``rebuild(why)`` is
        called instead and the state is rebuilt with ``market`` from the feed's index 0
        (module docstring, "Snapshot versions")."""
        snapshot, _, tail = journal.restore()
        position, last, since = 0, (0, 0), 0
        dropped: list[int] = []  # skipped indices the next marker covers
        if snapshot is not None:
            found, position, last, at = read_header(snapshot)
            why, cause = load_state(snapshot[at:], found=found, expected=version, load=load,
                                    rebuildable=rebuild is not None)
            if why is not None:
                if rebuild is None:
                    raise DataError(why, source=str(journal.path)) from cause
                rebuild(why)
                msgs = _read(feed, journal, 0, position, last)
                if msgs:
                    market(0, msgs)
                since = len(msgs)  # a snapshot of this version is due at the next commit
        for _, entry in tail:
            since += 1
            if isinstance(entry, Blob) and entry.kind == MARK:
                to, ts, seq = _POSITION.unpack(entry.payload)
                msgs = _read(feed, journal, position, to, (ts, seq))
                _taken(market, journal, position, msgs, sorted(dropped))
                dropped = []
                since += len(msgs)
                position, last = to, (ts, seq)
            elif isinstance(entry, Blob) and entry.kind == DROP:
                dropped += struct.unpack(f">{len(entry.payload) // 8}q", entry.payload)
            else:
                record(entry)
        if dropped:
            raise InvariantError(f"{journal.path}: skipped feed indices {dropped[:5]} with no "
                                 "marker after them")
        return cls(journal, snapshot_every=snapshot_every, position=position, last=last,
                   since=since, version=version)



def snapshot_position(reader: JournalReader) -> int:
    """The feed position an owner's journal restores from: its latest snapshot's (0 without
    one). Everything of the feed's log from there on is what a restore re-reads (besides the
    data after the owner's journal, which the feed steps to it again); retention of the feed's
    log keeps it (``actors.retention``)."""
    head = reader.snapshot_head(HEADER_SIZE)
    if head is None:
        return 0
    try:
        return read_header(head[1])[1]
    except struct.error:
        raise DataError("a snapshot without a feed position: not an owner of the feed's log",
                        source=str(reader.path)) from None


def _taken(market: Callable[[int, Sequence[MarketData]], None], journal: Journal, start: int,
           msgs: Sequence[MarketData], dropped: Sequence[int]) -> None:
    """``market`` with ``msgs`` (feed ``start`` on) without the ``dropped`` indices, in runs
    of consecutive indices."""
    k = 0
    for index in dropped:
        at = index - start
        if not k <= at < len(msgs):
            raise InvariantError(f"{journal.path}: skipped feed index {index} outside "
                                 f"{start + k}..{start + len(msgs) - 1}")
        if at > k:
            market(start + k, msgs[k:at])
        k = at + 1
    if k < len(msgs):
        market(start + k, msgs[k:])


def _read(feed: FeedLog, journal: Journal, start: int, stop: int,
          last: tuple[int, int]) -> Sequence[MarketData]:
    if stop < start:
        raise InvariantError(f"{journal.path}: feed marker {stop} before position {start}")
    msgs = feed.read(start, stop)
    if len(msgs) != stop - start:
        raise DataError(f"the feed's log gave {len(msgs)} messages for {start}..{stop - 1}",
                        source=str(journal.path))
    if msgs and (msgs[-1].ts_event, msgs[-1].seq) != last:
        raise DataError(
            f"the feed's log holds another message at index {stop - 1} than this journal "
            f"applied (ts_event, seq {(msgs[-1].ts_event, msgs[-1].seq)}, journaled {last}): "
            "the session's market data changed", source=str(journal.path))
    return msgs


class JournaledKernel:
    """A :class:`Kernel` behind a :class:`FeedJournal`: ``start``/``handle``/``stop`` journal
    their own inputs first; market data only moves the feed position."""

    def __init__(self, kernel: Kernel, journal: FeedJournal,
                 kept: dict[str, bytes] | None = None) -> None:
        self.kernel = kernel
        self.journal = journal
        #: the latest owner record of each kind (:meth:`append`): snapshots carry them, so
        #: compaction never loses the latest one
        self.kept: dict[str, bytes] = kept if kept is not None else {}

    @property
    def position(self) -> int:
        """Market messages handled: the feed index of the next one."""
        return self.journal.position

    def start(self, ts_ns: int) -> list[Message]:
        self.journal.append(Blob(_START, ts_ns.to_bytes(8, "big", signed=True)))
        return self.kernel.start(ts_ns)

    def handle(self, message: Message) -> list[Message]:
        """``message``: the feed's market data at :attr:`position`, or an own input."""
        if isinstance(message, _MARKET):
            self.journal.market(message)
        else:
            self.journal.append(message)  # type: ignore[arg-type]  # any runtime message
        return self.kernel.handle(message)

    def skip(self, message: MarketData) -> None:
        """``message`` (the feed's market data at :attr:`position`) passed over, not handled:
        the position moves on; the owner notes it (:meth:`FeedJournal.drop`) before the
        marker."""
        self.journal.market(message)

    def append(self, record: Blob) -> None:
        """An owner's record beside the kernel's inputs whose latest of each kind a snapshot
        carries too (re-applied by ``restore``'s ``blobs``; its kind in ``latest``)."""
        self.kept[record.kind] = record.payload
        self.journal.append(record)

    def note(self, record: Blob) -> None:
        """An owner's record about the market data handled since its last record (re-applied
        by ``restore``'s ``blobs`` before that data; :meth:`FeedJournal.note`)."""
        self.journal.note(record)

    def flush(self, *, committed: Callable[[], None] | None = None) -> None:
        """Commit what was journaled, then a snapshot when one is due. The owner flushes at
        the boundary of its unit of work (an actor's step, before it answers), so a snapshot
        never covers half of one: a crash in the middle of a unit loses it whole, and the
        unit executed again gives the same outputs. ``committed``: called between the commit
        and the snapshot (what the owner keeps outside the journal of what the snapshot will
        no longer hold: the risk actor's retired orders); should it raise, no snapshot."""
        self.journal.flush()
        if committed is not None:
            committed()
        if self.journal.due():
            self.snapshot()

    def stop(self, ts_ns: int) -> list[Message]:
        self.journal.append(Blob(_STOP, ts_ns.to_bytes(8, "big", signed=True)))
        out = self.kernel.stop(ts_ns)
        self.journal.flush()
        return out

    def snapshot(self) -> None:
        """The whole kernel, pickled; the entries it covers go."""
        self.journal.snapshot(_pickle(self.kernel, self.kept))

    @classmethod
    def restore(
        cls,
        factory: Callable[[], Kernel],
        journal: Journal,
        feed: FeedLog,
        *,
        snapshot_every: int,
        blobs: Mapping[str, Callable[[Kernel, bytes], None]] | None = None,
        latest: Collection[str] = (),
    ) -> JournaledKernel:
        """A kernel brought to the journal's last committed state: the snapshot's (or a new
        one from ``factory()``: called first in any case, so the strategies' modules are
        imported before a snapshot names their classes), then the tail replayed with the
        market data from ``feed``.

        ``blobs``: how to re-apply the other kinds of :class:`Blob` records its owner
        journals beside the kernel's inputs (kind → ``handler(kernel, payload)``, in journal
        order; e.g. the book views its market data was read with); any other kind is an
        error. ``latest``: the kinds (written with :meth:`append`) whose latest record a
        snapshot carries; the others (written with :meth:`note`) belong to the data they
        precede."""
        kernel = factory()
        kept: dict[str, bytes] = {}

        def load(state: bytes) -> None:
            nonlocal kernel, kept
            kernel, kept = pickle.loads(state)  # the owner's own journal
            for kind, payload in kept.items():
                apply(kind, payload)

        def apply(kind: str, payload: bytes) -> None:
            if blobs is None or kind not in blobs:
                raise InvariantError(f"unknown journal record kind {kind!r}")
            if kind in latest:
                kept[kind] = payload
            blobs[kind](kernel, payload)

        def market(_: int, msgs: Sequence[MarketData]) -> None:
            handle = kernel.handle
            for msg in msgs:
                handle(msg)

        def record(entry: JournalRecord) -> None:
            if not isinstance(entry, Blob):
                kernel.handle(entry)
            elif entry.kind == _START:
                kernel.start(int.from_bytes(entry.payload, "big", signed=True))
            elif entry.kind == _STOP:
                kernel.stop(int.from_bytes(entry.payload, "big", signed=True))
            else:
                apply(entry.kind, entry.payload)

        fj = FeedJournal.restore(journal, feed, snapshot_every=snapshot_every, load=load,
                                 market=market, record=record)
        return cls(kernel, fj, kept)


def _names(kernel: Kernel) -> str:
    names = [f"{s.strategy_id!r} ({type(s).__module__}:{type(s).__qualname__})"
             for s in kernel.strategies]
    return "strategy " + ", ".join(names) if names else "the kernel"


def _pickle(kernel: Kernel, kept: dict[str, bytes]) -> bytes:
    try:
        return pickle.dumps((kernel, kept), protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"{_names(kernel)} cannot be snapshotted: its state does not pickle ({exc}); keep "
            "plain data, indicators and numpy values in a strategy's attributes, not open "
            "files, threads, generators or lambdas", field="strategies") from exc


def check_snapshot(kernel: Kernel) -> None:
    """Refuse (a :class:`ConfigError` naming the strategies) a kernel whose snapshot would not
    pickle, or would not come back with the same state hash."""
    restored, _ = pickle.loads(_pickle(kernel, {}))  # bytes made just above
    if restored.state_hash() != kernel.state_hash():
        raise ConfigError(f"{_names(kernel)} cannot be snapshotted: its state does not come "
                          "back the same from a pickle", field="strategies")
