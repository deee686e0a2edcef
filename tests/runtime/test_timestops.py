"""Time stops: cancel an order, a list or a parent after a duration, or close the position, at
the first market data at or after the due time; once; inside the state."""

from __future__ import annotations

import pytest

from runtime.algos import Twap
from runtime.errors import ConfigError
from runtime.messages import (
    AlgoOrderChanged,
    AlgoStatus,
    CancelOrder,
    OrderSide,
    OrderType,
    SubmitOrder,
)
from runtime.risk import RiskLimits
from runtime.values import fixed
from tests.runtime.test_algos import MIN, answer, bar, fill, started, step
from tests.runtime.test_kernel_risk import Q, act, of, setup

BUY, SELL = OrderSide.BUY, OrderSide.SELL


def test_a_time_stop_closes_a_bracket_after_its_duration() -> None:
    k, _ = setup(RiskLimits())
    step(k, 1)
    ids: dict[str, str] = {}

    def enter(s: object) -> None:
        ids["list"] = s.bracket("X", BUY, 10 * Q, take_profit=fixed(110),  # type: ignore[attr-defined]
                                stop_loss=fixed(90))
        s.time_stop("X", 5 * MIN, cancel=ids["list"], close=True)  # type: ignore[attr-defined]

    out = act(k, enter)
    out += answer(k, out)
    (entry,) = of(SubmitOrder, out)
    exits = fill(k, entry.client_order_id, 10)  # type: ignore[attr-defined]
    assert len(of(SubmitOrder, exits)) == 2
    assert not of(CancelOrder, step(k, 5))  # not due yet (the list started just after bar 1)
    fired = k.handle(bar(7))  # the exits are canceled; the venue has not confirmed yet
    assert sorted({c.client_order_id for c in of(CancelOrder, fired)}) == sorted(
        c.client_order_id for c in of(SubmitOrder, exits))  # type: ignore[attr-defined]
    assert not of(SubmitOrder, fired)  # no close-out while an exit could still fill
    assert not of(SubmitOrder, k.handle(bar(8)))
    answer(k, fired)
    (close,) = of(SubmitOrder, step(k, 9))
    assert (close.side, close.quantity, close.order_type) == (  # type: ignore[attr-defined]
        SELL, 10 * Q, OrderType.MARKET)
    assert close.reduce_only  # type: ignore[attr-defined]
    assert not k.time_stops.pending and not of(SubmitOrder, step(k, 10))  # once


def test_an_exit_filled_while_the_time_stop_cancels_leaves_nothing_to_close() -> None:
    k, _ = setup(RiskLimits())
    step(k, 1)
    (buy,) = of(SubmitOrder, act(k, lambda s: s.buy("X", 5 * Q)))
    answer(k, [buy])
    fill(k, buy.client_order_id, 5)  # type: ignore[attr-defined]
    out = act(k, lambda s: s.sell("X", 5 * Q, price=fixed(101)))
    out += act(k, lambda s: s.time_stop("X", MIN, close=True))
    answer(k, out)
    (sell,) = of(SubmitOrder, out)
    assert [c.client_order_id for c in of(CancelOrder, k.handle(bar(4)))] == [  # type: ignore[attr-defined]
        sell.client_order_id]  # type: ignore[attr-defined]
    fill(k, sell.client_order_id, 5)  # the exit filled before the cancel reached the venue
    assert k.portfolio.quantity("X") == 0
    assert not of(SubmitOrder, step(k, 5)) and not k.time_stops.pending  # nothing to close


def test_a_time_stop_cancels_an_order_left_open_and_spares_the_rest() -> None:
    k, _ = setup(RiskLimits())
    step(k, 1)
    ids: list[str] = []

    def place(s: object) -> None:
        ids.append(s.buy("X", 5 * Q, price=fixed(95)))  # type: ignore[attr-defined]
        ids.append(s.buy("X", 5 * Q, price=fixed(94)))  # type: ignore[attr-defined]
        s.time_stop("X", MIN, cancel=ids[0])  # type: ignore[attr-defined]

    answer(k, act(k, place))
    fired = step(k, 3)
    assert [c.client_order_id for c in of(CancelOrder, fired)] == [ids[0]]  # type: ignore[attr-defined]
    assert not of(SubmitOrder, fired)


def test_a_time_stop_cancels_a_parent_order() -> None:
    k, out = started(Twap(horizon_ns=10 * MIN, slices=10), 100)
    pid = of(AlgoOrderChanged, out)[0].parent_id  # type: ignore[attr-defined]
    act(k, lambda s: s.time_stop("X", 3 * MIN, cancel=pid))
    fired = step(k, 5)
    assert [e.status for e in of(AlgoOrderChanged, fired)] == [  # type: ignore[attr-defined]
        AlgoStatus.CANCELED]


def test_time_stops_survive_a_snapshot_and_refuse_nonsense() -> None:
    k, _ = setup(RiskLimits())
    step(k, 1)
    act(k, lambda s: s.time_stop("X", MIN, close=True))
    k2, _ = setup(RiskLimits())
    k2.load_state(k.state())
    assert k2.state_hash() == k.state_hash() and k2.time_stops.pending == {"X": 1}
    with pytest.raises(ConfigError, match="after_ns must be positive"):
        act(k, lambda s: s.time_stop("X", 0, close=True))
    with pytest.raises(ConfigError, match="cancels an order, a list or a parent, or closes"):
        act(k, lambda s: s.time_stop("X", MIN))
