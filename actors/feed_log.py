"""The feed's log: the session's market data, durable once, read by index by every actor.

The log is two files beside the journals, one after the other in index order:

* ``feed.msgs``: the data loaded before the session starts (the store, files, generated sample
  data), written once (to a temporary name, fsynced, renamed), in chunks of
  :data:`CHUNK` messages so that a reader decodes only the chunks it needs::

      MAGIC | chunk 0 | chunk 1 | ... | index | index offset (8) | index length (8) | MAGIC

  each chunk a msgpack list of messages; the index (msgpack) holds ``start_ns``, the message
  count, and each chunk's offset, length and CRC-32.
* ``feed.stream.journal``: what a broker streams while the session runs (``feed.mode:
  broker``; ``actors.venues.market_data.StreamSink``), committed before the feed's driver can
  hand it to any actor; journal seq ``k`` is index ``len(feed.msgs) + k - 1``.

The stream's oldest messages go after a while (``feed.retention``, :mod:`actors.retention`):
its journal keeps a snapshot that says how many went (and the first message, which paces the
driver) and drops them, and :class:`FeedMessages`, the feed's messages in memory, drops them
too. Nothing any actor's restore still needs ever goes.

:class:`FeedLog` reads both (the stream read-only, beside its writer); a missing, truncated or
corrupt file, or an index the log does not hold, is a :class:`~runtime.errors.DataError` that
names the file.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Final, cast, overload

import msgspec

from runtime.errors import ConfigError, DataError
from runtime.journal import JournalReader
from runtime.messages import AnyMessage, MarketData

__all__ = ["CACHE", "CHUNK", "STREAM", "FeedLog", "FeedMessages", "write_log"]

CACHE: Final = "feed.msgs"
STREAM: Final = "feed.stream.journal"
CHUNK: Final = 4096
MAGIC: Final = b"TWFEED02"
_FOOTER = struct.Struct(">QQ8s")
_INDEX = msgspec.msgpack.Decoder(tuple[int, int, int, list[tuple[int, int, int]]])
_CHUNK = msgspec.msgpack.Decoder(list[AnyMessage])


def write_log(path: Path, start_ns: int, messages: Sequence[MarketData]) -> None:
    """``messages`` as the log's first file at ``path`` (atomically: a reader sees the whole
    file or none)."""
    encoder = msgspec.msgpack.Encoder()
    tmp = path.with_suffix(".tmp")
    chunks: list[tuple[int, int, int]] = []
    with open(tmp, "wb") as out:
        out.write(MAGIC)
        for k in range(0, len(messages), CHUNK):
            data = encoder.encode(list(messages[k:k + CHUNK]))
            chunks.append((out.tell(), len(data), zlib.crc32(data)))
            out.write(data)
        index = encoder.encode((start_ns, len(messages), CHUNK, chunks))
        at = out.tell()
        out.write(index)
        out.write(_FOOTER.pack(at, len(index), MAGIC))
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


class FeedLog:
    """The market data of the session in ``folder`` (see the module docstring), by index.

    Decoded chunks are kept (the latest few), so a replay reading a message at a time decodes
    each chunk once."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / CACHE
        self.start_ns = 0
        self.cached = 0  # messages in feed.msgs
        self._chunk_size = CHUNK
        self._chunks: list[tuple[int, int, int]] = []
        self._decoded: dict[int, list[MarketData]] = {}
        self._stream: JournalReader | None = None
        self._stream_block: tuple[int, list[MarketData]] = (-1, [])
        self._open()

    # --- reading -----------------------------------------------------------------------------
    def read(self, start: int, stop: int) -> Sequence[MarketData]:
        """Messages ``start`` .. ``stop - 1`` (all of them, or a DataError)."""
        if start < 0 or stop < start:
            raise DataError(f"no range {start}..{stop - 1} in the feed's log",
                            source=str(self.path))
        out: list[MarketData] = []
        i = start
        while i < min(stop, self.cached):
            k = i // self._chunk_size
            chunk = self._chunk(k)
            end = min(stop, self.cached, (k + 1) * self._chunk_size)
            out.extend(chunk[i - k * self._chunk_size:end - k * self._chunk_size])
            i = end
        while i < stop:
            block = self._stream_read(i, stop)
            out.extend(block)
            i += len(block)
        return out

    def all(self) -> list[MarketData]:
        """Every message of ``feed.msgs`` (the feed actor's list; the stream follows it)."""
        return list(self.read(0, self.cached))

    # --- internals ---------------------------------------------------------------------------
    def _open(self) -> None:
        try:
            with open(self.path, "rb") as f:
                head = f.read(len(MAGIC))
                size = os.fstat(f.fileno()).st_size
                if head != MAGIC or size < len(MAGIC) + _FOOTER.size:
                    raise self._broken("not a feed log of this Tradewind version")
                f.seek(size - _FOOTER.size)
                at, length, magic = _FOOTER.unpack(f.read(_FOOTER.size))
                if magic != MAGIC or at + length + _FOOTER.size != size:
                    raise self._broken("truncated or overwritten")
                f.seek(at)
                index = f.read(length)
        except FileNotFoundError:
            raise DataError("the feed's log is missing: the session's market data cannot be "
                            "read again (was the session folder copied without it?)",
                            source=str(self.path)) from None
        try:
            self.start_ns, self.cached, self._chunk_size, self._chunks = _INDEX.decode(index)
        except msgspec.DecodeError as exc:
            raise self._broken(f"its index does not decode ({exc})") from exc
        if self._chunk_size < 1 or len(self._chunks) != -(-self.cached // self._chunk_size):
            raise self._broken("its index does not match its message count")

    def _broken(self, why: str) -> DataError:
        return DataError(f"the feed's log is unreadable: {why}", source=str(self.path))

    def _chunk(self, k: int) -> list[MarketData]:
        chunk = self._decoded.get(k)
        if chunk is not None:
            return chunk
        offset, length, crc = self._chunks[k]
        with open(self.path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        if len(data) != length or zlib.crc32(data) != crc:
            raise self._broken(f"chunk {k} (messages {k * self._chunk_size}..) is corrupt")
        try:
            chunk = cast("list[MarketData]", _CHUNK.decode(data))
        except msgspec.DecodeError as exc:
            raise self._broken(f"chunk {k} does not decode ({exc})") from exc
        if len(self._decoded) >= 4:
            self._decoded.pop(next(iter(self._decoded)))
        self._decoded[k] = chunk
        return chunk

    def _stream_read(self, start: int, stop: int) -> list[MarketData]:
        """Messages of the broker stream from index ``start`` (at least one, or DataError),
        read a block of :data:`CHUNK` at a time."""
        first, block = self._stream_block
        if not first <= start < first + len(block):
            first = start
            block = self._stream_entries(start, start + max(CHUNK, stop - start))
            self._stream_block = (first, block)
        return block[start - first:stop - first]

    def _stream_entries(self, start: int, stop: int) -> list[MarketData]:
        path = self.folder / STREAM
        if self._stream is None:
            try:
                self._stream = JournalReader(path)
            except ConfigError as exc:
                raise DataError(f"the feed's log ends at index {self.cached} and its stream "
                                f"cannot be read ({exc}): no index {start}",
                                source=str(path)) from exc
        try:
            rows = self._stream.entries(start - self.cached, stop - self.cached)
        except ConfigError as exc:
            raise DataError(str(exc), source=str(path)) from exc
        expected = start - self.cached + 1
        head = self._stream.snapshot_head(0) if not rows or rows[0][0] != expected else None
        if head is not None and expected <= head[0]:
            raise DataError(f"the feed's message {start} was dropped by retention (the stream "
                            f"holds {self.cached + head[0]} on; feed.retention)",
                            source=str(path))
        if not rows or rows[0][0] != expected:
            raise DataError(f"the feed's log has no index {start} (its stream holds "
                            f"{self._stream.last_seq()} messages after the "
                            f"{self.cached} loaded)", source=str(path))
        return cast("list[MarketData]", [m for _, m in rows])


class FeedMessages(Sequence[MarketData]):
    """The feed's messages by index, as the driver reads them: the loaded part (``feed.msgs``),
    then the broker stream's, whose oldest retention drops (:meth:`retire`). The very first
    message stays (the driver paces from it); any other dropped index is a DataError."""

    def __init__(self, loaded: list[MarketData]) -> None:
        self._loaded = loaded
        self.dropped = 0  # stream messages retired: the stream here starts at their count
        self._stream: list[MarketData] = []
        self._first: MarketData | None = loaded[0] if loaded else None

    @property
    def first(self) -> MarketData | None:
        return self._first

    @property
    def cached(self) -> int:
        """Messages of the loaded part (``feed.msgs``); the stream's follow."""
        return len(self._loaded)

    @property
    def retained_from(self) -> int:
        """The first index still held (the loaded part is always held)."""
        return len(self._loaded) + self.dropped if self.dropped else 0

    def __len__(self) -> int:
        return len(self._loaded) + self.dropped + len(self._stream)

    @overload
    def __getitem__(self, index: int) -> MarketData: ...

    @overload
    def __getitem__(self, index: slice) -> list[MarketData]: ...

    def __getitem__(self, index: int | slice) -> MarketData | list[MarketData]:
        cached = len(self._loaded)
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError("the feed's messages are read in order (no step)")
            if stop <= start:
                return []
            out = self._loaded[start:stop] if start < cached else []
            if stop > cached:
                self._check(max(start, cached))
                base = cached + self.dropped
                out.extend(self._stream[max(start, cached) - base:stop - base])
            return out
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index < cached:
            return self._loaded[index]
        if index == 0 and self._first is not None:
            return self._first
        self._check(index)
        return self._stream[index - cached - self.dropped]

    def __iter__(self) -> Iterator[MarketData]:
        if self.dropped:
            self._check(self.cached)
        yield from self._loaded
        yield from self._stream

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def _check(self, index: int) -> None:
        if index < len(self._loaded) + self.dropped:
            raise DataError(f"the feed's message {index} was dropped by retention (the "
                            f"stream holds {self.retained_from} on; feed.retention)",
                            source=STREAM)

    def extend(self, msgs: Iterable[MarketData]) -> None:
        self._stream.extend(msgs)
        if self._first is None and self._stream:
            self._first = self._stream[0]

    def reopen(self, *, dropped: int, first: MarketData | None,
               msgs: Iterable[MarketData]) -> None:
        """The stream as its journal holds it after a restart: ``dropped`` retired, then
        ``msgs``."""
        self.dropped, self._stream = dropped, list(msgs)
        self._first = self._first or first or (self._stream[0] if self._stream else None)

    def streamed(self) -> list[MarketData]:
        """The stream's messages held (from :attr:`retained_from`)."""
        return self._stream

    def retire(self, upto: int) -> int:
        """Drop the stream's messages below index ``upto`` from memory; how many went."""
        n = min(upto - len(self._loaded) - self.dropped, len(self._stream))
        if n <= 0:
            return 0
        del self._stream[:n]
        self.dropped += n
        return n
