"""The watchdogs' health samples from a real broker gateway (``BrokerGateway.health``) against the
loopback IB fake, without Ray: a broker that does not answer makes the order stream stale;
reports about orders the session never sent make an unknown-order storm."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.venues.ib_support import ContractSpec, IbConfig
from actors.venues.links import open_broker_gateway
from runtime.messages import OrderAccepted, OrderSide, OrderType, SubmitOrder, TimeInForce
from runtime.values import FIXED_SCALE
from runtime.watchdog import Health, WatchdogAction, WatchdogConfig, Watchdogs
from tests.venues.broker_helpers import FakeIbThread

pytest.importorskip("ib_async")


@pytest.fixture
def fake_ib() -> Iterator[FakeIbThread]:
    fake = FakeIbThread(auto_ack=False)
    yield fake
    fake.close()


def _gateway(port: int, folder: Path) -> Any:
    config = IbConfig(port=port, client_id=23, reset_window=("00:00", "00:00"),
                      contracts={"SIM-A": ContractSpec(symbol="SIMA")})
    return open_broker_gateway(config, folder, instruments={}, confirmed_live=False)


def _submit(cid: str) -> SubmitOrder:
    return SubmitOrder(seq=1, ts_event=1, ts_init=1, client_order_id=cid, strategy_id="s",
                       instrument_id="SIM-A", side=OrderSide.BUY, order_type=OrderType.LIMIT,
                       quantity=10 * FIXED_SCALE, price=50 * FIXED_SCALE,
                       time_in_force=TimeInForce.DAY)


def _until(check: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def _sample(gateway: Any) -> Health:
    h = gateway.health()
    return Health(now_ns=time.time_ns(), exec_waiting_since_ns=h["exec_waiting_since_ns"],
                  foreign_reports=h["foreign_reports"])


def test_a_broker_that_does_not_answer_trips_the_stale_order_stream(
        fake_ib: FakeIbThread, tmp_path: Path) -> None:
    gateway = _gateway(fake_ib.port, tmp_path)
    dogs = Watchdogs(WatchdogConfig.model_validate(
        {"order_stream_stale": {"after_s": 0.5, "action": "cancel_all_and_halt"}}), [])
    try:
        assert gateway.health()["connected"] is True
        assert gateway.health()["exec_waiting_since_ns"] is None
        gateway.send([_submit("w-1")])
        _until(lambda: fake_ib.snapshot()["placed"] == ["w-1"])  # placed, never acknowledged
        assert gateway.health()["exec_waiting_since_ns"] is not None
        time.sleep(0.6)
        trips = dogs.check(_sample(gateway))
        assert [(t.watchdog, t.action) for t in trips] == [
            ("order_stream_stale", WatchdogAction.CANCEL_ALL_AND_HALT)]
        fake_ib.call(fake_ib.fake.ack, "w-1")  # the broker answers at last
        _until(lambda: any(isinstance(r, OrderAccepted) for r in gateway.reports_due(0)))
        assert gateway.health()["exec_waiting_since_ns"] is None
        assert dogs.check(_sample(gateway)) == []
        assert dogs.state()["order_stream_stale"] == "ok"
    finally:
        gateway.close()


def test_reports_for_orders_never_sent_make_an_unknown_order_storm(
        fake_ib: FakeIbThread, tmp_path: Path) -> None:
    gateway = _gateway(fake_ib.port, tmp_path)
    dogs = Watchdogs(WatchdogConfig.model_validate(
        {"unknown_order_storm": {"reports": 10, "window_s": 30, "action": "halt"}}), [])
    try:
        gateway.send([_submit("w-2")])
        _until(lambda: fake_ib.snapshot()["placed"] == ["w-2"])
        assert dogs.check(_sample(gateway)) == []  # the baseline
        fake = fake_ib.fake

        def strangers() -> None:  # orders someone else placed on the account (TWS, a script)
            ours = fake.find("w-2")
            for i in range(12):
                other = dataclasses.replace(ours, order_id=ours.order_id + 100 + i,
                                            perm_id=ours.perm_id + 100 + i, order_ref=f"tws-{i}")
                fake.orders[other.perm_id] = other
                fake._report(other)

        fake_ib.call(strangers)
        _until(lambda: gateway.health()["foreign_reports"] >= 12)
        trips = dogs.check(_sample(gateway))
        assert [t.action for t in trips] == [WatchdogAction.CANCEL_ALL]
        assert "reports for orders this session never sent" in trips[0].reason
        assert [r.client_order_id for r in gateway.reports_due(0)] == []  # none reach the kernel
    finally:
        gateway.close()


def _ccxt_gateway(port: int, folder: Path) -> Any:
    from tests.venues.ccxt_helpers import btc_perp, ccxt_config

    return open_broker_gateway(ccxt_config(port), folder, instruments={"BTC-PERP": btc_perp()},
                               confirmed_live=False)


def test_ccxt_counts_orders_and_trades_it_never_sent_for_the_storm_watchdog(
        tmp_path: Path) -> None:
    """Orders placed on the Binance account by another client come through the user stream
    (``ORDER_TRADE_UPDATE``): each is counted, none reaches the kernel, the storm trips."""
    pytest.importorskip("ccxt")
    from tests.venues.broker_helpers import FakeBinanceThread
    from tests.venues.ccxt_helpers import submit_command

    fake = FakeBinanceThread()
    gateway = _ccxt_gateway(fake.port, tmp_path)
    dogs = Watchdogs(WatchdogConfig.model_validate(
        {"unknown_order_storm": {"reports": 6, "window_s": 30, "action": "halt"}}), [])
    try:
        _until(lambda: gateway.health()["connected"])
        gateway.send([submit_command("ours-1", "0.003", "49000")])
        _until(lambda: any(isinstance(r, OrderAccepted) for r in gateway.reports_due(0)))
        time.sleep(0.5)  # the user stream is subscribed (ccxt opens it on the first watch)
        assert gateway.health()["foreign_reports"] == 0
        assert dogs.check(_sample(gateway)) == []

        def strangers() -> None:  # orders from the web UI; one of them trades
            for i in range(4):
                fake.fake.place_elsewhere(f"web_{i}", side="BUY", qty="0.002", price="48000")
            fake.fake.fill("web_0", 0.002, 48000.0)

        fake.call(strangers)
        # 4 NEW + the trade's order update + the trade itself, all of orders never sent
        _until(lambda: gateway.health()["foreign_reports"] >= 6)
        trips = dogs.check(_sample(gateway))
        assert [t.action for t in trips] == [WatchdogAction.CANCEL_ALL]
        assert [r for r in gateway.reports_due(0) if r.client_order_id != "ours-1"] == []
    finally:
        gateway.close()
        fake.close()


def test_alpaca_counts_trade_updates_of_orders_it_never_sent(tmp_path: Path) -> None:
    pytest.importorskip("alpaca")
    from actors.venues.alpaca_support import AlpacaConfig
    from runtime.instruments import Instrument
    from tests.venues.broker_helpers import FakeAlpacaThread

    fake = FakeAlpacaThread()
    config = AlpacaConfig.model_validate(fake.broker_block(symbols={"AAPL.NASDAQ": "AAPL"}))
    gateway = open_broker_gateway(config, tmp_path, confirmed_live=False,
                                  instruments={"AAPL.NASDAQ": Instrument(
                                      instrument_id="AAPL.NASDAQ")})
    dogs = Watchdogs(WatchdogConfig.model_validate(
        {"unknown_order_storm": {"reports": 5, "window_s": 30, "action": "halt"}}), [])
    try:
        _until(lambda: gateway.health()["connected"])
        order = SubmitOrder(seq=1, ts_event=1, ts_init=1, client_order_id="ours-a",
                            strategy_id="s", instrument_id="AAPL.NASDAQ", side=OrderSide.BUY,
                            order_type=OrderType.LIMIT, quantity=10 * FIXED_SCALE,
                            price=50 * FIXED_SCALE, time_in_force=TimeInForce.DAY)
        gateway.send([order])
        _until(lambda: any(isinstance(r, OrderAccepted) for r in gateway.reports_due(0)))
        _until(lambda: fake.snapshot()["placed"] == ["ours-a"])
        assert dogs.check(_sample(gateway)) == []

        def strangers() -> None:  # orders from the dashboard; one fills
            for i in range(4):
                fake.fake.place_elsewhere(f"dash-{i}", symbol="AAPL", qty=5, limit_price="40")
            fake.fake.fill("dash-0", 5, 40.0)

        fake.call(strangers)
        _until(lambda: gateway.health()["foreign_reports"] >= 5)
        assert gateway.health()["foreign_reports"] == 5  # 4 new + 1 fill
        trips = dogs.check(_sample(gateway))
        assert [t.action for t in trips] == [WatchdogAction.CANCEL_ALL]
        assert [r for r in gateway.reports_due(0) if r.client_order_id != "ours-a"] == []
    finally:
        gateway.close()
        fake.close()
