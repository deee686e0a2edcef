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

:class:`FeedLog` reads both (the stream read-only, beside its writer); a missing, truncated or
corrupt file, or an index the log does not hold, is a :class:`~runtime.errors.DataError` that
names the file.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Final, cast

import msgspec

from runtime.errors import ConfigError, DataError
from runtime.journal import JournalReader
from runtime.messages import AnyMessage, MarketData

__all__ = ["CACHE", "CHUNK", "STREAM", "FeedLog", "write_log"]

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
        if not rows or rows[0][0] != expected:
            raise DataError(f"the feed's log has no index {start} (its stream holds "
                            f"{self._stream.last_seq()} messages after the "
                            f"{self.cached} loaded)", source=str(path))
        return cast("list[MarketData]", [m for _, m in rows])
