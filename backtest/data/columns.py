"""Which file column feeds which canonical column: canonical names plus common aliases.

Names are matched case- and punctuation-insensitively (``Adj Close`` ~ ``adjclose``,
``priceBid`` ~ ``pricebid``). Known-harmless extras (Yahoo's ``Adj Close``, IB's ``average`` and
``barCount``) are ignored and reported; any other extra column is refused, so a misspelt column
never silently disappears. A ``symbol`` column is checked against the instrument id (it must be
the id or the id's part before a dot: ``BTCUSDT`` for ``BTCUSDT.BINANCE``). ``time_column`` names
the time column outright; other time-like columns are then ignored (and reported).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from backtest.data.problems import Problem

__all__ = ["ALIASES", "IGNORED", "OPTIONAL", "ColumnMap", "map_columns", "normalize"]

_TIME = (
    "ts_event", "timestamp", "time", "date", "datetime", "ts", "open_time",
    "timestamp_utc", "datetime_utc", "time_utc", "date_utc",
)
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "bars": {
        "ts_event": _TIME,
        "open": ("open", "o"),
        "high": ("high", "h"),
        "low": ("low", "l"),
        "close": ("close", "c"),
        "volume": ("volume", "vol", "v"),
    },
    "trades": {
        "ts_event": (*_TIME, "trade_time"),
        "price": ("price", "px", "p", "last"),
        "size": ("size", "quantity", "qty", "q", "amount", "volume"),
        "aggressor": ("aggressor", "side", "aggressor_side", "taker_side"),
        "buyer_maker": ("buyer_maker", "is_buyer_maker", "m"),
        "trade_id": ("trade_id", "id", "tid"),
    },
    "quotes": {
        "ts_event": _TIME,
        "bid_price": ("bid_price", "bid", "bid_px", "best_bid", "price_bid"),
        "bid_size": ("bid_size", "bid_qty", "bid_quantity", "bid_volume", "size_bid"),
        "ask_price": ("ask_price", "ask", "ask_px", "best_ask", "offer", "price_ask"),
        "ask_size": ("ask_size", "ask_qty", "ask_quantity", "ask_volume", "size_ask"),
    },
    "book": {
        "ts_event": _TIME,
        "side": ("side",),
        "price": ("price", "px"),
        "size": ("size", "qty", "quantity", "amount"),
        "first_update_id": ("first_update_id",),
        "last_update_id": ("last_update_id", "update_id"),
        "prev_update_id": ("prev_update_id", "pu"),
        "is_snapshot": ("is_snapshot", "snapshot"),
        "update_type": ("update_type",),
    },
    "funding": {
        "ts_event": (*_TIME, "funding_time"),  # a funding history: stamped when it settled
        "rate": ("rate", "funding_rate", "last_funding_rate"),
        "funding_ts": ("funding_ts", "next_funding_time"),  # left out: the row's own time
        "mark_price": ("mark_price", "markprice", "mark"),
    },
    "open_interest": {
        "ts_event": _TIME,
        "open_interest": ("open_interest", "openinterest", "oi", "sum_open_interest"),
    },
    "mark": {
        "ts_event": _TIME,
        "mark_price": ("mark_price", "markprice", "mark"),
        "index_price": ("index_price", "indexprice", "index"),
    },
    "borrow": {
        "ts_event": _TIME,
        "rate": ("rate", "borrow_rate", "fee_rate", "annual_rate"),
    },
}
_COMMON_OPTIONAL = {
    "ts_init": ("ts_init",), "seq": ("seq",), "instrument_id": ("instrument_id",),
    "symbol": ("symbol", "ticker"),
}
#: Canonical (or source-only) columns a file may leave out.
OPTIONAL: dict[str, frozenset[str]] = {
    "bars": frozenset({"interval_ns"}),
    "trades": frozenset({"aggressor", "buyer_maker", "trade_id"}),
    "quotes": frozenset(),
    "book": frozenset(
        {"first_update_id", "last_update_id", "prev_update_id", "is_snapshot", "update_type"}
    ),
    "funding": frozenset({"funding_ts", "mark_price"}),
    "open_interest": frozenset(),
    "mark": frozenset({"index_price"}),
    "borrow": frozenset(),
}
IGNORED = frozenset({"adjclose", "average", "wap", "barcount", "count"})


def normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class ColumnMap:
    source_of: dict[str, str]  # canonical (or source-only, e.g. buyer_maker) name → file column
    ignored: tuple[str, ...]


def map_columns(
    kind: str, names: Sequence[str], time_column: str | None = None
) -> tuple[ColumnMap, list[Problem]]:
    """Match the file's column names to canonical ones; problems for missing/extra/ambiguous."""
    wanted = {**ALIASES[kind], **_COMMON_OPTIONAL}
    if kind == "bars":
        wanted["interval_ns"] = ("interval_ns",)
    lookup = {normalize(alias): canon for canon, aliases in wanted.items() for alias in aliases}
    source_of: dict[str, str] = {}
    ignored: list[str] = []
    problems: list[Problem] = []
    if time_column is not None:
        if time_column not in names:
            problems.append(Problem(None, f"--time-column {time_column!r} is not a column of the "
                                          f"file (found: {', '.join(names)})"))
        source_of["ts_event"] = time_column
    for name in names:
        canon = lookup.get(normalize(name))
        if time_column is not None and (name == time_column or canon == "ts_event"):
            if name != time_column:
                ignored.append(name)
            continue
        if canon is None:
            if normalize(name) in IGNORED:
                ignored.append(name)
            else:
                problems.append(
                    Problem(
                        None,
                        f"unexpected column {name!r} for {kind} "
                        f"(expected: {', '.join(ALIASES[kind])})",
                    )
                )
        elif canon in source_of:
            problems.append(
                Problem(None, f"columns {source_of[canon]!r} and {name!r} both mean {canon}")
            )
        else:
            source_of[canon] = name
    optional = OPTIONAL[kind] | set(_COMMON_OPTIONAL)
    missing = [c for c in ALIASES[kind] if c not in source_of and c not in optional]
    if missing:
        hint = "; name the time column with --time-column" if "ts_event" in missing else ""
        problems.append(
            Problem(
                None,
                f"missing column(s) {', '.join(missing)} for {kind} "
                f"(found: {', '.join(names)}){hint}",
            )
        )
    if "aggressor" in source_of and "buyer_maker" in source_of:
        problems.append(
            Problem(None, "give either an aggressor/side or a buyer_maker column, not both")
        )
    return ColumnMap(source_of, tuple(ignored)), problems
