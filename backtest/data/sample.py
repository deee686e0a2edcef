"""Deterministic synthetic market data: same generator state ⇒ identical rows.

Per instrument, a Heston-like stochastic-volatility log price on a one-second grid drives L1
quotes (one per second, spread 1-3 ticks), trades at the touch (Poisson arrivals, aggressor at
the quote it hits), one-minute bars built from those trades (``ts_event`` = bar close) and a
five-level L2 book whose top is the quote: a snapshot at each session open, then diffs.
Sessions are 6.5 hours by default (14:30-21:00 UTC) on consecutive weekdays from 2024-01-02.
For each instrument named in ``perpetuals``, a perpetual ``<id>-PERP`` trades beside it: its bars
are the spot bars times ``1 + basis`` (a mean-reverting premium, on the tick grid) and its funding
rate settles every eight hours (00:00, 08:00, 16:00 UTC) from the first session's day to the
last, at the premium plus noise, with eight decimals as venues publish it.
All randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from backtest.data.schema import SCHEMAS, seq_within_ts
from runtime.values import FIXED_SCALE

__all__ = ["DEFAULT_INSTRUMENTS", "PERP_SUFFIX", "SampleSpec", "generate_sample"]

DEFAULT_INSTRUMENTS = ("SIM-A", "SIM-B")
PERP_SUFFIX = "-PERP"  # the perpetual of instrument X is X-PERP
_SECOND = 10**9
_YEAR_S = 252 * 23_400  # trading seconds in a year, for the volatility scale
_OPEN_UTC_S = 14 * 3600 + 1800
_LOT = 100 * FIXED_SCALE


@dataclass(frozen=True)
class SampleSpec:
    instruments: tuple[str, ...] = DEFAULT_INSTRUMENTS
    days: int = 1
    start: dt.date = dt.date(2024, 1, 2)
    tick: int = FIXED_SCALE // 100  # 0.01
    levels: int = 5
    session_minutes: int = 390  # from 14:30 UTC
    trades_per_s: float = 0.3
    perpetuals: tuple[str, ...] = ()  # instruments that get a ``-PERP`` twin with funding


def generate_sample(
    rng: np.random.Generator, spec: SampleSpec = SampleSpec()
) -> dict[str, pa.Table]:
    """Tables of every market kind (``quotes``, ``trades``, ``bars``, ``book``) for all
    instruments, and ``funding`` when the spec names perpetuals."""
    kinds = ("quotes", "trades", "bars", "book", *(("funding",) if spec.perpetuals else ()))
    parts: dict[str, list[pa.Table]] = {kind: [] for kind in kinds}
    unknown = sorted(set(spec.perpetuals) - set(spec.instruments))
    if unknown:
        raise ValueError(f"perpetuals {unknown} are not among the instruments")
    bars: dict[str, pa.Table] = {}
    for instrument_id, child in zip(
        spec.instruments, rng.spawn(len(spec.instruments)), strict=True
    ):
        for kind, table in _instrument(child, spec, instrument_id).items():
            parts[kind].append(table)
        bars[instrument_id] = parts["bars"][-1]
    for instrument_id, child in zip(
        spec.perpetuals, rng.spawn(len(spec.perpetuals)), strict=True
    ):
        perp_bars, funding = _perpetual(child, spec, bars[instrument_id])
        parts["bars"].append(perp_bars)
        parts["funding"].append(funding)
    return {
        kind: pa.concat_tables(tables) if tables else SCHEMAS[kind].empty_table()
        for kind, tables in parts.items()
    }


def _session_opens_ns(spec: SampleSpec) -> np.ndarray:
    days: list[int] = []
    day = spec.start
    while len(days) < spec.days:
        if day.weekday() < 5:
            midnight = dt.datetime.combine(day, dt.time(), dt.UTC)
            days.append(int(midnight.timestamp()) + _OPEN_UTC_S)
        day += dt.timedelta(days=1)
    return np.array(days, dtype=np.int64) * _SECOND


def _instrument(
    rng: np.random.Generator, spec: SampleSpec, instrument_id: str
) -> dict[str, pa.Table]:
    session_s = spec.session_minutes * 60
    n = spec.days * session_s
    second_ns = (
        _session_opens_ns(spec)[:, None] + np.arange(session_s, dtype=np.int64)[None, :] * _SECOND
    ).ravel()
    mid_ticks = _heston_path(rng, n, start=float(rng.uniform(20.0, 200.0)) * 100)
    quotes = _quotes(rng, second_ns, mid_ticks)
    trades = _trades(rng, spec, second_ns, quotes)
    return {
        "quotes": _table("quotes", instrument_id, quotes, spec.tick),
        "trades": _table("trades", instrument_id, trades, spec.tick),
        "bars": _table("bars", instrument_id, _bars(trades, spec), spec.tick),
        "book": _table("book", instrument_id, _book(rng, quotes, spec), spec.tick),
    }


def _heston_path(rng: np.random.Generator, n: int, *, start: float) -> np.ndarray:
    """Mid prices in ticks: log price with mean-reverting stochastic variance, leverage ρ<0."""
    kappa, theta, xi, rho = 5.0, 0.04, 0.6, -0.7
    dt_years = 1.0 / _YEAR_S
    z_price = rng.standard_normal(n)
    z_var = rho * z_price + np.sqrt(1 - rho**2) * rng.standard_normal(n)
    variance = np.empty(n)
    v = theta
    for i in range(n):
        variance[i] = v
        v = abs(v + kappa * (theta - v) * dt_years + xi * math.sqrt(v * dt_years) * z_var[i])
    log_returns = -0.5 * variance * dt_years + np.sqrt(variance * dt_years) * z_price
    return start * np.exp(np.cumsum(log_returns))


def _quotes(
    rng: np.random.Generator, second_ns: np.ndarray, mid_ticks: np.ndarray
) -> dict[str, np.ndarray]:
    n = len(second_ns)
    draws = rng.integers(1, 4, n)
    changes = rng.random(n) < 0.1  # the spread is sticky: it changes on 10% of the quotes
    changes[0] = True
    spread = draws[np.maximum.accumulate(np.where(changes, np.arange(n), 0))]
    bid = np.maximum(np.floor(mid_ticks - spread / 2).astype(np.int64), 1)
    ts_event = second_ns + rng.integers(0, _SECOND // 2, n)
    return {
        "ts_event": ts_event,
        "ts_init": ts_event + rng.integers(50_000, 500_000, n),
        "bid_price": bid,
        "ask_price": bid + spread,
        "bid_size": rng.integers(1, 20, n) * _LOT,
        "ask_size": rng.integers(1, 20, n) * _LOT,
    }


def _trades(
    rng: np.random.Generator, spec: SampleSpec, second_ns: np.ndarray, quotes: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    counts = rng.poisson(spec.trades_per_s, len(second_ns))
    quote_index = np.repeat(np.arange(len(second_ns)), counts)
    room = second_ns[quote_index] + _SECOND - quotes["ts_event"][quote_index]
    ts_event = (
        quotes["ts_event"][quote_index]
        + 1
        + (rng.random(len(quote_index)) * (room - 1)).astype(np.int64)
    )
    order = np.lexsort((ts_event, quote_index))
    quote_index, ts_event = quote_index[order], ts_event[order]
    aggressor = np.where(rng.random(len(quote_index)) < 0.5, 1, -1).astype(np.int8)
    price = np.where(
        aggressor == 1, quotes["ask_price"][quote_index], quotes["bid_price"][quote_index]
    )
    return {
        "ts_event": ts_event,
        "ts_init": ts_event + rng.integers(50_000, 500_000, len(ts_event)),
        "price": price,
        "size": rng.integers(1, 10, len(ts_event)) * _LOT,
        "aggressor": aggressor,
        "trade_id": np.arange(1, len(ts_event) + 1).astype(str),
    }


def _bars(trades: dict[str, np.ndarray], spec: SampleSpec) -> dict[str, np.ndarray]:
    """One-minute bars from the trades; a minute without trades is flat at the last close."""
    minute = 60 * _SECOND
    opens = _session_opens_ns(spec)
    starts = (opens[:, None] + np.arange(spec.session_minutes)[None, :] * minute).ravel()
    slot = np.searchsorted(starts, trades["ts_event"], side="right") - 1
    price, first = trades["price"], np.searchsorted(slot, np.arange(len(starts)))
    last = np.searchsorted(slot, np.arange(len(starts)), side="right")
    bars = {k: np.zeros(len(starts), dtype=np.int64) for k in ("open", "high", "low", "close")}
    bars["volume"] = np.zeros(len(starts), dtype=np.int64)
    previous = int(price[0]) if len(price) else 1
    for i, (a, b) in enumerate(zip(first, last, strict=True)):
        window = price[a:b]
        if len(window):
            values = (window[0], window.max(), window.min(), window[-1])
            bars["volume"][i] = trades["size"][a:b].sum()
        else:
            values = (previous,) * 4
        for key, value in zip(("open", "high", "low", "close"), values, strict=True):
            bars[key][i] = value
        previous = int(values[3])
    close_ns = starts + minute
    return {
        **bars,
        "ts_event": close_ns,
        "ts_init": close_ns,
        "interval_ns": np.full(len(starts), minute, dtype=np.int64),
    }


def _book(
    rng: np.random.Generator, quotes: dict[str, np.ndarray], spec: SampleSpec
) -> dict[str, np.ndarray]:
    """Snapshot at each session open, then one diff per quote; the top level is the quote."""
    depth = rng.integers(1, 50, (len(quotes["ts_event"]), 2, spec.levels)) * _LOT
    keep = rng.random(depth.shape) < 0.9
    rows: list[tuple[int, int, int, int, int, int, int, bool]] = []
    book: dict[tuple[int, int], int] = {}
    update_id = 0
    day = quotes["ts_event"] // (86_400 * _SECOND)
    for i, ts in enumerate(quotes["ts_event"]):
        new = _levels(book, quotes, i, depth[i], keep[i])
        snapshot = i == 0 or day[i] != day[i - 1]
        changes = new if snapshot else _diff(book, new)
        book = new
        if not changes:
            continue
        prev, update_id = (-1 if snapshot else update_id), update_id + 1
        rows += [
            (int(ts), int(quotes["ts_init"][i]), side, price, size, update_id, prev, snapshot)
            for (side, price), size in sorted(changes.items(), key=lambda kv: -kv[0][0])
        ]
    names = (
        "ts_event",
        "ts_init",
        "side",
        "price",
        "size",
        "first_update_id",
        "prev_update_id",
        "is_snapshot",
    )
    cols = {name: np.array([r[j] for r in rows]) for j, name in enumerate(names)}
    cols["side"] = cols["side"].astype(np.int8)
    cols["last_update_id"] = cols["first_update_id"]
    return cols


def _levels(
    book: dict[tuple[int, int], int],
    quotes: dict[str, np.ndarray],
    i: int,
    fresh: np.ndarray,
    keep: np.ndarray,
) -> dict[tuple[int, int], int]:
    """Levels after quote ``i``: the top is the quote; a deeper level keeps its size (90%)."""
    new: dict[tuple[int, int], int] = {}
    for s_index, (side, top) in enumerate(((1, "bid"), (-1, "ask"))):
        best = int(quotes[f"{top}_price"][i])
        for k in range(fresh.shape[1]):
            level = (side, best - side * k)
            old = book.get(level)
            new[level] = (
                int(quotes[f"{top}_size"][i])
                if k == 0
                else old
                if old is not None and keep[s_index, k]
                else int(fresh[s_index, k])
            )
    return new


def _diff(
    old: dict[tuple[int, int], int], new: dict[tuple[int, int], int]
) -> dict[tuple[int, int], int]:
    changes = {level: 0 for level in old if level not in new}
    changes |= {level: size for level, size in new.items() if old.get(level) != size}
    return changes


_FUNDING_NS = 8 * 3600 * _SECOND


def _perpetual(
    rng: np.random.Generator, spec: SampleSpec, spot: pa.Table
) -> tuple[pa.Table, pa.Table]:
    """The ``-PERP`` twin of ``spot``'s bars, and its funding history."""
    instrument_id = spot.column("instrument_id")[0].as_py() + PERP_SUFFIX
    n = spot.num_rows
    basis = np.zeros(n)  # AR(1) premium of the perpetual over spot: mean 4 bp, half-life ~1 h
    shocks = rng.normal(0.0, 0.0002, n)
    for i in range(1, n):
        basis[i] = 0.0004 + 0.988 * (basis[i - 1] - 0.0004) + shocks[i]
    cols: dict[str, np.ndarray] = {
        name: spot.column(name).to_numpy() for name in ("ts_event", "ts_init", "interval_ns")
    }
    for name in ("open", "high", "low", "close"):
        px = spot.column(name).to_numpy() / spec.tick
        cols[name] = np.round(px * (1.0 + basis)).astype(np.int64)
    cols["high"] = np.maximum.reduce([cols["high"], cols["open"], cols["close"]])
    cols["low"] = np.minimum.reduce([cols["low"], cols["open"], cols["close"]])
    cols["volume"] = spot.column("volume").to_numpy()
    bars = _table("bars", instrument_id, cols, spec.tick)
    return bars, _funding(rng, spec, instrument_id, cols["ts_event"], basis)


def _funding(
    rng: np.random.Generator, spec: SampleSpec, instrument_id: str, bar_ns: np.ndarray,
    basis: np.ndarray,
) -> pa.Table:
    """A rate per eight hours: the premium at the last bar before it (0.04% when none yet) plus
    noise, in whole 1e-8 steps (as venues publish it); the mark is the last close."""
    first = int(bar_ns[0]) // (24 * 3600 * _SECOND) * (24 * 3600 * _SECOND)
    times = np.arange(first + _FUNDING_NS, int(bar_ns[-1]) + _FUNDING_NS, _FUNDING_NS)
    last = np.searchsorted(bar_ns, times, side="right") - 1
    premium = np.where(last >= 0, basis[np.maximum(last, 0)], 0.0004)
    rate = np.round((premium / 4 + rng.normal(0.0, 0.00005, len(times))) * 1e8).astype(np.int64)
    n = len(times)
    schema = SCHEMAS["funding"]
    data = {
        "ts_event": times, "ts_init": times, "seq": np.zeros(n, dtype=np.int64),
        "instrument_id": np.full(n, instrument_id, dtype=object),
        "rate": rate * 10,  # 1e-8 steps in fixed point (1e-9)
        "funding_ts": times, "mark_price": np.zeros(n, dtype=np.int64),
    }
    return pa.Table.from_arrays([pa.array(data[f.name], f.type) for f in schema], schema=schema)


def _table(kind: str, instrument_id: str, cols: dict[str, np.ndarray], tick: int) -> pa.Table:
    schema = SCHEMAS[kind]
    n = len(cols["ts_event"])
    data = dict(cols)
    for name in ("bid_price", "ask_price", "price", "open", "high", "low", "close"):
        if name in data:
            data[name] = data[name].astype(np.int64) * tick
    data["instrument_id"] = np.full(n, instrument_id, dtype=object)
    data["seq"] = seq_within_ts(data["ts_event"])
    return pa.Table.from_arrays([pa.array(data[f.name], f.type) for f in schema], schema=schema)
