"""Typed market-data helpers of the Store: write, read, stream, list and hash datasets.

A dataset is one instrument of one kind (for bars: of one interval). Writes never mix two
versions of a dataset: rows are staged first, and when the store already holds rows in the
staged time range (per dataset, first to last ``ts_event`` inclusive) that the new rows do not
repeat exactly, the write is refused with a DataError naming the range. ``replace=True`` swaps
that whole range for the new rows in one statement. Writing the same rows again is a no-op.

Reads use ``FINAL`` so rows written twice (a re-import) come back once, and return the
canonical Arrow schemas of :mod:`backtest.data.schema`, sorted by ``(ts_event, seq)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from backtest.data.parse import format_interval
from backtest.data.schema import SCHEMAS, check_kind, conform, table_hash
from runtime.errors import DataError

__all__ = ["MARKET_TABLES", "DatasetInfo", "MarketTables", "MarketWrite"]

#: The store table of each kind of market data.
MARKET_TABLES: dict[str, str] = {
    "quotes": "quotes",
    "trades": "trades",
    "bars": "bars",
    "book": "book_deltas",
    "funding": "funding_rates",
    "open_interest": "open_interest",
    "mark": "mark_prices",
    "borrow": "borrow_rates",
}


class DatasetInfo(NamedTuple):
    kind: str
    instrument_id: str
    rows: int
    first_ts: int
    last_ts: int
    interval_ns: int | None = None  # bars only: the bar length, part of the dataset's identity


class MarketWrite(NamedTuple):
    rows: int  # rows written
    replaced: int  # stored rows that differed and were replaced (``replace=True`` only)


class _Range(NamedTuple):
    """One dataset's span in a write: rows of ``instrument_id`` (and ``interval_ns``)."""

    instrument_id: str
    interval_ns: int | None
    first_ts: int
    last_ts: int

    def where(self, tag: str) -> tuple[str, dict[str, Any]]:
        """SQL selecting the stored rows of this range, and its parameters (names by ``tag``)."""
        sql = (f"instrument_id = {{i{tag}:String}} AND ts_event >= {{lo{tag}:Int64}} "
               f"AND ts_event <= {{hi{tag}:Int64}}")
        params: dict[str, Any] = {f"i{tag}": self.instrument_id, f"lo{tag}": self.first_ts,
                                  f"hi{tag}": self.last_ts}
        if self.interval_ns is not None:
            sql += f" AND interval_ns = {{n{tag}:Int64}}"
            params[f"n{tag}"] = self.interval_ns
        return sql, params


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

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def staging(self, table_name: str) -> contextlib.AbstractContextManager[str]:
        raise NotImplementedError

    def insert_staged(self, table_name: str, staging: str, table: pa.Table) -> None:
        raise NotImplementedError

    def write_market(
        self, kind: str, data: pa.Table | Iterable[pa.Table], *, replace: bool = False
    ) -> int:
        """Write canonical rows of ``kind`` atomically (see the module docstring); rows written."""
        return self.import_market(kind, data, replace=replace).rows

    def import_market(
        self, kind: str, data: pa.Table | Iterable[pa.Table], *, replace: bool = False
    ) -> MarketWrite:
        """Stage ``data`` (one table or a stream of tables), check it against what is stored,
        then attach it in one statement, or (``replace``) swap the overlapped ranges for it.
        Nothing is visible until the end; an interrupted write leaves the store as it was."""
        kind = check_kind(kind)
        name = MARKET_TABLES[kind]
        ranges: dict[tuple[str, int | None], _Range] = {}
        rows = 0
        with self.staging(name) as staging:
            for part in [data] if isinstance(data, pa.Table) else data:
                part = conform(kind, part)
                self.insert_staged(name, staging, part)
                _widen(ranges, kind, part)
                rows += part.num_rows
            if rows == 0:
                return MarketWrite(0, 0)
            differing = self._differing(kind, staging, list(ranges.values()))
            if differing and not replace:
                raise DataError(_overlap_message(kind, differing))
            if differing:
                self._replace_ranges(name, staging, list(ranges.values()))
            else:
                self.command(f"ALTER TABLE {name} ATTACH PARTITION tuple() FROM {staging}")
        return MarketWrite(rows, sum(r[0] for r in differing))

    def _differing(
        self, kind: str, staging: str, ranges: list[_Range]
    ) -> list[tuple[int, _Range]]:
        """Per range, the stored rows the staged rows do not repeat exactly (and their span)."""
        columns = ", ".join(SCHEMAS[kind].names)
        out: list[tuple[int, _Range]] = []
        for span in ranges:
            where, params = span.where("0")
            stored = self.query_arrow(
                f"SELECT count() AS n FROM {MARKET_TABLES[kind]} WHERE {where}", params
            ).column("n")[0].as_py()
            if not stored:  # nothing there: no need to hold the staged rows as a set
                continue
            found = self.query_arrow(
                f"SELECT count() AS n, min(ts_event) AS lo, max(ts_event) AS hi "
                f"FROM {MARKET_TABLES[kind]} FINAL WHERE {where} "
                f"AND ({columns}) NOT IN (SELECT {columns} FROM {staging})", params
            ).to_pylist()[0]
            if int(found["n"]):
                out.append((int(found["n"]), span._replace(
                    first_ts=int(found["lo"]), last_ts=int(found["hi"]))))
        return out

    def _replace_ranges(self, name: str, staging: str, ranges: list[_Range]) -> None:
        """The table rebuilt without ``ranges`` plus the staged rows, swapped in atomically."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        for tag, span in enumerate(ranges):
            sql, more = span.where(str(tag))
            clauses.append(f"({sql})")
            params |= more
        with self.staging(name) as rebuilt:
            self.command(
                f"INSERT INTO {rebuilt} SELECT * FROM {name} FINAL "
                f"WHERE NOT ({' OR '.join(clauses)})", params
            )
            self.command(f"INSERT INTO {rebuilt} SELECT * FROM {staging}")
            self.command(f"ALTER TABLE {name} REPLACE PARTITION tuple() FROM {rebuilt}")

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
        """What the store holds: one entry per (kind, instrument[, bar interval]), sorted."""
        selects = [
            f"SELECT '{kind}' AS kind, toString(instrument_id) AS instrument_id, "
            f"{'interval_ns' if kind == 'bars' else 'toInt64(0)'} AS interval, "
            f"count() AS rows, min(ts_event) AS first_ts, max(ts_event) AS last_ts "
            f"FROM {table} FINAL GROUP BY instrument_id, interval"
            for kind, table in MARKET_TABLES.items()
        ]
        sql = " UNION ALL ".join(selects)
        rows = self.query_arrow(
            f"SELECT * FROM ({sql}) ORDER BY kind, instrument_id, interval"
        ).to_pylist()
        return [
            DatasetInfo(
                r["kind"], r["instrument_id"], int(r["rows"]), int(r["first_ts"]),
                int(r["last_ts"]), int(r["interval"]) if r["kind"] == "bars" else None,
            )
            for r in rows
        ]

    def bar_intervals(self, instrument_id: str) -> list[int]:
        """The bar lengths (ns) stored for ``instrument_id``, ascending."""
        found = self.query_arrow(
            "SELECT DISTINCT interval_ns FROM bars FINAL WHERE instrument_id = {i:String} "
            "ORDER BY interval_ns", {"i": instrument_id}
        )
        return [int(v) for v in found.column("interval_ns").to_pylist()]

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


def _widen(ranges: dict[tuple[str, int | None], _Range], kind: str, table: pa.Table) -> None:
    """Grow ``ranges`` by the spans of the datasets in ``table``."""
    if table.num_rows == 0:
        return
    keys = ["instrument_id", "interval_ns"] if kind == "bars" else ["instrument_id"]
    spans = table.group_by(keys).aggregate([("ts_event", "min"), ("ts_event", "max")])
    for row in spans.to_pylist():
        key = (row["instrument_id"], row.get("interval_ns"))
        lo, hi = int(row["ts_event_min"]), int(row["ts_event_max"])
        if key in ranges:
            lo, hi = min(lo, ranges[key].first_ts), max(hi, ranges[key].last_ts)
        ranges[key] = _Range(key[0], key[1], lo, hi)


def _utc(ns: int) -> str:
    unit = "s" if ns % 10**9 == 0 else "ns"
    return str(np.datetime64(ns, "ns").astype(f"datetime64[{unit}]")) + "Z"


def _overlap_message(kind: str, differing: list[tuple[int, _Range]]) -> str:
    n, span = differing[0]
    what = f"{kind} rows"
    if span.interval_ns is not None:
        what += f" ({format_interval(span.interval_ns)})"
    what += f" of {span.instrument_id!r}"
    more = f" (and {len(differing) - 1} more dataset(s))" if len(differing) > 1 else ""
    return (
        f"the store already holds {n} {what} between {_utc(span.first_ts)} and "
        f"{_utc(span.last_ts)}{more} that the new rows do not repeat exactly: nothing was "
        f"written; pass --replace to replace that whole range with the new rows"
    )


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
