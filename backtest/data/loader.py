"""Load a CSV or Parquet file of market data into canonical Arrow tables, or refuse it.

One path for ``tradewind data import`` and for backtests reading files directly: read
(:mod:`~backtest.data.source`: CSV, gzip'd CSV or Parquet, in batches) → match columns
(:mod:`~backtest.data.columns`) → parse exactly (:mod:`~backtest.data.parse`,
:mod:`~backtest.data.times`) → check (:mod:`~backtest.data.validate`). Any hard problem refuses
the whole file with a :class:`~backtest.data.problems.DataRefused` naming file and rows.

:func:`stream_file` yields the canonical rows a batch at a time (memory stays bounded whatever
the file's size) and raises the refusal after the last batch, once every problem is known: a
consumer that writes as it goes must stage the batches and publish them only when the stream
ends without an error (the store's ``import_market`` does). :func:`read_file` collects it.

Bars: ``--bar-stamp open`` (the default: Yahoo, IB, Binance and LEAN stamp bars at their open)
means ``ts_event = stamp + interval``; ``close`` means the stamp already is the close. A daily
file of plain dates therefore gets ``ts_event`` = the next midnight in ``--timezone``: the bar is
known only once its day is over, which can never look ahead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from backtest.data.columns import map_columns
from backtest.data.parse import (
    parse_bool,
    parse_fixed,
    parse_int,
    parse_interval,
    parse_side,
    parse_text,
)
from backtest.data.prices import PRICE_COLUMNS, price_decimals
from backtest.data.problems import Problem, refuse
from backtest.data.schema import FIXED_COLUMNS, SCHEMAS, check_kind, empty_table, seq_within_ts
from backtest.data.source import open_source
from backtest.data.times import TimeState, check_timezone, parse_timestamps
from backtest.data.validate import IdIndex, Notes, validate
from runtime.errors import ConfigError, DataError

__all__ = ["BarStamp", "FileOptions", "FileStream", "LoadResult", "load_file", "read_file",
           "stream_file"]

BarStamp = Literal["open", "close"]
_DAY_NS = 86_400 * 10**9
_ID_COLUMNS = ("first_update_id", "last_update_id", "prev_update_id")
_MAX_PROBLEMS = 10_000  # kept to list and count; a file with more is refused all the same
HEADER_ONLY = "the file has a header but no data rows: nothing to import"


@dataclass(frozen=True)
class FileOptions:
    """How to read a file's rows: zone of naive times, bar length and stamp, time column."""

    timezone: str | None = None
    interval: str | None = None
    bar_stamp: BarStamp = "open"
    time_column: str | None = None


@dataclass(frozen=True)
class LoadResult:
    table: pa.Table  # canonical schema of ``kind``
    source: str
    kind: str
    ignored_columns: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    price_decimals: int = 0  # the most decimals any price of the file has

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
    time_column: str | None = None,
) -> pa.Table:
    """The canonical table of a CSV/Parquet file (see :func:`read_file`)."""
    return read_file(path, kind, instrument_id, timezone=timezone, interval=interval,
                     bar_stamp=bar_stamp, time_column=time_column).table


def read_file(
    path: str | Path,
    kind: str,
    instrument_id: str,
    *,
    timezone: str | None = None,
    interval: str | None = None,
    bar_stamp: BarStamp = "open",
    time_column: str | None = None,
) -> LoadResult:
    """Read, parse and check a whole file; DataRefused (a DataError) lists every problem found.
    The keywords are those of :class:`FileOptions`."""
    options = FileOptions(timezone, interval, bar_stamp, time_column)
    stream = stream_file(path, kind, instrument_id, options)
    tables = list(stream)
    table = pa.concat_tables(tables) if tables else empty_table(stream.kind)
    return stream.result(table)


def stream_file(
    path: str | Path, kind: str, instrument_id: str, options: FileOptions = FileOptions()
) -> FileStream:
    """The file's canonical rows as an iterable of tables (see the module docstring)."""
    if not instrument_id.strip():
        raise ConfigError("give an instrument id (it is empty)", field="--instrument")
    check_timezone(options.timezone)
    return FileStream(Path(path), check_kind(kind), instrument_id, options)


class FileStream:
    """One pass over a file: iterate for canonical tables; then ``rows``, ``warnings``…"""

    def __init__(self, path: Path, kind: str, instrument_id: str, options: FileOptions) -> None:
        self.kind = kind
        self.source = str(path)
        self._raw = open_source(path)
        self._instrument_id = instrument_id
        self._options = options
        self._interval_ns = _interval_ns(options.interval, self.source)
        self.mapping, problems = map_columns(kind, self._raw.column_names, options.time_column)
        refuse(problems, source=self.source)
        self.rows = 0
        self.price_decimals = 0
        self._problems: list[Problem] = []
        self._problem_count = 0
        self._notes = Notes()
        self._times = TimeState()
        self._date_only: bool | None = None
        self._previous: dict[str, np.ndarray] | None = None
        self._seen_ids = IdIndex()

    @property
    def ignored_columns(self) -> tuple[str, ...]:
        return self.mapping.ignored

    @property
    def warnings(self) -> tuple[str, ...]:
        notes = self._notes.messages()
        return tuple(notes + ([HEADER_ONLY] if self.rows == 0 else []))

    def result(self, table: pa.Table) -> LoadResult:
        return LoadResult(table, self.source, self.kind, self.ignored_columns, self.warnings,
                          self.price_decimals)

    def __iter__(self) -> Iterator[pa.Table]:
        for raw in self._raw.batches():
            table = self._batch(raw)
            if table is not None and not self._problems:
                yield table
        refuse(self._problems, source=self.source)

    def _batch(self, raw: pa.Table) -> pa.Table | None:
        offset, self.rows = self.rows, self.rows + raw.num_rows
        cols, problems = self._parse(raw, offset)
        if not problems:
            problems = self._fill_defaults(cols)
        if problems:
            self._note(problems, offset)
            self._previous = None  # this batch's rows are unknown: compare nothing across it
            return None
        hard, notes = validate(self.kind, cols, previous=self._previous, offset=offset,
                               seen_ids=self._seen_ids if self.kind == "trades" else None)
        self._notes.merge(notes)
        self._previous = {name: values[-1:] for name, values in cols.items()}
        if hard:
            self._note(hard, 0)
            return None
        self.price_decimals = max(self.price_decimals,
                                  price_decimals(cols[n] for n in PRICE_COLUMNS[self.kind]))
        schema = SCHEMAS[self.kind]
        return pa.Table.from_arrays(
            [pa.array(cols[n], schema.field(n).type) for n in schema.names], schema=schema
        )

    def _note(self, problems: list[Problem], offset: int) -> None:
        self._problem_count += len(problems)
        room = _MAX_PROBLEMS - len(self._problems)
        self._problems += [
            Problem(p.row + offset if p.row is not None else None, p.message)
            for p in problems[:room]
        ]

    def _parse(self, raw: pa.Table, offset: int) -> tuple[dict[str, np.ndarray], list[Problem]]:
        cols: dict[str, np.ndarray] = {}
        problems: list[Problem] = []
        for canon, name in self.mapping.source_of.items():
            array = raw.column(name).combine_chunks()
            if canon in ("ts_event", "ts_init", "funding_ts"):
                times = parse_timestamps(array, name, self._options.timezone,
                                         self._times if canon == "ts_event" else None,
                                         first_row=offset + 1)
                cols[canon], found = times.ts_ns, times.problems
                if canon == "ts_event":
                    found += self._check_date_only(times.date_only, name)
            else:
                cols[canon], found = _parse_value(self.kind, canon, array, name)
            problems += found
        return cols, problems

    def _check_date_only(self, date_only: bool, name: str) -> list[Problem]:
        if self._date_only is None:
            self._date_only = date_only
        if self._date_only != date_only:
            return [Problem(None, f"{name}: mixes plain dates and times in one column")]
        return []

    def _fill_defaults(self, cols: dict[str, np.ndarray]) -> list[Problem]:
        """Derive the canonical columns a file may leave out; problems for a wrong instrument."""
        n = len(cols["ts_event"])
        problems = _check_instrument(cols, self._instrument_id)
        cols["instrument_id"] = np.full(n, self._instrument_id, dtype=object)
        if self.kind == "bars":
            _bar_times(cols, self._interval_ns, self._options.bar_stamp, bool(self._date_only),
                       self.source)
        cols.setdefault("ts_init", cols["ts_event"].copy())
        if self.kind == "trades":
            buyer_maker = cols.pop("buyer_maker", None)
            if buyer_maker is not None:  # the buyer rested: the seller was the aggressor
                cols["aggressor"] = np.where(buyer_maker, -1, 1).astype(np.int8)
            cols.setdefault("aggressor", np.zeros(n, dtype=np.int8))
            cols.setdefault("trade_id", np.full(n, "", dtype=object))
        if self.kind == "book":
            snapshot = cols.pop("update_type", np.zeros(n, dtype=bool))
            cols.setdefault("is_snapshot", snapshot)
            for name in _ID_COLUMNS:
                cols.setdefault(name, np.full(n, -1, dtype=np.int64))
        if self.kind == "funding":  # a history: each rate settled at its own time
            cols.setdefault("funding_ts", cols["ts_event"].copy())
            cols.setdefault("mark_price", np.zeros(n, dtype=np.int64))
        if self.kind == "mark":
            cols.setdefault("index_price", np.zeros(n, dtype=np.int64))
        if "seq" not in self.mapping.source_of:
            cols["seq"] = _seq_after(cols["ts_event"], self._previous)
        return problems


def _seq_after(ts: np.ndarray, previous: dict[str, np.ndarray] | None) -> np.ndarray:
    """Positions among rows of one ``ts_event``, continuing the previous batch's last run."""
    seq = seq_within_ts(ts)
    if previous is not None and len(ts):
        lead = np.cumprod(ts == previous["ts_event"][0]).astype(bool)
        seq[lead] += int(previous["seq"][0]) + 1
    return seq


def _interval_ns(interval: str | None, source: str) -> int | None:
    if interval is None:
        return None
    try:
        return parse_interval(interval)
    except ValueError as exc:
        raise DataError(str(exc), source=source) from None


def _parse_value(
    kind: str, canon: str, array: pa.Array, name: str
) -> tuple[np.ndarray, list[Problem]]:
    if canon in FIXED_COLUMNS[kind]:
        return parse_fixed(array, name)
    if canon in ("seq", "interval_ns", *_ID_COLUMNS):
        return parse_int(array, name)
    if canon in ("instrument_id", "trade_id", "symbol"):
        return parse_text(array, name)
    if canon in ("is_snapshot", "buyer_maker"):
        return parse_bool(array, name)
    if canon == "update_type":
        words = np.array([str(v).strip().lower() for v in array.to_pylist()], dtype=object)
        return np.isin(words, ["snap", "snapshot"]), []
    return parse_side(array, name, allow_none=(canon == "aggressor"))


def _check_instrument(cols: dict[str, np.ndarray], instrument_id: str) -> list[Problem]:
    """An ``instrument_id`` column must be the id; a ``symbol`` column the id or its part
    before the first dot (``BTCUSDT`` for ``BTCUSDT.BINANCE``)."""
    problems = []
    given = cols.get("instrument_id")
    if given is not None:
        wrong = np.flatnonzero(given != instrument_id)[:1000]
        problems += [Problem(int(i) + 1, f"instrument_id {given[i]!r} is not {instrument_id!r}")
                     for i in wrong]
    symbols = cols.pop("symbol", None)
    if symbols is not None:
        short = instrument_id.split(".", 1)[0]
        wrong = np.flatnonzero((symbols != instrument_id) & (symbols != short))[:1000]
        problems += [Problem(int(i) + 1, f"symbol {symbols[i]!r} is not {instrument_id!r} "
                                         f"(--instrument)") for i in wrong]
    return problems


def _bar_times(
    cols: dict[str, np.ndarray],
    interval_ns: int | None,
    bar_stamp: BarStamp,
    date_only: bool,
    source: str,
) -> None:
    if interval_ns is not None:
        cols["interval_ns"] = np.full(len(cols["ts_event"]), interval_ns, dtype=np.int64)
    elif "interval_ns" not in cols:
        if not date_only:
            raise DataError(
                "bars need their length: pass --interval (e.g. 1m, 1h, 1d)", source=source
            )
        cols["interval_ns"] = np.full(len(cols["ts_event"]), _DAY_NS, dtype=np.int64)
    if bar_stamp == "open":
        cols["ts_event"] = cols["ts_event"] + cols["interval_ns"]
