"""Market data for a backtest: each configured stream as Arrow, merged in (ts_event, seq) order.

Streams come from a CSV/Parquet file (validated exactly like ``tradewind data import``) or from
the store; either way a price off the instrument's tick refuses the run (prices are never
rounded to fit: :mod:`backtest.data.prices`). Messages are made lazily, one Arrow batch at a
time, so a million bars never sit in memory as a million objects; the merge order across
streams is computed once with numpy (stable: equal ``(ts_event, seq)`` keep the config's stream
order). A feed is cheap to ``ray.put``: it is
Arrow tables and one index array.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from backtest.config import BacktestConfig, DataConfig
from backtest.data import SampleSpec, generate_sample, load_file, table_hash, to_messages
from backtest.data.parse import format_interval, parse_interval
from backtest.data.prices import check_ticks
from backtest.data.sample import PERP_SUFFIX
from runtime.errors import ConfigError, DataError
from runtime.messages import AuxData, MarketData

__all__ = ["Feed", "load_feed"]

BATCH_ROWS = 65_536


@dataclass
class Feed:
    tables: dict[tuple[str, str], pa.Table]  # (kind, instrument) -> canonical table, config order
    dataset_hash: str
    order: np.ndarray | None = None  # stream index of each merged event (None: one stream)
    n_events: int = 0
    start_ns: int = 0
    end_ns: int = 0
    _books: dict[tuple[str, str], list[MarketData | AuxData]] = field(
        default_factory=dict, repr=False
    )

    def iter_messages(self, batch_rows: int = BATCH_ROWS) -> Iterator[MarketData | AuxData]:
        """Every message in (ts_event, seq) order, made a batch at a time."""
        streams = [self._stream(key, batch_rows) for key in self.tables]
        if self.order is None:
            return streams[0] if streams else iter(())
        nexts = [s.__next__ for s in streams]
        return (nexts[i]() for i in self.order.tolist())

    @property
    def messages(self) -> list[MarketData | AuxData]:
        """All messages as a list (materialises the feed: prefer :meth:`iter_messages`)."""
        return list(self.iter_messages())

    def _stream(self, key: tuple[str, str], batch_rows: int) -> Iterator[MarketData | AuxData]:
        """One stream's messages; chained in C (no Python frame per message)."""
        kind, _ = key
        if kind == "book":  # rows group into updates: made whole, once
            return iter(self._book(key))
        batches = self.tables[key].to_batches(max_chunksize=batch_rows)
        return chain.from_iterable(map(partial(to_messages, kind), batches))

    def _book(self, key: tuple[str, str]) -> list[MarketData | AuxData]:
        if key not in self._books:
            self._books[key] = to_messages("book", self.tables[key])
        return self._books[key]

    def _keys(self, key: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
        if key[0] == "book":
            msgs = self._book(key)
            return (np.array([m.ts_event for m in msgs], dtype=np.int64),
                    np.array([m.seq for m in msgs], dtype=np.int64))
        table = self.tables[key]
        return (table.column("ts_event").to_numpy().astype(np.int64),
                table.column("seq").to_numpy().astype(np.int64))

    def timestamps(self) -> np.ndarray:
        """``ts_event`` of every message, in replay order."""
        keys = [self._keys(key)[0] for key in self.tables]
        if self.order is None:
            return keys[0] if keys else np.empty(0, np.int64)
        ts = np.concatenate(keys)
        stream = np.concatenate([np.full(len(k), i, np.int64) for i, k in enumerate(keys)])
        seq = np.concatenate([self._keys(key)[1] for key in self.tables])
        return ts[np.lexsort((stream, seq, ts))]

    def window(self, start_ns: int | None, end_ns: int | None) -> Feed:
        """The feed where ``start_ns <= ts_event < end_ns`` (tables sliced, re-indexed)."""
        if start_ns is None and end_ns is None:
            return self
        tables: dict[tuple[str, str], pa.Table] = {}
        for key, table in self.tables.items():
            ts = table.column("ts_event").to_numpy()
            keep = np.ones(len(ts), dtype=bool)
            if start_ns is not None:
                keep &= ts >= start_ns
            if end_ns is not None:
                keep &= ts < end_ns
            tables[key] = table if keep.all() else table.filter(pa.array(keep))
        feed = Feed(tables=tables, dataset_hash=f"{self.dataset_hash}[{start_ns}:{end_ns}]")
        feed.index()
        return feed

    def index(self) -> None:
        """Compute the merge order, the event count and the time span."""
        keys = [self._keys(key) for key in self.tables]
        self.n_events = sum(len(ts) for ts, _ in keys)
        stamps = [ts for ts, _ in keys if len(ts)]
        self.start_ns = int(min(ts[0] for ts in stamps)) if stamps else 0
        self.end_ns = int(max(ts[-1] for ts in stamps)) if stamps else 0
        if len(keys) > 1:
            ts = np.concatenate([k[0] for k in keys])
            seq = np.concatenate([k[1] for k in keys])
            stream = np.concatenate([np.full(len(k[0]), i, np.int64) for i, k in enumerate(keys)])
            self.order = stream[np.lexsort((stream, seq, ts))]


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
        table = load_file(path, stream.kind, stream.instrument, timezone=stream.timezone,
                          interval=stream.interval, bar_stamp=stream.bar_stamp or "open")
        ts = table.column("ts_event").to_numpy()
        keep = np.ones(len(ts), dtype=bool)
        if start is not None:
            keep &= ts >= start
        if end is not None:
            keep &= ts < end
        if len(ts) and not keep.any():
            raise DataError(f"no rows{_range(stream)}", source=str(path))
        return table if keep.all() else table.filter(pa.array(keep))
    if store is None:
        raise ConfigError("stream has no path and no store is open", field="data")
    interval_ns = _store_interval(stream, store) if stream.kind == "bars" else None
    table = store.read_market(stream.kind, stream.instrument, start, end, interval_ns=interval_ns)
    if table.num_rows == 0:
        raise DataError(f"the store holds no {stream.kind} for {stream.instrument}"
                        f"{_range(stream)}; load some with `tradewind data sample` or "
                        "`tradewind data import`")
    return table


def _sample_stream(config: BacktestConfig, stream: DataConfig,
                   samples: dict[int, dict[str, pa.Table]]) -> pa.Table:
    """A stream of generated sample data (``backtest.data.generate_sample``, as ``tradewind
    data sample`` writes it): the config's sampled instruments, from its seed, generated once
    per number of days for all of its streams. An instrument ``<id>-PERP`` sampled beside
    ``<id>`` is its perpetual (bars and a funding history: ``data sample --perpetuals``)."""
    days = stream.sample_days
    assert days is not None
    if days not in samples:
        sampled = tuple(dict.fromkeys(d.instrument for d in config.data
                                      if d.sample_days == days))
        perps = [i for i in sampled if i.endswith(PERP_SUFFIX)
                 and i.removesuffix(PERP_SUFFIX) in sampled]
        spec = SampleSpec(instruments=tuple(i for i in sampled if i not in perps), days=days,
                          perpetuals=tuple(i.removesuffix(PERP_SUFFIX) for i in perps))
        samples[days] = generate_sample(np.random.default_rng(config.seed), spec)
    table = samples[days].get(stream.kind)
    if table is None:
        raise DataError(f"sample data has no {stream.kind} of {stream.instrument}: it has funding "
                        f"only for a perpetual <id>{PERP_SUFFIX} sampled beside its <id>")
    keep = pc.equal(table.column("instrument_id"), stream.instrument).to_numpy(
        zero_copy_only=False)
    start, end = _ns(stream.start, "data.start"), _ns(stream.end, "data.end")
    ts = table.column("ts_event").to_numpy()
    if start is not None:
        keep &= ts >= start
    if end is not None:
        keep &= ts < end
    if not keep.any():
        raise DataError(f"no sample {stream.kind} for {stream.instrument}{_range(stream)}")
    return table.filter(pa.array(keep))


def _range(stream: DataConfig) -> str:
    """`` in [start, end)`` for messages, or nothing when the stream has no bounds."""
    if stream.start is None and stream.end is None:
        return ""
    return f" in [{stream.start or 'the start'}, {stream.end or 'the end'})"


def _store_interval(stream: DataConfig, store: Any) -> int | None:
    """The bar length a store stream reads: the config's ``interval``, else the only one stored
    (bars of two lengths are two datasets, never one interleaved stream)."""
    field = f"data.{stream.instrument}.interval"
    if stream.interval is not None:
        try:
            return parse_interval(stream.interval)
        except ValueError as exc:
            raise ConfigError(str(exc), field=field) from None
    stored = store.bar_intervals(stream.instrument)
    if len(stored) > 1:
        names = ", ".join(format_interval(n) for n in stored)
        raise ConfigError(f"the store holds bars of {stream.instrument} at {names}: "
                          "say which with interval: (e.g. interval: 1m)", field=field)
    return stored[0] if stored else None


def load_feed(config: BacktestConfig, store: Any = None) -> Feed:
    """Every stream of the config, indexed for a time-ordered replay."""
    tables: dict[tuple[str, str], pa.Table] = {}
    hashes: list[str] = []
    instruments = {i.id: i for i in config.instruments}
    samples: dict[int, dict[str, pa.Table]] = {}
    for stream in config.data:
        if stream.sample_days is not None:
            table = _sample_stream(config, stream, samples)
            where = f"the sample {stream.kind} of {stream.instrument}"
        else:
            table = _load_stream(config, stream, store)
            path = config.resolve(stream.path)
            where = str(path) if path else f"the store's {stream.kind} of {stream.instrument}"
        check_ticks(stream.kind, table, instruments[stream.instrument].build(), source=where)
        tables[(stream.kind, stream.instrument)] = table
        hashes.append(f"{stream.kind}:{stream.instrument}:{table_hash(stream.kind, table)}")
    digest = hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    feed = Feed(tables=tables, dataset_hash=digest)
    feed.index()
    return feed
