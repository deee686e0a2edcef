"""Canonical Arrow schemas of market data, one per kind, and a stable content hash.

Every kind has ``ts_event`` (int64 ns; for bars the bar's *close* time), ``ts_init`` (int64 ns),
``seq`` (int64: the row's position among rows of the same instrument with the same ``ts_event``,
so ``(instrument_id, ts_event, seq)`` is a natural key) and ``instrument_id``. Prices, sizes and
volumes are int64 fixed point (value × 10**9, :mod:`runtime.values`): never floats.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

import numpy as np
import pyarrow as pa

from runtime.errors import DataError

__all__ = [
    "AUX_KINDS",
    "FIXED_COLUMNS",
    "KINDS",
    "SCHEMAS",
    "Kind",
    "TableHasher",
    "check_kind",
    "conform",
    "empty_table",
    "seq_within_ts",
    "table_hash",
]

Kind = Literal[
    "quotes", "trades", "bars", "book", "funding", "open_interest", "mark", "borrow"
]
#: market data, then auxiliary data (:data:`AUX_KINDS`)
KINDS: tuple[Kind, ...] = (
    "quotes", "trades", "bars", "book", "funding", "open_interest", "mark", "borrow"
)
#: auxiliary data: what a venue publishes beside prices (rates are fixed-point fractions)
AUX_KINDS: tuple[Kind, ...] = ("funding", "open_interest", "mark", "borrow")

_COMMON = [
    pa.field("ts_event", pa.int64(), nullable=False),
    pa.field("ts_init", pa.int64(), nullable=False),
    pa.field("seq", pa.int64(), nullable=False),
    pa.field("instrument_id", pa.string(), nullable=False),
]


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema(_COMMON + [pa.field(n, t, nullable=False) for n, t in fields])


_I64 = pa.int64()
SCHEMAS: dict[str, pa.Schema] = {
    "quotes": _schema(
        ("bid_price", _I64), ("bid_size", _I64), ("ask_price", _I64), ("ask_size", _I64)
    ),
    "trades": _schema(
        ("price", _I64), ("size", _I64), ("aggressor", pa.int8()), ("trade_id", pa.string())
    ),
    "bars": _schema(
        ("open", _I64),
        ("high", _I64),
        ("low", _I64),
        ("close", _I64),
        ("volume", _I64),
        ("interval_ns", _I64),
    ),
    "book": _schema(
        ("side", pa.int8()),
        ("price", _I64),
        ("size", _I64),
        ("first_update_id", _I64),
        ("last_update_id", _I64),
        ("prev_update_id", _I64),
        ("is_snapshot", pa.bool_()),
    ),
    # a funding rate per period for the funding at funding_ts (settled when ts_event >= it)
    "funding": _schema(("rate", _I64), ("funding_ts", _I64), ("mark_price", _I64)),
    "open_interest": _schema(("open_interest", _I64)),
    "mark": _schema(("mark_price", _I64), ("index_price", _I64)),
    "borrow": _schema(("rate", _I64)),  # annual borrow rate of a short
}

#: Columns that hold fixed-point values (value × 10**9), per kind.
FIXED_COLUMNS: dict[str, tuple[str, ...]] = {
    "quotes": ("bid_price", "bid_size", "ask_price", "ask_size"),
    "trades": ("price", "size"),
    "bars": ("open", "high", "low", "close", "volume"),
    "book": ("price", "size"),
    "funding": ("rate", "mark_price"),
    "open_interest": ("open_interest",),
    "mark": ("mark_price", "index_price"),
    "borrow": ("rate",),
}


def check_kind(kind: str) -> Kind:
    """``kind`` itself when it is one of :data:`KINDS`; a DataError naming them otherwise."""
    if kind not in SCHEMAS:
        raise DataError(f"unknown kind {kind!r} (expected one of: {', '.join(KINDS)})")
    return kind  # type: ignore[return-value]


def empty_table(kind: str) -> pa.Table:
    return SCHEMAS[check_kind(kind)].empty_table()


def conform(kind: str, table: pa.Table) -> pa.Table:
    """``table`` with exactly the canonical columns of ``kind``, in order and type.

    Missing columns or columns that cannot be cast safely are a DataError; extra ones are dropped.
    """
    schema = SCHEMAS[check_kind(kind)]
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise DataError(f"{kind} table lacks column(s) {', '.join(missing)}")
    try:
        return table.select(schema.names).cast(schema, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"{kind} table does not fit the canonical schema: {exc}") from exc


def seq_within_ts(ts_event: np.ndarray) -> np.ndarray:
    """Position of each row among the rows with the same ``ts_event`` (time-sorted input)."""
    n = len(ts_event)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    index = np.arange(n, dtype=np.int64)
    starts = np.ones(n, dtype=bool)
    starts[1:] = ts_event[1:] != ts_event[:-1]
    run_start = np.maximum.accumulate(np.where(starts, index, 0))
    return index - run_start


class TableHasher:
    """A streaming SHA-256 over a table's columns; independent of how rows are batched."""

    def __init__(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._parts: dict[tuple[str, int], hashlib._Hash] = {}
        self.rows = 0

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        self.rows += batch.num_rows
        for name in self._schema.names:
            column = batch.column(name)
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            for part, data in enumerate(_column_parts(column)):
                self._parts.setdefault((name, part), hashlib.sha256()).update(data)

    def hexdigest(self) -> str:
        total = hashlib.sha256(str(self._schema).encode())
        total.update(self.rows.to_bytes(8, "little"))
        for (name, part), digest in sorted(self._parts.items()):
            total.update(f"{name}:{part}".encode() + b"\0" + digest.digest())
        return total.hexdigest()


def _column_parts(column: pa.Array) -> tuple[bytes, ...]:
    """The bytes of a column: (lengths, utf-8 data) for strings, little-endian values otherwise."""
    if pa.types.is_string(column.type):
        offsets = np.frombuffer(column.buffers()[1], dtype="<i4")
        offsets = offsets[column.offset : column.offset + len(column) + 1]
        data = column.buffers()[2]
        body = (
            b"" if data is None or len(column) == 0 else data.to_pybytes()[offsets[0] : offsets[-1]]
        )
        return np.diff(offsets).astype("<i8").tobytes(), body
    values = column.to_numpy(zero_copy_only=False)
    dtype = "u1" if pa.types.is_boolean(column.type) else "<i8"
    return (np.ascontiguousarray(values).astype(dtype).tobytes(),)


def table_hash(kind: str, batches: pa.Table | Iterable[pa.RecordBatch]) -> str:
    """Stable content hash of canonical market data of ``kind`` (for backtest manifests)."""
    hasher = TableHasher(SCHEMAS[check_kind(kind)])
    for batch in [batches] if isinstance(batches, pa.Table) else batches:
        hasher.update(batch)
    return hasher.hexdigest()
