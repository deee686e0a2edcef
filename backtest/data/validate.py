"""Checks on parsed market data (canonical columns as numpy arrays, in file order).

Hard problems refuse the file: time going backwards, duplicates, non-positive prices, negative
sizes, crossed quotes (bid ≥ ask), bars with high < low or open/close outside [low, high], bars
closer together than their interval (a wrong ``--interval``), a book update whose own levels
cross (a bid at or above an ask). Warnings are reported, not refused: gaps between bars, breaks
in a book's update-id chain.

A file checked in batches passes each batch with the previous batch's last row
(``previous``), so checks between neighbouring rows see across the boundary; rows are file rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from backtest.data.parse import format_interval
from backtest.data.problems import Problem
from runtime.values import from_fixed

__all__ = ["Columns", "IdIndex", "Notes", "validate"]

Columns = Mapping[str, np.ndarray]
_MAX_PER_CHECK = 1000  # enough to count; the error lists fewer
_DAY_NS = 86_400 * 10**9
_HOUR_NS = 3_600 * 10**9


@dataclass
class Notes:
    """Warnings gathered over a file's batches: bar gaps and breaks in a book's id chain."""

    gaps: int = 0
    longest_gap: tuple[int, int, int, int] | None = None  # step, from ts, to ts, row of "from"
    chain_breaks: int = 0
    first_break_row: int | None = None

    def merge(self, other: Notes) -> None:
        self.gaps += other.gaps
        if other.longest_gap and (not self.longest_gap or other.longest_gap > self.longest_gap):
            self.longest_gap = other.longest_gap
        self.chain_breaks += other.chain_breaks
        if self.first_break_row is None:
            self.first_break_row = other.first_break_row

    def messages(self) -> list[str]:
        out = []
        if self.longest_gap is not None:
            _, start, end, row = self.longest_gap
            out.append(
                f"{self.gaps} gap(s) between bars (a step longer than the interval; weekends "
                f"and holidays count); the longest: {_time(start)} → {_time(end)} "
                f"(rows {row}-{row + 1})"
            )
        if self.chain_breaks:
            out.append(
                f"{self.chain_breaks} break(s) in the update-id chain (prev_update_id does not "
                f"match the previous update's last_update_id), first at row "
                f"{self.first_break_row}: the book must resync"
            )
        return out


def validate(
    kind: str,
    cols: Columns,
    *,
    previous: Columns | None = None,
    offset: int = 0,
    seen_ids: IdIndex | None = None,
) -> tuple[list[Problem], Notes]:
    """(hard problems, warnings) for canonical columns of ``kind``: the rows ``offset + 1`` on
    of a file, after ``previous`` (the row before them, already checked) when there is one."""
    if previous is not None:
        cols = {n: np.concatenate([previous[n], cols[n]]) for n in cols}
    base = offset - (1 if previous is not None else 0)
    problems = _time_order(cols["ts_event"]) + _duplicates(kind, cols)
    problems += _CHECKS[kind](cols)
    notes = Notes()
    if kind == "bars":
        notes = _bar_gaps(cols, base)
    elif kind == "book":
        notes = _book_chain(cols, base)
    shifted = [Problem(p.row + base if p.row is not None else None, p.message) for p in problems]
    shifted = [p for p in shifted if p.row is None or p.row > offset]
    if kind == "trades":
        start = 1 if previous is not None else 0
        shifted += _duplicate_ids(cols["trade_id"][start:], offset, seen_ids)
    return shifted, notes


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
    return _rows(same, lambda i: f"{what} {_time(cols['ts_event'][i])}")


def _duplicate_ids(ids: np.ndarray, offset: int, seen: IdIndex | None) -> list[Problem]:
    """Repeated trade ids; ``seen`` carries the ids of earlier batches."""
    return (seen if seen is not None else IdIndex()).add(ids, offset)[:_MAX_PER_CHECK]


class IdIndex:
    """Trade ids seen so far, as sorted 64-bit hashes with their file rows (8 bytes an id, not a
    Python string each: a million-row file stays small)."""

    def __init__(self) -> None:
        self._hashes = np.zeros(0, dtype=np.int64)
        self._rows = np.zeros(0, dtype=np.int64)

    def add(self, ids: np.ndarray, offset: int) -> list[Problem]:
        """Remember the non-empty ``ids`` (file rows ``offset + 1`` on); problems for repeats."""
        keep = ids != ""
        rows = np.arange(offset + 1, offset + 1 + len(ids), dtype=np.int64)[keep]
        texts = ids[keep]
        hashes = np.fromiter((hash(i) for i in texts), dtype=np.int64, count=len(texts))
        merged_h = np.concatenate([self._hashes, hashes])
        merged_r = np.concatenate([self._rows, rows])
        order = np.lexsort((merged_r, merged_h))
        merged_h, merged_r = merged_h[order], merged_r[order]
        repeat = np.zeros(len(merged_h), dtype=bool)
        repeat[1:] = merged_h[1:] == merged_h[:-1]
        first = merged_r[np.maximum.accumulate(np.where(~repeat, np.arange(len(repeat)), 0))]
        text_of = dict(zip(rows.tolist(), texts.tolist(), strict=True))
        problems = [
            Problem(int(r), f"duplicate trade_id {text_of[int(r)]!r} (first at row {int(f)})")
            for r, f in zip(merged_r[repeat], first[repeat], strict=True)
        ]
        self._hashes, self._rows = merged_h[~repeat], merged_r[~repeat]
        return sorted(problems)


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
    return problems + _bar_spacing(cols["ts_event"], cols["interval_ns"])


def _bar_spacing(ts: np.ndarray, interval: np.ndarray) -> list[Problem]:
    """Bars closer together than their length overlap: the interval given is wrong. A day may
    be an hour short (a DST change), so daily bars get an hour of slack."""
    steps = np.zeros(len(ts), dtype=np.int64)
    steps[1:] = np.diff(ts)
    slack = np.where(interval >= _DAY_NS, _HOUR_NS, 0)
    close = (steps > 0) & (steps < interval - slack)
    close[0] = False

    def describe(i: int) -> str:
        return (f"the bar at {_time(ts[i])} is {format_interval(int(steps[i]))} after the "
                f"previous one, less than its interval {format_interval(int(interval[i]))}: "
                "bars would overlap (check --interval)")

    return _rows(close, describe)


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
    return problems + _crossed_updates(cols)


def _update_starts(cols: Columns) -> np.ndarray:
    """Row indices where a book update (rows with the same time and update ids) begins."""
    starts = np.ones(len(cols["ts_event"]), dtype=bool)
    for name in ("ts_event", "first_update_id", "last_update_id", "is_snapshot"):
        starts[1:] &= cols[name][1:] == cols[name][:-1]
    starts = ~starts
    starts[:1] = True
    return np.flatnonzero(starts)


def _crossed_updates(cols: Columns) -> list[Problem]:
    """An update whose own levels cross: its best bid at or above its best ask."""
    if not len(cols["price"]):
        return []
    live = cols["size"] > 0
    bids = np.where(live & (cols["side"] == 1), cols["price"], np.iinfo(np.int64).min)
    asks = np.where(live & (cols["side"] == -1), cols["price"], np.iinfo(np.int64).max)
    starts = _update_starts(cols)
    best_bid, best_ask = np.maximum.reduceat(bids, starts), np.minimum.reduceat(asks, starts)
    crossed = np.zeros(len(bids), dtype=bool)
    crossed[starts] = best_bid >= best_ask
    best = dict(zip(starts.tolist(), zip(best_bid.tolist(), best_ask.tolist(), strict=True),
                    strict=True))
    return _rows(crossed, lambda i: f"crossed book update: bid {_num(best[i][0])} >= ask "
                                    f"{_num(best[i][1])}")


def _check_funding(cols: Columns) -> list[Problem]:
    """A rate may be negative (shorts pay); a mark price, when given, is positive."""
    mark = cols["mark_price"]
    return _rows(mark < 0, lambda i: f"mark_price {_num(mark[i])} is negative")


def _check_mark(cols: Columns) -> list[Problem]:
    index = cols["index_price"]
    return _positive(cols, "mark_price") + _rows(
        index < 0, lambda i: f"index_price {_num(index[i])} is negative"
    )


_CHECKS: dict[str, Callable[[Columns], list[Problem]]] = {
    "quotes": _check_quotes,
    "trades": _check_trades,
    "bars": _check_bars,
    "book": _check_book,
    "funding": _check_funding,
    "open_interest": lambda cols: _not_negative(cols, "open_interest"),
    "mark": _check_mark,
    "borrow": lambda cols: _not_negative(cols, "rate"),
}


def _bar_gaps(cols: Columns, base: int) -> Notes:
    ts, interval = cols["ts_event"], cols["interval_ns"]
    notes = Notes()
    if len(ts) < 2:
        return notes
    steps = np.diff(ts)
    gaps = np.flatnonzero(steps > interval[1:])
    if len(gaps) == 0:
        return notes
    worst = int(gaps[np.argmax(steps[gaps])])
    notes.gaps = len(gaps)
    notes.longest_gap = (int(steps[worst]), int(ts[worst]), int(ts[worst + 1]), worst + 1 + base)
    return notes


def _book_chain(cols: Columns, base: int) -> Notes:
    last, prev = cols["last_update_id"], cols["prev_update_id"]
    idx = _update_starts(cols) if len(last) else np.zeros(0, dtype=np.int64)
    notes = Notes()
    if len(idx) < 2:
        return notes
    broken = (prev[idx[1:]] >= 0) & (prev[idx[1:]] != last[idx[:-1]])
    broken &= ~cols["is_snapshot"][idx[1:]]
    if broken.any():
        notes.chain_breaks = int(broken.sum())
        notes.first_break_row = int(idx[1:][np.argmax(broken)]) + 1 + base
    return notes
