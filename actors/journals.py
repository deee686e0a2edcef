"""The actors' journals, with SQLite's checkpoints moved off the actor's thread.

An actor commits its journal on every step and, before an order leaves, fsyncs it. In WAL mode
SQLite also copies the WAL into the main file every ~1000 pages, inside the commit that crossed
the mark, and fsyncs the main file: milliseconds, landing on whichever tick was in flight. Here
every journal an actor opens has its automatic checkpoints off
(``runtime.journal.Journal(checkpoint="manual")``) and one daemon thread per process checkpoints
each journal that committed :data:`ENTRIES` entries, :data:`BYTES` payload bytes (a few
snapshots) or :data:`COMMITS` transactions (each writes at least a 4 KiB page to the WAL: a send
log, which commits every entry on its own, writes ~10 KiB per entry) since its last checkpoint
(or anything, :data:`IDLE_S` ago), on its own connection,
while the actor goes on committing. (The WAL file's size says nothing: SQLite reuses the file
from its start after a checkpoint, without shrinking it; so its size is the most written
between two checkpoints.) Few, large checkpoints: each one's writes still disturb the actors'
own (the same disk), so every 20,000 entries (~20 s of a 1k ticks/s hot path; a WAL of a few
tens of MB) rather than SQLite's every ~1,000 pages (figures in docs/paper.md).

A passive checkpoint never makes the WAL start again from its beginning while its writer
commits all the time (SQLite resets it only once a checkpoint has copied all of it), so under
a steady load the file grows without bound. When a journal's WAL is over :data:`WAL_LIMIT`
after its checkpoint, the thread checkpoints it again with SQLite's TRUNCATE: the writer waits
for that one (the copy of what the passive one left), and the file is emptied.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref

from runtime.journal import Journal

__all__ = ["BYTES", "COMMITS", "ENTRIES", "IDLE_S", "WAL_LIMIT", "Checkpointer",
           "open_journal"]

ENTRIES = 20_000  # entries committed since a journal's last checkpoint that call for the next
BYTES = 16 << 20  # or payload bytes committed since (snapshots are large and few)
COMMITS = 2000  # or transactions committed since (~10-20 MB of WAL pages when each is small)
IDLE_S = 10.0  # or any entry, this long after the last
PERIOD_S = 0.2  # how often the process's thread looks
WAL_LIMIT = 64 << 20  # a WAL larger than this after a checkpoint is emptied (TRUNCATE)


class Checkpointer:
    """Journals to checkpoint when due (see the module docstring); :func:`open_journal`
    registers with the process's own, whose daemon thread calls :meth:`due` every
    ``PERIOD_S``."""

    def __init__(self, *, entries: int = ENTRIES, idle_s: float = IDLE_S,
                 nbytes: int = BYTES, wal_limit: int = WAL_LIMIT,
                 commits: int = COMMITS) -> None:
        self.entries, self.idle_s, self.nbytes = entries, idle_s, nbytes
        self.commits = commits
        self.wal_limit = wal_limit
        self.truncated = 0  # TRUNCATE checkpoints run (a WAL over the limit)
        # each open journal: its committed seq, bytes and commits, and the monotonic time, at
        # its last checkpoint
        self._journals: weakref.WeakKeyDictionary[Journal, tuple[int, int, int, float]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def add(self, journal: Journal) -> Journal:
        with self._lock:
            self._journals[journal] = (journal.committed_seq, journal.committed_bytes,
                                       journal.commits, time.monotonic())
        return journal

    def due(self, now: float | None = None) -> int:
        """Checkpoint every journal that is due; how many ran."""
        now = time.monotonic() if now is None else now
        with self._lock:
            journals = list(self._journals.items())
        done = 0
        for journal, (seq, nbytes, commits, at) in journals:
            committed = journal.committed_seq  # int reads: safe beside the writer
            written, done_commits = journal.committed_bytes, journal.commits
            if (committed - seq < self.entries and written - nbytes < self.nbytes
                    and done_commits - commits < self.commits
                    and ((committed, written) == (seq, nbytes) or now - at < self.idle_s)):
                continue
            # a journal closed meanwhile answers False; a failed checkpoint is tried again
            # next time (and SQLite checkpoints anyway when the journal closes)
            with contextlib.suppress(Exception):
                if journal.checkpoint():
                    done += 1
                    with self._lock:
                        self._journals[journal] = (committed, written, done_commits, now)
                    if journal.wal_bytes() > self.wal_limit and journal.checkpoint(
                            truncate=True):
                        self.truncated += 1
        return done


_process = Checkpointer()
_thread_lock = threading.Lock()
_thread: threading.Thread | None = None


def open_journal(path: str | os.PathLike[str]) -> Journal:
    """A journal that commits when its owner says (no batch limit), checkpointed by this
    process's checkpoint thread."""
    global _thread
    journal = _process.add(Journal(path, batch_size=1 << 30, checkpoint="manual"))
    with _thread_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, daemon=True, name="journal-checkpoints")
            _thread.start()
    return journal


def _run() -> None:
    stop = threading.Event()
    while not stop.wait(PERIOD_S):
        _process.due()
