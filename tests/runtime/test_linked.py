"""Linked orders in the core: OTO releases children as the parent fills, OCO legs reduce and
cancel each other, brackets, trailing stops, and risk on every released leg."""

from __future__ import annotations

from decimal import Decimal
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.kernel import Kernel
from runtime.linked import Leg
from runtime.messages import (
    CancelOrder,
    Liquidity,
    Message,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    OrderListChanged,
    OrderListStatus,
    OrderSide,
    OrderType,
    OrderUpdated,
    SubmitOrder,
)
from runtime.risk import RiskLimits
from runtime.values import fixed
from tests.runtime.test_kernel import bar
from tests.runtime.test_kernel_risk import Q, act, market, of, setup

_fills = count(1)
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def ack(k: Kernel, out: list[Message]) -> list[Message]:
    """The venue accepts every new order in ``out`` (and what that produced, recursively)."""
    produced: list[Message] = []
    for msg in of(SubmitOrder, out):
        more = k.handle(OrderAccepted(seq=0, ts_event=k.now, ts_init=k.now,
                                      client_order_id=msg.client_order_id,  # type: ignore[attr-defined]
                                      strategy_id="s", instrument_id="X", venue_order_id="v"))
        produced += more + ack(k, more)
    return produced


def fill(k: Kernel, cid: str, qty: int, price: float) -> list[Message]:
    order = k.orders[cid]
    cum = order.filled_qty + qty * Q
    out = k.handle(OrderFilled(seq=0, ts_event=k.now, ts_init=k.now, client_order_id=cid,
                               strategy_id="s", instrument_id="X", venue_order_id="v",
                               fill_id=f"f{next(_fills)}", side=order.side, last_qty=qty * Q,
                               last_price=fixed(price), cum_qty=cum,
                               leaves_qty=order.quantity - cum, fee=0, currency="USD",
                               liquidity=Liquidity.TAKER))
    return out + ack(k, out)


def venue_answers(k: Kernel, out: list[Message]) -> list[Message]:
    """The venue confirms every cancel and modify in ``out``."""
    produced: list[Message] = []
    for msg in out:
        if isinstance(msg, CancelOrder):
            produced += k.handle(OrderCanceled(seq=0, ts_event=k.now, ts_init=k.now,
                                               client_order_id=msg.client_order_id,
                                               strategy_id="s", instrument_id="X"))
        elif isinstance(msg, ModifyOrder):
            order = k.orders[msg.client_order_id]
            produced += k.handle(OrderUpdated(
                seq=0, ts_event=k.now, ts_init=k.now, client_order_id=msg.client_order_id,
                strategy_id="s", instrument_id="X",
                quantity=msg.quantity if msg.quantity is not None else order.quantity,
                price=order.price,
                trigger_price=msg.trigger_price if msg.trigger_price is not None
                else order.trigger_price))
    return produced


def statuses(out: list[Message]) -> list[OrderListStatus]:
    return [m.status for m in of(OrderListChanged, out)]  # type: ignore[attr-defined]


def bracket_open(limits: RiskLimits | None = None) -> tuple[Kernel, list[Message]]:
    k, _ = setup(limits or RiskLimits())
    k.handle(bar(1, 100))
    out = act(k, lambda s: s.bracket("X", BUY, 100 * Q, take_profit=fixed(110),
                                     stop_loss=fixed(95)))
    return k, out + ack(k, out)


def legs(out: list[Message]) -> dict[OrderType, SubmitOrder]:
    return {m.order_type: m for m in of(SubmitOrder, out)}  # type: ignore[attr-defined,misc]


def test_a_bracket_sends_the_entry_and_holds_the_exits() -> None:
    _, out = bracket_open()
    sent = of(SubmitOrder, out)
    assert len(sent) == 1 and sent[0].order_type is OrderType.MARKET  # type: ignore[attr-defined]
    assert statuses(out) == [OrderListStatus.SUBMITTED]


def test_a_partial_entry_fill_releases_exits_for_the_filled_quantity() -> None:
    k, out = bracket_open()
    entry = of(SubmitOrder, out)[0].client_order_id  # type: ignore[attr-defined]
    released = fill(k, entry, 30, 100)
    exits = legs(released)
    assert exits[OrderType.LIMIT].quantity == 30 * Q and exits[OrderType.STOP].quantity == 30 * Q
    assert exits[OrderType.LIMIT].side is SELL and exits[OrderType.STOP].protective
    assert statuses(released) == [OrderListStatus.RELEASED]
    more = legs(fill(k, entry, 70, 100))
    assert more[OrderType.LIMIT].quantity == 70 * Q  # a second pair for the rest
    assert k.context.committed("s", "X") == 100 * Q  # the exits do not count toward the target


def test_take_profit_fill_cancels_the_stop_and_completes_the_list() -> None:
    k, out = bracket_open()
    entry = of(SubmitOrder, out)[0].client_order_id  # type: ignore[attr-defined]
    exits = legs(fill(k, entry, 100, 100))
    take, stop = exits[OrderType.LIMIT].client_order_id, exits[OrderType.STOP].client_order_id
    partial = fill(k, take, 40, 110)  # the stop shrinks by what the take-profit filled
    assert [(m.client_order_id, m.quantity) for m in of(ModifyOrder, partial)] == [  # type: ignore[attr-defined]
        (stop, 60 * Q)]
    venue_answers(k, partial)
    done = fill(k, take, 60, 110)
    assert [m.client_order_id for m in of(CancelOrder, done)] == [stop]  # type: ignore[attr-defined]
    end = venue_answers(k, done)
    assert statuses(end) == [OrderListStatus.COMPLETED]
    assert k.portfolio.quantity("X") == 0 and not k.open


def test_a_refused_exit_cancels_its_sibling_and_the_entry_rest_with_the_reason() -> None:
    k, _ = setup(RiskLimits())
    k.handle(bar(1, 100))
    out = act(k, lambda s: s.bracket("X", BUY, 100 * Q, take_profit=fixed("110.005"),
                                     stop_loss=fixed(95)))  # the take-profit is off the grid
    out += ack(k, out)
    entry = of(SubmitOrder, out)[0].client_order_id  # type: ignore[attr-defined]
    released = fill(k, entry, 30, 100)
    assert of(SubmitOrder, released) == []  # the stop-loss never leaves alone
    codes = [m.reason_code for m in of(OrderDenied, released)]  # type: ignore[attr-defined]
    assert codes == ["instrument.tick_size", "order_list"]
    assert [m.client_order_id for m in of(CancelOrder, released)] == [entry]  # type: ignore[attr-defined]
    (canceled,) = [m for m in of(OrderListChanged, released)
                   if m.status is OrderListStatus.CANCELED]  # type: ignore[attr-defined]
    assert "tick_size" in canceled.reason  # type: ignore[attr-defined]
    assert k.orders[entry].quantity - k.orders[entry].filled_qty == 70 * Q  # being canceled


def test_oco_fill_of_one_leg_cancels_the_other() -> None:
    k, _ = setup(RiskLimits())
    k.handle(bar(1, 100))
    out = act(k, lambda s: s.oco("X", Leg(side=BUY, order_type=OrderType.LIMIT, quantity=10 * Q,
                                          price=fixed(95)),
                                 Leg(side=BUY, order_type=OrderType.STOP, quantity=10 * Q,
                                     trigger_price=fixed(105))))
    out += ack(k, out)
    low, high = (m.client_order_id for m in of(SubmitOrder, out))  # type: ignore[attr-defined]
    done = fill(k, low, 10, 95)
    assert [m.client_order_id for m in of(CancelOrder, done)] == [high]  # type: ignore[attr-defined]


def test_a_denied_oco_leg_cancels_its_siblings_before_they_are_sent() -> None:
    k, _ = setup(RiskLimits(max_order_notional=Decimal(5_000)))
    k.handle(bar(1, 100))
    out = act(k, lambda s: s.oco("X", Leg(side=BUY, order_type=OrderType.LIMIT, quantity=100 * Q,
                                          price=fixed(95)),
                                 Leg(side=BUY, order_type=OrderType.LIMIT, quantity=10 * Q,
                                     price=fixed(90))))
    assert of(SubmitOrder, out) == []  # the second leg never leaves: its group is canceled
    codes = [m.reason_code for m in of(OrderDenied, out)]  # type: ignore[attr-defined]
    assert codes == ["max_order_notional", "order_list"]
    (canceled,) = [m for m in of(OrderListChanged, out)
                   if m.status is OrderListStatus.CANCELED]  # type: ignore[attr-defined]
    assert "max_order_notional" in canceled.reason  # type: ignore[attr-defined]


@pytest.mark.parametrize(("reference", "feed", "expected"),
                         [("last", "trade", "99"), ("bid_ask", "quote", "98.99"),
                          ("mid", "book", "99")])
def test_a_trailing_stop_follows_its_reference_never_back(reference: str, feed: str,
                                                          expected: str) -> None:
    k, _ = setup(RiskLimits())
    k.handle(market(feed, 1, 100))
    out = act(k, lambda s: s.trailing_stop("X", SELL, 10 * Q, offset=fixed(2),
                                           reference=reference))
    out += ack(k, out)
    (stop,) = of(SubmitOrder, out)
    assert stop.order_type is OrderType.STOP  # type: ignore[attr-defined]
    moved = k.handle(market(feed, 2, 101))  # up 1: the stop follows
    (modify,) = of(ModifyOrder, moved)
    assert modify.trigger_price == fixed(expected)  # type: ignore[attr-defined]
    venue_answers(k, moved)
    assert of(ModifyOrder, k.handle(market(feed, 3, 100))) == []  # down: it stays


def test_a_trailing_stop_in_ticks_and_bps() -> None:
    k, _ = setup(RiskLimits())
    k.handle(market("trade", 1, 100))
    out = act(k, lambda s: [s.trailing_stop("X", SELL, Q, ticks=5),
                            s.trailing_stop("X", BUY, Q, bps=100)])
    triggers = sorted(m.trigger_price for m in of(SubmitOrder, out))  # type: ignore[attr-defined]
    assert triggers == [fixed("99.95"), fixed(101)]


def test_a_trailing_stop_without_a_price_is_denied() -> None:
    k, _ = setup(RiskLimits())
    out = act(k, lambda s: s.trailing_stop("X", SELL, Q, offset=fixed(1)))
    assert [m.reason_code for m in of(OrderDenied, out)] == ["no_market_data"]  # type: ignore[attr-defined]
    assert not k.linked.watches


def test_close_position_cancels_everything_and_exits_reduce_only() -> None:
    k, out = bracket_open()
    entry = of(SubmitOrder, out)[0].client_order_id  # type: ignore[attr-defined]
    fill(k, entry, 100, 100)
    closing = act(k, lambda s: s.close_position("X"))
    assert len(of(CancelOrder, closing)) == 2
    (exit_,) = of(SubmitOrder, closing)
    assert exit_.side is SELL and exit_.quantity == 100 * Q and exit_.reduce_only  # type: ignore[attr-defined]


def test_linked_state_survives_a_snapshot() -> None:
    k, out = bracket_open()
    entry = of(SubmitOrder, out)[0].client_order_id  # type: ignore[attr-defined]
    fill(k, entry, 100, 100)
    k2, _ = setup(RiskLimits())
    k2.load_state(k.state())
    assert k2.state_hash() == k.state_hash()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 60)), min_size=1, max_size=12))
def test_bracket_exits_never_close_more_than_was_entered(steps: list[tuple[bool, int]]) -> None:
    """Whatever the order of partial fills on the take-profit and the stop (the venue applying
    each shrink and cancel before the next fill), the exits never sell more than the entry
    bought, and the list completes exactly when the position is flat."""
    k, out = bracket_open()
    entry = of(SubmitOrder, out)[0].client_order_id  # type: ignore[attr-defined]
    exits = legs(fill(k, entry, 100, 100))
    ids = {True: exits[OrderType.LIMIT].client_order_id,
           False: exits[OrderType.STOP].client_order_id}
    events: list[Message] = []
    for take, qty in steps:
        order = k.orders[ids[take]]
        leaves = (order.quantity - order.filled_qty) // Q
        if order.is_closed or leaves == 0:
            continue
        produced = fill(k, order.client_order_id, min(qty, leaves), 100)
        events += produced + venue_answers(k, produced)
        assert 0 <= k.portfolio.quantity("X") <= 100 * Q
    flat = k.portfolio.quantity("X") == 0
    assert (OrderListStatus.COMPLETED in statuses(events)) is flat
    if flat:
        assert not k.open


def test_oto_children_follow_the_parent_and_malformed_lists_are_refused() -> None:
    from runtime.errors import ConfigError
    from runtime.linked import Contingency, OrderList

    k, _ = setup(RiskLimits())
    k.handle(bar(1, 100))
    parent = Leg(side=BUY, order_type=OrderType.LIMIT, quantity=20 * Q, price=fixed(99))
    child = Leg(side=SELL, order_type=OrderType.LIMIT, price=fixed(101), protective=True)
    out = act(k, lambda s: s.oto("X", parent, child))
    out += ack(k, out)
    (sent,) = of(SubmitOrder, out)
    released = fill(k, sent.client_order_id, 5, 99)  # type: ignore[attr-defined]
    assert [m.quantity for m in of(SubmitOrder, released)] == [5 * Q]  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="leave quantity 0"):
        k.linked.submit("s", OrderList(instrument_id="X", contingency=Contingency.OTO,
                                       legs=(parent, parent)), 0)
    with pytest.raises(ConfigError, match="a bracket takes 3 legs"):
        k.linked.submit("s", OrderList(instrument_id="X", contingency=Contingency.BRACKET,
                                       legs=(parent, child)), 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 60)), min_size=1, max_size=12))
def test_oco_legs_never_fill_beyond_the_lists_quantity(steps: list[tuple[bool, int]]) -> None:
    """Partial fills on either leg of an OCO (the venue applying each shrink and cancel before
    the next fill): together they never fill more than the list's quantity, and the list
    completes once it is all filled."""
    k, _ = setup(RiskLimits())
    k.handle(bar(1, 100))
    take = Leg(side=SELL, order_type=OrderType.LIMIT, quantity=50 * Q, price=fixed(110))
    stop = Leg(side=SELL, order_type=OrderType.STOP, quantity=50 * Q, trigger_price=fixed(95))
    out = act(k, lambda s: s.oco("X", take, stop))
    out += ack(k, out)
    ids = {True: legs(out)[OrderType.LIMIT].client_order_id,
           False: legs(out)[OrderType.STOP].client_order_id}
    events: list[Message] = []
    for first, qty in steps:
        order = k.orders[ids[first]]
        leaves = (order.quantity - order.filled_qty) // Q
        if order.is_closed or leaves == 0:
            continue
        produced = fill(k, order.client_order_id, min(qty, leaves), 100)
        events += produced + venue_answers(k, produced)
        filled = sum(k.orders[cid].filled_qty for cid in ids.values())
        assert filled <= 50 * Q
    done = sum(k.orders[cid].filled_qty for cid in ids.values()) == 50 * Q
    assert (OrderListStatus.COMPLETED in statuses(events)) is done
