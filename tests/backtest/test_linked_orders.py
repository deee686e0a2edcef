"""Linked orders in a backtest: the core emulates them, so the simulated venue sees plain
orders, and a bracket's take-profit fill cancels its stop (and the other way round), a trailing
stop follows the market up and closes the position on the way down."""

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
from runtime.messages import (
    Bar,
    Message,
    OrderListChanged,
    OrderListStatus,
    OrderSide,
    OrderType,
)
from runtime.orders import OrderStatus
from runtime.strategy import Price, Qty, Strategy, StrategyParams
from runtime.values import fixed

_S = 10**9
_T0 = 1_700_000_000 * _S
Q = 10**9


class EntryParams(StrategyParams):
    kind: str = "bracket"  # or "trailing"


class EnterOnce(Strategy[EntryParams]):
    """On the first bar: a bracket (take-profit +2, stop-loss -2), or a market buy with a
    trailing stop 2 under the last price."""

    def on_start(self) -> None:
        self.events: list[Message] = []
        self.entered = False

    def on_bar(self, bar: Bar) -> None:
        if self.entered:
            return
        self.entered = True
        if self.params.kind == "bracket":
            self.bracket(bar.instrument_id, OrderSide.BUY, 10 * Q,
                         take_profit=bar.close + fixed(2), stop_loss=bar.close - fixed(2))
        else:
            self.buy(bar.instrument_id, 10 * Q)
            self.trailing_stop(bar.instrument_id, OrderSide.SELL, 10 * Q, offset=fixed(2),
                               protective=True)

    def on_order_event(self, event: Message) -> None:
        self.events.append(event)


def _feed(closes: list[float]) -> Feed:
    n = len(closes)
    close = np.array(closes)
    open_ = np.concatenate([[close[0]], close[:-1]])  # each bar opens at the last close
    ticks = {k: np.round(v * 100).astype(np.int64) * 10**7
             for k, v in (("open", open_), ("high", np.maximum(open_, close) + 0.05),
                          ("low", np.minimum(open_, close) - 0.05), ("close", close))}
    ts = _T0 + 60 * _S * np.arange(1, n + 1)
    table = pa.table({"ts_event": ts, "ts_init": ts, "seq": np.zeros(n, np.int64),
                      "instrument_id": ["X"] * n, **ticks, "volume": np.full(n, 10**6 * _S),
                      "interval_ns": np.full(n, 60 * _S, np.int64)})
    feed = Feed(tables={("bars", "X"): table}, dataset_hash="linked")
    feed.index()
    return feed


def _run(closes: list[float], kind: str) -> tuple[Any, EnterOnce, list[Any]]:
    config = load_config({
        "name": "linked", "seed": 1, "initial_cash": 10**6,
        "instruments": [{"id": "X", "price_precision": 2}],
        "data": [{"kind": "bars", "instrument": "X", "path": "in-memory"}],
        "strategies": [{"id": "s", "class": f"{__name__}:EnterOnce", "instruments": ["X"],
                        "params": {"kind": kind}}],
        "venue": {"latency": {"kind": "constant", "entry_ns": _S, "response_ns": _S},
                  "fills": {"kind": "bars", "price": "next_open", "path": "auto"},
                  "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 0}},
        "store": {"record": False},
    })
    feed = _feed(closes)
    kernel, venue, _ = build_run(config, feed)
    log = run_loop(kernel, venue, feed.iter_messages(), start_ns=feed.start_ns)
    strategy = kernel.strategies[0]
    assert isinstance(strategy, EnterOnce)
    return kernel, strategy, log.fills


def _by_type(kernel: Any) -> dict[OrderType, Any]:
    return {o.order_type: o for o in kernel.orders.values()}


def _list_statuses(strategy: EnterOnce) -> list[OrderListStatus]:
    return [e.status for e in strategy.events if isinstance(e, OrderListChanged)]


def test_a_take_profit_fill_cancels_the_stop() -> None:
    kernel, strategy, fills = _run([100, 100.5, 101, 103, 103, 103], "bracket")
    orders = _by_type(kernel)
    assert orders[OrderType.LIMIT].status is OrderStatus.FILLED
    assert fills[-1].last_price >= fixed(102)  # at the limit or better
    assert orders[OrderType.STOP].status is OrderStatus.CANCELED
    assert [f.side for f in fills] == [OrderSide.BUY, OrderSide.SELL]
    assert kernel.portfolio.quantity("X") == 0
    assert _list_statuses(strategy) == [OrderListStatus.SUBMITTED, OrderListStatus.RELEASED,
                                        OrderListStatus.COMPLETED]


def test_a_stop_loss_fill_cancels_the_take_profit() -> None:
    kernel, strategy, fills = _run([100, 99.5, 99, 97, 97, 97], "bracket")
    orders = _by_type(kernel)
    assert orders[OrderType.STOP].status is OrderStatus.FILLED
    assert orders[OrderType.LIMIT].status is OrderStatus.CANCELED
    assert [f.side for f in fills] == [OrderSide.BUY, OrderSide.SELL]
    assert kernel.portfolio.quantity("X") == 0
    assert _list_statuses(strategy)[-1] is OrderListStatus.COMPLETED


def test_a_trailing_stop_follows_the_rise_and_closes_on_the_fall() -> None:
    kernel, _, fills = _run([100, 102, 104, 106, 105, 104, 103, 101, 100, 100], "trailing")
    stop = _by_type(kernel)[OrderType.STOP]
    assert stop.status is OrderStatus.FILLED
    assert stop.trigger_price == fixed(104)  # 2 under the highest close, 106
    exit_price = fills[-1].last_price
    assert fixed(103) <= exit_price <= fixed(104)  # far above the first trigger, 98
    assert kernel.portfolio.quantity("X") == 0


def test_same_fills_twice() -> None:
    first = _run([100, 102, 104, 106, 105, 104, 103, 101, 100, 100], "trailing")
    again = _run([100, 102, 104, 106, 105, 104, 103, 101, 100, 100], "trailing")
    assert first[0].state_hash() == again[0].state_hash()
    assert [(f.ts_event, f.last_price) for f in first[2]] == [
        (f.ts_event, f.last_price) for f in again[2]]


class BracketEveryBarParams(StrategyParams):
    distance: float = 1.0


class BracketWhenFlat(Strategy[BracketEveryBarParams]):
    """Whenever flat with nothing open: a bracket 1 above and below the close."""

    def on_bar(self, bar: Bar) -> None:
        if self.position(bar.instrument_id) or self.open_orders(bar.instrument_id):
            return
        d = fixed(self.params.distance)
        self.bracket(bar.instrument_id, OrderSide.BUY, 10 * Q, take_profit=bar.close + d,
                     stop_loss=bar.close - d)


@settings(max_examples=12, deadline=None)
@given(st.lists(st.floats(-1.5, 1.5), min_size=5, max_size=60))
def test_random_paths_same_fills_and_hash_and_never_short(moves: list[float]) -> None:
    closes = list(np.round(100 + np.cumsum(moves), 2))

    def run() -> tuple[Any, list[Any]]:
        config = load_config({
            "name": "linked", "seed": 3, "initial_cash": 10**6,
            "instruments": [{"id": "X", "price_precision": 2}],
            "data": [{"kind": "bars", "instrument": "X", "path": "in-memory"}],
            "strategies": [{"id": "s", "class": f"{__name__}:BracketWhenFlat",
                            "instruments": ["X"]}],
            "venue": {"latency": {"kind": "constant", "entry_ns": _S, "response_ns": _S},
                      "fills": {"kind": "bars", "price": "next_open", "path": "auto"},
                      "slippage": {"kind": "none"},
                      "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 1}},
            "store": {"record": False},
        })
        feed = _feed(closes)
        kernel, venue, _ = build_run(config, feed)
        log = run_loop(kernel, venue, feed.iter_messages(), start_ns=feed.start_ns)
        return kernel, log.fills

    (k1, f1), (k2, f2) = run(), run()
    assert k1.state_hash() == k2.state_hash()
    assert [(f.fill_id, f.last_price) for f in f1] == [(f.fill_id, f.last_price) for f in f2]
    position = 0
    for f in f1:  # a bracket's exits never sell what its entry did not buy
        position += f.last_qty * f.side
        assert 0 <= position <= 10 * Q
    assert k1.portfolio.identity_gap() == 0


class BreakoutParams(StrategyParams):
    level: Price = fixed(101)
    size: Qty = 10 * Q
    target: Price = fixed(2)
    risk: Price = fixed(2)


class Breakout(Strategy[BreakoutParams]):
    """The example of docs/core.md, as written there."""

    def on_bar(self, bar: Bar) -> None:
        if self.position(bar.instrument_id) or self.open_orders(bar.instrument_id):
            return
        if bar.close > self.params.level:
            self.bracket(bar.instrument_id, OrderSide.BUY, self.params.size,
                         take_profit=bar.close + self.params.target,
                         stop_loss=bar.close - self.params.risk)

    def on_order_event(self, event: Message) -> None:
        if isinstance(event, OrderListChanged) and event.status is OrderListStatus.CANCELED:
            self.close_position(event.instrument_id)  # e.g. the stop-loss was refused


def test_the_documented_breakout_example_runs() -> None:
    config = load_config({
        "name": "doc", "seed": 1, "initial_cash": 10**6,
        "instruments": [{"id": "X", "price_precision": 2}],
        "data": [{"kind": "bars", "instrument": "X", "path": "in-memory"}],
        "strategies": [{"id": "b", "class": f"{__name__}:Breakout", "instruments": ["X"]}],
        "venue": {"latency": {"kind": "constant", "entry_ns": _S, "response_ns": _S},
                  "fills": {"kind": "bars", "price": "next_open", "path": "auto"},
                  "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 0}},
        "store": {"record": False},
    })
    feed = _feed([100, 101, 102, 103, 104, 105, 105, 105])
    kernel, venue, _ = build_run(config, feed)
    log = run_loop(kernel, venue, feed.iter_messages(), start_ns=feed.start_ns)
    assert [f.side for f in log.fills] == [OrderSide.BUY, OrderSide.SELL]  # in at 102+, out +2
    assert kernel.portfolio.quantity("X") == 0 and kernel.portfolio.realized_pnl > 0
