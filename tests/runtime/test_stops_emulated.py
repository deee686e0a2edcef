"""Stops held in the core for a venue without stop orders (``Kernel(emulated_stops=...)``):
nothing reaches the venue until the price the strategy sees crosses the trigger; then a market
order (a stop) or a limit (a stop-limit) goes through risk under the stop's own id, once."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa

from backtest.api import build_run
from backtest.config import build_strategy, load_config
from backtest.engine import run_loop
from backtest.feed import Feed
from runtime.kernel import Kernel
from runtime.messages import (
    Bar,
    CancelOrder,
    Message,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderListChanged,
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
from runtime.strategy import Strategy, StrategyParams
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


def test_a_held_day_stop_expires_with_its_trading_day_before_the_next_can_trigger_it() -> None:
    k, strategy = emulating()
    stop(k, time_in_force=TimeInForce.DAY)
    (cid,) = k.open
    assert trade(k, 96) == []  # the same (UTC) trading day: held
    next_day = 86_400 * 10**9 + 10**9
    out = k.handle(TradeTick(0, next_day, next_day, "X", fixed(90), Q))  # would trigger
    assert sent(out) == []
    assert k.orders[cid].status is OrderStatus.EXPIRED and "stops" not in k.state()
    assert any(isinstance(e, OrderExpired) for e in strategy.events)


def test_a_day_bracket_ends_with_the_day_its_held_stop_expiring_cancels_the_take_profit(
) -> None:
    k, _ = emulating()
    out = act(k, lambda s: s.bracket("X", BUY, 10 * Q, take_profit=fixed(110),
                                     stop_loss=fixed(95), time_in_force=TimeInForce.DAY,
                                     exit_time_in_force=TimeInForce.DAY))
    out += ack(k, out)
    out = fill(k, sent(out)[0].client_order_id, 10, 100)
    (take,) = sent(out)
    assert take.time_in_force is TimeInForce.DAY
    next_day = 86_400 * 10**9 + 10**9
    out = k.handle(TradeTick(0, next_day, next_day, "X", fixed(100), Q))
    assert [c.client_order_id for c in of(CancelOrder, out)] == [take.client_order_id]
    (changed,) = [m for m in out if isinstance(m, OrderListChanged)]
    assert changed.status is OrderListStatus.CANCELED and "OrderExpired" in changed.reason


# --- through a backtest: the simulated venue sees only the released market order ---------------

_S = 10**9
_T0 = 1_700_000_000 * _S


class StopParams(StrategyParams):
    by_hand: bool = False  # sell at market on the first bar closing at or below 98 instead


class StopOut(Strategy[StopParams]):
    """Buys 10 on the first bar, then holds a protective sell stop at 98 (or watches the closes
    itself and sells at market when one crosses it)."""

    def on_start(self) -> None:
        self.n = 0

    def on_bar(self, bar: Bar) -> None:
        self.n += 1
        if self.n == 1:
            self.buy(bar.instrument_id, 10 * Q)
        elif self.n == 2 and not self.params.by_hand:
            self.submit(bar.instrument_id, SELL, 10 * Q, order_type=OrderType.STOP,
                        trigger_price=fixed(98))
        elif self.params.by_hand and bar.close <= fixed(98) and self.position("X") > 0:
            self.sell(bar.instrument_id, 10 * Q)


def _backtest(closes: list[float], emulate: bool,
              by_hand: bool = False) -> tuple[Kernel, list[Any], Any]:
    config = load_config({
        "name": "stops", "seed": 1, "initial_cash": 10**6,
        "instruments": [{"id": "X", "price_precision": 2}],
        "data": [{"kind": "bars", "instrument": "X", "path": "in-memory"}],
        "strategies": [{"id": "s", "class": f"{__name__}:StopOut", "instruments": ["X"],
                        "params": {"by_hand": by_hand}}],
        "venue": {"latency": {"kind": "constant", "entry_ns": _S, "response_ns": _S},
                  "fills": {"kind": "bars", "price": "next_open", "path": "auto"},
                  "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 0}},
        "store": {"record": False},
    })
    n = len(closes)
    close = np.array(closes)
    open_ = np.concatenate([[close[0]], close[:-1]])  # each bar opens at the last close
    ticks = {key: np.round(v * 100).astype(np.int64) * 10**7
             for key, v in (("open", open_), ("high", np.maximum(open_, close) + 0.05),
                            ("low", np.minimum(open_, close) - 0.05), ("close", close))}
    ts = _T0 + 60 * _S * np.arange(1, n + 1)
    feed = Feed(tables={("bars", "X"): pa.table({
        "ts_event": ts, "ts_init": ts, "seq": np.zeros(n, np.int64), "instrument_id": ["X"] * n,
        **ticks, "volume": np.full(n, 10**6 * _S), "interval_ns": np.full(n, 60 * _S, np.int64)})},
        dataset_hash="stops")
    feed.index()
    kernel, venue, namespace = build_run(config, feed)
    if emulate:  # the same run, its kernel holding stops as for a venue without them
        kernel = Kernel(registry=kernel.registry,
                        strategies=[build_strategy(config, config.strategies[0])],
                        risk_limits=config.risk, initial_cash=fixed(config.initial_cash),
                        namespace=namespace, seed=config.seed, emulated_stops=("X",))
    log = run_loop(kernel, venue, feed.iter_messages(), start_ns=feed.start_ns)
    return kernel, log.fills, venue


def test_an_emulated_stop_in_a_backtest_triggers_on_the_bar_whose_close_crosses() -> None:
    """Closes 100, 100, 99, 99.5, 97.5, 97, 96: the stop (trigger 98) is held while bars close
    above it, even one whose low (98.95) comes near; the bar closing at 97.5 releases a market
    sell, which the venue fills exactly as a market sell the strategy sent on that bar. The
    native stop, for comparison, is the venue's own (it triggers on a bar's low)."""
    closes = [100, 100, 99, 99.5, 97.5, 97, 96]
    kernel, fills, _ = _backtest(closes, emulate=True)
    stop_order = next(o for o in kernel.orders.values() if o.side is SELL)
    assert (stop_order.order_type, stop_order.status) == (OrderType.MARKET, OrderStatus.FILLED)
    entry, exit_ = fills
    assert exit_.client_order_id == stop_order.client_order_id
    assert kernel.portfolio.quantity("X") == 0
    _, by_hand, _ = _backtest(closes, emulate=False, by_hand=True)
    assert [(f.last_price, f.ts_event, f.last_qty) for f in fills] == [
        (f.last_price, f.ts_event, f.last_qty) for f in by_hand]
    native, native_fills, _ = _backtest(closes, emulate=False)
    assert (native_fills[0].last_price, native_fills[0].ts_event) == (
        entry.last_price, entry.ts_event)  # the entry is the same
    assert next(o for o in native.orders.values() if o.side is SELL).order_type is OrderType.STOP


def test_a_strategy_actor_s_kernel_holds_the_stop_and_sends_its_release_to_risk() -> None:
    """Risk elsewhere (a session's strategy actor): the held stop never leaves the kernel; its
    release goes out as an intent for the risk actor, whose approval opens it as any order."""
    strategy = Scripted("s", instruments=("X",))
    host = Kernel(registry=REG, strategies=[strategy], initial_cash=fixed(1_000_000),
                  namespace="kh", seed=1, risk_elsewhere=True, emulated_stops=("X",))
    host.start(0)
    host.handle(bar(1, 100))
    assert sent(stop(host)) == []
    (cid,) = host.open
    (intent,) = sent(trade(host, 94))
    assert (intent.client_order_id, intent.order_type) == (cid, OrderType.MARKET)
    assert host.orders[cid].status is OrderStatus.INITIALIZED
    assert [o.client_order_id for o in host.unanswered()] == [cid]  # re-sent after a crash
    assert host.handle(intent) == []  # risk's answer: approved as sent
    assert host.orders[cid].status is OrderStatus.SUBMITTED and cid in host.open
    assert host.ledger.pending[("s", "X")] == -10 * Q


def test_a_trailing_stop_is_held_its_trigger_moved_in_the_core_until_it_triggers() -> None:
    k, _ = emulating()
    trade(k, 100)
    assert sent(act(k, lambda s: s.trailing_stop("X", SELL, 10 * Q, offset=fixed(2)))) == []
    (cid,) = k.open
    assert k.orders[cid].trigger_price == fixed(98)
    out = trade(k, 103)  # the trail moves up, in the core
    assert of(ModifyOrder, out) == [] and k.orders[cid].trigger_price == fixed(101)
    assert sent(trade(k, 102)) == []  # never moves back
    (release,) = sent(trade(k, 100.5))
    assert (release.client_order_id, release.order_type) == (cid, OrderType.MARKET)


def test_a_stop_that_could_never_release_is_denied_not_held() -> None:
    k, _ = emulating()
    out = act(k, lambda s: s.submit("X", SELL, 10 * Q, order_type=OrderType.STOP))
    (denial,) = of(OrderDenied, out)
    assert denial.reason_code == "invalid_order" and not k.open  # type: ignore[attr-defined]
    out = act(k, lambda s: s.submit("X", SELL, 10 * Q, order_type=OrderType.STOP_LIMIT,
                                    trigger_price=fixed(95)))
    assert "limit price" in of(OrderDenied, out)[0].reason  # type: ignore[attr-defined]
    assert not k.open and "stops" not in k.state()


def test_a_trailing_stop_with_no_price_to_trail_is_denied_as_risk_would() -> None:
    strategy = Scripted("s", instruments=("X",))
    k = Kernel(registry=REG, strategies=[strategy], initial_cash=fixed(1_000_000),
               namespace="kt", seed=1, emulated_stops=("X",))
    k.start(0)
    out = act(k, lambda s: s.trailing_stop("X", SELL, 10 * Q, offset=fixed(2)))
    (denial,) = of(OrderDenied, out)
    assert denial.reason_code == "no_market_data" and not k.open  # type: ignore[attr-defined]


def test_a_partial_take_profit_shrinks_the_held_stop_in_the_core() -> None:
    k, _ = emulating()
    out = act(k, lambda s: s.bracket("X", BUY, 10 * Q, take_profit=fixed(110),
                                     stop_loss=fixed(95)))
    out += ack(k, out)
    out = fill(k, sent(out)[0].client_order_id, 10, 100)
    take = sent(out)[0].client_order_id
    (held,) = (c for c, o in k.open.items() if o.order_type is OrderType.STOP)
    out = fill(k, take, 4, 110)
    assert of(ModifyOrder, out) == [] and k.orders[held].quantity == 6 * Q
    (release,) = sent(trade(k, 94))
    assert release.quantity == 6 * Q
