"""A write-ahead journal in SQLite for stateful components (WAL-before-state).

The contract for the caller is *append, then apply*: a component appends what it receives (and
what it is about to send) before it changes its state, flushes (or appends with ``durable=True``)
before anything irreversible such as sending an order to a venue, snapshots its state now and then,
and after a restart rebuilds itself from :meth:`Journal.restore`: the latest snapshot plus the
entries after it, replayed in ``seq`` order.

Guarantees (stdlib ``sqlite3``, WAL mode, one writer per file):

* ``seq`` is the journal's own sequence number: 1, 2, 3, ... with no gaps, across reopenings.
* Appends are batched: one SQLite transaction per batch. A batch commits whole or not at all, so
  a crash (even SIGKILL mid-write) loses at most the uncommitted batch and never corrupts the file;
  what :meth:`Journal.restore` returns afterwards is exactly the committed prefix.
* ``synchronous="NORMAL"`` (default): committed batches survive a process crash; an OS crash or
  power loss may lose the last commits. ``"FULL"``: every commit is fsynced. A *durable* flush
  (``flush(durable=True)`` or ``append(..., durable=True)``) fsyncs in either mode.
* A snapshot is written in the same transaction as the batch it covers.
* A write that fails (the disk is full, an I/O error) releases the session's disk reserve, when
  one is held (``runtime.disk_reserve``), and is tried once more in the space given back; if
  it fails again (or there is no reserve) it raises :class:`~runtime.errors.DiskWriteError`
  naming the file, what was not written and the last seq that is; the failed batch is dropped,
  so the file keeps exactly its committed prefix and the caller knows that what the batch
  described must not happen.

One table holds every record; the payload is the ``runtime.messages.encode`` bytes of a message, or
the opaque bytes of a :class:`Blob` (``codec`` says which), beside forensic columns for plain SQL::

    SELECT seq, kind, ts_event FROM entries WHERE client_order_id = 'S1-000042' ORDER BY seq;

The schema is in :data:`SCHEMA` and ``docs/journal.md``. A journal is not thread-safe: it belongs to
the one component (actor) that writes it. The one exception is :meth:`Journal.checkpoint`: with
``checkpoint="manual"`` SQLite no longer copies the WAL into the main file inside a commit (an
fsync of the main file, milliseconds, every ~1000 pages), and another thread of the owner calls
``checkpoint()`` instead, on its own connection, so the writer never waits for it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import threading
import typing
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, TypeAlias

import msgspec

from runtime import disk_reserve
from runtime.errors import ConfigError, DiskWriteError, InvariantError
from runtime.messages import (
    AuxData,
    Command,
    Event,
    MarketData,
    Message,
    OperatorCommand,
    decode,
    encode,
)

__all__ = [
    "APPLICATION_ID",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Blob",
    "Journal",
    "JournalReader",
    "JournalRecord",
    "Restored",
]

APPLICATION_ID: Final = 0x54574A4C  # "TWJL", in the SQLite header (PRAGMA application_id)
SCHEMA_VERSION: Final = 1  # PRAGMA user_version
SCHEMA: Final = """
CREATE TABLE entries (
    seq             INTEGER PRIMARY KEY,        -- journal seq: 1, 2, 3, ... gap-free
    codec           TEXT    NOT NULL CHECK (codec IN ('message', 'blob')),
    kind            TEXT    NOT NULL,           -- message tag (class name) or blob kind
    msg_seq         INTEGER,                    -- the message's own seq (producer's)
    ts_event        INTEGER,                    -- ns since the epoch
    ts_init         INTEGER,
    instrument_id   TEXT,
    client_order_id TEXT,
    payload         BLOB    NOT NULL            -- runtime.messages.encode(...) or blob bytes
);
CREATE INDEX entries_client_order_id ON entries (client_order_id)
    WHERE client_order_id IS NOT NULL;
CREATE TABLE snapshots (
    upto_seq INTEGER PRIMARY KEY,               -- state as of this journal seq (0 = before any)
    state    BLOB    NOT NULL
);
"""

_DECODABLE: Final = frozenset(
    cls for alias in (MarketData, AuxData, Command, OperatorCommand, Event)
    for cls in typing.get_args(alias)
)
_INSERT: Final = (
    "INSERT INTO entries (seq, codec, kind, msg_seq, ts_event, ts_init, instrument_id,"
    " client_order_id, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_READ_CHUNK: Final = 1024

Row: TypeAlias = tuple[
    int, str, str, int | None, int | None, int | None, str | None, str | None, bytes
]


class Blob(msgspec.Struct, frozen=True):
    """A record that is not a runtime message: a kind of the component's choosing and bytes."""

    kind: str
    payload: bytes


JournalRecord: TypeAlias = MarketData | AuxData | Command | OperatorCommand | Event | Blob


class Restored(typing.NamedTuple):
    """What :meth:`Journal.restore` returns: replay ``tail`` onto ``snapshot`` (or the start)."""

    snapshot: bytes | None
    snapshot_seq: int  # 0 when there is no snapshot
    tail: Iterator[tuple[int, JournalRecord]]


class Journal:
    """A write-ahead journal in one SQLite file (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = 512,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        checkpoint: Literal["auto", "manual"] = "auto",
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}", field="batch_size")
        if synchronous not in ("NORMAL", "FULL"):
            raise ConfigError(
                f"synchronous must be NORMAL or FULL, got {synchronous!r}", field="synchronous"
            )
        if checkpoint not in ("auto", "manual"):
            raise ConfigError(
                f"checkpoint must be auto or manual, got {checkpoint!r}", field="checkpoint"
            )
        self.path = Path(path).absolute()
        self.batch_size = batch_size
        self.synchronous = synchronous
        self.checkpoint_mode = checkpoint
        self._pending: list[Row] = []
        self._conn: sqlite3.Connection | None = _open(self.path, synchronous)
        if checkpoint == "manual":
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._ckpt_lock = threading.Lock()
        self._ckpt_conn: sqlite3.Connection | None = None
        self._committed_seq = _last_seq(self._connection())
        self._next_seq = self._committed_seq + 1
        self._committed_bytes = 0  # payload bytes committed by this object (snapshots too)
        self._commits = 0  # transactions committed by this object

    # --- properties ----------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The seq of the last append (committed or pending); 0 for an empty journal."""
        return self._next_seq - 1

    @property
    def committed_seq(self) -> int:
        """The seq of the last committed append: what a crash now would keep."""
        return self._committed_seq

    @property
    def committed_bytes(self) -> int:
        """Payload bytes (entries and snapshots) this object has committed since it opened:
        about what its commits wrote to the WAL."""
        return self._committed_bytes

    @property
    def commits(self) -> int:
        """Transactions this object has committed since it opened: each writes at least a page
        (4 KiB) to the WAL, however small its entries (a send log commits every entry)."""
        return self._commits

    @property
    def pending(self) -> int:
        """How many appends wait for the next commit."""
        return len(self._pending)

    # --- writing -------------------------------------------------------------------------------

    def append(self, record: JournalRecord, *, durable: bool = False) -> int:
        """Record ``record`` (before the caller applies it) and return its journal seq.

        Commits when the batch is full; ``durable=True`` commits and fsyncs before returning.
        """
        seq = self._next_seq
        self._pending.append(_row(seq, record))
        self._next_seq = seq + 1
        if durable:
            self.flush(durable=True)
        elif len(self._pending) >= self.batch_size:
            self.flush()
        return seq

    def flush(self, *, durable: bool = False) -> None:
        """Commit the pending batch (one transaction); ``durable=True`` also fsyncs the WAL."""
        if self._pending:
            self._commit()
        if durable:
            self._fsync()

    def snapshot(self, state: bytes, *, upto_seq: int) -> None:
        """Store ``state`` as the component's state after applying entries ``<= upto_seq``.

        The pending batch commits in the same transaction, so a snapshot never covers entries the
        file does not hold.
        """
        if not 0 <= upto_seq <= self.last_seq:
            raise InvariantError(
                f"{self.path}: snapshot upto_seq={upto_seq} outside 0..{self.last_seq}"
            )
        latest = self._latest_snapshot_seq()
        if latest is not None and upto_seq < latest:
            raise InvariantError(
                f"{self.path}: snapshot upto_seq={upto_seq} older than the latest ({latest})"
            )

        self._commit(
            (
                "INSERT OR REPLACE INTO snapshots (upto_seq, state) VALUES (?, ?)",
                (upto_seq, bytes(state)),
            )
        )

    def compact(self, keep_after_seq: int) -> int:
        """Drop entries ``<= keep_after_seq`` and every snapshot but the latest.

        Refused unless the latest snapshot covers ``keep_after_seq`` (restore needs the rest).
        Returns the number of entries deleted. The file does not shrink (no VACUUM).
        """
        self.flush()
        latest = self._latest_snapshot_seq()
        if latest is None or latest < keep_after_seq:
            raise InvariantError(
                f"{self.path}: compact({keep_after_seq}) needs a snapshot at or after that seq "
                f"(latest: {latest})"
            )
        before = self._count_entries()
        self._commit(
            ("DELETE FROM entries WHERE seq <= ?", (keep_after_seq,)),
            ("DELETE FROM snapshots WHERE upto_seq < ?", (latest,)),
        )
        return before - self._count_entries()

    # --- reading -------------------------------------------------------------------------------

    def restore(self) -> Restored:
        """The latest snapshot and an iterator over the committed entries after it, in order.

        Pending appends are flushed first. The tail ends at the last seq committed when
        ``restore`` was called, and is read lazily in chunks.
        """
        self.flush()
        conn = self._connection()
        row = conn.execute(
            "SELECT upto_seq, state FROM snapshots ORDER BY upto_seq DESC LIMIT 1"
        ).fetchone()
        snapshot, snapshot_seq = (None, 0) if row is None else (bytes(row[1]), int(row[0]))
        return Restored(
            snapshot, snapshot_seq, self._iter_entries(snapshot_seq, self._committed_seq)
        )

    def entries(self, *, after_seq: int = 0) -> Iterator[tuple[int, JournalRecord]]:
        """Committed entries with ``seq > after_seq``, in order (for forensics and tests)."""
        return self._iter_entries(after_seq, self._committed_seq)

    def wal_bytes(self) -> int:
        """The size of the WAL file (0 when there is none); safe from any thread."""
        try:
            return os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            return 0

    def checkpoint(self, *, truncate: bool = False) -> bool:
        """Copy the committed WAL into the main file on a connection of its own; the one
        method another thread may call. False when the journal is closed.

        SQLite's PASSIVE checkpoint (the default) never waits for the writer and the writer
        never waits for it; but the WAL starts again from its beginning only when a checkpoint
        has copied all of it, which a writer committing all the time never lets happen, so the
        file grows. ``truncate=True`` (SQLite's TRUNCATE) waits for the writer's transaction
        to end, copies everything while the writer waits, and empties the file."""
        with self._ckpt_lock:
            if self._conn is None:
                return False
            if self._ckpt_conn is None:
                self._ckpt_conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False
                )
            mode = "TRUNCATE" if truncate else "PASSIVE"
            self._ckpt_conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
            return True

    # --- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the pending batch and close the file. Idempotent."""
        if self._conn is None:
            return
        try:
            self.flush()
        finally:
            with self._ckpt_lock:
                if self._ckpt_conn is not None:
                    self._ckpt_conn.close()
                    self._ckpt_conn = None
                self._conn.close()  # the last connection: SQLite checkpoints, drops the WAL
                self._conn = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise InvariantError(f"{self.path}: journal is closed")
        return self._conn

    def _commit(self, *statements: tuple[str, tuple[object, ...]]) -> None:
        """One transaction: the pending batch, then ``statements``; all or nothing. A write the
        disk refuses releases the session's disk reserve (``runtime.disk_reserve``), if one
        is held, and is tried once more in the space it gave back."""
        conn = self._connection()
        for attempt in (1, 2):
            try:
                conn.execute("BEGIN IMMEDIATE")
                if self._pending:
                    self._check_single_writer(conn)
                    conn.executemany(_INSERT, self._pending)
                for sql, params in statements:
                    conn.execute(sql, params)
                conn.execute("COMMIT")
                break
            except BaseException as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):  # SQLite rolled back already
                        conn.execute("ROLLBACK")
                if not _write_failed(exc):
                    raise
                reserve = disk_reserve.find(self.path) if attempt == 1 else None
                if reserve is None or not disk_reserve.release(
                        reserve, f"{self.path}: {_reason(exc)}"):
                    raise self._not_written(exc, snapshot=bool(statements)) from exc
        self._commits += 1
        self._committed_bytes += sum(len(row[-1]) for row in self._pending) + sum(
            len(p) for _, params in statements for p in params if isinstance(p, bytes))
        if self._pending:
            self._committed_seq = self._pending[-1][0]
            self._pending.clear()

    def _not_written(self, exc: BaseException, *, snapshot: bool) -> DiskWriteError:
        """The failed batch is dropped (the file holds its committed prefix, seqs stay
        gap-free); the error names what was not written."""
        rows, self._pending = self._pending, []
        self._next_seq = self._committed_seq + 1
        what = [f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}"] if rows else []
        if rows:
            first = rows[0]
            what[0] += f" (first: {first[2]}" + (f" {first[7]}" if first[7] else "") + ")"
        if snapshot:
            what.append("a snapshot")
        return DiskWriteError(
            f"cannot write the journal ({_reason(exc)}): {' and '.join(what) or 'a commit'} "
            f"not written; the file is intact up to seq {self._committed_seq}",
            path=str(self.path))

    def _check_single_writer(self, conn: sqlite3.Connection) -> None:
        last = _last_seq(conn)
        if last != self._committed_seq:
            raise InvariantError(
                f"{self.path}: another writer: the file ends at seq {last}, "
                f"this journal expected {self._committed_seq}"
            )

    def _fsync(self) -> None:
        if self.synchronous == "FULL":
            return  # every commit was synced already
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        except FileNotFoundError:
            return  # everything is checkpointed into the (synced) main file
        try:
            os.fsync(fd)
        except OSError as exc:
            raise DiskWriteError(
                f"cannot sync the journal ({_reason(exc)}): entries up to seq "
                f"{self._committed_seq} are committed but may not be durable",
                path=str(self.path)) from exc
        finally:
            os.close(fd)

    def _count_entries(self) -> int:
        (count,) = self._connection().execute("SELECT count(*) FROM entries").fetchone()
        return int(count)

    def _latest_snapshot_seq(self) -> int | None:
        (latest,) = self._connection().execute("SELECT max(upto_seq) FROM snapshots").fetchone()
        return None if latest is None else int(latest)

    def _iter_entries(self, after: int, upto: int) -> Iterator[tuple[int, JournalRecord]]:
        while after < upto:
            rows = (
                self._connection()
                .execute(
                    "SELECT seq, codec, kind, payload FROM entries WHERE seq > ? AND seq <= ?"
                    " ORDER BY seq LIMIT ?",
                    (after, upto, _READ_CHUNK),
                )
                .fetchall()
            )
            if not rows:
                return
            for seq, codec, kind, payload in rows:
                yield seq, _record(codec, kind, payload)
            after = rows[-1][0]


class JournalReader:
    """Another process's journal, read-only (e.g. the feed's stream of market data): committed
    entries by seq, never a write, never a lock the writer waits for (WAL readers)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        if not self.path.exists():
            raise ConfigError("no such journal", path=str(self.path))
        try:
            self._conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True,
                                         isolation_level=None, check_same_thread=False)
            (app_id,) = self._conn.execute("PRAGMA application_id").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"not a Tradewind journal ({exc})", path=str(self.path)) from exc
        if app_id != APPLICATION_ID:
            self._conn.close()
            raise ConfigError(f"not a Tradewind journal (application_id {app_id:#x})",
                              path=str(self.path))

    def last_seq(self) -> int:
        """The last committed seq."""
        return _last_seq(self._conn)

    def entries(self, after_seq: int, upto_seq: int) -> list[tuple[int, JournalRecord]]:
        """Committed entries with ``after_seq < seq <= upto_seq``, in order."""
        try:
            rows = self._conn.execute(
                "SELECT seq, codec, kind, payload FROM entries WHERE seq > ? AND seq <= ?"
                " ORDER BY seq", (after_seq, upto_seq)).fetchall()
            return [(seq, _record(codec, kind, payload)) for seq, codec, kind, payload in rows]
        except (sqlite3.DatabaseError, msgspec.DecodeError) as exc:
            raise ConfigError(f"cannot read the journal ({exc})", path=str(self.path)) from exc

    def snapshot_head(self, nbytes: int) -> tuple[int, bytes] | None:
        """The latest snapshot's ``upto_seq`` and its first ``nbytes`` bytes (a header its
        writer put there), or ``None`` when the journal has no snapshot."""
        try:
            row = self._conn.execute(
                "SELECT upto_seq, substr(state, 1, ?) FROM snapshots ORDER BY upto_seq DESC"
                " LIMIT 1", (nbytes,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot read the journal ({exc})", path=str(self.path)) from exc
        return None if row is None else (int(row[0]), bytes(row[1]))

    def close(self) -> None:
        self._conn.close()


def _write_failed(exc: BaseException) -> bool:
    """SQLite could not write: a full disk or an I/O error (``SQLITE_FULL``, ``SQLITE_IOERR*``)."""
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
    name = getattr(exc, "sqlite_errorname", "")
    return f"{name}: {exc}" if name else str(exc)


def _last_seq(conn: sqlite3.Connection) -> int:
    (last,) = conn.execute(
        "SELECT max(coalesce((SELECT max(seq) FROM entries), 0),"
        " coalesce((SELECT max(upto_seq) FROM snapshots), 0))"
    ).fetchone()
    return int(last)


def _row(seq: int, record: JournalRecord) -> Row:
    if isinstance(record, Blob):
        if not isinstance(record.kind, str) or not record.kind:
            raise InvariantError(f"journal: a Blob needs a non-empty kind, got {record.kind!r}")
        return (seq, "blob", record.kind, None, None, None, None, None, bytes(record.payload))
    if type(record) not in _DECODABLE:
        raise InvariantError(
            f"journal: cannot record {type(record).__qualname__}: not a runtime message or Blob"
        )
    message: Message = record
    kind = type(message).__struct_config__.tag
    return (
        seq,
        "message",
        str(kind),
        message.seq,
        message.ts_event,
        message.ts_init,
        getattr(message, "instrument_id", None),
        getattr(message, "client_order_id", None),
        encode(message),
    )


def _record(codec: str, kind: str, payload: bytes) -> JournalRecord:
    if codec == "blob":
        return Blob(kind, bytes(payload))
    return decode(payload)


def _open(path: Path, synchronous: str) -> sqlite3.Connection:
    """Open (creating when new) and check a journal file; translate SQLite errors to ConfigError."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open journal: {exc}", path=str(path)) from exc
    try:
        _check_or_create(conn, path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigError(f"not a Tradewind journal ({exc})", path=str(path)) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _check_or_create(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        (n_objects,) = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        if app_id == 0 and version == 0 and n_objects == 0:
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
        elif app_id != APPLICATION_ID:
            raise ConfigError(
                f"not a Tradewind journal (application_id {app_id:#x}, "
                f"expected {APPLICATION_ID:#x})",
                path=str(path),
            )
        elif version > SCHEMA_VERSION:
            raise ConfigError(
                f"journal schema version {version} is newer than this Tradewind supports "
                f"({SCHEMA_VERSION}): upgrade Tradewind",
                path=str(path),
            )
        elif version < 1:
            raise ConfigError(f"journal has no schema version ({version})", path=str(path))
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
