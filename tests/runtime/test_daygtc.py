"""GTC kept alive by the core at a venue with day orders only (``Kernel(day_orders_only=...)``):
the strategy sees one GTC order; the venue sees one DAY order per trading session for what is
left of it, resubmitted at the first market data of each later trading day, once."""

from __future__ import annotations

from itertools import count
from typing import Any

import numpy as np
import pyarrow as pa

from backtest.api import build_run
from backtest.config import load_config
from backtest.engine import run_loop
from backtest.feed import Feed
from runtime.kernel import Kernel
from runtime.messages import (
    Bar,
    CancelOrder,
    Liquidity,
    Message,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderType,
    OrderUpdated,
    SubmitOrder,
    TimeInForce,
    TradeTick,
)
from runtime.orders import OrderStatus
from runtime.strategy import Strategy, StrategyParams
from runtime.values import fixed
from tests.runtime.test_kernel import REG, bar
from tests.runtime.test_kernel_risk import Q, Scripted, act, of

BUY, SELL = OrderSide.BUY, OrderSide.SELL
DAY_NS = 86_400 * 10**9
_fills = count(1)


def day_only() -> tuple[Kernel, Scripted]:
    strategy = Scripted("s", instruments=("X",))
    k = Kernel(registry=REG, strategies=[strategy], initial_cash=fixed(1_000_000),
               namespace="kg", seed=1, day_orders_only=("X",))
    k.start(0)
    k.handle(bar(1, 100))
    return k, strategy


def sent(out: list[Message]) -> list[SubmitOrder]:
    return of(SubmitOrder, out)  # type: ignore[return-value]


def trade(k: Kernel, price: float, at: int | None = None) -> list[Message]:
    ts = k.now + 10**9 if at is None else at
    return k.handle(TradeTick(0, ts, ts, "X", fixed(price), Q))


def accepted(k: Kernel, cid: str) -> list[Message]:
    return k.handle(OrderAccepted(seq=0, ts_event=k.now, ts_init=k.now, client_order_id=cid,
                                  strategy_id="s", instrument_id="X", venue_order_id=f"v-{cid}"))


def filled(k: Kernel, cid: str, qty: int, cum: int, leaves: int) -> list[Message]:
    """The venue's fill of ``cid`` (a leg's own quantities)."""
    return k.handle(OrderFilled(seq=0, ts_event=k.now, ts_init=k.now, client_order_id=cid,
                                strategy_id="s", instrument_id="X", venue_order_id=f"v-{cid}",
                                fill_id=f"f{next(_fills)}", side=BUY, last_qty=qty * Q,
                                last_price=fixed(99), cum_qty=cum * Q, leaves_qty=leaves * Q,
                                fee=0, currency="USD", liquidity=Liquidity.MAKER))


def gtc_buy(k: Kernel, qty: int = 10) -> SubmitOrder:
    (first,) = sent(act(k, lambda s: s.buy("X", qty * Q, price=fixed(99))))
    accepted(k, first.client_order_id)
    return first


def test_a_gtc_limit_goes_out_as_a_day_order_under_its_own_id() -> None:
    k, _ = day_only()
    first = gtc_buy(k)
    assert (first.time_in_force, first.order_type) == (TimeInForce.DAY, OrderType.LIMIT)
    order = k.orders[first.client_order_id]
    assert (order.time_in_force, order.status) == (TimeInForce.GTC, OrderStatus.ACCEPTED)
    assert sent(trade(k, 100)) == []  # the same trading day: nothing more
    assert k.state()["gtc"] == {first.client_order_id: ["X", 1, 0, 0, False, True]}


def test_each_later_session_resubmits_the_remainder_once_and_the_strategy_sees_one_order(
) -> None:
    k, strategy = day_only()
    cid = gtc_buy(k).client_order_id
    filled(k, cid, 4, 4, 6)
    heard = len(strategy.events)
    (leg,) = sent(trade(k, 100, at=DAY_NS + 10**9))  # the venue's day order ended, unreported
    assert (leg.client_order_id, leg.quantity, leg.price, leg.time_in_force) == (
        f"{cid}~2", 6 * Q, fixed(99), TimeInForce.DAY)
    assert sent(trade(k, 100)) == []  # once per session
    accepted(k, leg.client_order_id)
    out = filled(k, leg.client_order_id, 6, 6, 0)  # the leg's own quantities
    order = k.orders[cid]
    assert (order.status, order.filled_qty) == (OrderStatus.FILLED, 10 * Q)
    events = strategy.events[heard:]
    assert {e.client_order_id for e in events} == {cid}  # never a leg's id
    assert not [e for e in events if isinstance(e, OrderExpired)]
    (report,) = [e for e in events if isinstance(e, OrderFilled)]
    assert (report.cum_qty, report.leaves_qty) == (10 * Q, 0)
    assert k.portfolio.quantity("X") == 10 * Q and "gtc" not in k.state()
    assert of(SubmitOrder, out) == [] and sent(trade(k, 100, at=3 * DAY_NS)) == []


def test_a_venue_that_reports_the_expiry_the_order_does_not_expire() -> None:
    """The simulated venue reports a DAY order's expiry at the close: the leg is over, the
    order is not; a cancel before the next session is answered by the core."""
    k, strategy = day_only()
    cid = gtc_buy(k).client_order_id
    out = k.handle(OrderExpired(seq=0, ts_event=k.now + 10**9, ts_init=k.now + 10**9,
                                client_order_id=cid, strategy_id="s", instrument_id="X"))
    assert out == [] and k.orders[cid].status is OrderStatus.ACCEPTED
    assert not [e for e in strategy.events if isinstance(e, OrderExpired)]
    out = act(k, lambda s: s.modify(cid, price=fixed(98)))
    assert of(ModifyOrder, out) == [] and k.orders[cid].price == fixed(98)
    assert any(isinstance(e, OrderUpdated) for e in strategy.events)
    out = act(k, lambda s: s.cancel(cid))
    assert of(CancelOrder, out) == []  # nothing at the venue to cancel
    assert k.orders[cid].status is OrderStatus.CANCELED
    assert sent(trade(k, 100, at=DAY_NS + 10**9)) == []  # and never resubmitted


def test_cancel_and_modify_go_to_the_current_leg() -> None:
    k, _ = day_only()
    cid = gtc_buy(k).client_order_id
    filled(k, cid, 3, 3, 7)
    (leg,) = sent(trade(k, 100, at=DAY_NS + 10**9))
    accepted(k, leg.client_order_id)
    (modify,) = of(ModifyOrder, act(k, lambda s: s.modify(cid, quantity=8 * Q)))
    assert (modify.client_order_id, modify.quantity) == (leg.client_order_id, 5 * Q)  # type: ignore[attr-defined]
    k.handle(OrderUpdated(seq=0, ts_event=k.now, ts_init=k.now,
                          client_order_id=leg.client_order_id, strategy_id="s",
                          instrument_id="X", quantity=8 * Q, price=fixed(99)))
    assert k.orders[cid].quantity == 8 * Q
    (cancel,) = of(CancelOrder, act(k, lambda s: s.cancel(cid)))
    assert cancel.client_order_id == leg.client_order_id  # type: ignore[attr-defined]
    k.handle(OrderCanceled(seq=0, ts_event=k.now, ts_init=k.now,
                           client_order_id=leg.client_order_id, strategy_id="s",
                           instrument_id="X"))
    assert k.orders[cid].status is OrderStatus.CANCELED and "gtc" not in k.state()


def test_a_rejected_resubmission_cancels_the_order_with_the_venue_s_reason() -> None:
    k, _ = day_only()
    cid = gtc_buy(k).client_order_id
    (leg,) = sent(trade(k, 100, at=DAY_NS + 10**9))
    k.handle(OrderRejected(seq=0, ts_event=k.now, ts_init=k.now,
                           client_order_id=leg.client_order_id, strategy_id="s",
                           instrument_id="X", reason="price out of the day's band"))
    order = k.orders[cid]
    assert order.status is OrderStatus.CANCELED
    assert "session 2 was rejected: price out of the day's band" in order.reason
    assert not k.open and k.ledger.pending.get(("s", "X"), 0) == 0
    assert sent(trade(k, 100, at=2 * DAY_NS + 10**9)) == []


def test_legs_survive_a_restore_neither_resent_nor_lost() -> None:
    k, _ = day_only()
    cid = gtc_buy(k).client_order_id
    (leg,) = sent(trade(k, 100, at=DAY_NS + 10**9))
    k2, _ = day_only()
    k2.load_state(k.state())
    assert k2.state_hash() == k.state_hash()
    assert sent(trade(k2, 100, at=DAY_NS + 2 * 10**9)) == []  # this session's leg is out
    accepted(k2, leg.client_order_id)
    assert k2.orders[cid].venue_order_id == f"v-{leg.client_order_id}"
    (third,) = sent(trade(k2, 100, at=2 * DAY_NS + 10**9))
    assert third.client_order_id == f"{cid}~3"


def test_only_resting_gtc_limits_are_kept_alive() -> None:
    """A market order does not rest and a DAY limit ends with its day: both go as they are;
    an instrument whose venue takes GTC is left alone."""
    k, _ = day_only()
    (market,) = sent(act(k, lambda s: s.buy("X", Q)))
    (day,) = sent(act(k, lambda s: s.buy("X", Q, price=fixed(98),
                                         time_in_force=TimeInForce.DAY)))
    assert market.time_in_force is TimeInForce.GTC and day.time_in_force is TimeInForce.DAY
    assert "gtc" not in k.state()
    strategy = Scripted("s", instruments=("X",))
    plain = Kernel(registry=REG, strategies=[strategy], initial_cash=fixed(1_000_000),
                   namespace="kp", seed=1)
    plain.start(0)
    plain.handle(bar(1, 100))
    (limit,) = sent(act(plain, lambda s: s.buy("X", Q, price=fixed(99))))
    assert limit.time_in_force is TimeInForce.GTC


def test_a_cancel_in_flight_when_the_leg_ends_cancels_the_order() -> None:
    """Reported (the simulated venue's expiry at the close) or not (Shioaji's ROD, seen at the
    next session's first data), a leg that ends under a pending cancel ends the order: the
    cancel is what was asked, and nothing is resubmitted; the venue's late answer changes
    nothing."""
    k, _ = day_only()
    cid = gtc_buy(k).client_order_id
    act(k, lambda s: s.cancel(cid))
    assert k.orders[cid].status is OrderStatus.PENDING_CANCEL
    k.handle(OrderExpired(seq=0, ts_event=k.now + 1, ts_init=k.now + 1, client_order_id=cid,
                          strategy_id="s", instrument_id="X"))
    assert k.orders[cid].status is OrderStatus.CANCELED
    k2, _ = day_only()
    cid2 = gtc_buy(k2).client_order_id
    act(k2, lambda s: s.cancel(cid2))
    assert sent(trade(k2, 100, at=DAY_NS + 10**9)) == []
    assert k2.orders[cid2].status is OrderStatus.CANCELED and "gtc" not in k2.state()


# --- through a backtest whose simulated venue has day orders only, as Shioaji ------------------

_S = 10**9
_MIDNIGHT = 1_700_006_400 * _S  # a UTC midnight: X has no sessions, its day is the UTC day


class RestParams(StrategyParams):
    tif: str = "gtc"


class RestingBid(Strategy[RestParams]):
    """A bid at 97 on the first bar, left to rest."""

    def on_start(self) -> None:
        self.sent = False
        self.events_seen: list[Any] = []

    def on_order_event(self, event: Any) -> None:
        self.events_seen.append(event)

    def on_bar(self, bar: Bar) -> None:
        if not self.sent:
            self.sent = True
            self.buy(bar.instrument_id, 10 * Q, price=fixed(97),
                     time_in_force=TimeInForce(self.params.tif))


def _run(day_only_venue: bool, tif: str = "gtc") -> tuple[Kernel, list[Any], RestingBid]:
    """Closes 100, 99.5, 99 before midnight; 98.5, 98, 96.5 after (the last bar's low crosses
    97): a bid that rests across the night fills on the last bar."""
    config = load_config({
        "name": "gtc", "seed": 1, "initial_cash": 10**6,
        "instruments": [{"id": "X", "price_precision": 2}],
        "data": [{"kind": "bars", "instrument": "X", "path": "in-memory"}],
        "strategies": [{"id": "s", "class": f"{__name__}:RestingBid", "instruments": ["X"],
                        "params": {"tif": tif}}],
        "venue": {"latency": {"kind": "constant", "entry_ns": _S, "response_ns": _S},
                  "fills": {"kind": "bars", "price": "next_open", "path": "auto"},
                  "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 0},
                  "day_orders_only": day_only_venue},
        "store": {"record": False},
    })
    close = np.array([100, 99.5, 99, 98.5, 98, 96.5])
    open_ = np.concatenate([[close[0]], close[:-1]])
    ticks = {key: np.round(v * 100).astype(np.int64) * 10**7
             for key, v in (("open", open_), ("high", np.maximum(open_, close) + 0.05),
                            ("low", np.minimum(open_, close) - 0.05), ("close", close))}
    ts = _MIDNIGHT + 60 * _S * np.array([-4, -3, -2, 2, 3, 4])
    n = len(ts)
    feed = Feed(tables={("bars", "X"): pa.table({
        "ts_event": ts, "ts_init": ts, "seq": np.zeros(n, np.int64), "instrument_id": ["X"] * n,
        **ticks, "volume": np.full(n, 10**6 * _S), "interval_ns": np.full(n, 60 * _S, np.int64)})},
        dataset_hash="gtc")
    feed.index()
    kernel, venue, _ = build_run(config, feed)
    log = run_loop(kernel, venue, feed.iter_messages(), start_ns=feed.start_ns)
    strategy = kernel.strategies[0]
    assert isinstance(strategy, RestingBid)
    return kernel, log.fills, strategy


def test_a_backtest_at_a_day_orders_venue_keeps_the_gtc_bid_and_fills_it_as_native_gtc() -> None:
    """The venue expires the day order at midnight (and reports it); the core sends the bid
    again at the first bar after, under ``<id>~2``: it fills on the bar that crosses, at the
    price and time a venue with GTC fills it, under the order's own id; the strategy never
    hears of an expiry."""
    kernel, fills, strategy = _run(day_only_venue=True)
    (order,) = kernel.orders.values()
    assert (order.status, order.time_in_force) == (OrderStatus.FILLED, TimeInForce.GTC)
    assert [f.client_order_id for f in fills] == [order.client_order_id]
    assert not [e for e in strategy.events_seen if isinstance(e, OrderExpired)]
    _, native, _ = _run(day_only_venue=False)
    assert [(f.last_price, f.ts_event, f.last_qty) for f in fills] == [
        (f.last_price, f.ts_event, f.last_qty) for f in native]
    _, day_fills, day_strategy = _run(day_only_venue=True, tif="day")  # a DAY bid ends
    assert day_fills == [] and any(isinstance(e, OrderExpired)
                                   for e in day_strategy.events_seen)


def test_a_day_orders_venue_rejects_a_gtc_limit_the_core_did_not_keep_by_name() -> None:
    """The simulated venue behaves as the broker: a GTC limit from a kernel not told (here,
    built by hand without ``day_orders_only``) is rejected, naming why."""
    from backtest.models.config import VenueModels
    from backtest.venue.simulated import SimulatedVenue

    models = VenueModels.model_validate({
        "latency": {"kind": "constant", "entry_ns": _S, "response_ns": _S},
        "fills": {"kind": "bars", "price": "next_open", "path": "auto"},
        "slippage": {"kind": "none"}, "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 0},
        "day_orders_only": True})
    venue = SimulatedVenue.from_models(REG, models, rng=np.random.default_rng(1))
    venue.on_market(bar(1, 100))
    venue.submit(SubmitOrder(seq=1, ts_event=bar(1).ts_event, ts_init=bar(1).ts_event,
                             client_order_id="g-1", strategy_id="s", instrument_id="X",
                             side=BUY, order_type=OrderType.LIMIT, quantity=Q,
                             price=fixed(99), time_in_force=TimeInForce.GTC), bar(1).ts_event)
    venue.on_market(bar(3, 100))
    (rejected,) = [r for r in venue.drain_reports() if isinstance(r, OrderRejected)]
    assert "day orders only" in rejected.reason


def test_risk_elsewhere_the_strategy_s_kernel_sends_the_legs_risk_s_passes_them_on_once(
) -> None:
    """A session's split: the strategy actor's kernel sends each session's leg as an intent (at
    the message that starts the session, as a backtest does); the risk actor's kernel, which
    follows the same legs from the same data, passes it on to the venue once, a retry
    dropped; both read a leg's fill as the order's; a cancel between legs is answered in both
    and reaches the venue from neither."""
    strategy = Scripted("s", instruments=("X",))
    host = Kernel(registry=REG, strategies=[strategy], initial_cash=fixed(1_000_000),
                  namespace="kh", seed=1, risk_elsewhere=True, day_orders_only=("X",))
    risk = Kernel(registry=REG, strategies=[], initial_cash=fixed(1_000_000),
                  namespace="kh", seed=1, day_orders_only=("X",))
    for k in (host, risk):
        k.start(0)
        k.handle(bar(1, 100))
    (intent,) = sent(act(host, lambda s: s.buy("X", 10 * Q, price=fixed(99))))
    cid = intent.client_order_id
    (approved,) = sent(risk.handle(intent))
    assert approved.time_in_force is TimeInForce.DAY
    assert host.handle(approved) == []
    for k in (host, risk):
        accepted(k, cid)
        filled(k, cid, 4, 4, 6)
    at = DAY_NS + 10**9
    assert sent(trade(risk, 100, at=at)) == []  # risk's kernel follows: it sends no leg
    (leg,) = sent(trade(host, 100, at=at))
    assert (leg.client_order_id, leg.quantity) == (f"{cid}~2", 6 * Q)
    assert sent(risk.handle(leg)) == [leg]  # passed on to the venue as it is
    assert sent(risk.handle(leg)) == []  # a retried intent: dropped
    assert host.handle(leg) == []  # risk's output reaching the host: nothing
    assert host.state()["gtc"] == risk.state()["gtc"]
    for k in (host, risk):
        accepted(k, leg.client_order_id)
        filled(k, leg.client_order_id, 2, 2, 4)
        assert k.orders[cid].filled_qty == 6 * Q
    (modify,) = of(ModifyOrder, risk.handle(ModifyOrder(
        seq=0, ts_event=risk.now, ts_init=risk.now, client_order_id=cid, strategy_id="s",
        instrument_id="X", price=fixed(98))))
    assert modify.client_order_id == leg.client_order_id  # type: ignore[attr-defined]
    for k in (host, risk):
        k.handle(OrderUpdated(seq=0, ts_event=k.now, ts_init=k.now,
                              client_order_id=leg.client_order_id, strategy_id="s",
                              instrument_id="X", quantity=10 * Q, price=fixed(98)))
        k.handle(OrderExpired(seq=0, ts_event=at + 10**9, ts_init=at + 10**9,
                              client_order_id=leg.client_order_id, strategy_id="s",
                              instrument_id="X"))
    (cancel,) = of(CancelOrder, act(host, lambda s: s.cancel(cid)))  # between legs
    assert host.orders[cid].status is OrderStatus.CANCELED
    assert of(CancelOrder, risk.handle(cancel)) == []  # answered there too, nothing sent
    assert risk.orders[cid].status is OrderStatus.CANCELED
    assert "gtc" not in host.state() and "gtc" not in risk.state()


def test_a_follower_takes_a_leg_sent_before_it_saw_the_session_start() -> None:
    """Risk's kernel may get the strategy's leg before the market message that rolls its own
    day: it takes the leg as the next one and passes it on, once; a leg out of turn is
    dropped."""
    strategy = Scripted("s", instruments=("X",))
    host = Kernel(registry=REG, strategies=[strategy], initial_cash=fixed(1_000_000),
                  namespace="kf", seed=1, risk_elsewhere=True, day_orders_only=("X",))
    risk = Kernel(registry=REG, strategies=[], initial_cash=fixed(1_000_000),
                  namespace="kf", seed=1, day_orders_only=("X",))
    for k in (host, risk):
        k.start(0)
        k.handle(bar(1, 100))
    (intent,) = sent(act(host, lambda s: s.buy("X", 10 * Q, price=fixed(99))))
    host.handle(sent(risk.handle(intent))[0])
    for k in (host, risk):
        accepted(k, intent.client_order_id)
    (leg,) = sent(trade(host, 100, at=DAY_NS + 10**9))
    skipped = SubmitOrder(**{**{f: getattr(leg, f) for f in leg.__struct_fields__},
                             "client_order_id": f"{intent.client_order_id}~3"})
    assert sent(risk.handle(skipped)) == []  # not the next leg
    assert sent(risk.handle(leg)) == [leg]
    assert sent(trade(risk, 100, at=DAY_NS + 2 * 10**9)) == []  # rolled already
    assert host.state()["gtc"] == risk.state()["gtc"]
