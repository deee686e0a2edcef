"""Reading a market-data file as a stream of raw Arrow batches: CSV (plain or gzip'd) or Parquet.

Gzip is recognised by its magic bytes, whatever the file is called (``.csv.gz``, ``.gz``,
``.csv``); Parquet by its magic bytes or a ``.parquet``/``.pq`` name. CSV cells are read as text,
every column: the parsers decide exactly what a cell means. Batches are a few megabytes each, so
a file of any size is read in bounded memory.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from runtime.errors import DataError

__all__ = ["BLOCK_BYTES", "RawSource", "open_source"]

#: Bytes of CSV text per batch (Parquet: rows per batch is :data:`PARQUET_ROWS`).
BLOCK_BYTES = 4 << 20
PARQUET_ROWS = 65_536
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_READ_ERRORS = (pa.ArrowInvalid, OSError, UnicodeDecodeError, csv.Error, EOFError, gzip.BadGzipFile)


@dataclass(frozen=True)
class RawSource:
    """A readable file: its column names and how to stream its rows."""

    path: Path
    column_names: list[str]
    parquet: bool
    compressed: bool

    def batches(self) -> Iterator[pa.Table]:
        """The file's rows as tables of at most a few MB, in file order."""
        try:
            if self.parquet:
                for batch in pq.ParquetFile(self.path).iter_batches(batch_size=PARQUET_ROWS):
                    yield pa.Table.from_batches([batch])
                return
            yield from self._csv_batches()
        except _READ_ERRORS as exc:
            raise DataError(f"cannot read the file: {_first_line(exc)}", source=str(self.path)) \
                from exc

    def _csv_batches(self) -> Iterator[pa.Table]:
        convert = pacsv.ConvertOptions(
            column_types={n: pa.string() for n in self.column_names}, strings_can_be_null=False
        )
        stream: object = pa.OSFile(str(self.path))
        if self.compressed:
            stream = pa.CompressedInputStream(stream, "gzip")
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
            convert_options=convert,
        )
        with reader:
            for batch in reader:
                if batch.num_rows:
                    yield pa.Table.from_batches([batch])


def open_source(path: str | Path) -> RawSource:
    """The file at ``path``, its kind sniffed and its header read; DataError when it cannot be."""
    path = Path(path)
    name = str(path)
    if path.is_dir():
        raise DataError("is a directory, not a data file", source=name)
    if not path.exists():
        raise DataError("no such file", source=name)
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
        if magic == _PARQUET_MAGIC or path.suffix.lower() in (".parquet", ".pq"):
            return RawSource(path, list(pq.read_schema(path).names), True, False)
        compressed = magic[:2] == _GZIP_MAGIC
        header = _csv_header(path, compressed)
    except _READ_ERRORS as exc:
        raise DataError(f"cannot read the file: {_first_line(exc)}", source=name) from exc
    if not header:
        raise DataError("empty file (no header row)", source=name)
    return RawSource(path, header, False, compressed)


def _csv_header(path: Path, compressed: bool) -> list[str]:
    with path.open("rb") as raw, gzip.GzipFile(fileobj=raw) if compressed else raw as data, \
            io.TextIOWrapper(data, encoding="utf-8-sig", newline="") as text:
        return next(csv.reader(text), [])


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
