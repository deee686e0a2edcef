"""What the recorder writes: runtime messages → Arrow tables of the store, built column by column.

Pure Python + pyarrow (no Ray), so unit tests and benchmarks run it directly. The recorder actor
(:mod:`actors.recorder`) and the spill spool (:mod:`actors.spool`) build on it.

Routing (one message → rows of one table; ``OrderDenied`` → ``orders`` *and* ``risk_events``):

======================================================  ==========================================
``SubmitOrder``, ``CancelOrder``, ``ModifyOrder``,       ``orders`` (``event`` = the message type)
order events except fills (``OrderAccepted``,
``OrderDenied``, ``OrderRejected``, ``OrderCanceled``,
``OrderCancelRejected``, ``OrderExpired``,
``OrderUpdated``)
``OrderFilled``                                          ``fills``
``OrderDenied``, ``TradingStateChanged``                 ``risk_events``
``PositionChanged``                                      ``positions``
``QuoteTick`` / ``TradeTick`` / ``Bar``                  ``quotes`` / ``trades`` / ``bars`` (*)
``BookDeltas``, ``BookSnapshot``                         ``book_deltas``, a row per level (*)
``FundingRate`` / ``OpenInterest`` / ``IndexMarkPrice``  ``funding_rates`` / ``open_interest`` /
/ ``BorrowRate``                                         ``mark_prices`` / ``borrow_rates`` (*)
``TimerFired``                                           not recorded
======================================================  ==========================================

(*) market data is sampled: every ``market_every``-th message per type and instrument.

Idempotent keys: the tables are ``ReplacingMergeTree``\\ s ordered by their key, so a row written
twice (a retried insert, a re-drained spill, a producer re-sending after its restart) is one row.
``fills`` are keyed by ``fill_id`` and market data by ``(instrument_id, ts_event, seq)`` (the
store's convention; book rows take ``seq = message seq + level index``). The kernel stamps its
own events with ``seq=0``, so in ``orders``, ``risk_events`` and ``positions`` the ``seq`` column
holds a **row key**: the first 63 bits of BLAKE2b over the message's msgpack encoding. Two
different events never share it (the encoding includes type, seq, times and every field); the
same event sent twice always does.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter
from typing import Any, Final, TypeAlias

import msgspec
import numpy as np
import pyarrow as pa

from runtime.errors import DataError
from runtime.messages import (
    AuxData,
    Bar,
    BookDeltas,
    BookSnapshot,
    BorrowRate,
    CancelOrder,
    Command,
    Event,
    FundingRate,
    IndexMarkPrice,
    MarketData,
    Message,
    ModifyOrder,
    OpenInterest,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderUpdated,
    PositionChanged,
    QuoteTick,
    SubmitOrder,
    TradeTick,
    TradingStateChanged,
)

__all__ = [
    "LIVE_TABLES",
    "MARKET_TABLES",
    "TABLES_OF",
    "MarketSampler",
    "decode_batch",
    "encode_batch",
    "row_key",
    "to_tables",
]

AnyMessage: TypeAlias = MarketData | AuxData | Command | Event
Columns: TypeAlias = dict[str, pa.Array]

LIVE_TABLES: Final = ("orders", "fills", "risk_events", "positions")
MARKET_TABLES: Final = ("quotes", "trades", "bars", "book_deltas", "funding_rates",
                         "open_interest", "mark_prices", "borrow_rates")

_ORDER_TYPES: Final = (
    SubmitOrder, CancelOrder, ModifyOrder, OrderAccepted, OrderDenied, OrderRejected,
    OrderCanceled, OrderCancelRejected, OrderExpired, OrderUpdated,
)  # fmt: skip
_MARKET_TYPES: Final = (QuoteTick, TradeTick, Bar, BookDeltas, BookSnapshot)

#: The tables each message type is written to (types not listed are not recorded).
TABLES_OF: Final[dict[type, tuple[str, ...]]] = {
    **{cls: ("orders",) for cls in _ORDER_TYPES},
    OrderDenied: ("orders", "risk_events"),
    OrderFilled: ("fills",),
    TradingStateChanged: ("risk_events",),
    PositionChanged: ("positions",),
    QuoteTick: ("quotes",),
    TradeTick: ("trades",),
    Bar: ("bars",),
    BookDeltas: ("book_deltas",),
    BookSnapshot: ("book_deltas",),
    FundingRate: ("funding_rates",),
    OpenInterest: ("open_interest",),
    IndexMarkPrice: ("mark_prices",),
    BorrowRate: ("borrow_rates",),
}

_ENCODER: Final = msgspec.msgpack.Encoder()
_BATCH_DECODER: Final = msgspec.msgpack.Decoder(list[AnyMessage])


# --- batches on the wire and in the spill journal ----------------------------------------------


def encode_batch(messages: Sequence[Message]) -> bytes:
    """One msgpack array of tagged messages: what ``RecorderActor.record`` takes."""
    return _ENCODER.encode(list(messages))


def decode_batch(payload: bytes) -> list[Message]:
    """Inverse of :func:`encode_batch`; a payload that is not a batch is a DataError."""
    try:
        return list(_BATCH_DECODER.decode(payload))
    except msgspec.DecodeError as exc:
        raise DataError(f"not a recorder batch ({len(payload)} bytes): {exc}") from exc


def row_key(message: Message) -> int:
    """The row key of a message: 63 bits of BLAKE2b over its msgpack encoding (never negative)."""
    digest = hashlib.blake2b(_ENCODER.encode(message), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


# --- sampling ------------------------------------------------------------------------------------


class MarketSampler:
    """Keeps every ``every``-th market message per (type, instrument); 1 keeps all, 0 none."""

    def __init__(self, every: int = 1) -> None:
        if every < 0:
            raise DataError(f"market sampling 'every' must be >= 0, got {every}")
        self.every = every
        self._counts: dict[tuple[type, str], int] = defaultdict(int)

    def keep(self, messages: list[Any]) -> list[Any]:
        if self.every == 1:
            return messages
        if self.every == 0:
            return []
        kept = []
        for message in messages:
            key = (type(message), message.instrument_id)
            if self._counts[key] % self.every == 0:
                kept.append(message)
            self._counts[key] += 1
        return kept


# --- columns -------------------------------------------------------------------------------------


def _ints(messages: Sequence[Any], name: str, dtype: Any = np.int64) -> pa.Array:
    return pa.array(np.fromiter(map(attrgetter(name), messages), dtype=dtype, count=len(messages)))


def _optional(messages: Sequence[Any], name: str) -> pa.Array:
    values = [getattr(m, name, None) for m in messages]
    mask = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    raw = np.fromiter((0 if v is None else v for v in values), dtype=np.int64, count=len(values))
    return pa.array(raw, mask=mask if mask.any() else None)


def _strs(messages: Sequence[Any], name: str, default: str = "") -> pa.Array:
    try:
        values = list(map(attrgetter(name), messages))
    except AttributeError:  # a table of several message types: not all have every field
        values = [getattr(m, name, default) for m in messages]
    return pa.array(values, type=pa.string())


def _const(value: Any, n: int, type_: pa.DataType) -> pa.Array:
    return pa.array([value] * n, type=type_)


def _head(session_id: str | None, messages: Sequence[Any], keys: bool) -> Columns:
    cols: Columns = {}
    if session_id is not None:
        cols["session_id"] = _const(session_id, len(messages), pa.string())
    cols["ts_event"] = _ints(messages, "ts_event")
    cols["ts_init"] = _ints(messages, "ts_init")
    if keys:
        seqs = np.fromiter(map(row_key, messages), dtype=np.int64, count=len(messages))
        cols["seq"] = pa.array(seqs)
    else:
        cols["seq"] = _ints(messages, "seq")
    return cols


def _orders(session_id: str, messages: Sequence[Any]) -> Columns:
    n = len(messages)
    cols = _head(session_id, messages, keys=True)
    cols["event"] = pa.array([type(m).__name__ for m in messages], type=pa.string())
    for name in ("client_order_id", "strategy_id", "instrument_id", "venue_order_id"):
        cols[name] = _strs(messages, name)
    cols["side"] = pa.array(
        np.fromiter((int(getattr(m, "side", 0)) for m in messages), dtype=np.int8, count=n)
    )
    cols["order_type"] = _strs(messages, "order_type")
    cols["time_in_force"] = _strs(messages, "time_in_force")
    for name in ("quantity", "price", "trigger_price"):
        cols[name] = _optional(messages, name)
    cols["reason"] = pa.array([_reason(m) for m in messages], type=pa.string())
    return cols


def _reason(message: Any) -> str:
    if isinstance(message, OrderDenied):
        return f"{message.reason_code}: {message.reason}"
    if isinstance(message, OrderRejected) and message.venue_code:
        return f"{message.reason} [{message.venue_code}]"
    return str(getattr(message, "reason", ""))


def _fills(session_id: str, messages: Sequence[Any]) -> Columns:
    cols = _head(session_id, messages, keys=False)
    for name in ("fill_id", "client_order_id", "strategy_id", "instrument_id", "venue_order_id"):
        cols[name] = _strs(messages, name)
    cols["side"] = _ints(messages, "side", np.int8)
    for name in ("last_qty", "last_price", "cum_qty", "leaves_qty", "fee", "fee_qty"):
        cols[name] = _ints(messages, name)
    cols["currency"] = _strs(messages, "currency")
    cols["liquidity"] = _strs(messages, "liquidity")
    return cols


def _risk_events(session_id: str, messages: Sequence[Any]) -> Columns:
    cols = _head(session_id, messages, keys=True)
    cols["event"] = pa.array([type(m).__name__ for m in messages], type=pa.string())
    for name in ("client_order_id", "strategy_id", "instrument_id", "reason_code", "reason"):
        cols[name] = _strs(messages, name)
    cols["trading_state"] = pa.array(
        [str(getattr(m, "state", "")) for m in messages], type=pa.string()
    )
    return cols


def _positions(session_id: str, messages: Sequence[Any]) -> Columns:
    cols = _head(session_id, messages, keys=True)
    cols["instrument_id"] = _strs(messages, "instrument_id")
    for name in ("quantity", "avg_price", "realized_pnl"):
        cols[name] = _ints(messages, name)
    return cols


def _market(fields: tuple[str, ...]) -> Callable[[Sequence[Any]], Columns]:
    def build(messages: Sequence[Any]) -> Columns:
        cols = _head(None, messages, keys=False)
        cols["instrument_id"] = _strs(messages, "instrument_id")
        for name in fields:
            cols[name] = _ints(messages, name)
        return cols

    return build


_quotes = _market(("bid_price", "bid_size", "ask_price", "ask_size"))
_bars = _market(("open", "high", "low", "close", "volume", "interval_ns"))


def _trades(messages: Sequence[Any]) -> Columns:
    cols = _market(("price", "size"))(messages)
    cols["aggressor"] = _ints(messages, "aggressor", np.int8)
    cols["trade_id"] = _strs(messages, "trade_id")
    return cols


_BOOK_ROW_FIELDS: Final = (
    "ts_event", "ts_init", "seq", "instrument_id", "side", "price", "size",
    "first_update_id", "last_update_id", "prev_update_id", "is_snapshot",
)  # fmt: skip


def _book_deltas(messages: Sequence[Any]) -> Columns:
    rows: list[tuple[Any, ...]] = []
    for m in messages:
        snapshot = isinstance(m, BookSnapshot)
        first = m.last_update_id if snapshot else m.first_update_id
        prev = -1 if snapshot else m.prev_update_id
        levels = [(1, p, s) for p, s in m.bids] + [(-1, p, s) for p, s in m.asks]
        for index, (side, price, size) in enumerate(levels):
            rows.append((
                m.ts_event, m.ts_init, m.seq + index, m.instrument_id, side, price, size,
                first, m.last_update_id, prev, snapshot,
            ))  # fmt: skip
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in _BOOK_ROW_FIELDS]
    types = {"instrument_id": pa.string(), "side": pa.int8(), "is_snapshot": pa.bool_()}
    return {
        name: pa.array(list(values), type=types.get(name, pa.int64()))
        for name, values in zip(_BOOK_ROW_FIELDS, columns, strict=True)
    }


_LIVE_BUILDERS: Final[dict[str, Callable[[str, Sequence[Any]], Columns]]] = {
    "orders": _orders,
    "fills": _fills,
    "risk_events": _risk_events,
    "positions": _positions,
}
_MARKET_BUILDERS: Final[dict[str, Callable[[Sequence[Any]], Columns]]] = {
    "quotes": _quotes,
    "trades": _trades,
    "bars": _bars,
    "book_deltas": _book_deltas,
    "funding_rates": _market(("rate", "funding_ts", "mark_price")),
    "open_interest": _market(("open_interest",)),
    "mark_prices": _market(("mark_price", "index_price")),
    "borrow_rates": _market(("rate",)),
}


def _route(messages: Iterable[Message]) -> dict[str, list[Any]]:
    groups: dict[type, list[Any]] = defaultdict(list)
    for message in messages:
        groups[type(message)].append(message)
    by_table: dict[str, list[Any]] = defaultdict(list)
    for cls, group in groups.items():
        for table in TABLES_OF.get(cls, ()):
            by_table[table].extend(group)
    return by_table


def to_tables(
    session_id: str, messages: Iterable[Message], *, sampler: MarketSampler | None = None
) -> dict[str, pa.Table]:
    """The rows ``messages`` become, per store table, built column by column (no per-row dicts).

    Fixed-point values stay int64 raw values (the store writes them as ``Decimal64(9)``).
    Tables without rows are left out. Market data goes through ``sampler`` when given.
    """
    tables: dict[str, pa.Table] = {}
    for name, group in _route(messages).items():
        if name in _MARKET_BUILDERS:
            group = sampler.keep(group) if sampler is not None else group
            columns = _MARKET_BUILDERS[name](group) if group else {}
        else:
            columns = _LIVE_BUILDERS[name](session_id, group)
        if columns and len(next(iter(columns.values()))):
            tables[name] = pa.table(columns)
    return tables
