"""The send log's compaction (``actors.venues.send_log``) without a broker: orders and reports
driven through a :class:`ReportBook` as an adapter drives them, the log compacted, reopened as
a restarted gateway reopens it."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.venues.reports import ReportBook
from actors.venues.send_log import SendLog
from runtime.errors import DiskWriteError, InvariantError
from runtime.journal import Journal
from runtime.messages import CancelOrder, OrderFilled, OrderSide, OrderType, SubmitOrder

LOT = 10**9


def _buy(cid: str, qty: int = 2) -> SubmitOrder:
    return SubmitOrder(seq=1, ts_event=1, ts_init=1, client_order_id=cid, strategy_id="s",
                       instrument_id="X", side=OrderSide.BUY, order_type=OrderType.LIMIT,
                       quantity=qty * LOT, price=100 * LOT)


class _Adapter:
    """What an adapter does with its send log: journal, send, the broker's ids, its reports
    through the book (journaled as they are made)."""

    def __init__(self, path: Path, now: list[int]) -> None:
        self.log = SendLog(Journal(path), clock_ns=lambda: now[0])
        self.book = ReportBook(currency="USD", clock_ns=lambda: now[0],
                               on_report=self.log.report, on_terminal=self.log.closed)
        self.book.set_baseline(self.log.baseline or {})
        for order in self.log.orders.values():
            self.book.restore(order.command, venue_order_id=order.broker_ids.get("id", ""),
                              closed=order.closed, fills=order.fills)
        self.book.resume_seq(self.log.last_report_seq)

    def submit(self, cid: str, *, fills: int) -> None:
        assert self.log.before_send(_buy(cid))
        self.book.track(_buy(cid))
        self.log.sent(cid)
        self.log.broker_ids(cid, id=f"B{cid}")
        self.book.accepted(cid, venue_order_id=f"B{cid}", ts_event=1)
        for n in range(fills):
            self.book.filled(cid, fill_id=f"F-{cid}-{n}", qty=LOT, price=100 * LOT, fee=0,
                             ts_event=1)

    def close(self) -> None:
        self.log.journal.close()


def test_compaction_keeps_what_a_restart_needs_and_retires_the_rest(tmp_path: Path) -> None:
    now = [1_000]
    first = _Adapter(tmp_path / "broker.x.journal", now)
    for i in range(6):
        first.submit(f"o-{i}", fills=2)  # filled: closed
    first.submit("open-1", fills=1)  # partly filled, still working
    first.log.before_send(CancelOrder(seq=1, ts_event=5, ts_init=5, client_order_id="open-1",
                                      strategy_id="s", instrument_id="X"))
    first.submit("late-1", fills=2)  # closed, but a report of it is ahead of the cursor
    book_positions = first.book.positions()
    reports = list(first.log.reports)
    floor = next(i for i, r in enumerate(reports) if r.client_order_id == "late-1") + 1
    with pytest.raises(InvariantError, match="open-1 is not closed"):
        first.log.compact(retire=["open-1"])
    closed = [cid for cid, o in first.log.orders.items() if o.closed]
    gone = first.log.compact(retire=closed, reports_floor=floor)
    assert gone == [f"o-{i}" for i in range(6)]
    assert sum(1 for _ in first.log.journal.entries()) == 0  # all in the snapshot
    first.submit("after-1", fills=0)
    first.close()

    again = _Adapter(tmp_path / "broker.x.journal", now)
    log = again.log
    assert list(log.orders) == ["open-1", "late-1", "after-1"]
    assert log.baseline == {"X": 12 * LOT}  # the retired orders' fills, where the book starts
    assert again.book.positions() == book_positions  # the same positions as before
    assert log.retired_fills == [f"F-o-{i}-{n}" for i in range(6) for n in range(2)]
    assert log.reports_base == floor and log.reports == reports[floor:] + log.reports[-1:]
    assert log.submits == 9  # a tag counter never repeats
    assert not log.before_send(_buy("open-1"))  # kept: never sent twice
    assert log.find("id", "Bopen-1") == "open-1" and log.find("id", "Bo-0") is None
    assert ("CancelOrder", "open-1", 5) in log.amends
    fill = [r for r in log.reports if isinstance(r, OrderFilled)][-1]
    assert not again.book.filled(fill.client_order_id, fill_id=fill.fill_id, qty=LOT,
                                 price=100 * LOT, fee=0, ts_event=1)  # counted once
    assert log.last_report_seq == max(r.seq for r in log.reports)
    again.close()


def test_a_log_is_compacted_when_it_grew_by_what_its_snapshot_holds(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch
                                                                    ) -> None:
    monkeypatch.setattr("actors.venues.send_log.COMPACT_MIN_ENTRIES", 10)
    now = [1]
    adapter = _Adapter(tmp_path / "broker.x.journal", now)
    for i in range(3):
        adapter.submit(f"w-{i}", fills=0)  # working: nothing retires
    assert adapter.log.compaction_due  # 3 x (submit, sent, ids, ack) >= 10
    adapter.log.compact()
    assert not adapter.log.compaction_due
    for i in range(3, 5):
        adapter.submit(f"w-{i}", fills=0)
    assert not adapter.log.compaction_due  # 8 new < 10: not yet
    adapter.close()


def test_retired_orders_fills_stay_in_the_session_files(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Retiring an order drops it from the journal, never from the session's fills: its
    fills go to the archive first, and ``all_fills`` (fills.csv) lists every fill once, in
    report order, before and after a restart; a torn append is cut off and redone."""
    now = [1_000]
    first = _Adapter(tmp_path / "broker.x.journal", now)
    for i in range(4):
        first.submit(f"o-{i}", fills=2)
    first.submit("open-1", fills=1)
    every = [f.fill_id for f in first.log.all_fills()]
    assert len(every) == 9
    gone = first.log.compact(retire=[c for c, o in first.log.orders.items() if o.closed])
    assert gone == [f"o-{i}" for i in range(4)]
    assert [f.fill_id for f in first.log.all_fills()] == every
    first.submit("o-4", fills=2)
    first.close()
    with (tmp_path / "broker.x.fills").open("ab") as fh:
        fh.write(b"\x00\x00\x10\x00torn")  # a crash mid-append
    again = _Adapter(tmp_path / "broker.x.journal", now)
    assert "torn tail of 8 bytes cut off" in caplog.text
    assert [f.fill_id for f in again.log.all_fills()] == [*every, "F-o-4-0", "F-o-4-1"]
    again.log.compact(retire=["o-4"])
    again.log.compact(retire=[])
    assert [f.fill_id for f in again.log.all_fills()] == [*every, "F-o-4-0", "F-o-4-1"]
    again.close()


def test_an_archive_that_cannot_be_written_retires_nothing_and_stops_sending(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    now = [1_000]
    adapter = _Adapter(tmp_path / "broker.x.journal", now)
    adapter.submit("o-1", fills=2)  # filled: closed

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # the disk refuses the append's sync
    with pytest.raises(DiskWriteError, match=r"broker\.x\.fills: retired orders' fills not "
                                             r"archived \(2 fills, first F-o-1-0\): No space"):
        adapter.log.compact(retire=["o-1"])
    monkeypatch.undo()
    assert (tmp_path / "broker.x.fills").stat().st_size == 0  # the failed append cut off
    assert list(adapter.log.orders) == ["o-1"]  # still held: nothing lost
    assert [f.fill_id for f in adapter.log.all_fills()] == ["F-o-1-0", "F-o-1-1"]
    with pytest.raises(DiskWriteError):
        adapter.log.before_send(_buy("o-2"))  # nothing goes out after it
    adapter.close()

