"""Prices against an instrument's tick: how many decimals the data has, and which rows miss it.

A price is never changed to fit a tick. An import reports the decimals its prices carry; a
backtest refuses data whose prices an instrument's tick cannot represent, naming the row and the
``price_precision`` that would fit (the venue would otherwise round every fill).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from runtime.errors import DataError
from runtime.instruments import Instrument
from runtime.values import FIXED_PRECISION, from_fixed

__all__ = ["PRICE_COLUMNS", "check_ticks", "price_decimals"]

#: The columns holding prices (not sizes) in each kind's canonical schema.
PRICE_COLUMNS: dict[str, tuple[str, ...]] = {
    "quotes": ("bid_price", "ask_price"),
    "trades": ("price",),
    "bars": ("open", "high", "low", "close"),
    "book": ("price",),
    # auxiliary data holds no order prices: a mark or index price is off the tick by nature
    "funding": (),
    "open_interest": (),
    "mark": (),
    "borrow": (),
}


def price_decimals(columns: Iterable[np.ndarray]) -> int:
    """The most decimals any value of ``columns`` (fixed-point raw int64) needs, 0 to 9."""
    most = 0
    for raw in columns:
        for decimals in range(most, FIXED_PRECISION + 1):
            if not np.any(raw % 10 ** (FIXED_PRECISION - decimals)):
                most = decimals
                break
    return most


def check_ticks(kind: str, table: pa.Table, instrument: Instrument, *, source: str) -> None:
    """DataError naming the first row whose price is off the instrument's tick grid."""
    for name in PRICE_COLUMNS[kind]:
        raw = table.column(name).to_numpy()
        ticks = _ticks(instrument, raw)
        off = np.flatnonzero(raw % ticks)
        if len(off):
            row = int(off[0])
            needed = price_decimals([raw])
            raise DataError(
                f"{name} {from_fixed(int(raw[row]))} is not a multiple of the tick "
                f"{from_fixed(int(ticks[row]))} of {instrument.instrument_id} "
                f"({len(off)} price(s) off the tick; the data has {needed} decimals: set "
                f"price_precision: {needed} on the instrument, or give its tick_ladder); "
                "prices are never rounded to fit",
                source=source,
                row=row + 1,
            )


def _ticks(instrument: Instrument, raw: np.ndarray) -> np.ndarray:
    """The tick that applies at each price (ladders are sorted by their lower bound)."""
    bands = instrument.tick_ladder
    lows = np.array([b.min_price for b in bands], dtype=np.int64)
    sizes = np.array([b.tick for b in bands], dtype=np.int64)
    index = np.maximum(np.searchsorted(lows, raw, side="right") - 1, 0)
    return sizes[index]
