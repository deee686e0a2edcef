"""Retention of the broker stream (actors/retention): a long session's journals stay bounded,
nothing an actor's restore needs ever goes, and a restore after retention comes back with the
same state hash; a dropped index reads as an error naming retention."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.config import FeedConfig, RetentionConfig
from actors.feed_log import CACHE, STREAM, FeedLog, FeedMessages, write_log
from actors.retention import Retention, restore_floor, retire_below
from actors.venues.market_data import StreamSink
from runtime.errors import DataError
from runtime.journal import Journal
from runtime.messages import OrderAccepted, SubmitOrder
from runtime.recovery import JournaledKernel
from tests.runtime.test_kernel import bar, fill_for
from tests.runtime.test_recovery import factory

MINUTE_NS = 60 * 10**9


def _stream(tmp_path: Path) -> tuple[FeedMessages, StreamSink]:
    """A broker session's feed: nothing loaded, the stream journaled by its sink."""
    if not (tmp_path / CACHE).exists():
        write_log(tmp_path / CACHE, 0, [])
    messages = FeedMessages([])
    return messages, StreamSink(tmp_path / STREAM, messages)


def _drive(jk: JournaledKernel, messages: FeedMessages) -> None:
    """The owner takes every message it has not (as a strategy actor does), fills included."""
    for index in range(jk.position, len(messages)):
        msg = messages[index]
        for out in jk.handle(msg):
            if isinstance(out, SubmitOrder):
                jk.handle(OrderAccepted(seq=0, ts_event=out.ts_event, ts_init=out.ts_event,
                                        client_order_id=out.client_order_id,
                                        strategy_id=out.strategy_id,
                                        instrument_id=out.instrument_id, venue_order_id="v"))
                jk.handle(fill_for(out, 100 + index % 7, f"f{index}"))
        jk.flush()


def _entries(journal: Journal) -> int:
    return sum(1 for _ in journal.entries())


def test_a_long_stream_stays_bounded_and_a_restore_after_retention_matches(
        tmp_path: Path) -> None:
    messages, sink = _stream(tmp_path)
    owner = tmp_path / "strategy.flip.journal"
    jk = JournaledKernel.restore(factory, Journal(owner), FeedLog(tmp_path), snapshot_every=40)
    jk.start(0)
    retention = Retention(RetentionConfig(max_age_s=None, max_messages=50), [owner])
    stream_sizes, owner_sizes = [], []
    for block in range(30):  # 1,200 bars, 40 at a time
        sink.put([bar(i, 100 + i % 7) for i in range(block * 40 + 1, block * 40 + 41)])
        _drive(jk, messages)
        retention.apply(sink, cursor=jk.position)
        stream_sizes.append(_entries(sink.journal))
        owner_sizes.append(_entries(jk.journal.journal))
    assert len(messages) == 1200 and messages.dropped == retention.retired > 1000
    assert max(stream_sizes[5:]) <= 50 + 2 * 40  # the policy's 50, plus what the floor holds
    assert max(owner_sizes[5:]) < 3 * 40  # the owner compacts behind its snapshots
    assert len(messages.streamed()) == stream_sizes[-1]  # memory as bounded as the disk
    expected = jk.kernel.state_hash()
    jk.journal.close()
    sink.journal.close()

    again, sink2 = _stream(tmp_path)  # the feed restarted: the same indices, the same first
    assert (len(again), again.dropped, again[0]) == (1200, messages.dropped, messages[0])
    assert again[1199] == messages[1199]
    restored = JournaledKernel.restore(factory, Journal(owner), FeedLog(tmp_path),
                                       snapshot_every=40)
    assert restored.position == 1200
    assert restored.kernel.state_hash() == expected
    restored.journal.close()
    sink2.journal.close()


def test_retention_never_passes_an_owner_that_has_not_snapshotted(tmp_path: Path) -> None:
    """The floor: an owner with no snapshot (or no journal yet) restores from index 0, so
    nothing goes; a lagging owner's snapshot position is as far as anything goes."""
    messages, sink = _stream(tmp_path)
    sink.put([bar(i) for i in range(1, 101)])
    policy = RetentionConfig(max_age_s=None, max_messages=10)
    lagging = tmp_path / "risk.journal"
    assert restore_floor([lagging], cursor=100) == 0  # no journal yet
    assert Retention(policy, [lagging]).apply(sink, cursor=100) == 0
    jk = JournaledKernel.restore(factory, Journal(lagging), FeedLog(tmp_path),
                                 snapshot_every=10**9)
    jk.start(0)
    _drive(jk, messages)
    jk.journal.flush()
    assert restore_floor([lagging], cursor=100) == 0  # journaled, never snapshotted
    jk.snapshot()
    assert restore_floor([lagging], cursor=60) == 60  # the feed's saved cursor is lower
    assert restore_floor([lagging], cursor=100) == 100
    assert Retention(policy, [lagging]).apply(sink, cursor=30) == 30
    assert messages.retained_from == 30 and _entries(sink.journal) == 70
    jk.journal.close()
    sink.journal.close()


def test_by_age_only_what_arrived_before_the_cutoff_goes() -> None:
    messages = FeedMessages([])
    messages.extend([bar(i) for i in range(1, 11)])  # ts_init: minute i
    policy = RetentionConfig(max_age_s=3 * 60, max_messages=None)
    now = 10 * MINUTE_NS
    assert retire_below(messages, policy, floor=10, now_ns=now) == 6  # minutes 1..6 < 7
    assert retire_below(messages, policy, floor=4, now_ns=now) == 4
    assert retire_below(messages, RetentionConfig(max_age_s=None, max_messages=None),
                        floor=10, now_ns=now) == 0


def test_a_dropped_index_is_an_error_naming_retention(tmp_path: Path) -> None:
    messages, sink = _stream(tmp_path)
    sink.put([bar(i) for i in range(1, 21)])
    sink.retire(lambda _: 15)
    assert messages[0] == messages.first and messages[15].seq == 16
    assert [m.seq for m in messages[15:18]] == [16, 17, 18]
    with pytest.raises(DataError, match="message 5 was dropped by retention"):
        messages[5]
    with pytest.raises(DataError, match="dropped by retention"):
        messages[3:17]
    log = FeedLog(tmp_path)
    assert [m.seq for m in log.read(15, 20)] == [16, 17, 18, 19, 20]
    with pytest.raises(DataError, match=r"message 14 was dropped by retention .*holds 15 on"):
        log.read(14, 16)
    sink.journal.close()


def test_the_default_policy_is_bounded_and_a_bad_one_is_refused() -> None:
    default = FeedConfig().retention
    assert default.max_age_s == 3600 and default.max_messages == 2_000_000
    with pytest.raises(ValueError, match="max_messages"):
        FeedConfig.model_validate({"retention": {"max_messages": 0}})


