"""The feed's log (actors/feed_log): market data by index across its chunks and the broker
stream's journal; a missing, truncated or corrupt log, or an index it does not hold, is a clear
DataError, never a silent gap."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from actors.feed_log import CACHE, CHUNK, STREAM, FeedLog, FeedMessages, write_log
from actors.venues.market_data import StreamSink
from runtime.errors import DataError
from runtime.messages import MarketData, QuoteTick
from runtime.values import fixed


def _quotes(n: int, first: int = 0) -> list[MarketData]:
    return [QuoteTick(seq=i + 1, ts_event=10**9 + i, ts_init=10**9 + i, instrument_id="Q",
                      bid_price=fixed(100) + i, bid_size=fixed(1), ask_price=fixed(101) + i,
                      ask_size=fixed(1)) for i in range(first, first + n)]


def test_ranges_across_chunks_read_back_exactly(tmp_path: Path) -> None:
    msgs = _quotes(2 * CHUNK + 17)
    write_log(tmp_path / CACHE, 123, msgs)
    log = FeedLog(tmp_path)
    assert (log.start_ns, log.cached) == (123, len(msgs))
    assert list(log.read(0, len(msgs))) == msgs
    assert list(log.read(CHUNK - 3, CHUNK + 5)) == msgs[CHUNK - 3:CHUNK + 5]
    assert list(log.read(7, 7)) == []
    assert [log.read(i, i + 1)[0] for i in range(CHUNK - 2, CHUNK + 2)] == msgs[CHUNK - 2:CHUNK + 2]
    assert log.all() == msgs


def test_the_broker_stream_follows_the_loaded_data(tmp_path: Path) -> None:
    loaded = _quotes(10)
    write_log(tmp_path / CACHE, 0, loaded)
    sink = StreamSink(tmp_path / STREAM, FeedMessages(list(loaded)))
    streamed = _quotes(30, first=10)
    sink.put(streamed[:20])
    sink.put(streamed[20:])
    log = FeedLog(tmp_path)  # another process's reader, read-only
    got = log.read(5, 40)
    assert [m.ts_event for m in got] == [m.ts_event for m in (loaded + streamed)[5:40]]
    assert [m.seq for m in got[5:]] == list(range(11, 41))  # the sink numbers what it streams
    with pytest.raises(DataError, match="has no index 40"):
        log.read(38, 41)
    sink.put(_quotes(1, first=40))
    assert log.read(40, 41)[0].ts_event == 10**9 + 40  # what came since is read too
    sink.journal.close()


def test_a_missing_log_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"feed\.msgs: the feed's log is missing"):
        FeedLog(tmp_path)


def test_a_truncated_log_is_an_error(tmp_path: Path) -> None:
    write_log(tmp_path / CACHE, 0, _quotes(100))
    path = tmp_path / CACHE
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated or overwritten"):
        FeedLog(tmp_path)
    path.write_bytes(b"not a log at all")
    with pytest.raises(DataError, match="not a feed log"):
        FeedLog(tmp_path)


def test_a_corrupt_chunk_is_an_error_when_read(tmp_path: Path) -> None:
    write_log(tmp_path / CACHE, 0, _quotes(2 * CHUNK))
    path = tmp_path / CACHE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a byte of the second chunk
    path.write_bytes(bytes(data))
    log = FeedLog(tmp_path)
    assert len(log.read(0, 10)) == 10  # the first chunk is fine
    with pytest.raises(DataError, match=r"chunk 1 .* is corrupt"):
        log.read(CHUNK, CHUNK + 1)


def test_an_index_past_the_end_without_a_stream_is_an_error(tmp_path: Path) -> None:
    write_log(tmp_path / CACHE, 0, _quotes(5))
    with pytest.raises(DataError, match="ends at index 5"):
        FeedLog(tmp_path).read(3, 6)


def test_a_streamed_message_is_in_the_log_before_the_feed_can_hand_it_out(
        tmp_path: Path) -> None:
    """The sink commits a batch to the stream's journal before the feed's list shows it: an
    actor can only reach (and journal a marker for) an index the log already holds, so a
    SIGKILL of the feed's process never leaves a marker past the log."""
    write_log(tmp_path / CACHE, 0, [])
    seen: list[int] = []

    class Watched(FeedMessages):  # the feed's list, as the driver reads it
        def extend(self, msgs: Iterable[MarketData]) -> None:
            new = list(msgs)
            log = FeedLog(tmp_path)  # another process would open it so
            assert list(log.read(len(self), len(self) + len(new))) == new
            seen.append(len(new))
            super().extend(new)

    sink = StreamSink(tmp_path / STREAM, Watched([]))
    sink.put(_quotes(3))
    sink.put(_quotes(2, first=3))
    assert seen == [3, 2]  # the two batches (a restart reopens the list instead)
    sink.journal.close()
