"""Tradewind's side of the SMA benchmark: the real engine (risk, order state machine, portfolio,
venue with its fill model, kernel, strategy) on the same Parquet dataset as the peers.

Bars: the example ``SmaCross`` on closes, market orders fill at the next bar's open.
Quotes: ``SmaCross.on_quote`` on exact mids; the venue's L1 model with a 1 ns entry latency: a
market order arriving at t + 1 ns executes against the book as of its arrival, which is the
quote the decision was made on (``fill_lag`` 0: buy at that quote's ask, sell at its bid).
NautilusTrader with a 1 ns latency and vectorbt fill at the *next* quote instead; the decisions
are compared exactly and the prices against each engine's own convention.

``backtest_s`` times the event loop, including making the message objects batch by batch from
the Arrow columns (the whole dataset is never held as objects: that keeps peak memory low).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from backtest.api import build_run
from backtest.config import load_config
from backtest.engine import run_loop
from backtest.feed import Feed
from bench.common import load_arrays, peer_main, to_ticks

_TICK_RAW = 10**7  # 0.01 in fixed point
_S = 10**9


def _table(arrays: dict[str, np.ndarray], kind: str) -> pa.Table:
    ts = arrays["ts_ns"].astype(np.int64)
    n = len(ts)
    cols: dict[str, Any] = {"ts_event": ts, "ts_init": ts, "seq": np.zeros(n, np.int64),
                            "instrument_id": pa.array(["X"] * n)}
    if kind == "bars":
        for name in ("open", "high", "low", "close"):
            cols[name] = to_ticks(arrays[name]) * _TICK_RAW
        cols["volume"] = arrays["volume"].astype(np.int64) * _S
        cols["interval_ns"] = np.full(n, 60 * _S, np.int64)
    else:
        cols["bid_price"] = to_ticks(arrays["bid"]) * _TICK_RAW
        cols["ask_price"] = to_ticks(arrays["ask"]) * _TICK_RAW
        cols["bid_size"] = arrays["bid_size"].astype(np.int64) * _S
        cols["ask_size"] = arrays["ask_size"].astype(np.int64) * _S
    return pa.table(cols)


def _config(kind: str, fast: int, slow: int, size: int) -> Any:
    fills = ({"kind": "bars", "price": "next_open", "path": "auto"} if kind == "bars"
             else {"kind": "l1", "queue_shrink": "behind_first"})
    return load_config({
        "name": "bench", "seed": 1, "initial_cash": 10**12,
        "instruments": [{"id": "X", "price_precision": 2}],
        "data": [{"kind": kind, "instrument": "X", "path": "in-memory"}],
        "strategies": [{"id": "sma", "class": "backtest.strategies.sma_cross:SmaCross",
                        "instruments": ["X"],
                        "params": {"fast": fast, "slow": slow, "size": size}}],
        "venue": {"latency": {"kind": "constant", "entry_ns": 0 if kind == "bars" else 1,
                              "response_ns": 0},
                  "fills": fills, "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 0}},
        "store": {"record": False},
    })


def run(path: str, *, kind: str, fast: int = 10, slow: int = 50, size: int = 100,
        limit: int | None = None) -> dict[str, Any]:
    arrays = load_arrays(path, limit=limit)
    feed = Feed(tables={(kind, "X"): _table(arrays, kind)}, dataset_hash="bench")
    feed.index()
    kernel, venue, _ = build_run(_config(kind, fast, slow, size), feed)
    t1 = time.perf_counter()  # messages are made batch by batch inside the loop: timed too
    log = run_loop(kernel, venue, feed.iter_messages(), start_ns=feed.start_ns)
    backtest_s = time.perf_counter() - t1
    ts = arrays["ts_ns"]
    fills = []
    for f in log.fills:  # stamp each fill with the event whose price it took (as the peers do)
        at = f.ts_init if kind == "bars" else int(ts[np.searchsorted(ts, f.ts_event, "right") - 1])
        fills.append([at, "BUY" if f.side > 0 else "SELL", f.last_qty / _S, f.last_price / _S])
    return {"engine": "tradewind", "kind": kind, "fills": fills, "events": feed.n_events,
            "backtest_s": backtest_s, "state_hash": kernel.state_hash(),
            "fill_lag": 1 if kind == "bars" else 0,
            "fill_price_rule": "next open" if kind == "bars" else "ask/bid of the decision quote"}


if __name__ == "__main__":
    peer_main("tradewind", run)
