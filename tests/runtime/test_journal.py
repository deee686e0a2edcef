"""The write-ahead journal: seqs, batching, snapshots, restore, compaction, foreign files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from runtime.errors import ConfigError, InvariantError
from runtime.journal import Blob, Journal, JournalRecord
from runtime.messages import (
    Liquidity,
    Message,
    OrderFilled,
    OrderSide,
    TradeTick,
    TradingState,
    TradingStateChanged,
)


def tick(n: int) -> TradeTick:
    return TradeTick(
        seq=n,
        ts_event=1_000 + n,
        ts_init=2_000 + n,
        instrument_id="AAPL",
        price=150_00 + n,
        size=n + 1,
    )


def fill(n: int) -> OrderFilled:
    return OrderFilled(
        seq=n,
        ts_event=5_000 + n,
        ts_init=6_000 + n,
        client_order_id=f"C{n}",
        strategy_id="S",
        instrument_id="AAPL",
        venue_order_id="V1",
        fill_id=f"F{n}",
        side=OrderSide.SELL,
        last_qty=1,
        last_price=150_00,
        cum_qty=1,
        leaves_qty=0,
        fee=3,
        currency="USD",
        liquidity=Liquidity.TAKER,
    )


def committed_rows(path: Path) -> int:
    """What another process would see right now."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])


def test_seqs_start_at_one_and_continue_gap_free_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path, batch_size=4) as journal:
        assert [journal.append(tick(i)) for i in range(10)] == list(range(1, 11))
    with Journal(path, batch_size=4) as journal:
        assert journal.last_seq == 10
        assert journal.append(tick(10)) == 11
    with Journal(path) as journal:
        assert [seq for seq, _ in journal.entries()] == list(range(1, 12))


def test_appends_commit_in_batches_and_on_flush(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = Journal(path, batch_size=3)
    journal.append(tick(1))
    journal.append(tick(2))
    assert (committed_rows(path), journal.committed_seq, journal.pending) == (0, 0, 2)
    journal.append(tick(3))  # the batch is full: one commit
    assert (committed_rows(path), journal.committed_seq, journal.pending) == (3, 3, 0)
    journal.append(tick(4))
    journal.flush()
    assert committed_rows(path) == 4
    journal.append(tick(5), durable=True)
    assert (committed_rows(path), journal.committed_seq) == (5, 5)
    journal.close()


def test_uncommitted_batch_is_lost_without_flush_and_kept_by_close(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = Journal(path, batch_size=100)
    for i in range(5):
        journal.append(tick(i))
    # another process restoring now (after a crash of this one) sees nothing
    with Journal(path) as other:
        assert list(other.restore().tail) == []
    journal.close()
    with Journal(path) as other:
        assert len(list(other.restore().tail)) == 5


def test_restore_returns_latest_snapshot_and_the_tail_after_it(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    records: list[JournalRecord] = [
        tick(1),
        fill(2),
        Blob("risk-state", b"\x00\x01"),
        tick(4),
        TradingStateChanged(seq=5, ts_event=1, ts_init=1, state=TradingState.HALTED, reason="x"),
    ]
    with Journal(path, batch_size=2) as journal:
        for record in records[:2]:
            journal.append(record)
        journal.snapshot(b"S2", upto_seq=2)
        for record in records[2:]:
            journal.append(record)
        journal.snapshot(b"S3", upto_seq=3)
    with Journal(path) as journal:
        snapshot, snapshot_seq, tail = journal.restore()
        assert (snapshot, snapshot_seq) == (b"S3", 3)
        assert list(tail) == [(4, records[3]), (5, records[4])]


def test_restore_without_snapshot_replays_everything(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal:
        journal.append(tick(1))
        restored = journal.restore()  # flushes the pending append first
        assert restored.snapshot is None and restored.snapshot_seq == 0
        assert list(restored.tail) == [(1, tick(1))]


def test_restore_reads_a_long_tail_in_order(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db", batch_size=1_000) as journal:
        for i in range(3_000):
            journal.append(tick(i))
        journal.snapshot(b"s", upto_seq=7)
        tail = list(journal.restore().tail)
    assert [seq for seq, _ in tail] == list(range(8, 3_001))
    assert tail[-1][1] == tick(2_999)


def test_snapshot_commits_the_pending_batch_with_it(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = Journal(path, batch_size=100)
    journal.append(tick(1))
    journal.append(tick(2))
    journal.snapshot(b"state", upto_seq=2)
    assert committed_rows(path) == 2 and journal.committed_seq == 2
    journal.close()


def test_snapshot_bounds_are_checked(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal:
        journal.append(tick(1))
        journal.append(tick(2))
        with pytest.raises(InvariantError, match="outside"):
            journal.snapshot(b"s", upto_seq=3)
        journal.snapshot(b"s", upto_seq=2)
        with pytest.raises(InvariantError, match="older than the latest"):
            journal.snapshot(b"s", upto_seq=1)


def test_forensic_columns_are_queryable_with_plain_sql(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        journal.append(tick(1))
        journal.append(fill(7))
        journal.append(Blob("note", b"hello"))
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT seq, codec, kind, msg_seq, ts_event, ts_init, instrument_id, client_order_id"
            " FROM entries ORDER BY seq"
        ).fetchall()
        by_order = conn.execute(
            "SELECT seq, kind FROM entries WHERE client_order_id = 'C7'"
        ).fetchall()
    assert rows == [
        (1, "message", "TradeTick", 1, 1_001, 2_001, "AAPL", None),
        (2, "message", "OrderFilled", 7, 5_007, 6_007, "AAPL", "C7"),
        (3, "blob", "note", None, None, None, None, None),
    ]
    assert by_order == [(2, "OrderFilled")]


def test_file_is_in_wal_mode_and_passes_integrity_check(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        journal.append(tick(1))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_compact_drops_entries_covered_by_the_latest_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        for i in range(6):
            journal.append(tick(i))
        with pytest.raises(InvariantError, match="needs a snapshot"):
            journal.compact(3)
        journal.snapshot(b"s2", upto_seq=2)
        journal.snapshot(b"s4", upto_seq=4)
        with pytest.raises(InvariantError, match="needs a snapshot"):
            journal.compact(5)
        assert journal.compact(4) == 4
        snapshot, snapshot_seq, tail = journal.restore()
        assert (snapshot, snapshot_seq, [s for s, _ in tail]) == (b"s4", 4, [5, 6])
        journal.snapshot(b"s6", upto_seq=6)
        assert journal.compact(6) == 2
    with Journal(path) as journal:  # everything compacted away: seqs still continue
        assert journal.append(tick(7)) == 7
        assert journal.restore().snapshot_seq == 6


def test_a_second_writer_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first, second = Journal(path), Journal(path)
    first.append(tick(1), durable=True)
    second.append(tick(2))
    with pytest.raises(InvariantError, match="another writer"):
        second.flush()
    first.close()
    with pytest.raises(InvariantError, match="another writer"):
        second.close()  # closes the file even so
    with Journal(path) as journal:
        assert [seq for seq, _ in journal.entries()] == [1]


def test_only_runtime_messages_and_blobs_are_recorded(tmp_path: Path) -> None:
    class Alien(Message, frozen=True, kw_only=True, tag=True):
        x: int

    class Plain(msgspec.Struct):
        x: int

    with Journal(tmp_path / "j.db") as journal:
        with pytest.raises(InvariantError, match="Alien"):
            journal.append(Alien(seq=1, ts_event=1, ts_init=1, x=1))  # type: ignore[arg-type]
        with pytest.raises(InvariantError, match="Plain"):
            journal.append(Plain(1))  # type: ignore[arg-type]
        with pytest.raises(InvariantError, match="kind"):
            journal.append(Blob("", b""))
        assert journal.last_seq == 0


def test_closed_journal_refuses_use_and_close_is_idempotent(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.close()
    journal.close()
    with pytest.raises(InvariantError, match="closed"):
        journal.append(tick(1), durable=True)


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        Journal(tmp_path / "j.db", batch_size=0)
    with pytest.raises(ConfigError, match="synchronous"):
        Journal(tmp_path / "j.db", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="checkpoint must be auto or manual, got 'never'"):
        Journal(tmp_path / "j.db", checkpoint="never")  # type: ignore[arg-type]


def test_manual_checkpoints_leave_the_wal_to_the_caller_and_lose_nothing(
    tmp_path: Path,
) -> None:
    """With ``checkpoint="manual"`` a commit never copies the WAL into the main file; a
    checkpoint from another thread does, while the owner keeps appending; every entry is
    there after reopening."""
    import threading

    path = tmp_path / "m.db"
    journal = Journal(path, batch_size=10, checkpoint="manual")
    (auto,) = journal._connection().execute("PRAGMA wal_autocheckpoint").fetchone()
    assert auto == 0
    main_size = path.stat().st_size
    for n in range(6000):  # 600 commits, ~1,200 WAL frames: past SQLite's own mark (1,000)
        journal.append(tick(n))
    journal.flush()
    assert path.stat().st_size == main_size  # nothing copied into the main file yet
    assert journal.wal_bytes() > 1000 * 4096

    done: list[bool] = []
    worker = threading.Thread(target=lambda: done.append(journal.checkpoint()))
    worker.start()
    for n in range(6000, 6500):  # the owner goes on meanwhile
        journal.append(tick(n))
    worker.join()
    journal.flush()
    assert done == [True]
    assert path.stat().st_size > main_size  # the checkpoint copied the WAL's pages
    journal.close()
    assert journal.checkpoint() is False  # closed: nothing to do, no error
    assert not Path(f"{path}-wal").exists()  # the last close checkpointed and dropped it

    with Journal(path) as again:
        seqs = [seq for seq, _ in again.entries()]
    assert seqs == list(range(1, 6501))


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a journal\n" * 100)
    with pytest.raises(ConfigError, match="not a Tradewind journal") as info:
        Journal(path)
    assert str(path) in str(info.value)


def test_a_foreign_sqlite_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(ConfigError, match="not a Tradewind journal") as info:
        Journal(path)
    assert str(path) in str(info.value)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert conn.execute("SELECT name FROM sqlite_schema").fetchall() == [("t",)]


def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(ConfigError, match="schema version 99 is newer") as info:
        Journal(path)
    assert str(path) in str(info.value)
