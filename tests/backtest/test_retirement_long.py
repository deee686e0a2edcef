"""A backtest over weeks of generated quotes: the kernel's held orders stay about a day's worth
(``runtime.retirement``) while the run's fills and orders keep every one, and retirement
changes no fill."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from backtest.api import build_run
from backtest.config import load_config
from backtest.engine import run_loop
from backtest.feed import Feed

STEP_NS = 5 * 60 * 10**9  # a quote every five minutes
PER_DAY = 24 * 3600 * 10**9 // STEP_NS


def _feed(days: int) -> Feed:
    n = days * PER_DAY
    rng = np.random.default_rng(11)
    mid = np.round(100 + np.cumsum(rng.normal(0, 0.05, n)), 2)
    ts = 1_700_000_000 * 10**9 + np.arange(n, dtype=np.int64) * STEP_NS
    table = pa.table({
        "ts_event": ts, "ts_init": ts, "seq": np.zeros(n, np.int64),
        "instrument_id": ["X"] * n,
        "bid_price": np.round(mid * 100).astype(np.int64) * 10**7,
        "ask_price": np.round((mid + 0.02) * 100).astype(np.int64) * 10**7,
        "bid_size": rng.integers(1, 50, n) * 10**9, "ask_size": rng.integers(1, 50, n) * 10**9,
    })
    feed = Feed(tables={("quotes", "X"): table}, dataset_hash=f"long{days}")
    feed.index()
    return feed


def _config(retire_h: float | None) -> Any:
    return load_config({
        "name": "long", "seed": 5, "initial_cash": 10**6,
        "instruments": [{"id": "X", "price_precision": 2}],
        "data": [{"kind": "quotes", "instrument": "X", "path": "unused"}],
        "strategies": [{"id": "mm", "class": "backtest.strategies.market_maker:MarketMaker",
                        "instruments": ["X"],
                        "params": {"size": 5, "max_inventory": 50, "requote_ms": 500,
                                   "vol_mult": 0.5, "levels": 1}}],
        "venue": {"latency": {"kind": "constant", "entry_ns": 1_000_000, "response_ns": 1_000_000},
                  "fills": {"kind": "l1", "queue_shrink": "proportional"},
                  "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 1, "taker_bps": 3}},
        "risk": {"max_position": 40},
        "retire_orders_after_h": retire_h,
    })


def _run(days: int, *, retire: bool = True) -> tuple[Any, Any]:
    feed = _feed(days)
    kernel, venue, _ = build_run(_config(24 if retire else None), feed)
    log = run_loop(kernel, venue, feed.iter_messages(), start_ns=feed.start_ns)
    return kernel, log


def _fills(fills: list[Any]) -> list[bytes]:
    """The fills without the run's namespace (it hashes the config, the retirement age in)."""
    return [msgspec.json.encode(msgspec.structs.replace(
        f, client_order_id=f.client_order_id.partition("-")[2],
        fill_id=f.fill_id.replace(f.client_order_id, f.client_order_id.partition("-")[2])))
        for f in fills]


def test_held_orders_stay_a_day_while_fills_and_orders_keep_every_one() -> None:
    short, short_log = _run(3)
    long, long_log = _run(9)
    assert long.ledger.retired.count > 5 * len(long.orders) > 0
    # held: a day's orders or so, whatever the length of the run
    assert len(long.orders) < 2 * max(len(short.orders), 1)
    # every fill stays in the run's log, and counted by the kernel
    assert len(long_log.fills) == long.portfolio.n_fills > 2 * len(short_log.fills) > 0
    fill_ids = sorted(f.fill_id for f in long_log.fills)
    assert long.ledger.fill_ids() == fill_ids
    # the results list every order (the backtest keeps the retired ones apart from the state)
    every = long.all_orders()
    assert len(every) == long.ledger.total == len({o.client_order_id for o in every})
    assert sum(o.filled_qty for o in every) == sum(f.last_qty for f in long_log.fills)


def test_retirement_changes_no_fill() -> None:
    kept, kept_log = _run(4, retire=False)
    retired, retired_log = _run(4)
    assert retired.ledger.retired.count > 0 and kept.ledger.retired.count == 0
    assert _fills(retired_log.fills) == _fills(kept_log.fills)
    assert retired.portfolio.state() == kept.portfolio.state()
    assert len(kept.orders) == retired.ledger.total
