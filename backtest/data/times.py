"""Timestamps from files → int64 nanoseconds since the epoch (UTC).

Accepted: ISO-8601 text with a zone (``2021-01-08T00:00:00Z``, ``…+08:00``), naive ISO text or
dates (``1999-01-22``) together with a time zone, Arrow/Parquet timestamps (zoned, or naive with
a time zone), and integer epochs whose unit is read from their size (s, ms, µs or ns). Naive
times without a time zone are refused: guessing the zone would shift every bar. One column holds
one epoch unit: a column mixing seconds and milliseconds is refused, naming the rows, since
reading both in one unit would put some rows in 1970. Times outside what int64 nanoseconds hold
(1677-09-21 to 2262-04-11) are refused as out of range.

A file read in batches passes the same :class:`TimeState` to every batch, so the unit found in
the first batch binds the rest; problem rows are 1-based within the array given.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from backtest.data.problems import Problem
from runtime.errors import ConfigError

__all__ = ["ParsedTimes", "TimeState", "check_timezone", "parse_timestamps"]

_ZONED = re.compile(r"(Z|[+-]\d{2}(:?\d{2})?)$", re.IGNORECASE)
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EPOCH_LIMITS = np.array([10**11, 10**14, 10**17], dtype=np.int64)  # below: s, ms, us; else ns
_EPOCH_FACTORS = np.array([10**9, 10**6, 10**3, 1], dtype=np.int64)
_EPOCH_NAMES = ("seconds", "milliseconds", "microseconds", "nanoseconds")
_RANGE = "out of range (times must lie between 1677-09-21 and 2262-04-11)"
_CHUNK = 4096


@dataclass
class TimeState:
    """What the first batch of a column fixed for the rest: its epoch unit (index into s, ms,
    µs, ns) and the row where it was seen."""

    epoch_unit: int | None = None
    epoch_row: int = 0


@dataclass(frozen=True)
class ParsedTimes:
    ts_ns: np.ndarray
    date_only: bool  # every value was a plain date (daily data)
    problems: list[Problem]


def check_timezone(name: str | None) -> ZoneInfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown time zone {name!r} (use an IANA name such as America/New_York or UTC)",
            field="--timezone",
        ) from exc


def parse_timestamps(
    array: pa.Array,
    name: str,
    timezone: str | None,
    state: TimeState | None = None,
    *,
    first_row: int = 1,
) -> ParsedTimes:
    """Parse a time column; ``timezone`` is required for naive values and ignored otherwise.

    ``first_row`` is the file row of ``array[0]`` (for messages naming another batch's row)."""
    zone = check_timezone(timezone)
    state = state if state is not None else TimeState()
    if array.null_count:
        rows = np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))
        return _failed(array, [Problem(int(i) + 1, f"{name}: missing time") for i in rows])
    if pa.types.is_integer(array.type):
        return _from_epoch(array, name, state, first_row)
    if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
        return _from_arrow_times(array, name, zone)
    if pa.types.is_string(array.type):
        array = pc.utf8_trim_whitespace(array)
        if len(array) and pc.all(pc.match_substring_regex(array, r"^-?\d{9,}$")).as_py():
            return _from_epoch(pc.cast(array, pa.int64()), name, state, first_row)
        short = pc.match_substring_regex(array, r"^-?\d{1,8}$").to_numpy(zero_copy_only=False)
        if short.any():
            return _failed(array, [
                Problem(int(i) + 1, f"{name}: {array[int(i)].as_py()!r} is not a time (an epoch "
                        "has at least 9 digits; a missing time written as 0?)")
                for i in np.flatnonzero(short)[:1000]])
        return _from_text(array, name, zone)
    return _failed(
        array,
        [
            Problem(
                None,
                f"{name}: expected times (ISO-8601 text, timestamps "
                f"or integer epochs), got {array.type}",
            )
        ],
    )


def _failed(array: pa.Array, problems: list[Problem]) -> ParsedTimes:
    return ParsedTimes(np.zeros(len(array), dtype=np.int64), False, problems)


def _from_epoch(array: pa.Array, name: str, state: TimeState, first_row: int) -> ParsedTimes:
    """Epochs are UTC by definition; the unit follows from the size of the first value, and every
    other value must be of the same size (s, ms, µs or ns)."""
    values = array.to_numpy(zero_copy_only=False).astype(np.int64)
    if not len(values):
        return ParsedTimes(values, False, [])
    units = np.searchsorted(_EPOCH_LIMITS, np.abs(values), side="right")
    if state.epoch_unit is None:
        state.epoch_unit, state.epoch_row = int(units[0]), first_row
    unit = state.epoch_unit
    mixed = np.flatnonzero(units != unit)[:1000]
    if len(mixed):
        said = _EPOCH_NAMES[unit]
        return _failed(array, [
            Problem(int(i) + 1, f"{name}: {values[i]} looks like {_EPOCH_NAMES[units[i]]} but "
                    f"row {state.epoch_row} is in {said}: one unit per column")
            for i in mixed])
    factor = int(_EPOCH_FACTORS[unit])
    limit = np.iinfo(np.int64).max // factor
    out = np.flatnonzero(np.abs(values) > limit)[:1000]
    if len(out):
        return _failed(array, [Problem(int(i) + 1, f"{name}: {values[i]} is {_RANGE}")
                               for i in out])
    return ParsedTimes(values * factor, False, [])


def _from_arrow_times(array: pa.Array, name: str, zone: ZoneInfo | None) -> ParsedTimes:
    date_only = pa.types.is_date(array.type)
    try:
        if date_only:
            array = pc.cast(array, pa.timestamp("ns"))
        if array.type.tz is None:
            if zone is None:
                return _failed(array, [_naive_problem(name, str(array[0]))])
            return _localize(pc.cast(array, pa.timestamp("ns")), name, zone, date_only)
    except pa.ArrowInvalid:
        return _failed(array, [Problem(None, f"{name}: a time is {_RANGE}")])
    try:
        ns = pc.cast(pc.cast(array, pa.timestamp("ns", "UTC")), pa.int64())
    except pa.ArrowInvalid:
        return _failed(array, [Problem(None, f"{name}: a time is {_RANGE}")])
    return ParsedTimes(ns.to_numpy(zero_copy_only=False), date_only, [])


def _from_text(array: pa.Array, name: str, zone: ZoneInfo | None) -> ParsedTimes:
    texts = array.to_pylist()
    zoned = np.array([bool(_ZONED.search(t)) and not _DATE_ONLY.match(t) for t in texts])
    if zoned.all():
        return _cast_text(array, name, pa.timestamp("ns", "UTC"), None, False)
    if zoned.any():
        row = int(np.flatnonzero(zoned != zoned[0])[0])
        return _failed(
            array,
            [Problem(row + 1, f"{name}: {texts[row]!r} mixes zoned and naive times in one column")],
        )
    if zone is None:
        return _failed(array, [_naive_problem(name, texts[0])])
    date_only = all(_DATE_ONLY.match(t) for t in texts)
    return _cast_text(array, name, pa.timestamp("ns"), zone, date_only)


def _naive_problem(name: str, example: str) -> Problem:
    return Problem(
        None,
        f"{name}: times such as {example!r} have no time zone: pass "
        f"--timezone (e.g. --timezone America/New_York or UTC)",
    )


def _cast_text(
    array: pa.Array, name: str, target: pa.DataType, zone: ZoneInfo | None, date_only: bool
) -> ParsedTimes:
    try:
        times = pc.cast(array, target)
    except pa.ArrowInvalid:
        problems = []
        for i, text in enumerate(array.to_pylist()):
            try:
                pc.cast(pa.array([text]), target)
            except pa.ArrowInvalid:
                problems.append(Problem(i + 1, f"{name}: {_why_not_a_time(text)}"))
        return _failed(array, problems)
    if zone is not None:
        return _localize(times, name, zone, date_only)
    return ParsedTimes(pc.cast(times, pa.int64()).to_numpy(zero_copy_only=False), date_only, [])


def _why_not_a_time(text: str) -> str:
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return f"not a time: {text!r}"
    return f"{text!r} is {_RANGE}"


def _localize(times: pa.Array, name: str, zone: ZoneInfo, date_only: bool) -> ParsedTimes:
    try:
        local = pc.assume_timezone(times, timezone=zone.key, ambiguous="raise", nonexistent="raise")
    except pa.ArrowInvalid:
        problems = []
        for i, value in enumerate(times):
            try:
                pc.assume_timezone(
                    pa.array([value.as_py()], times.type),
                    timezone=zone.key,
                    ambiguous="raise",
                    nonexistent="raise",
                )
            except pa.ArrowInvalid:
                problems.append(
                    Problem(
                        i + 1,
                        f"{name}: {value} does not exist or is ambiguous "
                        f"in {zone.key} (a DST change)",
                    )
                )
        return _failed(times, problems)
    ns = pc.cast(local, pa.int64()).to_numpy(zero_copy_only=False)
    return ParsedTimes(ns, date_only, [])
