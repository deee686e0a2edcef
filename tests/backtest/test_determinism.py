"""Same data, config and seed ⇒ same fills and state hash (property test over data and seeds)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.api import build_run
from backtest.config import load_config
from backtest.engine import run_loop
from backtest.feed import Feed


def _feed(seed: int, n: int) -> Feed:
    rng = np.random.default_rng(seed)
    mid = np.round(100 + np.cumsum(rng.normal(0, 0.05, n)), 2)
    spread = rng.integers(1, 4, n) / 100
    ts = 1_700_000_000 * 10**9 + np.cumsum(rng.integers(1, 10**9, n))
    table = pa.table({
        "ts_event": ts, "ts_init": ts, "seq": np.zeros(n, np.int64),
        "instrument_id": ["X"] * n,
        "bid_price": np.round(mid * 100).astype(np.int64) * 10**7,
        "ask_price": np.round((mid + spread) * 100).astype(np.int64) * 10**7,
        "bid_size": rng.integers(1, 50, n) * 10**9, "ask_size": rng.integers(1, 50, n) * 10**9,
    })
    feed = Feed(tables={("quotes", "X"): table}, dataset_hash=str(seed))
    feed.index()
    return feed


def _config(seed: int) -> Any:
    return load_config({
        "name": "det", "seed": seed, "initial_cash": 10**6,
        "instruments": [{"id": "X", "price_precision": 2}],
        "data": [{"kind": "quotes", "instrument": "X", "path": "unused"}],
        "strategies": [{"id": "mm", "class": "backtest.strategies.market_maker:MarketMaker",
                        "instruments": ["X"],
                        "params": {"size": 5, "max_inventory": 50, "requote_ms": 500,
                                   "vol_mult": 0.5, "levels": 2}}],
        "venue": {"latency": {"kind": "sampled",
                              "entry": {"kind": "lognormal", "median_ns": 50_000_000, "sigma": 1},
                              "response": {"kind": "empirical",
                                           "quantiles_ns": [10**6, 5 * 10**6, 10**8]}},
                  "fills": {"kind": "l1", "queue_shrink": "proportional"},
                  "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 1, "taker_bps": 3}},
        "risk": {"max_position": 40, "max_orders_per_window": 20},
    })


def _checking_pending(kernel: Any) -> None:
    """After every order report, the kernel's incrementally kept pending quantity per
    (strategy, instrument) equals the sum over its open orders computed from scratch, and what
    ``target_position`` trades from (``committed``) is the position plus that, protective legs
    left out."""
    on_order_event = kernel.on_order_event

    def checked(event: Any) -> Any:
        out = on_order_event(event)
        expected: dict[tuple[str, str], int] = {}
        protective: dict[tuple[str, str], int] = {}
        for o in kernel.open.values():
            key = (o.strategy_id, o.instrument_id)
            expected[key] = expected.get(key, 0) + o.signed_leaves
            if o.protective:
                protective[key] = protective.get(key, 0) + o.signed_leaves
        ledger = kernel.ledger
        for key in set(expected) | set(ledger.pending):
            assert ledger.pending.get(key, 0) == expected.get(key, 0), (key, event)
            position = ledger.positions.get(key, 0)
            committed = position + expected.get(key, 0) - protective.get(key, 0)
            assert kernel.context.committed(*key) == committed, (key, event)
        return out

    kernel.on_order_event = checked


def _run(seed: int, data_seed: int) -> tuple[list[tuple[Any, ...]], str]:
    feed = _feed(data_seed, 400)
    kernel, venue, _ = build_run(_config(seed), feed)
    _checking_pending(kernel)
    log = run_loop(kernel, venue, feed.iter_messages(), start_ns=feed.start_ns)
    fills = [(f.ts_event, f.ts_init, f.fill_id, f.side, f.last_qty, f.last_price, f.fee)
             for f in log.fills]
    assert kernel.portfolio.identity_gap() == 0
    return fills, kernel.state_hash()


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 2**32))
def test_same_inputs_and_seed_give_same_fills_and_hash(seed: int, data_seed: int) -> None:
    assert _run(seed, data_seed) == _run(seed, data_seed)
