"""Linked orders on a venue that links them itself (``Kernel(native_lists=...)``: IB): every
leg leaves at once, children with their parent's id, OCO legs with the list's OCA group; the
venue releases, reduces and cancels, the core follows and reports the list."""

from __future__ import annotations

from decimal import Decimal

from runtime.kernel import Kernel
from runtime.linked import Leg
from runtime.messages import (
    CancelOrder,
    Message,
    ModifyOrder,
    OrderCanceled,
    OrderDenied,
    OrderListChanged,
    OrderListStatus,
    OrderSide,
    OrderType,
    SubmitOrder,
)
from runtime.risk import RiskLimits
from runtime.values import fixed
from tests.runtime.test_kernel import REG, bar
from tests.runtime.test_kernel_risk import Q, Scripted, act, of
from tests.runtime.test_linked import ack, fill, statuses, venue_answers

BUY, SELL = OrderSide.BUY, OrderSide.SELL


def native(limits: RiskLimits | None = None) -> Kernel:
    k = Kernel(registry=REG, strategies=[Scripted("s", instruments=("X",))],
               risk_limits=limits or RiskLimits(), initial_cash=fixed(1_000_000),
               namespace="kn", seed=1, native_lists=("X",))
    k.start(0)
    k.handle(bar(1, 100))
    return k


def sent(out: list[Message]) -> list[SubmitOrder]:
    return of(SubmitOrder, out)  # type: ignore[return-value]


def bracket(k: Kernel, take_profit: object = 110) -> tuple[list[SubmitOrder], list[Message]]:
    out = act(k, lambda s: s.bracket("X", BUY, 100 * Q, take_profit=fixed(take_profit),
                                     stop_loss=fixed(95)))
    return sent(out), out + ack(k, out)


def canceled_by_venue(k: Kernel, cid: str) -> list[Message]:
    return k.handle(OrderCanceled(seq=0, ts_event=k.now, ts_init=k.now, client_order_id=cid,
                                  strategy_id="s", instrument_id="X"))


def test_a_native_bracket_sends_every_leg_at_once_linked() -> None:
    k = native()
    (entry, take, stop), out = bracket(k)
    (list_id,) = {m.list_id for m in of(OrderListChanged, out)}  # type: ignore[attr-defined]
    assert (entry.parent_id, entry.oca_group) == ("", "")
    for exit_ in (take, stop):
        assert exit_.parent_id == entry.client_order_id and exit_.oca_group == list_id
        assert exit_.quantity == entry.quantity and exit_.side is SELL and exit_.protective
    assert (take.order_type, stop.order_type) == (OrderType.LIMIT, OrderType.STOP)
    assert statuses(out) == [OrderListStatus.SUBMITTED]
    assert k.context.committed("s", "X") == 100 * Q  # the exits do not count toward a target


def test_the_venue_releases_and_reduces_the_core_only_follows() -> None:
    k = native()
    (entry, take, stop), _ = bracket(k)
    released = fill(k, entry.client_order_id, 100, 100)
    assert sent(released) == [] and statuses(released) == [OrderListStatus.RELEASED]
    partial = fill(k, take.client_order_id, 40, 110)
    assert of(ModifyOrder, partial) == [] and of(CancelOrder, partial) == []  # IB's OCA does
    done = fill(k, take.client_order_id, 60, 110)
    assert of(CancelOrder, done) == []
    end = canceled_by_venue(k, stop.client_order_id)  # the OCA group cancelled it
    assert statuses(end) == [OrderListStatus.COMPLETED]
    assert k.portfolio.quantity("X") == 0 and not k.open


def test_an_entry_closed_partly_filled_protects_what_it_filled() -> None:
    """IB holds a bracket's exits until the entry has filled in full and cancels them with a
    cancelled entry: the partial fill would stand unprotected, so the core cancels the held
    exits and sends them again for the filled quantity, in an OCA group of their own."""
    k = native()
    (entry, take, stop), _ = bracket(k)
    partial = fill(k, entry.client_order_id, 30, 100)
    assert statuses(partial) == []  # nothing released: the venue still holds the exits
    out = canceled_by_venue(k, entry.client_order_id)
    assert {m.client_order_id for m in of(CancelOrder, out)} == {  # type: ignore[attr-defined]
        take.client_order_id, stop.client_order_id}
    take2, stop2 = sent(out)
    assert (take2.order_type, take2.price, stop2.order_type, stop2.trigger_price) == (
        OrderType.LIMIT, take.price, OrderType.STOP, stop.trigger_price)
    assert take2.quantity == stop2.quantity == 30 * Q
    assert take2.parent_id == stop2.parent_id == ""
    assert take2.oca_group == stop2.oca_group == take2.client_order_id
    assert statuses(out) == [OrderListStatus.RELEASED]
    end = venue_answers(k, out)
    assert OrderListStatus.CANCELED not in statuses(end)  # the old exits' cancels cascade nothing
    assert sorted(k.open) == sorted([take2.client_order_id, stop2.client_order_id])
    done = fill(k, stop2.client_order_id, 30, 95)
    assert statuses(done + canceled_by_venue(k, take2.client_order_id)) == [
        OrderListStatus.COMPLETED]
    assert k.portfolio.quantity("X") == 0 and not k.open


def test_an_entry_closed_unfilled_cancels_the_list_and_its_exits() -> None:
    k = native()
    (entry, take, stop), _ = bracket(k)
    out = canceled_by_venue(k, entry.client_order_id)
    assert {m.client_order_id for m in of(CancelOrder, out)} == {  # type: ignore[attr-defined]
        take.client_order_id, stop.client_order_id}
    (changed,) = of(OrderListChanged, out)
    assert changed.status is OrderListStatus.CANCELED  # type: ignore[attr-defined]
    end = venue_answers(k, out)
    assert statuses(end) == [OrderListStatus.COMPLETED] and not k.open


def test_a_refused_exit_cancels_the_entry_before_the_venue_transmits_it() -> None:
    k = native()
    out = act(k, lambda s: s.bracket("X", BUY, 100 * Q, take_profit=fixed("110.005"),
                                     stop_loss=fixed(95)))  # the take-profit is off the grid
    (entry,) = sent(out)  # the stop never leaves alone
    codes = [m.reason_code for m in of(OrderDenied, out)]  # type: ignore[attr-defined]
    assert codes == ["instrument.tick_size", "order_list"]
    assert [m.client_order_id for m in of(CancelOrder, out)] == [entry.client_order_id]


def test_a_native_bracket_exit_is_not_an_opening_order_for_risk() -> None:
    """Held by the venue until the entry fills and bounded by its OCA group, an exit only
    ever closes what the entry opened: like any exit, the notional and position limits do not
    deny it (its 11,000 at the take-profit would pass none of 10,500)."""
    k = native(RiskLimits(max_order_notional=Decimal(10_500)))
    (_, take, _), out = bracket(k)
    assert of(OrderDenied, out) == [] and take.price == fixed(110)


def test_native_oco_and_oto() -> None:
    k = native()
    out = act(k, lambda s: s.oco("X", Leg(side=BUY, order_type=OrderType.LIMIT, quantity=10 * Q,
                                          price=fixed(95)),
                                 Leg(side=BUY, order_type=OrderType.STOP, quantity=10 * Q,
                                     trigger_price=fixed(105))))
    low, high = sent(out)
    assert low.oca_group == high.oca_group != "" and low.parent_id == high.parent_id == ""
    ack(k, out)
    assert of(CancelOrder, fill(k, low.client_order_id, 10, 95)) == []  # the venue cancels
    assert statuses(canceled_by_venue(k, high.client_order_id)) == [OrderListStatus.COMPLETED]
    out = act(k, lambda s: s.oto("X", Leg(side=BUY, order_type=OrderType.LIMIT,
                                          quantity=20 * Q, price=fixed(99)),
                                 Leg(side=SELL, order_type=OrderType.LIMIT, price=fixed(104))))
    parent, child = sent(out)
    assert (child.parent_id, child.oca_group, child.quantity) == (
        parent.client_order_id, "", 20 * Q)


def trailing(trail_kw: dict[str, object], prices: tuple[int, ...] = (100,)) -> list[Message]:
    k = Kernel(registry=REG, strategies=[Scripted("s", instruments=("X",))],
               initial_cash=fixed(1_000_000), namespace="kt", seed=1, native_trailing=("X",))
    k.start(0)
    for i, price in enumerate(prices, start=1):
        k.handle(bar(i, price))
    out = act(k, lambda s: s.trailing_stop("X", SELL, 10 * Q, **trail_kw))
    moved: list[Message] = []
    ack(k, out)
    for i, price in enumerate((103, 106), start=len(prices) + 1):
        moved += k.handle(bar(i, price))
    return out + moved


def test_a_venue_trailed_stop_leaves_with_its_trail_and_the_core_never_moves_it() -> None:
    """Where the venue trails (``native_trailing``: IB) a trail off the last price by an
    offset or bps leaves as a stop with its trail, its trigger the initial stop; new highs
    then move nothing here."""
    for kw, amount, bps in (({"offset": fixed(2)}, fixed(2), 0), ({"bps": 200}, 0, 200)):
        out = trailing(kw)
        (stop,) = sent(out)
        assert (stop.order_type, stop.trigger_price) == (OrderType.STOP, fixed(98))
        assert (stop.trail_amount, stop.trail_bps) == (amount, bps)
        assert of(ModifyOrder, out) == []


def test_a_trail_the_venue_cannot_follow_is_moved_by_the_core() -> None:
    """Mid and ticks have no venue field: a plain stop the core moves, as everywhere."""
    for kw in ({"offset": fixed(2), "reference": "mid"}, {"ticks": 200}):
        out = trailing(kw)
        (stop,) = sent(out)
        assert (stop.trail_amount, stop.trail_bps) == (0, 0)
        assert of(ModifyOrder, out) != []


def test_a_venue_trailed_stop_with_no_price_yet_is_denied() -> None:
    """No last price to start the trail from: denied (``no_market_data``), never sent bare."""
    k = Kernel(registry=REG, strategies=[Scripted("s", instruments=("X",))],
               initial_cash=fixed(1_000_000), namespace="kt", seed=1, native_trailing=("X",))
    k.start(0)
    out = act(k, lambda s: s.trailing_stop("X", SELL, 10 * Q, offset=fixed(2)))
    assert sent(out) == []
    assert [m.reason_code for m in of(OrderDenied, out)] == [  # type: ignore[attr-defined]
        "no_market_data"]


def test_a_native_oto_parent_closed_partly_filled_sends_its_child_again_for_the_fill() -> None:
    k = native()
    out = act(k, lambda s: s.oto("X", Leg(side=BUY, order_type=OrderType.LIMIT,
                                          quantity=20 * Q, price=fixed(99)),
                                 Leg(side=SELL, order_type=OrderType.LIMIT, price=fixed(104))))
    parent, child = sent(out)
    ack(k, out)
    fill(k, parent.client_order_id, 5, 99)
    again = canceled_by_venue(k, parent.client_order_id)
    assert [m.client_order_id for m in of(CancelOrder, again)] == [  # type: ignore[attr-defined]
        child.client_order_id]
    (child2,) = sent(again)
    assert (child2.quantity, child2.parent_id, child2.oca_group, child2.price) == (
        5 * Q, "", "", fixed(104))


def test_what_an_exit_already_filled_is_not_protected_twice() -> None:
    """A venue that worked an exit before the entry closed (IB holds them; another might not):
    the exits sent again cover only what is still held."""
    k = native()
    (entry, take, _), _ = bracket(k)
    fill(k, entry.client_order_id, 30, 100)
    fill(k, take.client_order_id, 10, 110)
    (take2, stop2) = sent(canceled_by_venue(k, entry.client_order_id))
    assert take2.quantity == stop2.quantity == 20 * Q
    k2 = native()  # the take-profit took all 30 before the entry closed: nothing to send
    (entry, take, _), _ = bracket(k2)
    fill(k2, entry.client_order_id, 30, 100)
    fill(k2, take.client_order_id, 30, 110)
    assert sent(canceled_by_venue(k2, entry.client_order_id)) == []
