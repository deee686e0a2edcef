"""Execution algorithms in a backtest against the simulated venue: a completion order never
trades beyond its cap (FOK: all or nothing), whatever the path; POV and iceberg children fill
as the venue allows; same data and seed, same children, fills and hash."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.api import build_run
from backtest.config import load_config
from backtest.engine import run_loop
from runtime.algos import Completion, Iceberg, Pov, Twap
from runtime.messages import AlgoOrderChanged, AlgoStatus, Bar, Message, OrderSide, TimeInForce
from runtime.strategy import Strategy, StrategyParams
from runtime.values import fixed
from tests.backtest.test_linked_orders import _feed

Q = 10**9


class AlgoParams(StrategyParams):
    kind: str = "completion_fok"
    cap_offset: float = 0.5  # the cap, above the first close
    side: int = 1


class WorkOnce(Strategy[AlgoParams]):
    """On the first bar: one parent order of 100, worked by the algorithm ``kind``."""

    def on_start(self) -> None:
        self.events: list[AlgoOrderChanged] = []
        self.cap = 0

    def on_bar(self, bar: Bar) -> None:
        if self.cap:
            return
        side = OrderSide(self.params.side)
        self.cap = bar.close + fixed(self.params.cap_offset) * side
        kind = self.params.kind
        if kind.startswith("completion"):
            tif = TimeInForce.FOK if kind.endswith("fok") else TimeInForce.IOC
            self.execute(bar.instrument_id, side, 100 * Q, Completion(time_in_force=tif),
                         limit_price=self.cap)
        elif kind == "pov":
            self.execute(bar.instrument_id, side, 100 * Q, Pov(rate_bps=1, max_child_qty=30 * Q))
        elif kind == "iceberg":
            self.execute(bar.instrument_id, side, 100 * Q, Iceberg(display_qty=30 * Q),
                         limit_price=self.cap)
        else:
            self.execute(bar.instrument_id, side, 100 * Q,
                         Twap(horizon_ns=6 * 60 * 10**9, slices=4, jitter_bps=4000))

    def on_order_event(self, event: Message) -> None:
        if isinstance(event, AlgoOrderChanged):
            self.events.append(event)


def _run(closes: list[float], **params: Any) -> tuple[Any, WorkOnce, list[Any]]:
    config = load_config({
        "name": "algos", "seed": 5, "initial_cash": 10**7,
        "instruments": [{"id": "X", "price_precision": 2}],
        "data": [{"kind": "bars", "instrument": "X", "path": "in-memory"}],
        "strategies": [{"id": "s", "class": f"{__name__}:WorkOnce", "instruments": ["X"],
                        "params": params}],
        "venue": {"latency": {"kind": "constant", "entry_ns": 10**9, "response_ns": 10**9},
                  "fills": {"kind": "bars", "price": "next_open", "path": "auto",
                            "max_participation": 0.00001},
                  "slippage": {"kind": "ticks", "ticks": 2},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 1}},
        "store": {"record": False},
    })
    feed = _feed(closes)
    kernel, venue, _ = build_run(config, feed)
    log = run_loop(kernel, venue, feed.iter_messages(), start_ns=feed.start_ns)
    strategy = kernel.strategies[0]
    assert isinstance(strategy, WorkOnce)
    return kernel, strategy, log.fills


@settings(max_examples=25, deadline=None)
@given(moves=st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=20),
       kind=st.sampled_from(["completion_fok", "completion_fak"]),
       side=st.sampled_from([1, -1]), cap=st.floats(-0.5, 1.0))
def test_a_completion_order_never_trades_beyond_its_cap(
    moves: list[float], kind: str, side: int, cap: float
) -> None:
    closes = list(np.round(100 + np.cumsum(moves), 2))
    _, strategy, fills = _run(closes, kind=kind, side=side, cap_offset=round(cap, 2))
    for f in fills:
        assert (f.last_price - strategy.cap) * side <= 0  # never beyond the cap
    filled = sum(f.last_qty for f in fills)
    (last,) = [e for e in strategy.events if e.status is not AlgoStatus.WORKING]
    assert last.filled_qty == filled
    if kind == "completion_fok":
        assert filled in (0, 100 * Q)  # exactly the quantity, or nothing
    assert (last.status is AlgoStatus.COMPLETED) is (filled == 100 * Q)
    if last.status is AlgoStatus.FAILED:
        assert "within the cap" in last.reason


def test_pov_children_follow_the_volume_and_complete() -> None:
    kernel, strategy, fills = _run([100.0] * 30, kind="pov")
    assert strategy.events[-1].status is AlgoStatus.COMPLETED
    assert sum(f.last_qty for f in fills) == 100 * Q
    children = [o for o in kernel.orders.values() if kernel.algos.parent_of(o.client_order_id)]
    assert len(children) > 1  # worked in pieces, not at once


def test_an_iceberg_never_shows_more_than_its_display() -> None:
    kernel, strategy, fills = _run([100.0, 99.0, 99.5, 99.0, 98.0, 99.0, 98.5, 98.0, 97.0],
                                   kind="iceberg", cap_offset=0.2)
    children = [o for o in kernel.orders.values() if kernel.algos.parent_of(o.client_order_id)]
    assert children and all(o.quantity <= 30 * Q for o in children)
    assert all(o.price == strategy.cap for o in children)
    assert len(children) >= 2 and sum(f.last_qty for f in fills) > 30 * Q  # refilled


def test_same_data_and_seed_same_twap_children_fills_and_hash() -> None:
    closes = [100.0, 100.5, 101.0, 100.2, 99.8, 100.1, 100.4, 100.0, 99.5, 99.9]
    first, again = _run(closes, kind="twap"), _run(closes, kind="twap")
    assert first[0].state_hash() == again[0].state_hash()
    assert [(f.fill_id, f.last_price) for f in first[2]] == [
        (f.fill_id, f.last_price) for f in again[2]]
    kernel = first[0]
    children = [o for o in kernel.orders.values() if kernel.algos.parent_of(o.client_order_id)]
    assert [o.quantity for o in children] == [25 * Q] * 4  # four slices, whatever fills
    (parent,) = kernel.algos.summaries()
    assert parent.filled_qty == sum(f.last_qty for f in first[2]) > 0
