"""Market data for a backtest: each configured stream as Arrow, merged in (ts_event, seq) order.

Streams come from a CSV/Parquet file (validated exactly like ``tradewind data import``) or from
the store. The merge is stable: equal ``(ts_event, seq)`` keep the config's stream order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from backtest.config import BacktestConfig, DataConfig
from backtest.data import load_file, table_hash, to_messages
from runtime.errors import ConfigError, DataError
from runtime.messages import MarketData

__all__ = ["Feed", "load_feed"]


@dataclass
class Feed:
    messages: list[MarketData]
    tables: dict[tuple[str, str], pa.Table]  # (kind, instrument) -> canonical table
    dataset_hash: str

    @property
    def start_ns(self) -> int:
        return self.messages[0].ts_event if self.messages else 0

    @property
    def end_ns(self) -> int:
        return self.messages[-1].ts_event if self.messages else 0


def _ns(text: str | None, field: str) -> int | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"not an ISO date/time: {text!r}", field=field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def _load_stream(config: BacktestConfig, stream: DataConfig, store: Any) -> pa.Table:
    start, end = _ns(stream.start, "data.start"), _ns(stream.end, "data.end")
    path = config.resolve(stream.path)
    if path is not None:
        table = load_file(
            path, stream.kind, stream.instrument, timezone=stream.timezone, interval=stream.interval
        )
        ts = table.column("ts_event").to_numpy()
        keep = np.ones(len(ts), dtype=bool)
        if start is not None:
            keep &= ts >= start
        if end is not None:
            keep &= ts < end
        return table if keep.all() else table.filter(pa.array(keep))
    if store is None:
        raise ConfigError("stream has no path and no store is open", field="data")
    table = store.read_market(stream.kind, stream.instrument, start, end)
    if table.num_rows == 0:
        raise DataError(
            f"the store holds no {stream.kind} for {stream.instrument} in that range; "
            "load some with `tradewind data sample` or `tradewind data import`"
        )
    return table


def load_feed(config: BacktestConfig, store: Any = None) -> Feed:
    """Every stream of the config, as one time-ordered list of messages."""
    tables: dict[tuple[str, str], pa.Table] = {}
    parts: list[list[MarketData]] = []
    keys: list[tuple[np.ndarray, np.ndarray]] = []
    hashes: list[str] = []
    for stream in config.data:
        table = _load_stream(config, stream, store)
        tables[(stream.kind, stream.instrument)] = table
        parts.append(to_messages(stream.kind, table))
        keys.append(
            (
                np.array([m.ts_event for m in parts[-1]], dtype=np.int64),
                np.array([m.seq for m in parts[-1]], dtype=np.int64),
            )
        )
        hashes.append(f"{stream.kind}:{stream.instrument}:{table_hash(stream.kind, table)}")
    if len(parts) == 1:
        messages = parts[0]
    else:
        ts = np.concatenate([k[0] for k in keys])
        seq = np.concatenate([k[1] for k in keys])
        stream_idx = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
        order = np.lexsort((stream_idx, seq, ts))
        flat = [m for p in parts for m in p]
        messages = [flat[i] for i in order]
    digest = hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    return Feed(messages=messages, tables=tables, dataset_hash=digest)
