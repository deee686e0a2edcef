"""Load a CSV or Parquet file of market data into a canonical Arrow table, or refuse it.

One path for ``tradewind data import`` and for backtests reading files directly: read → match
columns (:mod:`~backtest.data.columns`) → parse exactly (:mod:`~backtest.data.parse`,
:mod:`~backtest.data.times`) → check (:mod:`~backtest.data.validate`). Any hard problem refuses
the whole file with a :class:`~backtest.data.problems.DataRefused` naming file and rows.

Bars: ``--bar-stamp open`` (the default: Yahoo, IB, Binance and LEAN stamp bars at their open)
means ``ts_event = stamp + interval``; ``close`` means the stamp already is the close. A daily
file of plain dates therefore gets ``ts_event`` = the next midnight in ``--timezone``: the bar is
known only once its day is over, which can never look ahead.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from backtest.data.columns import ColumnMap, map_columns
from backtest.data.parse import (
    parse_bool,
    parse_fixed,
    parse_int,
    parse_interval,
    parse_side,
    parse_text,
)
from backtest.data.problems import Problem, refuse
from backtest.data.schema import FIXED_COLUMNS, SCHEMAS, check_kind, seq_within_ts
from backtest.data.times import parse_timestamps
from backtest.data.validate import validate
from runtime.errors import DataError

__all__ = ["BarStamp", "LoadResult", "load_file", "read_file"]

BarStamp = Literal["open", "close"]
_DAY_NS = 86_400 * 10**9
_ID_COLUMNS = ("first_update_id", "last_update_id", "prev_update_id")


@dataclass(frozen=True)
class LoadResult:
    table: pa.Table  # canonical schema of ``kind``
    source: str
    kind: str
    ignored_columns: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)


def load_file(
    path: str | Path,
    kind: str,
    instrument_id: str,
    *,
    timezone: str | None = None,
    interval: str | None = None,
    bar_stamp: BarStamp = "open",
) -> pa.Table:
    """The canonical table of a CSV/Parquet file (see :func:`read_file`)."""
    return read_file(
        path, kind, instrument_id, timezone=timezone, interval=interval, bar_stamp=bar_stamp
    ).table


def read_file(
    path: str | Path,
    kind: str,
    instrument_id: str,
    *,
    timezone: str | None = None,
    interval: str | None = None,
    bar_stamp: BarStamp = "open",
) -> LoadResult:
    """Read, parse and check a file; DataRefused (a DataError) lists every problem found."""
    kind = check_kind(kind)
    source = str(path)
    raw = _read_raw(Path(path))
    mapping, problems = map_columns(kind, raw.column_names)
    refuse(problems, source=source)
    cols, problems = _parse(kind, raw, mapping, timezone)
    refuse(problems, source=source)
    problems = _fill_defaults(kind, cols, mapping, instrument_id, interval, bar_stamp, source)
    hard, warnings = validate(kind, cols)
    refuse(problems + hard, source=source)
    schema = SCHEMAS[kind]
    table = pa.Table.from_arrays(
        [pa.array(cols[n], schema.field(n).type) for n in schema.names], schema=schema
    )
    return LoadResult(table, source, kind, mapping.ignored, tuple(warnings))


def _read_raw(path: Path) -> pa.Table:
    if not path.is_file():
        raise DataError("no such file", source=str(path))
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pq.read_table(path)
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
        if not header:
            raise DataError("empty file (no header row)", source=str(path))
        convert = pacsv.ConvertOptions(
            column_types={n: pa.string() for n in header}, strings_can_be_null=False
        )
        return pacsv.read_csv(path, convert_options=convert)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read the file: {exc}", source=str(path)) from exc


def _parse(
    kind: str, raw: pa.Table, mapping: ColumnMap, timezone: str | None
) -> tuple[dict[str, np.ndarray], list[Problem]]:
    cols: dict[str, np.ndarray] = {}
    problems: list[Problem] = []
    for canon, name in mapping.source_of.items():
        array = raw.column(name).combine_chunks()
        if canon in ("ts_event", "ts_init"):
            times = parse_timestamps(array, name, timezone)
            cols[canon], found = times.ts_ns, times.problems
            if canon == "ts_event":
                cols["_date_only"] = np.array([times.date_only])
        else:
            cols[canon], found = _parse_value(kind, canon, array, name)
        problems += found
    return cols, problems


def _parse_value(
    kind: str, canon: str, array: pa.Array, name: str
) -> tuple[np.ndarray, list[Problem]]:
    if canon in FIXED_COLUMNS[kind]:
        return parse_fixed(array, name)
    if canon in ("seq", "interval_ns", *_ID_COLUMNS):
        return parse_int(array, name)
    if canon in ("instrument_id", "trade_id"):
        return parse_text(array, name)
    if canon in ("is_snapshot", "buyer_maker"):
        return parse_bool(array, name)
    if canon == "update_type":
        words = np.array([str(v).strip().lower() for v in array.to_pylist()], dtype=object)
        return np.isin(words, ["snap", "snapshot"]), []
    return parse_side(array, name, allow_none=(canon == "aggressor"))


def _fill_defaults(
    kind: str,
    cols: dict[str, np.ndarray],
    mapping: ColumnMap,
    instrument_id: str,
    interval: str | None,
    bar_stamp: BarStamp,
    source: str,
) -> list[Problem]:
    """Derive the canonical columns a file may leave out; problems for a wrong instrument."""
    n = len(cols["ts_event"])
    date_only = bool(cols.pop("_date_only")[0])
    problems = _check_instrument(cols, instrument_id)
    cols["instrument_id"] = np.full(n, instrument_id, dtype=object)
    if kind == "bars":
        _bar_times(cols, interval, bar_stamp, date_only, source)
    cols.setdefault("ts_init", cols["ts_event"].copy())
    if kind == "trades":
        buyer_maker = cols.pop("buyer_maker", None)
        if buyer_maker is not None:  # the buyer rested: the seller was the aggressor
            cols["aggressor"] = np.where(buyer_maker, -1, 1).astype(np.int8)
        cols.setdefault("aggressor", np.zeros(n, dtype=np.int8))
        cols.setdefault("trade_id", np.full(n, "", dtype=object))
    if kind == "book":
        snapshot = cols.pop("update_type", np.zeros(n, dtype=bool))
        cols.setdefault("is_snapshot", snapshot)
        for name in _ID_COLUMNS:
            cols.setdefault(name, np.full(n, -1, dtype=np.int64))
    if "seq" not in mapping.source_of:
        cols["seq"] = seq_within_ts(cols["ts_event"])
    return problems


def _check_instrument(cols: dict[str, np.ndarray], instrument_id: str) -> list[Problem]:
    given = cols.get("instrument_id")
    if given is None:
        return []
    wrong = np.flatnonzero(given != instrument_id)[:1000]
    return [
        Problem(int(i) + 1, f"instrument_id {given[i]!r} is not {instrument_id!r}") for i in wrong
    ]


def _bar_times(
    cols: dict[str, np.ndarray],
    interval: str | None,
    bar_stamp: BarStamp,
    date_only: bool,
    source: str,
) -> None:
    if interval is not None:
        try:
            interval_ns = parse_interval(interval)
        except ValueError as exc:
            raise DataError(str(exc), source=source) from None
        cols["interval_ns"] = np.full(len(cols["ts_event"]), interval_ns, dtype=np.int64)
    elif "interval_ns" not in cols:
        if not date_only:
            raise DataError(
                "bars need their length: pass --interval (e.g. 1m, 1h, 1d)", source=source
            )
        cols["interval_ns"] = np.full(len(cols["ts_event"]), _DAY_NS, dtype=np.int64)
    if bar_stamp == "open":
        cols["ts_event"] = cols["ts_event"] + cols["interval_ns"]
