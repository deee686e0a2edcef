"""The recorder's spool: journal first, write in batches, spill on outage, drain in order.

Pure Python (no Ray, no clock: callers pass ``now_s``), driven by :class:`actors.recorder.
RecorderActor` and directly by unit tests. The life of a batch of events:

1. :meth:`Spool.accept` takes an encoded batch and appends it to the spill journal first (one
   SQLite commit: a SIGKILL afterwards loses nothing). While the store is healthy the decoded
   messages are also kept in memory.
2. :meth:`Spool.next_chunk` hands out the next chunk to write: the oldest unwritten journal
   entries (from memory when healthy, read back from the journal when draining), converted to
   Arrow tables, never more than one chunk at a time.
3. :meth:`Spool.written` moves the *watermark* (a journal snapshot: "everything up to this seq is
   in the store") and compacts the journal now and then; :meth:`Spool.failed` drops the memory
   copy and switches to **draining**: from then on chunks are read from the journal after the
   watermark, in order, until the journal is caught up, and retries back off.

A crash between a write and its watermark re-writes that chunk after the restart; the store's
idempotent keys make the second write a no-op (``SELECT … FINAL`` counts are unchanged).

States::

    healthy ──failed / memory above max_buffer_events──► draining ──caught up──► healthy
"""

from __future__ import annotations

import enum
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from actors.recording import MarketSampler, decode_batch, to_tables
from runtime.errors import InvariantError
from runtime.journal import Blob, Journal

__all__ = ["Chunk", "Spool", "SpoolConfig", "SpoolMode"]

_KIND: Final = "batch"
_WATERMARK: Final = b"recorder watermark"


#: a decoded batch: its messages
Content = list[Any]


def _decode(payload: bytes) -> tuple[int, Content]:
    """A batch's event count and messages."""
    messages = decode_batch(payload)
    return len(messages), messages


class SpoolMode(enum.StrEnum):
    HEALTHY = "healthy"  # new batches are written from memory
    DRAINING = "draining"  # the journal holds unwritten batches: write them, in order, first


@dataclass(frozen=True)
class SpoolConfig:
    batch_rows: int = 50_000  # events per chunk (a chunk holds whole journal entries)
    flush_interval_s: float = 0.2  # the oldest unwritten event waits at most this long
    retry_initial_s: float = 0.05  # first retry after a failed write; doubles ...
    retry_max_s: float = 2.0  # ... up to this
    max_buffer_events: int = 1_000_000  # above this, keep events only in the journal
    compact_every: int = 256  # journal entries written between compactions
    market_every: int = 1  # keep every n-th market message per instrument (0: none)


@dataclass
class Chunk:
    """The oldest ``entries`` unwritten batches as Arrow tables, ready to be written;
    ``upto_seq`` is the journal seq of the last one."""

    entries: int
    upto_seq: int
    events: int
    tables: dict[str, pa.Table]
    from_journal: bool

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.tables.values())


@dataclass
class _Entry:
    seq: int  # journal seq
    events: int
    received_s: float
    content: Content | None = field(default=None, repr=False)  # decoded, while in memory


class Spool:
    """Journal-backed write queue of one recorder (see the module docstring)."""

    def __init__(
        self,
        session_id: str,
        spill_path: str | os.PathLike[str],
        config: SpoolConfig,
        *,
        now_s: float,
    ) -> None:
        self.session_id = session_id
        self.config = config
        self.journal = Journal(spill_path, batch_size=1)
        self._sampler = MarketSampler(config.market_every)
        self._unwritten: deque[_Entry] = deque()  # every entry after the watermark, in order
        self._pending = 0  # events in _unwritten
        self._in_flight: Chunk | None = None
        self._retry_at = 0.0
        self._retry_s = config.retry_initial_s
        self._compacted = 0
        self._failures = 0  # consecutive failed writes (0: no outage)
        self.stats: dict[str, Any] = {
            "events_accepted": 0, "rows_written": 0, "events_written": 0, "chunks_written": 0,
            "events_spilled": 0, "events_restored": 0, "store_errors": 0, "outages": 0,
            "last_error": "", "insert_latency_s": 0.0, "max_insert_latency_s": 0.0,
            "max_lag_s": 0.0, "rows_by_table": {},
        }  # fmt: skip
        self.watermark, self.mode = self._restore(now_s)

    def _restore(self, now_s: float) -> tuple[int, SpoolMode]:
        restored = self.journal.restore()
        for seq, record in restored.tail:
            if not isinstance(record, Blob) or not record.kind.startswith(_KIND):
                raise InvariantError(f"{self.journal.path}: entry {seq} is not a recorder batch")
            events, _ = _decode(record.payload)
            self._unwritten.append(_Entry(seq, events, now_s))
            self._pending += events
            self.stats["events_restored"] += events
        self._compacted = restored.snapshot_seq
        mode = SpoolMode.DRAINING if self._unwritten else SpoolMode.HEALTHY
        return restored.snapshot_seq, mode

    # --- intake ---------------------------------------------------------------------------------

    def accept(self, payload: bytes, *, source: str = "", now_s: float) -> int:
        """Take one encoded batch, journaled before this returns; its event count."""
        events, content = _decode(payload)
        kind = f"{_KIND}:{source}" if source else _KIND
        entry = _Entry(self.journal.append(Blob(kind, payload)), events, now_s, content)
        self.stats["events_accepted"] += entry.events
        backlog = self._pending + entry.events > self.config.max_buffer_events
        if self.mode is SpoolMode.HEALTHY and backlog and self._in_flight is None:
            self._spill()  # keep the backlog in the journal only
        if self.mode is SpoolMode.DRAINING:
            entry.content = None
            self.stats["events_spilled"] += entry.events
        self._unwritten.append(entry)
        self._pending += entry.events
        return entry.events

    # --- writing --------------------------------------------------------------------------------

    def due(self, now_s: float) -> bool:
        """Whether a chunk should be written now (enough events, old enough, or a retry is due)."""
        if self._in_flight is not None or not self._unwritten:
            return False
        if self.mode is SpoolMode.DRAINING:
            return now_s >= self._retry_at
        return (
            self._pending >= self.config.batch_rows
            or now_s - self._unwritten[0].received_s >= self.config.flush_interval_s
        )

    def wait_s(self, now_s: float) -> float:
        """How long until :meth:`due` may become true without new input (capped at 1 s)."""
        queued = self._unwritten
        if self._in_flight is not None or not queued:
            return 1.0
        if self.mode is SpoolMode.DRAINING:
            return max(0.0, min(1.0, self._retry_at - now_s))
        return max(0.0, min(1.0, queued[0].received_s + self.config.flush_interval_s - now_s))

    def next_chunk(self) -> Chunk | None:
        """The oldest unwritten entries as a chunk (None if nothing is queued or one is out)."""
        queued = self._unwritten
        if self._in_flight is not None or not queued:
            return None
        entries: list[_Entry] = []
        events = 0
        for entry in queued:
            if entries and events + entry.events > self.config.batch_rows:
                break
            entries.append(entry)
            events += entry.events
        from_journal = self.mode is SpoolMode.DRAINING
        tables = self._tables(self._contents(entries, from_journal))
        self._in_flight = Chunk(len(entries), entries[-1].seq, events, tables, from_journal)
        return self._in_flight

    def written(self, chunk: Chunk, *, now_s: float, latency_s: float) -> None:
        """The store holds ``chunk``: move the watermark past it (durably) and account for it."""
        self._check_in_flight(chunk)
        self.journal.snapshot(_WATERMARK, upto_seq=chunk.upto_seq)
        self.watermark = chunk.upto_seq
        oldest = self._unwritten[0].received_s
        for _ in range(chunk.entries):
            self._pending -= self._unwritten.popleft().events
        self._account(chunk, lag_s=now_s - oldest, latency_s=latency_s)
        self._retry_s = self.config.retry_initial_s
        self._failures = 0
        if self.mode is SpoolMode.DRAINING and not self._unwritten:
            self.mode = SpoolMode.HEALTHY
        behind = self.watermark - self._compacted
        if behind >= self.config.compact_every or (behind and not self._unwritten):
            self.journal.compact(self.watermark)
            self._compacted = self.watermark

    def failed(self, chunk: Chunk, error: BaseException, *, now_s: float) -> bool:
        """Writing ``chunk`` failed: spill (drain from the journal later). True if a new outage."""
        self._check_in_flight(chunk)
        self.stats["store_errors"] += 1
        self.stats["last_error"] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        new_outage = self._failures == 0
        self._failures += 1
        if new_outage:
            self.stats["outages"] += 1
        if self.mode is SpoolMode.HEALTHY:
            self.stats["events_spilled"] += self.pending_events()
            self._spill()
        self._retry_at = now_s + self._retry_s
        self._retry_s = min(self._retry_s * 2, self.config.retry_max_s)
        return new_outage

    def retry_now(self) -> None:
        """Make a pending retry due at once (a forced flush)."""
        self._retry_at = 0.0

    # --- state ----------------------------------------------------------------------------------

    def pending_events(self) -> int:
        """Events accepted and not yet written (in memory, in flight or only in the journal)."""
        return self._pending

    def lag_s(self, now_s: float) -> float:
        """Age of the oldest unwritten event (0 when everything is written)."""
        return max(0.0, now_s - self._unwritten[0].received_s) if self._unwritten else 0.0

    def spill_bytes(self) -> int:
        path = self.journal.path
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())

    def snapshot_stats(self, now_s: float) -> dict[str, Any]:
        return {
            **self.stats,
            "rows_by_table": dict(self.stats["rows_by_table"]),
            "mode": str(self.mode),
            "pending_events": self.pending_events(),
            "spill_entries": self.journal.last_seq - self.watermark,
            "spill_bytes": self.spill_bytes(),
            "lag_s": self.lag_s(now_s),
            "watermark": self.watermark,
        }

    def close(self) -> None:
        self.journal.close()

    # --- internals ------------------------------------------------------------------------------

    def _spill(self) -> None:
        """Drop the memory copies (every batch is in the journal): draining."""
        for entry in self._unwritten:
            entry.content = None
        self.mode = SpoolMode.DRAINING

    def _tables(self, contents: list[Content]) -> dict[str, pa.Table]:
        """The messages as rows of their store tables (market data sampled)."""
        messages = [m for content in contents for m in content]
        return to_tables(self.session_id, messages, sampler=self._sampler)

    def _contents(self, entries: list[_Entry], from_journal: bool) -> list[Content]:
        if not from_journal:
            return [entry.content for entry in entries if entry.content is not None]
        contents: list[Content] = []
        first, last = entries[0].seq, entries[-1].seq
        for seq, record in self.journal.entries(after_seq=first - 1):
            if seq > last:
                break
            if not isinstance(record, Blob):
                raise InvariantError(f"{self.journal.path}: entry {seq} is not a recorder batch")
            contents.append(_decode(record.payload)[1])
        return contents

    def _check_in_flight(self, chunk: Chunk) -> None:
        if chunk is not self._in_flight:
            raise InvariantError("spool: a chunk was reported that is not the one in flight")
        self._in_flight = None

    def _account(self, chunk: Chunk, *, lag_s: float, latency_s: float) -> None:
        stats = self.stats
        stats["rows_written"] += chunk.rows
        stats["events_written"] += chunk.events
        stats["chunks_written"] += 1
        for name, table in chunk.tables.items():
            stats["rows_by_table"][name] = stats["rows_by_table"].get(name, 0) + table.num_rows
        stats["insert_latency_s"] = latency_s
        stats["max_insert_latency_s"] = max(stats["max_insert_latency_s"], latency_s)
        stats["max_lag_s"] = max(stats["max_lag_s"], lag_s)
