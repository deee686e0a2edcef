"""Round trips: fills matched FIFO per instrument into flat → position → flat episodes.

A round trip opens when an instrument's position leaves zero and closes when it returns to zero.
Closing quantity is matched against the open lots first-in first-out; a fill that flips the
position closes one round trip and opens the next with the remainder, its fee split by quantity.
The loop runs over fills only (never over equity points). When the fills carry
``client_order_id``, each round trip names the order whose fill closed it (``exit_order_id``), so
a report can say what closed it (a stop, a limit, a market order).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from runtime.errors import DataError

__all__ = [
    "FILL_COLUMNS",
    "ROUND_TRIP_COLUMNS",
    "check_fills",
    "closed_by",
    "round_trips",
    "walk_fills",
]

FILL_COLUMNS = ("ts_event", "instrument_id", "side", "qty", "price", "fee")
"""Columns of a fills frame: int ns, id, +1 buy / −1 sell, positive qty, price, fee (money)."""
ROUND_TRIP_COLUMNS = (
    "instrument_id",
    "direction",
    "entry_ts",
    "exit_ts",
    "qty",
    "entry_price",
    "exit_price",
    "gross_pnl",
    "fees",
    "net_pnl",
    "exit_order_id",
)
_QTY_EPS = 1e-9
IntArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class _Episode:
    """One round trip being built: flat → position → flat, on one instrument."""

    direction: int
    entry_ts: int
    entry_qty: float = 0.0
    entry_notional: float = 0.0
    exit_qty: float = 0.0
    exit_notional: float = 0.0
    gross_pnl: float = 0.0
    fees: float = 0.0

    def row(self, instrument_id: Any, exit_ts: int, exit_order_id: str) -> tuple[Any, ...]:
        return (
            instrument_id,
            self.direction,
            self.entry_ts,
            exit_ts,
            self.entry_qty,
            self.entry_notional / self.entry_qty,
            self.exit_notional / self.exit_qty,
            self.gross_pnl,
            self.fees,
            self.gross_pnl - self.fees,
            exit_order_id,
        )


@dataclass(slots=True)
class _Book:
    """FIFO lots ``[qty, price]`` and the signed position of one instrument."""

    position: float = 0.0
    lots: deque[list[float]] | None = None
    episode: _Episode | None = None


def check_fills(fills: pd.DataFrame | None) -> pd.DataFrame:
    """``fills`` validated and sorted by ``ts_event`` (stable); an empty frame for ``None``."""
    if fills is None or len(fills) == 0:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in FILL_COLUMNS})
    missing = [c for c in FILL_COLUMNS if c not in fills.columns]
    if missing:
        raise DataError(f"fills lack column(s) {', '.join(missing)}")
    if not np.isin(fills["side"].to_numpy(), (1, -1)).all():
        raise DataError("fills: side must be +1 (buy) or -1 (sell)")
    if (fills["qty"].to_numpy(dtype=np.float64) <= 0).any():
        raise DataError("fills: qty must be positive")
    order = np.argsort(fills["ts_event"].to_numpy(dtype=np.int64), kind="stable")
    return fills.iloc[order]


def _close(book: _Book, side: int, qty: float, price: float, fee_per_unit: float) -> float:
    """Close up to ``qty`` of the position FIFO; return the quantity closed."""
    assert book.lots is not None and book.episode is not None
    closing = min(qty, abs(book.position))
    need, direction = closing, book.episode.direction
    while need > _QTY_EPS * max(1.0, closing) and book.lots:
        lot = book.lots[0]
        matched = min(lot[0], need)
        book.episode.gross_pnl += (price - lot[1]) * matched * direction
        lot[0] -= matched
        need -= matched
        if lot[0] <= _QTY_EPS * max(1.0, matched):
            book.lots.popleft()
    book.episode.exit_qty += closing
    book.episode.exit_notional += closing * price
    book.episode.fees += closing * fee_per_unit
    book.position += side * closing
    return closing


def _open(book: _Book, ts: int, side: int, qty: float, price: float, fee_per_unit: float) -> None:
    if book.episode is None:
        book.episode, book.lots = _Episode(direction=side, entry_ts=ts), deque()
    assert book.lots is not None
    book.lots.append([qty, price])
    book.episode.entry_qty += qty
    book.episode.entry_notional += qty * price
    book.episode.fees += qty * fee_per_unit
    book.position += side * qty


def walk_fills(fills: pd.DataFrame) -> tuple[list[tuple[Any, ...]], IntArray]:
    """Closed round trips (rows of :data:`ROUND_TRIP_COLUMNS`) of checked ``fills``, and the
    number of instruments holding a position after each fill."""
    books: dict[Any, _Book] = {}
    trips: list[tuple[Any, ...]] = []
    open_after = np.zeros(len(fills), dtype=np.int64)
    n_open = 0
    columns = [fills[c].tolist() for c in FILL_COLUMNS]
    order_ids = (
        fills["client_order_id"].astype(str).tolist()
        if "client_order_id" in fills.columns
        else [""] * len(fills)
    )
    rows = zip(*columns, order_ids, strict=True)
    for i, (ts, inst, side, qty, price, fee, order_id) in enumerate(rows):
        book = books.setdefault(inst, _Book())
        was_open = book.episode is not None
        fee_per_unit = float(fee) / float(qty)
        remaining = float(qty)
        if was_open and int(side) * book.position < 0:
            remaining -= _close(book, int(side), remaining, float(price), fee_per_unit)
            if abs(book.position) <= _QTY_EPS * max(1.0, float(qty)):
                assert book.episode is not None
                trips.append(book.episode.row(inst, int(ts), order_id))
                book.position, book.episode, book.lots = 0.0, None, None
        if remaining > _QTY_EPS * max(1.0, float(qty)):
            _open(book, int(ts), int(side), remaining, float(price), fee_per_unit)
        n_open += int(book.episode is not None) - int(was_open)
        open_after[i] = n_open
    return trips, open_after


def round_trips(fills: pd.DataFrame) -> pd.DataFrame:
    """Closed round trips of ``fills``, FIFO-matched per instrument, in order of closing.

    A round trip runs from flat to flat on one instrument; a fill that flips the position closes
    one round trip and opens the next (its fee is split by quantity). Columns
    :data:`ROUND_TRIP_COLUMNS`: ``direction`` +1 long / −1 short, ``qty`` the quantity opened,
    prices volume-weighted, ``net_pnl = gross_pnl − fees``, ``exit_order_id`` the client order id
    of the closing fill (empty when the fills have no ``client_order_id``).
    """
    trips, _ = walk_fills(check_fills(fills))
    return pd.DataFrame.from_records(trips, columns=list(ROUND_TRIP_COLUMNS))


def closed_by(trips: pd.DataFrame, orders: pd.DataFrame | None) -> pd.Series:
    """What closed each round trip: the type of the order behind its closing fill (``stop``,
    ``limit``, ``market``, ``stop_limit``), ``""`` where the orders do not say."""
    if orders is None or len(orders) == 0 or "type" not in orders.columns or len(trips) == 0:
        return pd.Series([""] * len(trips), index=trips.index, dtype=object)
    types = dict(zip(orders["client_order_id"].astype(str), orders["type"].astype(str),
                     strict=True))  # fmt: skip
    return trips["exit_order_id"].map(lambda oid: types.get(str(oid), "")).astype(object)
