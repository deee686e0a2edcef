"""The L2 replay engine: queue-position fills on hand-made sequences, determinism, real data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from backtest.l2 import (
    BookView,
    L2Events,
    L2Fill,
    L2ReplayConfig,
    L2ReplayEngine,
    MarketMaker,
    MarketMakerParams,
    OrderSink,
    from_arrays,
    load_binance_capture,
)
from backtest.l2.data import ASK, BID, TRADE_BUY, TRADE_SELL
from runtime.errors import ConfigError
from runtime.messages import OrderSide
from runtime.values import fixed

Action = Callable[[OrderSink], None]
S = 1_000_000_000  # fixed-point scale: the hand-made sequences use whole units


class FakeStrategy:
    """Runs scripted actions at given wake-up times; records fills and what it saw."""

    def __init__(self, script: dict[int, Action]) -> None:
        self.script = script
        self.fills: list[L2Fill] = []
        self.seen: dict[int, tuple[object, object]] = {}

    def on_timer(self, ts: int, book: BookView, orders: OrderSink) -> None:
        self.seen[ts] = (book.best_bid(), book.best_ask())
        if ts in self.script:
            self.script[ts](orders)

    def on_fill(self, fill: L2Fill) -> None:
        self.fills.append(fill)


def events(rows: list[tuple[int, int, int, int]]) -> L2Events:
    """(ts, kind, price, qty) rows, price and qty in units, local time = exchange time."""
    ts, kind, price, qty = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
    return from_arrays(kind=kind, exch_ts=ts, local_ts=ts, price=price * S, qty=qty * S)


def config(fill_model: str = "partial") -> L2ReplayConfig:
    return L2ReplayConfig(instrument_id="X", entry_latency_ns=10, response_latency_ns=10,
                          queue_model="risk_averse", fill_model=fill_model,  # type: ignore[arg-type]
                          timer_interval_ns=100)


def buy(price: int, qty: int) -> Action:
    return lambda o: (
        o.submit_limit(side=OrderSide.BUY, price=price * S, quantity=qty * S), None)[1]


BOOK = [(0, BID, 100, 5), (0, ASK, 101, 5)]
QUEUE_SEQUENCE = [
    *BOOK,
    (120, TRADE_SELL, 100, 3),  # queue ahead 5 -> 2
    (130, BID, 100, 1),  # level shrinks to 1: cancels from the back cut the queue to 1
    (140, TRADE_SELL, 100, 2),  # 1 ahead of us, 1 left for us
    (150, TRADE_SELL, 99, 1),  # a trade through our price fills the rest
    (400, ASK, 101, 5),
]


def test_queue_position_partial_fills() -> None:
    strategy = FakeStrategy({100: buy(100, 2)})  # reaches the venue at 110, 5 ahead
    result = L2ReplayEngine(events(QUEUE_SEQUENCE), config(), strategy).run()
    got = [(f.ts_exch, f.ts_local, f.price // S, f.qty // S, f.leaves_qty // S, f.maker)
           for f in result.fills]
    assert got == [(140, 150, 100, 1, 1, True), (150, 160, 100, 1, 0, True)]
    assert strategy.fills == result.fills
    assert result.position == 2 * S and result.cash == -200 * S


def test_no_partial_model_fills_the_whole_order_at_the_queue_front() -> None:
    strategy = FakeStrategy({100: buy(100, 2)})
    result = L2ReplayEngine(events(QUEUE_SEQUENCE), config("no_partial"), strategy).run()
    assert [(f.ts_exch, f.qty // S, f.leaves_qty) for f in result.fills] == [(140, 2, 0)]


def test_trades_before_arrival_and_at_other_prices_do_not_fill() -> None:
    rows = [*BOOK, (105, TRADE_SELL, 100, 50), (120, TRADE_SELL, 100, 4), (130, TRADE_BUY, 101, 9),
            (400, ASK, 101, 5)]
    result = L2ReplayEngine(events(rows), config(), FakeStrategy({100: buy(100, 1)})).run()
    assert result.fills == []  # 5 ahead at arrival (110), only 4 traded since


def test_size_added_after_arrival_queues_behind() -> None:
    rows = [*BOOK, (120, BID, 100, 50), (130, TRADE_SELL, 100, 6), (400, ASK, 101, 5)]
    result = L2ReplayEngine(events(rows), config(), FakeStrategy({100: buy(100, 1)})).run()
    assert [(f.ts_exch, f.qty // S) for f in result.fills] == [(130, 1)]


def test_opposite_best_reaching_the_price_fills_fully() -> None:
    rows = [*BOOK, (120, ASK, 100, 1), (400, ASK, 101, 5)]
    result = L2ReplayEngine(events(rows), config(), FakeStrategy({100: buy(100, 3)})).run()
    assert [(f.ts_exch, f.price // S, f.qty // S) for f in result.fills] == [(120, 100, 3)]


def test_post_only_order_that_would_take_expires() -> None:
    rows = [*BOOK, (400, ASK, 101, 5)]
    result = L2ReplayEngine(events(rows), config(), FakeStrategy({100: buy(101, 1)})).run()
    assert result.fills == [] and result.orders["expired"] == 1


def test_cancel_reaches_the_venue_after_the_entry_latency() -> None:
    ids: list[int] = []

    def submit(o: OrderSink) -> None:
        ids.append(o.submit_limit(side=OrderSide.BUY, price=100 * S, quantity=S))

    rows = [(0, BID, 100, 0), (0, ASK, 101, 5), (205, TRADE_SELL, 100, 1),
            (215, TRADE_SELL, 100, 1), (400, ASK, 101, 5)]
    strategy = FakeStrategy({100: submit, 200: lambda o: o.cancel(ids[0])})
    result = L2ReplayEngine(events(rows), config(), strategy).run()
    # cancel sent at 200 reaches the venue at 210: the trade at 205 (nobody ahead) fills first
    assert [(f.ts_exch, f.qty // S) for f in result.fills] == [(205, 1)]
    assert result.orders["cancel_rejected"] == 1


def test_strategy_sees_the_book_in_local_time() -> None:
    ts = np.array([0, 0, 150], dtype=np.int64)
    ev = from_arrays(kind=np.array([BID, ASK, BID]), exch_ts=ts, local_ts=ts + np.array([0, 0, 60]),
                     price=np.array([100, 101, 100]) * S, qty=np.array([5, 5, 7]) * S)
    strategy = FakeStrategy({})
    L2ReplayEngine(ev, config(), strategy).run()
    assert strategy.seen[200] == ((100 * S, 5 * S), (101 * S, 5 * S))  # update arrives at 210
    assert strategy.seen[300] == ((100 * S, 7 * S), (101 * S, 5 * S))


def test_models_must_be_named() -> None:
    with pytest.raises(ConfigError):
        L2ReplayConfig(instrument_id="X", entry_latency_ns=-1, response_latency_ns=0,
                       queue_model="risk_averse", fill_model="partial")


def _mm_run(ev: L2Events) -> tuple[list[L2Fill], np.ndarray]:
    cfg = L2ReplayConfig(instrument_id="BTCUSDT", entry_latency_ns=10_000_000,
                         response_latency_ns=10_000_000, queue_model="risk_averse",
                         fill_model="partial", maker_fee_rate=fixed("0.0002"))
    mm = MarketMaker(MarketMakerParams(tick_size=fixed("0.1"), order_qty=fixed("0.01"),
                                       max_position=fixed("0.05")))
    result = L2ReplayEngine(ev, cfg, mm).run()
    assert mm.fills == len(result.fills)
    return result.fills, result.equity


def test_real_capture_prefix_smoke_and_determinism(
    shared_data: Callable[[str], Path], tmp_path: Path
) -> None:
    ev = load_binance_capture(shared_data("hftbacktest__btcusdt_20240808.gz"), cache_dir=tmp_path)
    assert len(ev) > 400_000
    assert np.all(np.diff(ev.exch_ts) >= 0) and np.all(np.diff(ev.local_ts[ev.local_order]) >= 0)
    assert int((ev.local_ts - ev.exch_ts).min()) == 0  # skew corrected
    prefix = ev.head(150_000)
    fills, equity = _mm_run(prefix)
    assert fills, "a market maker at the touch trades within minutes of BTCUSDT"
    assert all(f.maker and f.ts_local == f.ts_exch + 10_000_000 for f in fills)
    assert all(fixed("50000") < f.price < fixed("70000") for f in fills)
    again_fills, again_equity = _mm_run(load_binance_capture(
        shared_data("hftbacktest__btcusdt_20240808.gz"), cache_dir=tmp_path).head(150_000))
    assert again_fills == fills and np.array_equal(again_equity, equity)
