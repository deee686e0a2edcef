"""Canonical Arrow tables → runtime messages (QuoteTick, TradeTick, Bar, BookDeltas/Snapshot,
and the auxiliary FundingRate, OpenInterest, IndexMarkPrice, BorrowRate).

Columns are pulled out once as Python lists (``tolist`` on numpy-backed columns) and the ticks
are built positionally from them: no pandas, no per-row Arrow access.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from backtest.data.schema import SCHEMAS, check_kind, conform
from runtime.messages import (
    AuxData,
    Bar,
    BookDeltas,
    BookSnapshot,
    BorrowRate,
    FundingRate,
    IndexMarkPrice,
    MarketData,
    OpenInterest,
    QuoteTick,
    Side,
    TradeTick,
)

__all__ = ["to_messages"]


def to_messages(kind: str, table: pa.Table | pa.RecordBatch) -> list[MarketData | AuxData]:
    """Messages of a canonical table of ``kind``, in the table's row order.

    Book rows are grouped by update (consecutive rows with the same ``ts_event`` and update ids):
    a snapshot group becomes a BookSnapshot, any other a BookDeltas.
    """
    kind = check_kind(kind)
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    table = conform(kind, table)
    cols: dict[str, list] = {}  # type: ignore[type-arg]
    for name in SCHEMAS[kind].names:
        column = table.column(name)
        if name == "ts_init" and table.column("ts_event").equals(column):
            cols[name] = cols["ts_event"]  # the usual case: stamped when it happened
        else:
            cols[name] = _column(column)
    return _BUILDERS[kind](cols)


def _column(column: pa.ChunkedArray) -> list:  # type: ignore[type-arg]
    """A column as a list: numeric via numpy (several times faster than ``to_pylist``), a
    numeric column holding one value (``seq`` 0, a bar interval) as that one int repeated, and a
    string column holding one value as that one str object repeated (instrument ids)."""
    if pa.types.is_integer(column.type) or pa.types.is_boolean(column.type):
        values = column.to_numpy()
        if len(values) and values[0] == values[-1] and (values == values[0]).all():
            return [values[0].item()] * len(values)
        out: list = values.tolist()  # type: ignore[type-arg]
        return out
    if pa.types.is_string(column.type) and len(column):
        first = column[0].as_py()
        if pc.all(pc.equal(column, first)).as_py():
            return [first] * len(column)
    items: list = column.to_pylist()  # type: ignore[type-arg]
    return items


def _positional(cls: type, c: dict[str, list]) -> list[MarketData]:  # type: ignore[type-arg]
    """Rows of ``cls`` built positionally from columns in the message's field order (the ticks
    take positional fields: cheaper than keywords). The columns are one table's: same length."""
    fields: tuple[str, ...] = cls.__struct_fields__  # type: ignore[attr-defined]
    return list(map(cls, *(c[name] for name in fields)))


def _keywords(cls: type, c: dict[str, list]) -> list[AuxData]:  # type: ignore[type-arg]
    """Rows of an auxiliary message type (keyword-only fields; rare rows, no hot path)."""
    names = cls.__struct_fields__  # type: ignore[attr-defined]
    rows = zip(*(c[n] for n in names), strict=True)
    return [cls(**dict(zip(names, row, strict=True))) for row in rows]


def _quotes(c: dict[str, list]) -> list[MarketData]:  # type: ignore[type-arg]
    return _positional(QuoteTick, c)


def _trades(c: dict[str, list]) -> list[MarketData]:  # type: ignore[type-arg]
    sides = {1: Side.BUY, -1: Side.SELL, 0: Side.NONE}
    return _positional(TradeTick, {**c, "aggressor": [sides[a] for a in c["aggressor"]]})


def _bars(c: dict[str, list]) -> list[MarketData]:  # type: ignore[type-arg]
    return _positional(Bar, c)


def _book(c: dict[str, list]) -> list[MarketData]:  # type: ignore[type-arg]
    out: list[MarketData] = []
    n = len(c["ts_event"])
    start = 0
    for row in range(1, n + 1):
        if row < n and _same_update(c, row):
            continue
        out.append(_book_message(c, start, row))
        start = row
    return out


def _same_update(c: dict[str, list], row: int) -> bool:  # type: ignore[type-arg]
    return all(
        c[k][row] == c[k][row - 1]
        for k in ("ts_event", "instrument_id", "first_update_id", "last_update_id", "is_snapshot")
    )


def _book_message(c: dict[str, list], start: int, end: int) -> MarketData:  # type: ignore[type-arg]
    bids = tuple((c["price"][r], c["size"][r]) for r in range(start, end) if c["side"][r] == 1)
    asks = tuple((c["price"][r], c["size"][r]) for r in range(start, end) if c["side"][r] == -1)
    common = {
        "seq": c["seq"][start],
        "ts_event": c["ts_event"][start],
        "ts_init": c["ts_init"][start],
        "instrument_id": c["instrument_id"][start],
    }
    if c["is_snapshot"][start]:
        return BookSnapshot(
            **common, bids=bids, asks=asks, last_update_id=c["last_update_id"][start]
        )
    return BookDeltas(
        **common,
        bids=bids,
        asks=asks,
        first_update_id=c["first_update_id"][start],
        last_update_id=c["last_update_id"][start],
        prev_update_id=c["prev_update_id"][start],
    )


_BUILDERS: dict[str, Callable[[dict[str, list]], list[Any]]] = {  # type: ignore[type-arg]
    "quotes": _quotes,
    "trades": _trades,
    "bars": _bars,
    "book": _book,
    "funding": lambda c: _keywords(FundingRate, c),
    "open_interest": lambda c: _keywords(OpenInterest, c),
    "mark": lambda c: _keywords(IndexMarkPrice, c),
    "borrow": lambda c: _keywords(BorrowRate, c),
}
