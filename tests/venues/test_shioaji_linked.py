"""Linked orders at Shioaji, which links none natively: the core emulates them (releases,
cancels) and the adapter sees plain orders. A kernel drives the Shioaji adapter through the
callback-level fake: what the core sends goes to the adapter, what the fake reports comes back
to the kernel, until both are quiet."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import yaml

from actors.venues.broker_config import day_orders_only, emulated_stops, native_lists
from actors.venues.links import open_broker_gateway
from actors.venues.shioaji_support import ShioajiConfig
from runtime.instruments import InstrumentRegistry
from runtime.journal import Journal
from runtime.kernel import Kernel
from runtime.linked import Leg
from runtime.messages import (
    Bar,
    CancelOrder,
    Message,
    ModifyOrder,
    OrderCanceled,
    OrderListChanged,
    OrderListStatus,
    OrderRejected,
    OrderSide,
    OrderType,
    SubmitOrder,
    TimeInForce,
    TradeTick,
)
from runtime.orders import OrderStatus
from runtime.stops import HELD
from runtime.strategy import Strategy
from runtime.taiwan import twse_stock
from runtime.values import Rounding, fixed
from tests.runtime.test_kernel_risk import Scripted, act
from tests.venues.fake_shioaji import FakeShioaji, import_sj
from tests.venues.harness import ShioajiHarness

INST = "2330.TWSE"
LOT = 1_000 * 10**9
BUY, SELL = OrderSide.BUY, OrderSide.SELL
_ts = count(10**12)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[ShioajiHarness]:
    harness = ShioajiHarness(tmp_path)
    yield harness
    harness.close()


def kernel() -> Kernel:
    """A kernel as a Shioaji session builds it: lists emulated, stops held in the core, GTC
    kept alive as one ROD order per session."""
    assert native_lists(ShioajiConfig(), [INST]) == ()
    k = Kernel(registry=InstrumentRegistry([twse_stock("2330")]),
               strategies=[Scripted("s", instruments=(INST,))], initial_cash=fixed(10**8),
               currency="TWD", namespace="sj", seed=1,
               emulated_stops=emulated_stops(ShioajiConfig(), [INST]),
               day_orders_only=day_orders_only(ShioajiConfig(), [INST]))
    k.start(0)
    k.handle(Bar(seq=1, ts_event=60 * 10**9, ts_init=60 * 10**9, instrument_id=INST,
                 open=fixed(600), high=fixed(600), low=fixed(600), close=fixed(600),
                 volume=10 * LOT, interval_ns=60 * 10**9))
    return k


def route(k: Kernel, h: ShioajiHarness, out: list[Message]) -> list[Message]:
    """``out``'s commands to the adapter, its reports to the kernel, until quiet; everything
    the kernel produced on the way."""
    seen: list[Message] = list(out)
    while True:
        for msg in out:
            if isinstance(msg, SubmitOrder):
                h.port.submit(msg, next(_ts))
            elif isinstance(msg, CancelOrder):
                h.port.cancel(msg, next(_ts))
            elif isinstance(msg, ModifyOrder):
                h.port.modify(msg, next(_ts))
        reports = h.reports()
        if not reports:
            return seen
        out = [m for report in reports for m in k.handle(report)]
        seen += reports + out


def deal(k: Kernel, h: ShioajiHarness, cid: str, lots: int, price: float) -> list[Message]:
    h.fake.deal(h.trade_of(cid), lots, price)
    return route(k, h, [])


def submits(seen: list[Message]) -> dict[OrderType, SubmitOrder]:
    return {m.order_type: m for m in seen if isinstance(m, SubmitOrder)}


def list_statuses(seen: list[Message]) -> list[OrderListStatus]:
    return [m.status for m in seen if isinstance(m, OrderListChanged)]


def test_an_oco_at_shioaji_a_fill_of_one_leg_cancels_the_other_at_the_broker(
        h: ShioajiHarness) -> None:
    """Two exits as an OCO (a take-profit and a lower exit, both limits: Shioaji has no stop
    order): the take-profit fills at the broker and the core cancels the other there."""
    k = kernel()
    entry = route(k, h, act(k, lambda s: s.buy(INST, 2 * LOT, price=fixed(600),
                                               time_in_force=TimeInForce.DAY)))
    (buy,) = [m for m in entry if isinstance(m, SubmitOrder)]
    deal(k, h, buy.client_order_id, 2, 600.0)
    assert k.portfolio.quantity(INST) == 2 * LOT
    legs = (Leg(side=SELL, order_type=OrderType.LIMIT, quantity=2 * LOT, price=fixed(620),
                time_in_force=TimeInForce.DAY, protective=True),
            Leg(side=SELL, order_type=OrderType.LIMIT, quantity=2 * LOT, price=fixed(610),
                time_in_force=TimeInForce.DAY, protective=True))
    seen = route(k, h, act(k, lambda s: s.oco(INST, *legs)))
    high, low = (m.client_order_id for m in seen if isinstance(m, SubmitOrder))
    assert h.port.send_log.orders.keys() >= {high, low}  # both at the broker, plain orders
    done = deal(k, h, low, 1, 610.0)  # a partial fill shrinks the other by as much
    assert [(m.client_order_id, m.quantity) for m in done if isinstance(m, ModifyOrder)] == [
        (high, LOT)]
    assert h.fake.trade_of(h.port.send_log.orders[high].broker_ids["tag"]).status \
        .order_quantity == 1
    done = deal(k, h, low, 1, 610.0)
    assert [m.client_order_id for m in done if isinstance(m, CancelOrder)] == [high]
    assert any(isinstance(m, OrderCanceled) and m.client_order_id == high for m in done)
    trade = h.fake.trade_of(h.port.send_log.orders[high].broker_ids["tag"])
    assert str(trade.status.status.value) == "Cancelled"  # cancelled at the broker
    assert list_statuses(done)[-1] is OrderListStatus.COMPLETED
    assert k.portfolio.quantity(INST) == 0 and not k.open


def bracket(k: Kernel, h: ShioajiHarness, exits: TimeInForce = TimeInForce.DAY,
            ) -> tuple[str, list[Message]]:
    """A bracket for 2 lots entered at 600 (take-profit 620, stop-loss 590), its entry filled:
    the entry's id and what the fill set off."""
    start = route(k, h, act(k, lambda s: s.bracket(INST, BUY, 2 * LOT, entry_price=fixed(600),
                                                    take_profit=fixed(620),
                                                    stop_loss=fixed(590),
                                                    time_in_force=TimeInForce.DAY,
                                                    exit_time_in_force=exits)))
    (entry,) = [m for m in start if isinstance(m, SubmitOrder)]
    return entry.client_order_id, deal(k, h, entry.client_order_id, 2, 600.0)


def held_stop(k: Kernel) -> str:
    (cid,) = [c for c, o in k.open.items() if o.order_type is OrderType.STOP]
    assert k.orders[cid].venue_order_id == HELD
    return cid


def tick(k: Kernel, h: ShioajiHarness, price: float) -> list[Message]:
    ts = next(_ts)
    return route(k, h, k.handle(TradeTick(0, ts, ts, INST, fixed(price), LOT)))


def at_broker(h: ShioajiHarness) -> list[str]:
    tags = {entry.broker_ids["tag"]: cid for cid, entry in h.port.send_log.orders.items()}
    return [tags[t.order.custom_field] for t in h.fake.trades]


def placed(h: ShioajiHarness, cid: str) -> Any:
    """The ``shioaji`` order object the adapter placed for ``cid``."""
    return h.fake.placed[h.fake.trades.index(h.trade_of(cid))]


def test_a_bracket_at_shioaji_take_profit_fill_cancels_the_held_stop(h: ShioajiHarness) -> None:
    """Day exits (Shioaji has no GTC): the take-profit goes to the broker as ROD, the stop-loss
    is held in the core (Shioaji has no stop order). The take-profit fills: the core cancels
    the stop itself; the broker never saw it."""
    k = kernel()
    entry, released = bracket(k, h)
    (take,) = [m for m in released if isinstance(m, SubmitOrder)]
    assert (take.order_type, take.time_in_force) == (OrderType.LIMIT, TimeInForce.DAY)
    assert str(placed(h, take.client_order_id).time_in_force.value) == "ROD"
    stop = held_stop(k)
    assert tick(k, h, 595) == []  # above the trigger: nothing
    done = deal(k, h, take.client_order_id, 2, 620.0)
    assert not [m for m in done if isinstance(m, CancelOrder)]  # nothing to cancel at Shioaji
    assert k.orders[stop].status is OrderStatus.CANCELED
    assert at_broker(h) == [entry, take.client_order_id]  # the stop never went out
    assert list_statuses(done)[-1] is OrderListStatus.COMPLETED
    assert not k.open and k.portfolio.quantity(INST) == 0
    assert tick(k, h, 580) == []  # a canceled stop never triggers


def test_a_bracket_at_shioaji_stop_triggers_once_and_cancels_the_take_profit(
        h: ShioajiHarness) -> None:
    """The price the strategy sees falls through the stop-loss: the core sends one market sell
    (under the stop's id) to Shioaji, never a second on the ticks after; its fill cancels the
    take-profit at the broker."""
    k = kernel()
    entry, released = bracket(k, h)
    (take,) = [m for m in released if isinstance(m, SubmitOrder)]
    stop = held_stop(k)
    out = tick(k, h, 589)
    (release,) = [m for m in out if isinstance(m, SubmitOrder)]
    assert (release.client_order_id, release.order_type) == (stop, OrderType.MARKET)
    assert str(placed(h, stop).price_type.value) == "MKT"
    assert [m for m in tick(k, h, 585) if isinstance(m, SubmitOrder)] == []
    done = deal(k, h, stop, 2, 589.0)
    assert [m.client_order_id for m in done if isinstance(m, CancelOrder)] == [
        take.client_order_id]
    assert str(h.trade_of(take.client_order_id).status.status.value) == "Cancelled"
    assert at_broker(h) == [entry, take.client_order_id, stop]  # each once
    assert list_statuses(done)[-1] is OrderListStatus.COMPLETED
    assert not k.open and k.portfolio.quantity(INST) == 0


def test_a_gtc_bracket_at_shioaji_keeps_its_exits_across_sessions(h: ShioajiHarness) -> None:
    """GTC exits (the default), which Shioaji does not have: the take-profit goes out as a ROD
    order under its own id, the stop-loss is held in the core (GTC: it never expires). At the
    first data of the next trading day the core sends the take-profit again, as ROD, for what
    is left of it, under ``<id>~2``, once. Its fill comes back under the take-profit's id and
    cancels the held stop: the strategy saw one take-profit order throughout."""
    k = kernel()
    entry, released = bracket(k, h, TimeInForce.GTC)
    (take,) = [m for m in released if isinstance(m, SubmitOrder)]
    assert take.time_in_force is TimeInForce.DAY  # the session's leg
    assert str(placed(h, take.client_order_id).time_in_force.value) == "ROD"
    assert k.orders[take.client_order_id].time_in_force is TimeInForce.GTC
    stop = held_stop(k)
    deal(k, h, take.client_order_id, 1, 620.0)  # half of it today
    next_day = k.now + 86_400 * 10**9  # the kernel's clock: the reports' times
    out = route(k, h, k.handle(TradeTick(0, next_day, next_day, INST, fixed(600), LOT)))
    (leg,) = [m for m in out if isinstance(m, SubmitOrder)]
    assert (leg.client_order_id, leg.quantity) == (f"{take.client_order_id}~2", LOT)
    assert str(placed(h, leg.client_order_id).time_in_force.value) == "ROD"
    later = next_day + 10**9
    assert route(k, h, k.handle(TradeTick(0, later, later, INST, fixed(601), LOT))) == []
    assert [t.order.custom_field for t in h.fake.trades].count(  # once per session
        h.port.send_log.orders[leg.client_order_id].broker_ids["tag"]) == 1
    assert k.orders[stop].status is OrderStatus.ACCEPTED  # the held stop lives on
    done = deal(k, h, leg.client_order_id, 1, 620.0)
    order = k.orders[take.client_order_id]
    assert (order.status, order.filled_qty) == (OrderStatus.FILLED, 2 * LOT)
    assert k.orders[stop].status is OrderStatus.CANCELED
    assert at_broker(h) == [entry, take.client_order_id, leg.client_order_id]
    assert list_statuses(done)[-1] is OrderListStatus.COMPLETED
    assert not k.open and k.portfolio.quantity(INST) == 0


def test_a_gtc_limit_from_a_kernel_not_told_of_day_orders_is_refused_by_name(
        h: ShioajiHarness) -> None:
    """Where the core does not keep GTC alive (a kernel not composed with the broker's
    ``day_orders_only``), a GTC limit reaches the adapter as GTC and is refused by name before
    anything is sent: ROD would silently end it with the day."""
    k = Kernel(registry=InstrumentRegistry([twse_stock("2330")]),
               strategies=[Scripted("s", instruments=(INST,))], initial_cash=fixed(10**8),
               currency="TWD", namespace="sn", seed=1)
    k.start(0)
    k.handle(Bar(seq=1, ts_event=60 * 10**9, ts_init=60 * 10**9, instrument_id=INST,
                 open=fixed(600), high=fixed(600), low=fixed(600), close=fixed(600),
                 volume=10 * LOT, interval_ns=60 * 10**9))
    seen = route(k, h, act(k, lambda s: s.buy(INST, LOT, price=fixed(600))))
    (rejected,) = [m for m in seen if isinstance(m, OrderRejected)]
    assert "no GTC time in force" in rejected.reason and "day_orders_only" in rejected.reason
    assert h.fake.trades == [] and not k.open


_BROKER: list[FakeShioaji] = []  # the broker outlives the gateway: every client reaches it


def broker_client(sj: Any, config: ShioajiConfig) -> FakeShioaji:
    """The ``client_factory`` hook: the test's broker."""
    return _BROKER[0]


def _leg(cid: str, price: int) -> SubmitOrder:
    return SubmitOrder(seq=1, ts_event=1, ts_init=1, client_order_id=cid, strategy_id="s",
                       instrument_id=INST, side=SELL, order_type=OrderType.LIMIT,
                       quantity=LOT, price=fixed(price), time_in_force=TimeInForce.DAY,
                       protective=True)


def test_a_crash_between_emulated_legs_sends_no_leg_twice_and_loses_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An OCO pair reached the gateway (journaled) and it died after sending one leg (one
    order token left): the restarted gateway reconciles, never sends that leg again, and
    sends the other."""
    monkeypatch.setenv("SHIOAJI_API_KEY", "key")
    monkeypatch.setenv("SHIOAJI_SECRET_KEY", "secret")
    fake = FakeShioaji(import_sj(str(tmp_path)))
    fake.deliver_inline = True  # the library's callback thread, at once
    _BROKER[:] = [fake]
    legs = [_leg("o-1", 620), _leg("o-2", 610)]
    journal = Journal(tmp_path / "gateway.journal")
    for leg in legs:
        journal.append(leg)
    journal.flush(durable=True)
    journal.close()
    hook = f"{__name__}:broker_client"
    instruments = {INST: twse_stock("2330")}
    first = open_broker_gateway(ShioajiConfig(client_factory=hook, orders_per_10s=1), tmp_path,
                                instruments=instruments, confirmed_live=False)
    first.close()  # one token: one leg went out
    assert [t.order.custom_field for t in fake.trades] == [
        first.send_log.orders["o-1"].broker_ids["tag"]]
    again = open_broker_gateway(ShioajiConfig(client_factory=hook), tmp_path,
                                instruments=instruments, confirmed_live=False)
    try:
        assert again.send(legs) == 0  # a retried call: dropped
        reports = again.drain(0) or []
        tags = {cid: again.send_log.orders[cid].broker_ids["tag"] for cid in ("o-1", "o-2")}
        view = again.view()
    finally:
        again.close()
        _BROKER.clear()
    assert [t.order.custom_field for t in fake.trades] == [tags["o-1"], tags["o-2"]]
    assert sorted(view["open_orders"]) == ["o-1", "o-2"]
    assert {r.client_order_id for r in reports} == {"o-1", "o-2"}


def _through(k: Kernel, gateway: Any, out: list[Message], seen: list[Any]) -> list[Message]:
    """``out``'s commands to the gateway, its new reports to the kernel, until quiet (the
    broker's callbacks delivered as the library's callback thread would)."""
    produced: list[Message] = list(out)
    while True:
        gateway.send([m for m in out if isinstance(m, SubmitOrder | CancelOrder | ModifyOrder)])
        _BROKER[0].deliver()
        more = gateway.drain(len(seen)) or []
        if not more:
            return produced
        seen.extend(more)
        out = [m for report in more for m in k.handle(report)]
        produced += more + out


def test_a_crash_between_a_bracket_s_legs_sends_no_leg_twice_and_orphans_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bracket at Shioaji through the gateway: the entry and the take-profit are at the
    broker, the stop is held in the core. The price falls through the stop: the core releases
    its market sell, the gateway journals it and dies before sending it (its order tokens
    spent). The restarted gateway reconciles and sends the market sell once (the core's retry
    is dropped); its fill cancels the take-profit at the broker: every leg once, none left."""
    monkeypatch.setenv("SHIOAJI_API_KEY", "key")
    monkeypatch.setenv("SHIOAJI_SECRET_KEY", "secret")
    fake = FakeShioaji(import_sj(str(tmp_path)))
    fake.deliver_inline = True
    _BROKER[:] = [fake]
    hook = f"{__name__}:broker_client"
    instruments = {INST: twse_stock("2330")}
    k = kernel()
    first = open_broker_gateway(ShioajiConfig(client_factory=hook, orders_per_10s=2), tmp_path,
                                instruments=instruments, confirmed_live=False)
    seen: list[Any] = []
    try:
        start = _through(k, first, act(k, lambda s: s.bracket(
            INST, BUY, 2 * LOT, entry_price=fixed(600), take_profit=fixed(620),
            stop_loss=fixed(590), time_in_force=TimeInForce.DAY,
            exit_time_in_force=TimeInForce.DAY)), seen)
        (entry,) = [m.client_order_id for m in start if isinstance(m, SubmitOrder)]
        fake.deal(fake.trade_of(first.send_log.orders[entry].broker_ids["tag"]), 2, 600.0)
        released = _through(k, first, [], seen)
        (take,) = [m.client_order_id for m in released if isinstance(m, SubmitOrder)]
        stop = held_stop(k)
        ts = next(_ts)
        out = k.handle(TradeTick(0, ts, ts, INST, fixed(589), LOT))
        (release,) = [m for m in out if isinstance(m, SubmitOrder)]
        assert first.send([release]) == 1  # journaled; no order token left to send it
        tags = {cid: first.send_log.orders[cid].broker_ids["tag"] for cid in (entry, take)}
    finally:
        first.close()  # the crash
    assert [t.order.custom_field for t in fake.trades] == [tags[entry], tags[take]]
    again = open_broker_gateway(ShioajiConfig(client_factory=hook), tmp_path,
                                instruments=instruments, confirmed_live=False)
    try:
        assert again.send([release]) == 0  # the core's retry: dropped
        seen = []
        done = _through(k, again, [], seen)
        tags[stop] = again.send_log.orders[stop].broker_ids["tag"]
        fake.deal(fake.trade_of(tags[stop]), 2, 589.0)
        done += _through(k, again, [], seen)
        view = again.view()
    finally:
        again.close()
        _BROKER.clear()
    assert [t.order.custom_field for t in fake.trades] == [tags[entry], tags[take], tags[stop]]
    assert [m.client_order_id for m in done if isinstance(m, CancelOrder)] == [take]
    assert str(fake.trade_of(tags[take]).status.status.value) == "Cancelled"
    assert view["open_orders"] == [] and view["positions"].get(INST, 0) == 0
    assert not k.open and k.portfolio.quantity(INST) == 0
    assert list_statuses(done)[-1] is OrderListStatus.COMPLETED


def test_which_brokers_trigger_stops_themselves() -> None:
    """Shioaji has no stop order and CCXT sends stops natively only to Binance USD-M: the core
    holds theirs. The paper venue, IB and Alpaca trigger stops themselves."""
    from actors.venues.alpaca_support import AlpacaConfig
    from actors.venues.broker_config import PaperBrokerConfig
    from actors.venues.ccxt_support import CcxtConfig
    from actors.venues.ib_support import IbConfig

    assert emulated_stops(ShioajiConfig(), [INST, "2317.TWSE"]) == ("2317.TWSE", INST)
    assert emulated_stops(CcxtConfig(exchange="binance"), ["BTC"]) == ("BTC",)
    assert emulated_stops(CcxtConfig(exchange="binanceusdm"), ["BTC-PERP"]) == ()
    for native in (PaperBrokerConfig(), IbConfig(), AlpacaConfig()):
        assert emulated_stops(native, ["X"]) == ()


class OneBracket(Strategy):  # type: ignore[type-arg]
    """On the fifth bar, once: a bracket market buy of one lot, its take-profit 50% up (it
    rests) and its stop-loss 1% over that bar's close, so the next bar releases the stop's
    market sell (a sell stop triggers at or below its trigger)."""

    def on_start(self) -> None:
        self.bars = 0

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1
        if self.bars != 5:
            return
        inst = bar.instrument_id
        close = self.to_float(bar.close)
        self.bracket(inst, BUY, LOT, take_profit=self.to_price(inst, close * 1.5, Rounding.UP),
                     stop_loss=self.to_price(inst, close * 1.01, Rounding.UP))


@pytest.mark.usefixtures("ray_local")
def test_a_sigkill_of_the_ray_hosted_gateway_between_emulated_legs_sends_each_once(
        tmp_path: Path) -> None:
    """A real session (Ray actors) at Shioaji through the callback fake in its broker actor:
    a bracket's entry (market, filled at once) and take-profit (GTC: a ROD limit that rests)
    reach the broker, spending the gateway's two order tokens; the stop held in the core
    triggers and its release, a market sell, is journaled by the gateway and waits for a token.
    The gateway's worker is SIGKILLed then. Its supervisor starts it again; it reconciles and
    sends the release once (the strategy's retry dropped); its fill cancels the take-profit at
    the broker. Each leg reached the broker once and the positions agree (flat)."""
    import ray

    from actors.config import load_paper_config
    from actors.session import start_session
    from tests.venues.broker_helpers import write_bars, write_broker_config
    from tests.venues.fake_shioaji_remote import BROKER_NAME, FakeShioajiBroker
    from tests.venues.test_broker_session import TSMC, _kill_worker, _until

    broker_actor = FakeShioajiBroker.options(name=BROKER_NAME).remote(
        str(tmp_path / "sjlog"), auto_fill_price=600.0, auto_fill_market_only=True)
    try:
        bars = write_bars(tmp_path / "data", "2330.TWSE")
        broker = {"kind": "shioaji", "client_factory": "tests.venues.fake_shioaji_remote:connect",
                  "api_key_env": "TW_TEST_SJ_API_KEY", "secret_key_env": "TW_TEST_SJ_SECRET_KEY",
                  "orders_per_10s": 2}
        path = write_broker_config(tmp_path, bars, broker, instrument=TSMC, size=1000,
                                   speed=300)
        trading = path.parent / "trading.yaml"
        raw = yaml.safe_load(trading.read_text())
        raw["strategies"] = [{"id": "ob", "class": f"{__name__}:OneBracket",
                              "instruments": ["2330.TWSE"]}]
        trading.write_text(yaml.safe_dump(raw))
        session = start_session(load_paper_config(path), session_id="sjlegs1")
        gateway = session.gateway

        journals = tmp_path / "var" / "sjlegs1"

        def between_legs() -> bool:  # the release in the gateway's journal, not at the broker
            journaled = b"".join(p.read_bytes() for p in journals.glob("gateway.journal*"))
            at_broker = ray.get(broker_actor.snapshot.remote(), timeout=30)["orders"]
            return b"sjlegs1-ob-4" in journaled and len(at_broker) == 2

        _until(between_legs, 120, state=lambda: (
            ray.get(gateway.submitted.remote()), ray.get(broker_actor.snapshot.remote()),
            ray.get(session.risk.view.remote()), ray.get(gateway.view.remote())))
        killed = _kill_worker(gateway)
        assert session.wait(600), "the session did not finish"
        views = ray.get([gateway.view.remote(), session.risk.view.remote(),
                         gateway.pid.remote()])
        result = session.stop()
        broker_side = ray.get(broker_actor.snapshot.remote())
    finally:
        ray.kill(broker_actor)
    gateway_view, risk_view, pid = views
    assert pid != killed  # the gateway came back in a new process
    orders = broker_side["orders"]
    assert len(orders) == len(set(orders)) == 3, "a leg was sent twice or lost"
    assert len(broker_side["deals"]) == 2 == result["fills"]  # the entry and the release
    assert broker_side["positions"].get("2330", 0) == 0
    assert risk_view["positions"] == {} == gateway_view["positions"]
    assert gateway_view["open_orders"] == []  # the take-profit canceled at the broker
