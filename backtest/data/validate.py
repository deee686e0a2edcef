"""Checks on parsed market data (canonical columns as numpy arrays, in file order).

Hard problems refuse the file: time going backwards, duplicates, non-positive prices, negative
sizes, crossed quotes (bid ≥ ask), bars with high < low or open/close outside [low, high].
Warnings are reported, not refused: gaps between bars, breaks in a book's update-id chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from backtest.data.problems import Problem
from runtime.values import from_fixed

__all__ = ["Columns", "validate"]

Columns = Mapping[str, np.ndarray]
_MAX_PER_CHECK = 1000  # enough to count; the error lists fewer


def validate(kind: str, cols: Columns) -> tuple[list[Problem], list[str]]:
    """(hard problems, warnings) for canonical columns of ``kind``."""
    problems = _time_order(cols["ts_event"]) + _duplicates(kind, cols)
    problems += _CHECKS[kind](cols)
    warnings = _bar_gaps(cols) if kind == "bars" else _book_chain(cols) if kind == "book" else []
    return problems, warnings


def _rows(mask: np.ndarray, describe: Callable[[int], str]) -> list[Problem]:
    return [Problem(int(i) + 1, describe(int(i))) for i in np.flatnonzero(mask)[:_MAX_PER_CHECK]]


def _num(raw: object) -> str:
    return format(from_fixed(int(raw)), "f")  # type: ignore[call-overload]


def _time(ns: object) -> str:
    return str(np.datetime64(int(ns), "ns").astype("datetime64[s]")) + "Z"  # type: ignore[call-overload]


def _saying(template: str, values: np.ndarray) -> Callable[[int], str]:
    """A row describer: ``template`` with the row's value of ``values`` formatted in."""
    return lambda i: template.format(_num(values[i]))


def _time_order(ts: np.ndarray) -> list[Problem]:
    back = np.zeros(len(ts), dtype=bool)
    back[1:] = ts[1:] < ts[:-1]
    return _rows(back, lambda i: f"time goes backwards: {_time(ts[i])} after {_time(ts[i - 1])}")


def _duplicates(kind: str, cols: Columns) -> list[Problem]:
    names = [n for n in cols if n not in ("seq", "ts_init")]
    same = np.zeros(len(cols["ts_event"]), dtype=bool)
    same[1:] = True
    for name in ["ts_event"] if kind == "bars" else names:
        same[1:] &= cols[name][1:] == cols[name][:-1]
    what = "a second bar at" if kind == "bars" else "duplicate of the previous row at"
    problems = _rows(same, lambda i: f"{what} {_time(cols['ts_event'][i])}")
    if kind == "trades":
        problems += _duplicate_ids(cols["trade_id"])
    return problems


def _duplicate_ids(ids: np.ndarray) -> list[Problem]:
    first: dict[str, int] = {}
    problems = []
    for i, trade_id in enumerate(ids):
        if not trade_id:
            continue
        if trade_id in first:
            problems.append(
                Problem(
                    i + 1, f"duplicate trade_id {trade_id!r} (first at row {first[trade_id] + 1})"
                )
            )
        else:
            first[trade_id] = i
    return problems[:_MAX_PER_CHECK]


def _positive(cols: Columns, *names: str) -> list[Problem]:
    out: list[Problem] = []
    for name in names:
        out += _rows(cols[name] <= 0, _saying(f"{name} {{}} is not positive", cols[name]))
    return out


def _not_negative(cols: Columns, *names: str) -> list[Problem]:
    out: list[Problem] = []
    for name in names:
        out += _rows(cols[name] < 0, _saying(f"{name} {{}} is negative", cols[name]))
    return out


def _check_quotes(cols: Columns) -> list[Problem]:
    bid, ask = cols["bid_price"], cols["ask_price"]
    crossed = _rows(
        (bid >= ask) & (bid > 0) & (ask > 0),
        lambda i: f"crossed quote: bid {_num(bid[i])} >= ask {_num(ask[i])}",
    )
    return (
        _positive(cols, "bid_price", "ask_price")
        + _not_negative(cols, "bid_size", "ask_size")
        + crossed
    )


def _check_trades(cols: Columns) -> list[Problem]:
    return _positive(cols, "price", "size")


def _check_bars(cols: Columns) -> list[Problem]:
    high, low = cols["high"], cols["low"]
    problems = _positive(cols, "open", "high", "low", "close") + _not_negative(cols, "volume")
    problems += _rows(high < low, lambda i: f"high {_num(high[i])} is below low {_num(low[i])}")
    for name in ("open", "close"):
        problems += _outside(name, cols[name], low, high)
    return problems


def _outside(name: str, values: np.ndarray, low: np.ndarray, high: np.ndarray) -> list[Problem]:
    def describe(i: int) -> str:
        return f"{name} {_num(values[i])} is outside [low {_num(low[i])}, high {_num(high[i])}]"

    return _rows((high >= low) & ((values > high) | (values < low)), describe)


def _check_book(cols: Columns) -> list[Problem]:
    first, last = cols["first_update_id"], cols["last_update_id"]
    problems = _positive(cols, "price") + _not_negative(cols, "size")
    problems += _rows(
        last < first, lambda i: f"last_update_id {last[i]} is below first_update_id {first[i]}"
    )
    return problems


_CHECKS: dict[str, Callable[[Columns], list[Problem]]] = {
    "quotes": _check_quotes,
    "trades": _check_trades,
    "bars": _check_bars,
    "book": _check_book,
}


def _bar_gaps(cols: Columns) -> list[str]:
    ts, interval = cols["ts_event"], cols["interval_ns"]
    if len(ts) < 2:
        return []
    steps = np.diff(ts)
    gaps = np.flatnonzero(steps > interval[1:])
    if len(gaps) == 0:
        return []
    worst = int(gaps[np.argmax(steps[gaps])])
    return [
        f"{len(gaps)} gap(s) between bars (a step longer than the interval; weekends and "
        f"holidays count); the longest: {_time(ts[worst])} → {_time(ts[worst + 1])} "
        f"(rows {worst + 1}-{worst + 2})"
    ]


def _book_chain(cols: Columns) -> list[str]:
    last, prev = cols["last_update_id"], cols["prev_update_id"]
    starts = np.ones(len(last), dtype=bool)
    starts[1:] = (last[1:] != last[:-1]) | (cols["ts_event"][1:] != cols["ts_event"][:-1])
    idx = np.flatnonzero(starts)
    if len(idx) < 2:
        return []
    broken = (prev[idx[1:]] >= 0) & (prev[idx[1:]] != last[idx[:-1]])
    broken &= ~cols["is_snapshot"][idx[1:]]
    if not broken.any():
        return []
    row = int(idx[1:][np.argmax(broken)]) + 1
    return [
        f"{int(broken.sum())} break(s) in the update-id chain (prev_update_id does not match "
        f"the previous update's last_update_id), first at row {row}: the book must resync"
    ]
