"""Typed market-data helpers of the Store: write, read, stream, list and hash datasets.

Reads use ``FINAL`` so rows written twice (a re-import) come back once, and return the
canonical Arrow schemas of :mod:`backtest.data.schema`, sorted by ``(ts_event, seq)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import pyarrow as pa

from backtest.data.schema import SCHEMAS, check_kind, conform, table_hash

__all__ = ["MARKET_TABLES", "DatasetInfo", "MarketTables"]

#: The store table of each kind of market data.
MARKET_TABLES: dict[str, str] = {
    "quotes": "quotes",
    "trades": "trades",
    "bars": "bars",
    "book": "book_deltas",
}


class DatasetInfo(NamedTuple):
    kind: str
    instrument_id: str
    rows: int
    first_ts: int
    last_ts: int


class MarketTables:
    """Mixed into :class:`~backtest.store.store.Store`; relies on its generic methods."""

    def insert_arrow(self, table_name: str, table: pa.Table) -> int:
        raise NotImplementedError

    def query_arrow(self, sql: str, parameters: Mapping[str, Any] | None = None) -> pa.Table:
        raise NotImplementedError

    def query_batches(
        self, sql: str, parameters: Mapping[str, Any] | None = None, *, batch_rows: int = 65_536
    ) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError

    def write_market(self, kind: str, table: pa.Table) -> int:
        """Write canonical rows of ``kind`` atomically; re-writing the same rows is a no-op."""
        return self.insert_arrow(MARKET_TABLES[check_kind(kind)], conform(kind, table))

    def read_market(
        self,
        kind: str,
        instrument_id: str,
        start_ns: int | None = None,
        end_ns: int | None = None,
        *,
        interval_ns: int | None = None,
    ) -> pa.Table:
        """Rows of one instrument with ``start_ns <= ts_event < end_ns``, by (ts_event, seq)."""
        sql, params = _market_select(kind, instrument_id, start_ns, end_ns, interval_ns)
        return conform(kind, self.query_arrow(sql, params))

    def iter_market_batches(
        self,
        kind: str,
        instrument_id: str,
        start_ns: int | None = None,
        end_ns: int | None = None,
        *,
        interval_ns: int | None = None,
        batch_rows: int = 65_536,
    ) -> Iterator[pa.RecordBatch]:
        """Like :meth:`read_market`, streamed as canonical record batches."""
        sql, params = _market_select(kind, instrument_id, start_ns, end_ns, interval_ns)
        schema = SCHEMAS[kind]
        for batch in self.query_batches(sql, params, batch_rows=batch_rows):
            yield pa.RecordBatch.from_arrays(
                [batch.column(n).cast(schema.field(n).type) for n in schema.names], schema=schema
            )

    def list_datasets(self) -> list[DatasetInfo]:
        """What the store holds: one entry per (kind, instrument), sorted."""
        selects = [
            f"SELECT '{kind}' AS kind, toString(instrument_id) AS instrument_id, "
            f"count() AS rows, min(ts_event) AS first_ts, max(ts_event) AS last_ts "
            f"FROM {table} FINAL GROUP BY instrument_id"
            for kind, table in MARKET_TABLES.items()
        ]
        sql = " UNION ALL ".join(selects)
        rows = self.query_arrow(f"SELECT * FROM ({sql}) ORDER BY kind, instrument_id").to_pylist()
        return [
            DatasetInfo(
                r["kind"], r["instrument_id"], int(r["rows"]), int(r["first_ts"]), int(r["last_ts"])
            )
            for r in rows
        ]

    def dataset_hash(
        self,
        kind: str,
        instrument_id: str,
        start_ns: int | None = None,
        end_ns: int | None = None,
        *,
        interval_ns: int | None = None,
    ) -> str:
        """Stable content hash of a dataset (same rows ⇒ same hash, on any backend)."""
        batches = self.iter_market_batches(
            kind, instrument_id, start_ns, end_ns, interval_ns=interval_ns
        )
        return table_hash(kind, batches)


def _market_select(
    kind: str,
    instrument_id: str,
    start_ns: int | None,
    end_ns: int | None,
    interval_ns: int | None,
) -> tuple[str, dict[str, Any]]:
    schema = SCHEMAS[check_kind(kind)]
    columns = ", ".join(
        "toString(instrument_id) AS instrument_id" if n == "instrument_id" else n
        for n in schema.names
    )
    where = ["instrument_id = {instrument_id:String}"]
    params: dict[str, Any] = {"instrument_id": instrument_id}
    for name, value, clause in (
        ("start_ns", start_ns, "ts_event >= {start_ns:Int64}"),
        ("end_ns", end_ns, "ts_event < {end_ns:Int64}"),
        ("interval_ns", interval_ns, "interval_ns = {interval_ns:Int64}"),
    ):
        if value is not None:
            where.append(clause)
            params[name] = int(value)
    order = "ts_event, interval_ns, seq" if kind == "bars" else "ts_event, seq"
    sql = (
        f"SELECT {columns} FROM {MARKET_TABLES[kind]} FINAL WHERE {' AND '.join(where)} "
        f"ORDER BY {order}"
    )
    return sql, params
