"""Column parsers: text, numbers and timestamps from files → exact int64 columns.

Every parser is vectorised (Arrow compute) and returns ``(values, problems)``: a numpy array
and the rows it could not read, each a :class:`Problem` with its 1-based data row.
Numbers become fixed point exactly: text is read as a decimal (more than 9 decimals is refused:
text is exact, rounding would lose what it says); floats, which hold no exact decimal, are
rounded (their exact binary value) to 9 decimals.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from backtest.data.fixed import decimal_to_raw
from backtest.data.problems import Problem
from runtime.values import FIXED_PRECISION

__all__ = [
    "format_interval",
    "parse_bool",
    "parse_fixed",
    "parse_int",
    "parse_interval",
    "parse_side",
    "parse_text",
]

_WIDE_DECIMAL = pa.decimal128(38, FIXED_PRECISION)
_CHUNK = 4096
_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86_400 * 10**9,
    "w": 7 * 86_400 * 10**9,
}
_TRUE = frozenset({"true", "t", "1", "yes", "y"})
_FALSE = frozenset({"false", "f", "0", "no", "n"})


def _missing(array: pa.Array, name: str) -> tuple[pa.Array, list[Problem]]:
    """``array`` with missing values (null or blank text) filled, and their problems."""
    mask = array.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_string(array.type):
        mask |= (
            pc.equal(pc.utf8_trim_whitespace(array), "")
            .fill_null(True)
            .to_numpy(zero_copy_only=False)
        )
    if not mask.any():
        return array, []
    fill = (
        pa.scalar("0" if pa.types.is_string(array.type) else 0, array.type)
        if not pa.types.is_decimal(array.type)
        else pa.scalar(0, pa.int64()).cast(array.type)
    )
    filled = pc.if_else(pa.array(mask), fill, array)
    return filled, [Problem(int(i) + 1, f"{name}: missing value") for i in np.flatnonzero(mask)]


def parse_fixed(array: pa.Array, name: str) -> tuple[np.ndarray, list[Problem]]:
    """Exact fixed-point raw values of a numeric or text column."""
    array, problems = _missing(array, name)
    if pa.types.is_floating(array.type):
        bad = ~pc.is_finite(array).to_numpy(zero_copy_only=False)
        problems += [
            Problem(int(i) + 1, f"{name}: {_not_finite(array[int(i)].as_py())}")
            for i in np.flatnonzero(bad)
        ]
        # A float holds no exact decimal (0.000311 is stored as 0.00031099999999999997):
        # round its exact binary value to the 9 decimals the store keeps.
        floats = np.where(bad, 0.0, array.to_numpy(zero_copy_only=False))
        array = pa.array(np.char.mod(f"%.{FIXED_PRECISION}f", floats).tolist(), pa.string())
    elif pa.types.is_integer(array.type):
        array = pc.cast(array, pa.int64())
    elif not (pa.types.is_string(array.type) or pa.types.is_decimal(array.type)):
        return np.zeros(len(array), dtype=np.int64), [
            Problem(None, f"{name}: expected numbers, got {array.type}")
        ]
    if pa.types.is_string(array.type):
        array = pc.utf8_trim_whitespace(array)
    values, more = _to_decimal_raw(array, name)
    return values, problems + more


def _not_finite(value: float) -> str:
    return "NaN" if value != value else f"not a finite number ({value})"


def _to_decimal_raw(array: pa.Array, name: str) -> tuple[np.ndarray, list[Problem]]:
    problems: list[Problem] = []
    pieces: list[np.ndarray] = []
    for start in range(0, len(array), _CHUNK):
        chunk = array.slice(start, _CHUNK)
        try:
            wide = pc.cast(chunk, _WIDE_DECIMAL)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            problems += _element_problems(chunk, start, name)
            pieces.append(np.zeros(len(chunk), dtype=np.int64))
            continue
        raw, overflow = decimal_to_raw(wide)
        problems += [
            Problem(start + int(i) + 1, f"{name}: {chunk[int(i)].as_py()} is too large")
            for i in np.flatnonzero(overflow)
        ]
        pieces.append(raw.to_numpy(zero_copy_only=False))
    values = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    return values, problems


def _element_problems(chunk: pa.Array, start: int, name: str) -> list[Problem]:
    problems = []
    for i, value in enumerate(chunk.to_pylist()):
        try:
            pc.cast(pa.array([value], chunk.type), _WIDE_DECIMAL)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            problems.append(Problem(start + i + 1, f"{name}: {_why_not_fixed(str(value))}"))
    return problems


def _why_not_fixed(text: str) -> str:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return f"not a number: {text!r}"
    if number.is_nan():
        return "NaN"
    if not number.is_finite():
        return f"not a finite number ({text})"
    exponent = number.as_tuple().exponent
    if (
        isinstance(exponent, int)
        and exponent < -FIXED_PRECISION
        and number.scaleb(FIXED_PRECISION) != number.scaleb(FIXED_PRECISION).to_integral_value()
    ):
        return f"{text} has more than {FIXED_PRECISION} decimals"
    return f"{text} is too large"


def parse_int(array: pa.Array, name: str) -> tuple[np.ndarray, list[Problem]]:
    """Integers (ids, counts): integer columns, or text of digits."""
    array, problems = _missing(array, name)
    if pa.types.is_string(array.type):
        array = pc.utf8_trim_whitespace(array)
    elif not pa.types.is_integer(array.type):
        return np.zeros(len(array), dtype=np.int64), [
            *problems, Problem(None, f"{name}: expected integers, got {array.type}")]
    try:
        return pc.cast(array, pa.int64()).to_numpy(zero_copy_only=False), problems
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for i, value in enumerate(array.to_pylist()):
        try:
            pc.cast(pa.array([value], array.type), pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            problems.append(Problem(i + 1, f"{name}: expected an integer, got {value!r}"))
    return np.zeros(len(array), dtype=np.int64), problems


def parse_text(array: pa.Array, name: str) -> tuple[np.ndarray, list[Problem]]:
    """Text (ids): any scalar column as strings; integers print without decimals."""
    array, problems = _missing(array, name)
    return np.asarray(pc.cast(array, pa.string()).to_pylist(), dtype=object), problems


def parse_bool(array: pa.Array, name: str) -> tuple[np.ndarray, list[Problem]]:
    """Booleans: bool columns, 0/1, or text true/false/yes/no."""
    if pa.types.is_boolean(array.type) and not array.null_count:
        return array.to_numpy(zero_copy_only=False).astype(bool), []
    words = [str(v).strip().lower() if v is not None else "" for v in array.to_pylist()]
    values = np.array([w in _TRUE for w in words], dtype=bool)
    problems = [
        Problem(i + 1, f"{name}: expected true or false, got {w!r}")
        for i, w in enumerate(words)
        if w not in _TRUE and w not in _FALSE
    ]
    return values, problems


def parse_side(array: pa.Array, name: str, *, allow_none: bool) -> tuple[np.ndarray, list[Problem]]:
    """+1 buy/bid, -1 sell/ask (0 unknown when ``allow_none``): words, letters or numbers."""
    table = {
        "1": 1,
        "buy": 1,
        "b": 1,
        "bid": 1,
        "bids": 1,
        "-1": -1,
        "sell": -1,
        "s": -1,
        "a": -1,
        "ask": -1,
        "asks": -1,
        "offer": -1,
    }
    if allow_none:
        table |= {"0": 0, "": 0, "none": 0, "unknown": 0, "n": 0}
    words = [str(v).strip().lower() if v is not None else "" for v in array.to_pylist()]
    values = np.array([table.get(w, 0) for w in words], dtype=np.int8)
    expected = "buy/sell/unknown" if allow_none else "bid/ask (b/a, buy/sell, 1/-1)"
    problems = [
        Problem(i + 1, f"{name}: expected {expected}, got {w!r}")
        for i, w in enumerate(words)
        if w not in table
    ]
    return values, problems


def parse_interval(text: str) -> int:
    """``"1m"`` → 60 s in ns; units ns, us, ms, s, m, h, d, w. ValueError when malformed."""
    spec = text.strip().lower()
    for unit in sorted(_UNITS_NS, key=len, reverse=True):
        number = spec.removesuffix(unit)
        if number != spec and number.isdigit() and int(number) > 0:
            return int(number) * _UNITS_NS[unit]
    raise ValueError(f"bad interval {text!r}: expected e.g. 1m, 5m, 1h, 1d, 500ms")


def format_interval(interval_ns: int) -> str:
    """The inverse of :func:`parse_interval`: 60 s in ns → ``"1m"`` (the largest exact unit)."""
    for unit, size in sorted(_UNITS_NS.items(), key=lambda item: -item[1]):
        if interval_ns > 0 and interval_ns % size == 0:
            return f"{interval_ns // size}{unit}"
    return f"{interval_ns}ns"
