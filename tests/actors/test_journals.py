"""The actors' journals: SQLite's checkpoints moved to a thread of their own (actors/journals)."""

from __future__ import annotations

import time
from pathlib import Path

from actors.journals import Checkpointer, open_journal
from runtime.journal import Blob, Journal


def _append(journal: Journal, n: int) -> None:
    for k in range(n):
        journal.append(Blob("x", k.to_bytes(8, "big") * 20))
    journal.flush()


def test_a_journal_is_checkpointed_when_enough_entries_or_time_have_passed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.journal"
    ckpt = Checkpointer(entries=100, idle_s=5.0)
    journal = ckpt.add(Journal(path, checkpoint="manual"))
    main = path.stat().st_size
    t0 = time.monotonic()
    _append(journal, 99)
    assert ckpt.due(t0 + 1) == 0  # neither enough entries nor idle long enough
    assert path.stat().st_size == main
    _append(journal, 1)
    assert ckpt.due(t0 + 1) == 1  # 100 entries since the last one
    assert path.stat().st_size > main  # copied into the main file
    assert ckpt.due(t0 + 100) == 0  # nothing new: nothing to do
    _append(journal, 3)
    assert ckpt.due(t0 + 3) == 0
    assert ckpt.due(t0 + 6) == 1  # a few entries, long enough after the last checkpoint
    journal.close()
    _append_more = ckpt.due(t0 + 1000)
    assert _append_more == 0  # a closed journal is skipped, without an error


def test_the_process_thread_checkpoints_while_the_owner_writes(tmp_path: Path) -> None:
    path = tmp_path / "b.journal"
    journal = open_journal(path)
    assert journal.checkpoint_mode == "manual"
    main = path.stat().st_size
    deadline = time.monotonic() + 30
    while path.stat().st_size == main and time.monotonic() < deadline:
        _append(journal, 2000)  # 20,000 entries (the thread's mark) in ten rounds
        time.sleep(0.05)
    assert path.stat().st_size > main  # the thread checkpointed
    last = journal.last_seq
    journal.close()
    with Journal(path) as again:
        assert [s for s, _ in again.entries()] == list(range(1, last + 1))


def test_a_few_large_snapshots_call_for_a_checkpoint_too(tmp_path: Path) -> None:
    """Bytes count as well as entries: a book's snapshots (a megabyte each, a few entries
    apart) would otherwise grow the WAL by a megabyte each until the idle timeout."""
    path = tmp_path / "c.journal"
    ckpt = Checkpointer(entries=10_000, idle_s=60.0, nbytes=1 << 20)
    journal = ckpt.add(Journal(path, checkpoint="manual"))
    t0 = time.monotonic()
    journal.append(Blob("mark", b"x" * 24))
    journal.snapshot(b"s" * (600 << 10), upto_seq=journal.last_seq)
    assert ckpt.due(t0 + 1) == 0  # 600 KiB: not yet
    journal.append(Blob("mark", b"x" * 24))
    journal.snapshot(b"s" * (600 << 10), upto_seq=journal.last_seq)
    assert journal.committed_bytes > 1 << 20
    assert ckpt.due(t0 + 1) == 1  # over a MiB since the last checkpoint
    assert ckpt.due(t0 + 2) == 0
    journal.close()


def test_a_wal_over_its_limit_is_emptied_while_the_owner_commits_all_the_time(
        tmp_path: Path) -> None:
    """A passive checkpoint never lets SQLite start the WAL again while its writer commits
    all the time: over ``wal_limit`` the checkpointer empties it (TRUNCATE), the writer waits
    for that one, and nothing committed is lost."""
    import threading

    path = tmp_path / "d.journal"
    ckpt = Checkpointer(entries=200, idle_s=60.0, wal_limit=512 << 10)
    journal = ckpt.add(Journal(path, checkpoint="manual"))
    stop = threading.Event()
    biggest = 0

    def watch() -> None:
        nonlocal biggest
        while not stop.is_set():
            ckpt.due()
            biggest = max(biggest, journal.wal_bytes())
            time.sleep(0.01)

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        for _ in range(1200):  # ~17 MB through the WAL, committed in small steps
            _append(journal, 25)
    finally:
        stop.set()
        thread.join()
    assert ckpt.truncated > 0
    assert biggest < 6 << 20  # without the limit: all ~17 MB (the WAL never starts again)
    last = journal.last_seq
    journal.close()
    with Journal(path) as again:
        assert [s for s, _ in again.entries()] == list(range(1, last + 1))
