"""Deterministic synthetic market data for the benchmarks, cached as Parquet under bench/.cache/.

Two kinds, both generated from ``numpy.random.default_rng(seed)`` (no module-level randomness):

``bars``    one-minute OHLCV bars, 24/7, ``ts_ns`` = bar CLOSE time (first bar closes at
            2024-01-01T00:01:00Z). Log-price is a random walk with stochastic volatility (AR(1)
            log-volatility, Student-t(5) shocks); the next bar opens a small gap away from the
            previous close, as real minute bars do. Prices on a 0.01 tick, ``low <= open, close <=
            high``, ``low >= 0.01``; volume is an integer > 0, larger when volatility is high.
``quotes``  L1 quotes: irregular arrivals (exponential, mean 50 ms, strictly increasing ``ts_ns``),
            mid on the same kind of random walk, spread 1-4 ticks (wider when volatile), bid and ask
            on a 0.01 tick with ``ask > bid`` always (never crossed or locked); sizes multiples of
            100 and > 0.

Prices are stored as float64 values of exact cent amounts: ``round(price * 100)`` recovers the
integer tick count exactly. Columns: bars ``ts_ns, open, high, low, close, volume``; quotes
``ts_ns, bid, ask, bid_size, ask_size``.

Usage: ``python -m bench.datasets --kind bars --n 1000000 --seed 7`` prints the cached file's path.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["CACHE_DIR", "GENERATOR_VERSION", "dataset_path", "make_bars", "make_quotes"]

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
GENERATOR_VERSION = 1
START_NS = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
MINUTE_NS = 60 * 10**9
TICKS_PER_UNIT = 100  # 0.01 tick


def _log_vol(
    rng: np.random.Generator, n: int, *, sigma: float, phi: float, vol_of_vol: float
) -> np.ndarray:
    """AR(1) log-volatility around log(sigma), stationary s.d. ``vol_of_vol``."""
    shocks = rng.standard_normal(n) * vol_of_vol * np.sqrt(1.0 - phi * phi)
    out = np.empty(n)
    h = 0.0
    for i, e in enumerate(shocks.tolist()):  # a plain loop: exact and clear, ~0.3 s per 1M
        h = phi * h + e
        out[i] = h
    log_vol: np.ndarray = np.log(sigma) + out
    return log_vol


def _student_t(rng: np.random.Generator, n: int, dof: float = 5.0) -> np.ndarray:
    """Unit-variance Student-t shocks (fat tails)."""
    shocks: np.ndarray = rng.standard_t(dof, n) / np.sqrt(dof / (dof - 2.0))
    return shocks


def make_bars(n: int, seed: int) -> pa.Table:
    """``n`` one-minute OHLCV bars, deterministic in ``seed``."""
    rng = np.random.default_rng([seed, 1])
    log_sigma = _log_vol(rng, n, sigma=4e-4, phi=0.999, vol_of_vol=0.45)
    sigma = np.exp(log_sigma)
    log_close = np.log(100.0) + np.cumsum(sigma * _student_t(rng, n))
    gap = sigma * 0.15 * rng.standard_normal(n)
    log_open = np.concatenate(([np.log(100.0)], log_close[:-1])) + gap
    o = np.rint(np.exp(log_open) * TICKS_PER_UNIT).astype(np.int64)
    c = np.rint(np.exp(log_close) * TICKS_PER_UNIT).astype(np.int64)
    up = np.exp(np.abs(rng.standard_normal(n)) * sigma * 0.6)
    down = np.exp(-np.abs(rng.standard_normal(n)) * sigma * 0.6)
    h = np.maximum(np.ceil(np.maximum(o, c) * up).astype(np.int64), np.maximum(o, c))
    lo = np.minimum(np.floor(np.minimum(o, c) * down).astype(np.int64), np.minimum(o, c))
    o, c, h, lo = (np.maximum(x, 1) for x in (o, c, h, lo))
    volume = np.rint(
        np.exp(np.log(500.0) + 1.2 * (log_sigma - np.log(4e-4)) + 0.6 * rng.standard_normal(n))
    ).astype(np.int64)
    volume = np.maximum(volume, 1)
    ts = START_NS + MINUTE_NS * np.arange(1, n + 1, dtype=np.int64)
    return pa.table(
        {
            "ts_ns": ts,
            "open": o / TICKS_PER_UNIT,
            "high": h / TICKS_PER_UNIT,
            "low": lo / TICKS_PER_UNIT,
            "close": c / TICKS_PER_UNIT,
            "volume": volume,
        }
    )


def make_quotes(n: int, seed: int) -> pa.Table:
    """``n`` L1 quotes, deterministic in ``seed``; never crossed or locked."""
    rng = np.random.default_rng([seed, 2])
    gaps_ns = np.floor(rng.exponential(50e6, n)).astype(np.int64) + 1
    ts = START_NS + np.cumsum(gaps_ns)
    log_sigma = _log_vol(rng, n, sigma=5e-5, phi=0.9995, vol_of_vol=0.45)
    sigma = np.exp(log_sigma)
    mid_ticks = np.exp(np.log(100.0) + np.cumsum(sigma * _student_t(rng, n))) * TICKS_PER_UNIT
    widen = np.clip(np.rint(np.exp(log_sigma - np.log(5e-5))), 1, 3).astype(np.int64)
    spread = np.minimum(rng.geometric(0.7, n) - 1 + widen, 4)
    bid = np.maximum(np.rint(mid_ticks - spread / 2.0).astype(np.int64), 1)
    ask = bid + spread
    return pa.table(
        {
            "ts_ns": ts,
            "bid": bid / TICKS_PER_UNIT,
            "ask": ask / TICKS_PER_UNIT,
            "bid_size": 100 * rng.geometric(0.2, n).astype(np.int64),
            "ask_size": 100 * rng.geometric(0.2, n).astype(np.int64),
        }
    )


_MAKERS = {"bars": make_bars, "quotes": make_quotes}


def dataset_path(
    kind: str, n: int = 1_000_000, seed: int = 7, *, cache_dir: Path = CACHE_DIR
) -> Path:
    """The cached Parquet file for (kind, n, seed), generated on first use (atomic write)."""
    if kind not in _MAKERS:
        raise ValueError(f"kind must be one of {sorted(_MAKERS)}, not {kind!r}")
    path = cache_dir / f"{kind}-n{n}-seed{seed}-v{GENERATOR_VERSION}.parquet"
    if path.exists():
        return path
    table = _MAKERS[kind](n, seed)
    meta = {
        b"tradewind.kind": kind.encode(),
        b"tradewind.n": str(n).encode(),
        b"tradewind.seed": str(seed).encode(),
        b"tradewind.tick": b"0.01",
        b"tradewind.generator_version": str(GENERATOR_VERSION).encode(),
    }
    table = table.replace_schema_metadata(meta)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=sorted(_MAKERS), required=True)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(dataset_path(args.kind, args.n, args.seed))


if __name__ == "__main__":
    main()
