"""Stops held in the core for a venue without stop orders (``Kernel(emulated_stops=...)``):
nothing reaches the venue until the price the strategy sees crosses the trigger; then a market
order (a stop) or a limit (a stop-limit) goes through risk under the stop's own id, once."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from runtime.kernel import Kernel
from runtime.messages import (
    CancelOrder,
    Message,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderListStatus,
    OrderSide,
    OrderType,
    OrderUpdated,
    SubmitOrder,
    TimeInForce,
    TradeTick,
)
from runtime.orders import OrderStatus
from runtime.risk import RiskLimits
from runtime.stops import HELD
from runtime.values import fixed
from tests.runtime.test_kernel import REG, bar
from tests.runtime.test_kernel_risk import Q, Scripted, act, of
from tests.runtime.test_linked import ack, fill, statuses

BUY, SELL = OrderSide.BUY, OrderSide.SELL


def emulating(limits: RiskLimits | None = None) -> tuple[Kernel, Scripted]:
    strategy = Scripted("s", instruments=("X",))
    k = Kernel(registry=REG, strategies=[strategy], risk_limits=limits or RiskLimits(),
               initial_cash=fixed(1_000_000), namespace="ke", seed=1, emulated_stops=("X",))
    k.start(0)
    k.handle(bar(1, 100))
    return k, strategy


def trade(k: Kernel, price: object) -> list[Message]:
    ts = k.now + 10**9
    return k.handle(TradeTick(0, ts, ts, "X", fixed(price), Q))


def stop(k: Kernel, side: OrderSide = SELL, trigger: object = 95, **kw: Any) -> list[Message]:
    return act(k, lambda s: s.submit("X", side, 10 * Q, order_type=kw.pop("order_type",
                                     OrderType.STOP), trigger_price=fixed(trigger), **kw))


def sent(out: list[Message]) -> list[SubmitOrder]:
    return of(SubmitOrder, out)  # type: ignore[return-value]


def test_a_held_stop_is_accepted_by_the_core_and_never_sent() -> None:
    k, strategy = emulating()
    out = stop(k)
    assert sent(out) == []
    (order,) = k.open.values()
    assert (order.status, order.venue_order_id, order.order_type) == (
        OrderStatus.ACCEPTED, HELD, OrderType.STOP)
    heard = [e for e in strategy.events if isinstance(e, OrderAccepted)]
    assert [e.client_order_id for e in heard] == [order.client_order_id]
    assert trade(k, 96) == [] and bar_out(k, 95.01) == []  # above the trigger: still held


def bar_out(k: Kernel, close: float) -> list[Message]:
    i = k.now // (60 * 10**9) + 1
    b = bar(i, 100)
    return k.handle(type(b)(seq=i, ts_event=b.ts_event, ts_init=b.ts_init, instrument_id="X",
                            open=fixed(close), high=fixed(close), low=fixed(close),
                            close=fixed(close), volume=Q, interval_ns=60 * 10**9))


def test_cancel_and_modify_of_a_held_stop_never_reach_the_venue() -> None:
    k, strategy = emulating()
    stop(k)
    (cid,) = k.open
    out = act(k, lambda s: s.modify(cid, trigger_price=fixed(94), quantity=5 * Q))
    assert of(ModifyOrder, out) == []
    order = k.orders[cid]
    assert (order.trigger_price, order.quantity, order.status) == (
        fixed(94), 5 * Q, OrderStatus.ACCEPTED)
    assert any(isinstance(e, OrderUpdated) for e in strategy.events)
    assert trade(k, 94.5) == []  # the new trigger holds
    out = act(k, lambda s: s.cancel(cid))
    assert of(CancelOrder, out) == []
    assert order.status is OrderStatus.CANCELED and cid not in k.open
    assert any(isinstance(e, OrderCanceled) for e in strategy.events)
    assert trade(k, 90) == []  # a canceled stop never triggers
    assert "stops" not in k.state()


def test_a_triggered_stop_goes_out_once_as_a_market_order_under_its_own_id() -> None:
    k, _ = emulating()
    out = act(k, lambda s: s.buy("X", 10 * Q))
    ack(k, out)
    fill(k, sent(out)[0].client_order_id, 10, 100)
    stop(k)
    (cid,) = (c for c, o in k.open.items() if o.order_type is OrderType.STOP)
    out = trade(k, 95)  # at the trigger: a sell stop triggers at or below
    (release,) = sent(out)
    assert (release.client_order_id, release.order_type, release.quantity, release.side) == (
        cid, OrderType.MARKET, 10 * Q, SELL)
    assert release.trigger_price is None and release.protective
    assert k.orders[cid].status is OrderStatus.SUBMITTED
    assert sent(trade(k, 90)) == [] and sent(trade(k, 80)) == []  # released once
    out = fill(k, cid, 10, 94.9)
    assert k.orders[cid].status is OrderStatus.FILLED


def test_a_buy_stop_limit_releases_a_limit_at_its_price() -> None:
    k, _ = emulating()
    stop(k, BUY, 105, order_type=OrderType.STOP_LIMIT, price=fixed(106),
         time_in_force=TimeInForce.DAY)
    assert sent(trade(k, 104.99)) == []
    (release,) = sent(trade(k, 105.5))
    assert (release.order_type, release.price, release.time_in_force) == (
        OrderType.LIMIT, fixed(106), TimeInForce.DAY)


def test_a_release_risk_denies_denies_the_stop() -> None:
    k, strategy = emulating(RiskLimits(max_order_notional=Decimal(500)))
    stop(k)  # held: risk sees the market order it releases, not the stop
    (cid,) = k.open
    out = trade(k, 94)
    assert sent(out) == []
    (denial,) = of(OrderDenied, out)
    assert denial.client_order_id == cid  # type: ignore[attr-defined]
    assert k.orders[cid].status is OrderStatus.DENIED and cid not in k.open
    assert k.ledger.pending.get(("s", "X"), 0) == 0
    assert any(isinstance(e, OrderDenied) for e in strategy.events)


def test_a_held_stop_survives_a_restore_and_triggers_once() -> None:
    k, _ = emulating()
    stop(k)
    state = k.state()
    assert list(state["stops"]["held"]) == list(k.open)
    k2, _ = emulating()
    k2.load_state(state)
    assert k2.state_hash() == k.state_hash()
    (release,) = sent(trade(k2, 94))
    assert release.order_type is OrderType.MARKET
    assert "stops" not in k2.state()  # released: the venue's now
    k3, _ = emulating()
    k3.load_state(k2.state())
    assert sent(trade(k3, 90)) == []  # never released twice


def test_a_bracket_take_profit_fill_cancels_the_held_stop() -> None:
    k, _ = emulating()
    out = act(k, lambda s: s.bracket("X", BUY, 10 * Q, take_profit=fixed(110),
                                     stop_loss=fixed(95)))
    out += ack(k, out)
    (entry,) = sent(out)
    out = fill(k, entry.client_order_id, 10, 100)
    released = sent(out)
    assert [c.order_type for c in released] == [OrderType.LIMIT]  # the stop is held
    take = released[0].client_order_id
    (held,) = (c for c, o in k.open.items() if o.order_type is OrderType.STOP)
    out = fill(k, take, 10, 110)
    assert of(CancelOrder, out) == []  # the held stop is canceled in the core
    assert k.orders[held].status is OrderStatus.CANCELED
    assert OrderListStatus.COMPLETED in statuses(out)
    assert sent(trade(k, 90)) == []


def test_a_bracket_stop_triggers_once_and_cancels_the_take_profit() -> None:
    k, _ = emulating()
    out = act(k, lambda s: s.bracket("X", BUY, 10 * Q, take_profit=fixed(110),
                                     stop_loss=fixed(95)))
    out += ack(k, out)
    out = fill(k, sent(out)[0].client_order_id, 10, 100)
    take = sent(out)[0].client_order_id
    (held,) = (c for c, o in k.open.items() if o.order_type is OrderType.STOP)
    (release,) = sent(trade(k, 94))
    assert (release.client_order_id, release.order_type) == (held, OrderType.MARKET)
    assert sent(trade(k, 93)) == []
    out = fill(k, held, 10, 94)
    assert [c.client_order_id for c in of(CancelOrder, out)] == [take]
