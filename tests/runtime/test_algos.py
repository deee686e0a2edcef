"""Execution algorithms in the core: each algorithm's rule on its own, then parents in a kernel
(children through risk, fills summed, cancels cascading, failures with their reason, the state
inside the hash) and the invariants as hypothesis properties."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from itertools import count
from typing import ClassVar

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.algos import (
    Completion,
    ExecAlgorithm,
    Iceberg,
    MarketView,
    ParentView,
    Pov,
    Slice,
    Twap,
    Vwap,
    algorithm,
    algorithm_type,
    volume_profile,
)
from runtime.errors import ConfigError
from runtime.execution import slippage_bps
from runtime.instruments import Instrument
from runtime.kernel import Kernel
from runtime.messages import (
    AlgoOrderChanged,
    AlgoStatus,
    Bar,
    CancelOrder,
    Liquidity,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderSide,
    OrderType,
    QuoteTick,
    SubmitOrder,
    TimeInForce,
)
from runtime.risk import RiskLimits
from runtime.values import fixed
from tests.runtime.test_kernel_risk import Q, act, of, setup

BUY, SELL = OrderSide.BUY, OrderSide.SELL
MIN = 60 * 10**9
X = Instrument(instrument_id="X", price_precision=2)
_fills = count(1)


def view(quantity: int, filled: int = 0, working: int = 0, limit: int | None = None) -> ParentView:
    return ParentView(side=BUY, quantity=quantity * Q, filled_qty=filled * Q,
                      working_qty=working * Q, start_ns=0, limit_price=limit)


def market(now_ns: int, volume: int = 0) -> MarketView:
    return MarketView(now_ns=now_ns, volume=volume * Q, instrument=X)


def qty(slices: list[Slice]) -> list[int]:
    return [s.quantity // Q for s in slices]


# --- each algorithm on its own -----------------------------------------------------------------
def test_twap_spreads_the_quantity_evenly_over_the_horizon() -> None:
    algo = Twap(horizon_ns=10 * MIN, slices=4)
    algo.start(view(10), market(0), np.random.default_rng(0))
    assert algo.due_ns == [0, 150 * 10**9, 300 * 10**9, 450 * 10**9]
    assert [c // Q for c in algo.cumulative] == [2, 5, 7, 10]  # whole lots, exact in total
    assert qty(algo.decide(view(10), market(0))) == [2]
    assert qty(algo.decide(view(10, filled=2), market(200 * 10**9))) == [3]
    assert qty(algo.decide(view(10, filled=2, working=3), market(299 * 10**9))) == []
    assert qty(algo.decide(view(10, filled=5), market(20 * MIN))) == [5]


def test_twap_jitter_comes_from_the_generator_and_stays_inside_the_horizon() -> None:
    def plan(seed: int) -> list[int]:
        algo = Twap(horizon_ns=10 * MIN, slices=10, jitter_bps=5000)
        algo.start(view(100), market(0), np.random.default_rng(seed))
        return algo.due_ns

    assert plan(1) == plan(1) != plan(2)
    assert all(0 <= t < 10 * MIN for t in plan(3))
    assert plan(1) != [i * MIN for i in range(10)]


def test_vwap_follows_its_volume_profile() -> None:
    algo = Vwap(horizon_ns=4 * MIN, profile=[1, 0, 0, 3])  # a quarter early, the rest at the end
    assert qty(algo.decide(view(100), market(MIN))) == [25]
    assert qty(algo.decide(view(100, filled=25), market(3 * MIN))) == []
    assert qty(algo.decide(view(100, filled=25), market(3 * MIN + MIN // 2))) == [37]
    assert qty(algo.decide(view(100, filled=62), market(4 * MIN))) == [38]


def test_volume_profile_from_earlier_days_same_window() -> None:
    day = 86_400 * 10**9
    start = 3 * day + 10 * MIN
    ts = [10 * MIN, 11 * MIN, day + 10 * MIN, day + 30 * MIN, 3 * day + 10 * MIN]
    vol = [5, 7, 1, 100, 1000]  # the 30-minute one is outside; the last is not history yet
    assert volume_profile(ts, vol, start_ns=start, horizon_ns=2 * MIN, buckets=2) == [6, 7]
    assert volume_profile([], [], start_ns=start, horizon_ns=MIN, buckets=3) == [1, 1, 1]


def test_pov_takes_its_share_of_the_volume_capped_per_child() -> None:
    algo = Pov(rate_bps=1000, max_child_qty=30 * Q)
    assert qty(algo.decide(view(100), market(1, volume=95))) == [9]
    assert qty(algo.decide(view(100, filled=9), market(2, volume=1000))) == [30]
    assert qty(algo.decide(view(100, filled=90), market(3, volume=5000))) == [10]  # never more


def test_iceberg_shows_one_display_quantity_at_a_time_at_its_price() -> None:
    algo = Iceberg(display_qty=30 * Q)
    (shown,) = algo.decide(view(100, limit=fixed(99)), market(1))
    assert (shown.quantity, shown.order_type, shown.price) == (30 * Q, OrderType.LIMIT, fixed(99))
    assert algo.decide(view(100, working=30, limit=fixed(99)), market(2)) == []
    assert qty(algo.decide(view(100, filled=90, limit=fixed(99)), market(3))) == [10]


def test_completion_sends_one_capped_order_and_fails_with_what_is_left() -> None:
    algo = Completion(time_in_force=TimeInForce.IOC)
    (sent,) = algo.decide(view(50, limit=fixed(101)), market(1))
    assert (sent.quantity, sent.price, sent.time_in_force) == (50 * Q, fixed(101),
                                                               TimeInForce.IOC)
    assert algo.decide(view(50, working=50, limit=fixed(101)), market(2)) == []
    assert algo.failure(view(50, working=50, limit=fixed(101)), market(2)) == ""
    assert "filled 20000000000 of 50000000000" in algo.failure(
        view(50, filled=20, limit=fixed(101)), market(3))


@pytest.mark.parametrize("bad", [
    Twap(horizon_ns=0, slices=3), Twap(horizon_ns=MIN, slices=3, jitter_bps=9000),
    Vwap(horizon_ns=MIN, profile=[]), Vwap(horizon_ns=MIN, profile=[0, 0]),
    Pov(rate_bps=0), Iceberg(display_qty=0), Completion(time_in_force=TimeInForce.GTC),
])
def test_nonsense_parameters_are_refused_by_name(bad: ExecAlgorithm) -> None:
    with pytest.raises(ConfigError, match=bad.name):
        bad.check()


def test_a_user_algorithm_registers_by_name_without_touching_the_kernel() -> None:
    @algorithm
    class AllAtOnce(ExecAlgorithm, kw_only=True):
        name: ClassVar[str] = "all_at_once_test"

        def decide(self, parent: ParentView, market: MarketView) -> list[Slice]:
            return [Slice(quantity=parent.remaining)] if parent.remaining else []

    assert algorithm_type("all_at_once_test") is AllAtOnce
    with pytest.raises(ConfigError, match="taken"):
        algorithm(type("Other", (AllAtOnce,), {}))
    with pytest.raises(ConfigError, match=r"unknown execution algorithm 'nope'.*twap"):
        algorithm_type("nope")
    _, out = started(AllAtOnce(), 40)
    assert [m.quantity for m in of(SubmitOrder, out)] == [40 * Q]  # type: ignore[attr-defined]


# --- parents in a kernel -----------------------------------------------------------------------
def bar(i: int, close: float = 100, volume: int = 1000) -> Bar:
    return Bar(seq=i, ts_event=i * MIN, ts_init=i * MIN, instrument_id="X", open=fixed(close),
               high=fixed(close), low=fixed(close), close=fixed(close), volume=volume * Q,
               interval_ns=MIN)


def started(algo: ExecAlgorithm, quantity: int, *, side: OrderSide = BUY,
            limit: float | None = None,
            limits: RiskLimits | None = None) -> tuple[Kernel, list[Message]]:
    k, _ = setup(limits or RiskLimits())
    k.handle(QuoteTick(0, MIN, MIN, "X", bid_price=fixed(99.9), ask_price=fixed(100.1),
                       bid_size=10 * Q, ask_size=10 * Q))
    lp = None if limit is None else fixed(limit)
    out = act(k, lambda s: s.execute("X", side, quantity * Q, algo, limit_price=lp))
    return k, out + answer(k, out)


def answer(k: Kernel, out: list[Message]) -> list[Message]:
    """The venue accepts each new child and confirms each cancel (and what that produced)."""
    produced: list[Message] = []
    for msg in out:
        if isinstance(msg, SubmitOrder):
            more = k.handle(OrderAccepted(seq=0, ts_event=k.now, ts_init=k.now,
                                          client_order_id=msg.client_order_id, strategy_id="s",
                                          instrument_id="X", venue_order_id="v"))
        elif isinstance(msg, CancelOrder):
            more = k.handle(OrderCanceled(seq=0, ts_event=k.now, ts_init=k.now,
                                          client_order_id=msg.client_order_id, strategy_id="s",
                                          instrument_id="X"))
        else:
            continue
        produced += more + answer(k, more)
    return produced


def fill(k: Kernel, cid: str, quantity: int, price: float = 100.2) -> list[Message]:
    order = k.orders[cid]
    cum = order.filled_qty + quantity * Q
    out = k.handle(OrderFilled(seq=0, ts_event=k.now, ts_init=k.now, client_order_id=cid,
                               strategy_id="s", instrument_id="X", venue_order_id="v",
                               fill_id=f"f{next(_fills)}", side=order.side,
                               last_qty=quantity * Q, last_price=fixed(price), cum_qty=cum,
                               leaves_qty=order.quantity - cum, fee=0, currency="USD",
                               liquidity=Liquidity.TAKER))
    return out + answer(k, out)


def step(k: Kernel, i: int, **kw: float) -> list[Message]:
    out = k.handle(bar(i, **kw))  # type: ignore[arg-type]
    return out + answer(k, out)


def parent_events(out: list[Message]) -> list[AlgoOrderChanged]:
    return of(AlgoOrderChanged, out)  # type: ignore[return-value]


def children(out: list[Message]) -> list[SubmitOrder]:
    return of(SubmitOrder, out)  # type: ignore[return-value]


def test_a_twap_parent_fills_from_its_children_and_reports_its_slippage() -> None:
    k, out = started(Twap(horizon_ns=3 * MIN, slices=3), 30)
    (working,) = parent_events(out)
    assert working.status is AlgoStatus.WORKING and working.arrival_price == fixed(100)
    events: list[Message] = []
    first = children(out)
    assert [c.quantity for c in first] == [10 * Q]
    events += fill(k, first[0].client_order_id, 10, 100.1)
    for i, price in ((3, 100.2), (4, 100.3)):  # started just after bar 1: due 1, 2 min on
        sent = children(step(k, i))
        assert [c.quantity for c in sent] == [10 * Q]
        events += fill(k, sent[0].client_order_id, 10, price)
    (done,) = parent_events(events)
    assert done.status is AlgoStatus.COMPLETED and done.filled_qty == 30 * Q
    assert done.avg_price == fixed(100.2)
    (summary,) = k.algos.summaries()
    assert summary.slippage_bps == pytest.approx(20.0)
    assert not k.algos.watches and not children(step(k, 4))


def test_slippage_is_positive_when_worse_for_either_side() -> None:
    assert slippage_bps(BUY, fixed(100), fixed(101)) == pytest.approx(100)
    assert slippage_bps(SELL, fixed(100), fixed(101)) == pytest.approx(-100)
    assert slippage_bps(SELL, None, fixed(101)) is None


def test_canceling_the_parent_cancels_its_open_children_and_releases_no_more() -> None:
    k, out = started(Twap(horizon_ns=3 * MIN, slices=3), 30)
    child = children(out)[0].client_order_id
    fill(k, child, 4)
    canceled = act(k, lambda s: s.cancel(parent_events(out)[0].parent_id))
    assert [c.client_order_id for c in of(CancelOrder, canceled)] == [child]
    (event,) = parent_events(canceled)
    assert event.status is AlgoStatus.CANCELED and event.filled_qty == 4 * Q
    answer(k, canceled)
    assert not children(step(k, 2)) and not children(step(k, 5))
    assert k.orders[child].is_closed


def test_a_child_denied_by_risk_fails_the_parent_with_the_reason() -> None:
    limits = RiskLimits(max_order_notional=Decimal(6000))
    k, out = started(Twap(horizon_ns=2 * MIN, slices=2), 100, limits=limits)
    assert [c.quantity // Q for c in children(out)] == [50]  # each child is checked: 5000 passes
    k, out = started(Twap(horizon_ns=MIN, slices=1), 100, limits=limits)
    (failed,) = [e for e in parent_events(out) if e.status is AlgoStatus.FAILED]
    assert "OrderDenied: max_order_notional" in failed.reason
    assert not k.algos.watches and not k.open


def test_no_price_no_parent() -> None:
    k, _ = setup(RiskLimits())
    out = act(k, lambda s: s.execute("X", BUY, 10 * Q, Twap(horizon_ns=MIN, slices=1)))
    (denied,) = parent_events(out)
    assert denied.status is AlgoStatus.DENIED and "no_market_data" in denied.reason
    assert not children(out)


def test_a_completion_order_fails_with_its_unfilled_rest_and_needs_a_cap() -> None:
    k, out = started(Completion(time_in_force=TimeInForce.IOC), 50, limit=100.5)
    (child,) = children(out)
    assert (child.order_type, child.price, child.time_in_force) == (
        OrderType.LIMIT, fixed(100.5), TimeInForce.IOC)
    produced = fill(k, child.client_order_id, 20, 100.5)
    produced += k.handle(OrderCanceled(seq=0, ts_event=k.now, ts_init=k.now,
                                       client_order_id=child.client_order_id, strategy_id="s",
                                       instrument_id="X"))
    (failed,) = parent_events(produced)
    assert failed.status is AlgoStatus.FAILED and failed.filled_qty == 20 * Q
    with pytest.raises(ConfigError, match="completion: a parent order needs a limit_price"):
        act(k, lambda s: s.execute("X", BUY, 10 * Q, Completion()))


def test_an_iceberg_refills_after_each_display_fills() -> None:
    k, out = started(Iceberg(display_qty=40 * Q), 100, side=SELL, limit=100.3)
    shown = [c.quantity // Q for c in children(out)]
    for _ in range(3):
        produced = fill(k, children(out)[-1].client_order_id, children(out)[-1].quantity // Q)
        out = produced
        shown += [c.quantity // Q for c in children(produced)]
    assert shown == [40, 40, 20]
    assert parent_events(out)[-1].status is AlgoStatus.COMPLETED


def test_pov_follows_the_volume_traded_after_submission() -> None:
    k, out = started(Pov(rate_bps=500), 100)
    assert not children(out)  # nothing traded yet
    sent = children(step(k, 2, volume=400))
    assert [c.quantity // Q for c in sent] == [20]


def test_target_position_worked_by_twap_counts_what_is_unreleased() -> None:
    k, _ = setup(RiskLimits())
    k.handle(bar(1))
    algo = Twap(horizon_ns=4 * MIN, slices=4)
    out = act(k, lambda s: s.target_position("X", 100 * Q, algo))
    out += answer(k, out)
    assert [c.quantity // Q for c in children(out)] == [25]
    again = act(k, lambda s: s.target_position("X", 100 * Q, algo))
    assert not children(again) and not of(CancelOrder, again)  # the parent makes up the rest
    flat = act(k, lambda s: s.target_position("X", 0, algo))
    assert parent_events(flat)[0].status is AlgoStatus.CANCELED and of(CancelOrder, flat)


def test_parent_state_survives_a_snapshot_and_is_in_the_hash() -> None:
    def twap() -> Twap:
        return Twap(horizon_ns=4 * MIN, slices=4, jitter_bps=2000)

    k, _ = started(twap(), 40)
    for cid in [c.client_order_id for c in children(step(k, 2))]:
        fill(k, cid, 10)
    k2, _ = setup(RiskLimits())
    k2.load_state(k.state())
    assert k2.state_hash() == k.state_hash()
    later = [(c.client_order_id, c.quantity) for c in children(step(k, 5))]
    assert later and later == [(c.client_order_id, c.quantity) for c in children(step(k2, 5))]
    assert started(twap(), 41)[0].state_hash() != started(twap(), 40)[0].state_hash()
    assert started(twap(), 40)[0].state_hash() == started(twap(), 40)[0].state_hash()


def test_an_operator_cancel_all_cancels_parents_too() -> None:
    from runtime.messages import CancelAllOrders

    k, _ = started(Twap(horizon_ns=3 * MIN, slices=3), 30)
    produced = k.handle(CancelAllOrders(seq=0, ts_event=k.now, ts_init=k.now, strategy_id="",
                                                reason="test"))
    assert parent_events(produced)[0].status is AlgoStatus.CANCELED
    answer(k, produced)
    assert not children(step(k, 3))


# --- properties --------------------------------------------------------------------------------
ALGOS: list[Callable[[], tuple[ExecAlgorithm, float | None]]] = [
    lambda: (Twap(horizon_ns=5 * MIN, slices=5, jitter_bps=3000), None),
    lambda: (Vwap(horizon_ns=5 * MIN, profile=[3, 1, 1, 2, 5]), None),
    lambda: (Pov(rate_bps=700, max_child_qty=25 * Q), None),
    lambda: (Iceberg(display_qty=15 * Q), 100.4),
]
#: (kind, size): 0 bar (volume size*10), 1 partial fill of the oldest open child (size),
#: 2 the venue cancels the oldest open child, 3 the strategy cancels the parent
OPS = st.lists(st.tuples(st.integers(0, 3), st.integers(1, 40)), min_size=1, max_size=25)


def _oldest_open(k: Kernel) -> str | None:
    opened = sorted((o for o in k.open.values()), key=lambda o: o.client_order_id)
    return opened[0].client_order_id if opened else None


@settings(max_examples=60, deadline=None)
@given(which=st.integers(0, len(ALGOS) - 1), ops=OPS)
def test_children_never_exceed_the_parent_and_terminal_stays_terminal(
    which: int, ops: list[tuple[int, int]]
) -> None:
    algo, limit = ALGOS[which]()
    k, out = started(algo, 100, limit=limit)
    pid = parent_events(out)[0].parent_id
    seen: list[AlgoStatus] = [AlgoStatus.WORKING]
    i = 2
    for kind, size in ops:
        if kind == 0:
            out = step(k, i, volume=size * 10)
            i += 1
        elif kind == 1 and (cid := _oldest_open(k)) is not None:
            leaves = (k.orders[cid].quantity - k.orders[cid].filled_qty) // Q
            out = fill(k, cid, min(size, leaves))
        elif kind == 2 and (cid := _oldest_open(k)) is not None:
            out = k.handle(OrderCanceled(seq=0, ts_event=k.now, ts_init=k.now,
                                         client_order_id=cid, strategy_id="s",
                                         instrument_id="X"))
            out += answer(k, out)
        elif kind == 3:
            out = act(k, lambda s: s.cancel(pid))
            out += answer(k, out)
            assert not [o for o in k.open.values() if k.algos.parent_of(o.client_order_id)]
        else:
            continue
        kids = [o for o in k.orders.values() if k.algos.parent_of(o.client_order_id) == pid]
        filled = sum(o.filled_qty for o in kids)
        working = sum(o.leaves_qty for o in kids)
        assert filled + working <= 100 * Q
        (summary,) = k.algos.summaries()
        assert summary.filled_qty == filled  # the parent's fills are its children's
        if seen[-1] is not AlgoStatus.WORKING:
            assert not children(out)  # a closed parent releases nothing
        seen += [e.status for e in parent_events(out)]
    closed = [s for s in seen if s is not AlgoStatus.WORKING]
    assert len(closed) <= 1  # one terminal status, once, never left
    if closed:
        assert k.algos.summaries()[0].status is closed[0]


def test_algorithm_structs_round_trip_through_state() -> None:
    algo = Twap(horizon_ns=MIN, slices=2, due_ns=[0, 1], cumulative=[1, 2])
    back = msgspec.convert(msgspec.to_builtins(algo), Twap)
    assert back == algo


def test_the_documented_user_algorithm_runs() -> None:
    """docs/orders.md's own algorithm, as written there, registers and works a parent."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "orders.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "@algorithm" in b]
    namespace: dict[str, object] = {}
    exec(compile(block, "docs/orders.md", "exec", dont_inherit=True), namespace)
    half_now = namespace["HalfNow"]
    assert algorithm_type("half_now") is half_now
    k, out = started(half_now(delay_ns=2 * MIN), 10)  # type: ignore[operator]
    assert [c.quantity // Q for c in children(out)] == [5]
    assert [c.quantity // Q for c in children(step(k, 4))] == [5]


def test_a_parent_off_the_lot_grid_or_empty_is_refused_by_name() -> None:
    k, _ = started(Twap(horizon_ns=MIN, slices=2), 10)
    for quantity in (Q + Q // 2, 0):
        with pytest.raises(ConfigError, match="twap: a parent order needs a positive quantity "
                                              "in whole lots of 1 for X"):
            act(k, lambda s, q=quantity: s.execute("X", BUY, q, Twap(horizon_ns=MIN, slices=2)))
