"""Order state machine: table-driven, terminal states never change, filled ≤ ordered,
late fills after a cancel are applied, duplicate fills ignored."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.errors import InvariantError
from runtime.messages import (
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderType,
    SubmitOrder,
)
from runtime.orders import TERMINAL, ClientOrderIdGenerator, Order, OrderStatus, Trigger

Q = 10**9


def make_order(qty: int = 10 * Q) -> Order:
    return Order(
        SubmitOrder(
            seq=0,
            ts_event=0,
            ts_init=0,
            client_order_id="run1-s1-1",
            strategy_id="s1",
            instrument_id="X",
            side=OrderSide.BUY,
            order_type=OrderType.LIMIT,
            quantity=qty,
            price=100 * Q,
        )
    )


def fill(fill_id: str, qty: int, cum: int, total: int = 10 * Q) -> OrderFilled:
    return OrderFilled(
        seq=0,
        ts_event=1,
        ts_init=1,
        client_order_id="run1-s1-1",
        strategy_id="s1",
        instrument_id="X",
        venue_order_id="v1",
        fill_id=fill_id,
        side=OrderSide.BUY,
        last_qty=qty,
        last_price=100 * Q,
        cum_qty=cum,
        leaves_qty=total - cum,
        fee=0,
        currency="USD",
        liquidity=Liquidity.MAKER,
    )


def ev(cls: type, **kw: object) -> object:
    base = dict(
        seq=0,
        ts_event=1,
        ts_init=1,
        client_order_id="run1-s1-1",
        strategy_id="s1",
        instrument_id="X",
    )
    base.update(kw)
    return cls(**base)


def test_happy_path_partial_then_full() -> None:
    order = make_order()
    order.transition(Trigger.SUBMIT)
    order.apply(ev(OrderAccepted, venue_order_id="v1"))
    assert order.status is OrderStatus.ACCEPTED
    order.apply(fill("f1", 4 * Q, 4 * Q))
    assert order.status is OrderStatus.PARTIALLY_FILLED and order.leaves_qty == 6 * Q
    order.apply(fill("f2", 6 * Q, 10 * Q))
    assert order.status is OrderStatus.FILLED and order.leaves_qty == 0


def test_duplicate_fill_is_ignored() -> None:
    order = make_order()
    order.transition(Trigger.SUBMIT)
    assert order.apply(fill("f1", 4 * Q, 4 * Q))
    assert not order.apply(fill("f1", 4 * Q, 4 * Q))
    assert order.filled_qty == 4 * Q


def test_overfill_is_an_invariant_error() -> None:
    order = make_order()
    order.transition(Trigger.SUBMIT)
    with pytest.raises(InvariantError, match=r"filled .* > ordered"):
        order.apply(fill("f1", 11 * Q, 11 * Q))


def test_late_fill_after_cancel_is_applied_and_state_stays_canceled() -> None:
    order = make_order()
    order.transition(Trigger.SUBMIT)
    order.apply(ev(OrderAccepted, venue_order_id="v1"))
    order.transition(Trigger.PENDING_CANCEL)
    order.apply(ev(OrderCanceled))
    assert order.status is OrderStatus.CANCELED
    assert order.apply(fill("late", 3 * Q, 3 * Q))
    assert order.status is OrderStatus.CANCELED and order.filled_qty == 3 * Q


def test_cancel_reject_returns_to_previous_state() -> None:
    order = make_order()
    order.transition(Trigger.SUBMIT)
    order.apply(ev(OrderAccepted, venue_order_id="v1"))
    order.apply(fill("f1", 2 * Q, 2 * Q))
    order.transition(Trigger.PENDING_CANCEL)
    order.apply(ev(OrderCancelRejected, reason="too late"))
    assert order.status is OrderStatus.PARTIALLY_FILLED


def test_impossible_transition_is_a_bug() -> None:
    order = make_order()
    with pytest.raises(InvariantError, match="no transition"):
        order.transition(Trigger.ACCEPT)  # never submitted


def test_state_roundtrip() -> None:
    order = make_order()
    order.transition(Trigger.SUBMIT)
    order.apply(fill("f1", 2 * Q, 2 * Q))
    assert Order.from_state(order.state()).state() == order.state()


EVENTS = st.sampled_from(
    ["accept", "reject", "fill", "cancel", "expire", "pending_cancel", "cancel_reject", "dup"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(EVENTS, st.integers(1, 5)), max_size=25))
def test_fsm_properties(steps: list[tuple[str, int]]) -> None:
    """Any sequence of reports: terminal never left, filled ≤ ordered, dup fills ignored."""
    order = make_order()
    order.transition(Trigger.SUBMIT)
    n = 0
    for name, qty in steps:
        before, filled_before = order.status, order.filled_qty
        try:
            if name == "fill" or name == "dup":
                if name == "fill":
                    n += 1
                if n == 0:
                    continue
                q = min(qty * Q, order.quantity - order.filled_qty)
                if q == 0:
                    continue
                changed = order.apply(fill(f"f{n}", q, order.filled_qty + q))
                if name == "dup":
                    assert not changed or filled_before == order.filled_qty - q
            elif name == "pending_cancel":
                order.transition(Trigger.PENDING_CANCEL)
            else:
                cls = {
                    "accept": OrderAccepted,
                    "reject": OrderRejected,
                    "cancel": OrderCanceled,
                    "expire": OrderExpired,
                    "cancel_reject": OrderCancelRejected,
                }[name]
                extra = {
                    "accept": {"venue_order_id": "v"},
                    "reject": {"reason": "r"},
                    "cancel_reject": {"reason": "r"},
                }.get(name, {})
                order.apply(ev(cls, **extra))
        except InvariantError:
            assert before not in TERMINAL  # only live orders can see an impossible report
            continue
        if before in TERMINAL:
            assert order.status is before
        assert order.filled_qty <= order.quantity


def test_client_order_ids_are_deterministic_and_namespaced() -> None:
    a, b = ClientOrderIdGenerator("sessA"), ClientOrderIdGenerator("sessA")
    assert [a.next("s1") for _ in range(3)] == [b.next("s1") for _ in range(3)]
    assert a.next("s1") == "sessA-s1-4"
    assert ClientOrderIdGenerator.parse("sessA-s1-4") == ("sessA", "s1", 4)
    assert ClientOrderIdGenerator("sessB").next("s1") != ClientOrderIdGenerator("sessA").next("s1")
    with pytest.raises(InvariantError):
        ClientOrderIdGenerator("bad-ns")


def test_venue_may_reject_an_order_whose_cancel_is_pending() -> None:
    """Found by the determinism property test: a market maker cancels a post-only order before
    the venue has answered its submit, and the venue then rejects it (it would have taken)."""
    order = make_order()
    order.transition(Trigger.SUBMIT)
    order.transition(Trigger.PENDING_CANCEL)
    order.apply(ev(OrderRejected, reason="post-only would take liquidity"))
    assert order.status is OrderStatus.REJECTED and order.is_closed


def test_unknown_outcome_changes_nothing() -> None:
    """A gateway that cannot tell whether the venue got an order says so; the order waits for
    reconciliation (never resent), its state untouched."""
    from runtime.messages import OrderStatusUnknown

    order = make_order()
    order.transition(Trigger.SUBMIT)
    unknown = OrderStatusUnknown(seq=0, ts_event=1, ts_init=1, client_order_id="run1-s1-1",
                                 strategy_id="s1", instrument_id="X", command="submit",
                                 reason="timeout")
    assert not order.apply(unknown)
    assert order.status is OrderStatus.SUBMITTED
