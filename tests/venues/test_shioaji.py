"""The Shioaji adapter against the callback-level fake (real shioaji enums, orders, errors)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from actors.venues.common import SendLog, env_secret
from actors.venues.shioaji import ShioajiVenue
from actors.venues.shioaji_support import CUSTOM_FIELD_MAX, ShioajiConfig
from runtime.journal import Journal
from runtime.messages import (
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderStatusUnknown,
    OrderType,
    SubmitOrder,
    TimeInForce,
)
from runtime.taiwan import taifex_future, twse_stock
from runtime.values import FIXED_SCALE, fixed
from runtime.watchdog import Health, WatchdogAction, WatchdogConfig, Watchdogs
from tests.venues.fake_shioaji import FakeShioaji
from tests.venues.harness import ShioajiHarness

LOT = 1_000 * FIXED_SCALE
TXF = "TXF202612.TAIFEX"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def h(tmp_path: Path) -> Iterator[ShioajiHarness]:
    harness = ShioajiHarness(tmp_path)
    harness.port.instruments[TXF] = taifex_future("TXF", "202612")
    yield harness
    harness.close()


def kinds(reports: list[object]) -> list[str]:
    return [type(r).__name__ for r in reports]


def future_order(cid: str, qty: int = 2) -> SubmitOrder:
    return SubmitOrder(
        seq=1,
        ts_event=1,
        ts_init=1,
        client_order_id=cid,
        strategy_id="s",
        instrument_id=TXF,
        side=OrderSide.SELL,
        order_type=OrderType.LIMIT,
        quantity=qty * FIXED_SCALE,
        price=fixed(23000),
        time_in_force=TimeInForce.DAY,
    )


def test_the_client_order_id_travels_as_a_six_character_tag(h: ShioajiHarness) -> None:
    h.submit("a-very-long-client-order-id-000001", 1)
    (ack,) = h.reports()
    trade = h.fake.trades[0]
    tag = trade.order.custom_field
    assert tag is not None and len(tag) <= CUSTOM_FIELD_MAX and tag.isalnum()
    assert isinstance(ack, OrderAccepted) and ack.venue_order_id == trade.order.ordno
    assert int(trade.order.quantity) == 1  # one board lot of 1,000 shares


def test_duplicate_events_share_an_event_id_and_are_dropped(h: ShioajiHarness) -> None:
    h.port.submit(future_order("f-1"), 1)
    h.settle()
    h.fake.deal(h.fake.trades[0], 1, 23000.0, duplicate=True)
    (fill,) = [r for r in h.reports() if isinstance(r, OrderFilled)]
    assert (fill.last_qty, fill.cum_qty, fill.leaves_qty) == (FIXED_SCALE, FIXED_SCALE, FIXED_SCALE)
    assert fill.fee == 50 * FIXED_SCALE + fixed(92)  # commission + tax 0.002% of 4.6M TWD


def test_a_deal_before_the_ack_reports_an_ack_first(h: ShioajiHarness) -> None:
    h.submit("b-1", 2)
    h.fake.deal(h.fake.trades[0], 2, 600.0, before_ack=True)
    reports = h.reports()
    assert kinds(reports) == ["OrderAccepted", "OrderFilled"]
    fill = reports[1]
    assert isinstance(fill, OrderFilled) and fill.cum_qty == 2 * LOT and fill.leaves_qty == 0
    assert fill.fee == 1710 * FIXED_SCALE  # 0.1425% of 1.2M TWD, a buy: no tax


def test_a_futures_callback_that_beats_place_order_is_matched_later(h: ShioajiHarness) -> None:
    h.fake.deliver_inline = True  # callbacks before place_order returns (no custom field)
    h.port.submit(future_order("i-1"), 1)
    assert kinds(h.reports()) == ["OrderAccepted"]


def test_dropped_events_are_recovered_by_reconciliation(h: ShioajiHarness) -> None:
    h.submit("d-1", 3)
    h.reports()
    h.fake.deal(h.fake.trades[0], 1, 600.0, drop=True)
    assert h.reports() == []
    assert h.port.reconcile()
    (fill,) = h.reports()
    assert isinstance(fill, OrderFilled) and fill.cum_qty == LOT
    assert h.port.positions() == {"2330.TWSE": LOT}


def test_unknown_outcome_is_reconciled_never_resent(h: ShioajiHarness) -> None:
    h.fake.outcome_unknown_next = True
    command = h.command("u-1", 1)
    h.port.submit(command, 1)
    reports = h.port.drain_reports()
    assert kinds(reports) == ["OrderStatusUnknown"]
    assert isinstance(reports[0], OrderStatusUnknown) and reports[0].command == "submit"
    h.port.submit(command, 2)  # the strategy retries: refused, reconcile instead
    assert len(h.fake.trades) == 1
    h.port.tick()
    assert kinds(h.reports()) == ["OrderAccepted"]
    assert len(h.fake.trades) == 1


def test_unknown_futures_outcome_is_adopted_by_contract_side_quantity_price(
    h: ShioajiHarness,
) -> None:
    h.fake.outcome_unknown_next = True
    h.port.submit(future_order("uf-1"), 1)
    h.fake.pending.clear()  # the callbacks are lost too
    assert kinds(h.port.drain_reports()) == ["OrderStatusUnknown"]
    h.port.reconcile()
    assert kinds(h.reports()) == ["OrderAccepted"]
    assert h.port.send_log.orders["uf-1"].broker_ids["ordno"] == h.fake.trades[0].order.ordno


def test_unknown_outcome_that_never_arrived_is_rejected_not_found(h: ShioajiHarness) -> None:
    h.fake.outcome_unknown_next = True
    h.submit("n-1", 1)
    h.fake.trades.clear()
    h.fake.session_trades.clear()
    h.fake.pending.clear()
    h.port.drain_reports()
    h.port.reconcile()
    (report,) = h.reports()
    assert isinstance(report, OrderRejected) and report.venue_code == "not_found"


def test_reject_carries_the_broker_code(h: ShioajiHarness) -> None:
    h.fake.reject_next = ("88", "insufficient balance")
    h.submit("r-1", 1)
    (report,) = h.reports()
    assert isinstance(report, OrderRejected)
    assert (report.venue_code, report.reason) == ("88", "insufficient balance")


def test_session_loss_blocks_then_login_reconciles(
    h: ShioajiHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    planted = "PLANTED-SECRET-8c1f"
    env = {"SHIOAJI_API_KEY": "key-" + planted, "SHIOAJI_SECRET_KEY": planted}
    h.port.credentials = (
        env_secret("SHIOAJI_API_KEY", environ=env),
        env_secret("SHIOAJI_SECRET_KEY", environ=env),
    )
    h.submit("s-1", 1)
    h.reports()
    h.fake.session_down()
    h.submit("s-2", 1)
    (blocked,) = h.reports()
    assert isinstance(blocked, OrderRejected) and blocked.venue_code == "gateway.session_down"
    caplog.set_level(logging.DEBUG)
    h.port.tick()
    assert h.fake.logins == [("key-" + planted, planted)]
    assert h.port.session_up and h.port.breaker.allows_new_orders
    assert planted not in caplog.text and planted not in repr(h.port.credentials)


def test_cancel_of_an_order_from_an_earlier_session_refreshes_it_first(
    h: ShioajiHarness, tmp_path: Path
) -> None:
    h.submit("e-1", 1)
    h.reports()
    h.fake.login("k", "s")  # a new session: list_trades is empty until update_status
    again = ShioajiVenue(
        h.fake,
        sj=h.sj,
        config=ShioajiConfig(),
        instruments=h.port.instruments,
        send_log=SendLog(h.journal),
    )
    h.port = again
    h.cancel("e-1")
    assert kinds(h.reports()) == ["OrderCanceled"]
    assert h.fake.calls.index("update_status") < h.fake.calls.index("cancel_order")


def test_rate_limit_holds_orders_and_sends_cancels_first(tmp_path: Path) -> None:
    harness = ShioajiHarness(tmp_path)
    clock = Clock()
    config = ShioajiConfig(orders_per_10s=2)
    journal = Journal(tmp_path / "rl.journal")
    venue = ShioajiVenue(
        harness.fake,
        sj=harness.sj,
        config=config,
        instruments={"2330.TWSE": twse_stock("2330")},
        send_log=SendLog(journal),
        monotonic=clock,
    )
    venue.login()
    harness.port = venue
    for n in range(3):
        harness.submit(f"q-{n}", 1)
    assert len(harness.fake.trades) == 2
    harness.cancel("q-0")
    harness.submit("q-3", 1)
    clock.t = 5.0  # one token back (2 per 10 s)
    venue.pump()
    assert "cancel_order" in harness.fake.calls and len(harness.fake.trades) == 2
    clock.t = 20.0
    venue.pump()
    assert len(harness.fake.trades) == 4
    journal.close()


def test_the_real_client_is_never_constructed(h: ShioajiHarness) -> None:
    assert isinstance(h.fake, FakeShioaji)
    assert not Path("shioaji.log").exists()


def test_live_login_activates_the_certificate_from_the_environment(
    h: ShioajiHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SHIOAJI_CA_PATH", "SHIOAJI_CA_PASSWORD", "SHIOAJI_PERSON_ID"):
        monkeypatch.setenv(name, f"value-of-{name}")
    env = {"K": "k", "S": "s"}
    live = ShioajiVenue(
        h.fake,
        sj=h.sj,
        config=ShioajiConfig(simulation=False, live=True),
        instruments=h.port.instruments,
        send_log=h.port.send_log,
        credentials=(env_secret("K", environ=env), env_secret("S", environ=env)),
    )
    h.fake.calls.clear()  # the harness's own login reconciled already
    live.login()
    assert h.fake.calls.index("activate_ca") < h.fake.calls.index("update_status")


def _stock_order(cid: str, *, tif: TimeInForce = TimeInForce.DAY,
                 post_only: bool = False) -> SubmitOrder:
    return SubmitOrder(seq=1, ts_event=1, ts_init=1, client_order_id=cid, strategy_id="s",
                       instrument_id="2330.TWSE", side=OrderSide.BUY,
                       order_type=OrderType.LIMIT, quantity=LOT, price=fixed(600),
                       time_in_force=tif, post_only=post_only)


@pytest.mark.parametrize(("tif", "wire"), [(TimeInForce.IOC, "IOC"), (TimeInForce.FOK, "FOK"),
                                           (TimeInForce.DAY, "ROD")])
def test_time_in_force_reaches_shioaji_as_its_own(h: ShioajiHarness, tif: TimeInForce,
                                                  wire: str) -> None:
    h.port.submit(_stock_order("t-1", tif=tif), 1)
    assert kinds(h.reports()) == ["OrderAccepted"]
    (sent,) = h.fake.placed
    assert sent.time_in_force == getattr(h.sj.OrderType, wire)  # the library's own enum


def test_a_gtc_market_order_is_sent_as_rest_of_day(h: ShioajiHarness) -> None:
    """A market order does not rest, so GTC (the strategies' default) and ROD agree for it;
    a GTC limit order is refused below."""
    order = msgspec.structs.replace(_stock_order("m-1", tif=TimeInForce.GTC),
                                    order_type=OrderType.MARKET, price=None)
    h.port.submit(order, 1)
    assert "OrderRejected" not in kinds(h.reports())
    (sent,) = h.fake.placed
    assert sent.time_in_force == h.sj.OrderType.ROD


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (_stock_order("g-1", tif=TimeInForce.GTC), "no GTC time in force"),
        (_stock_order("g-1", post_only=True), "no post-only flag"),
    ],
)
def test_what_shioaji_lacks_is_refused_by_name_never_sent(
    h: ShioajiHarness, command: SubmitOrder, named: str
) -> None:
    h.port.submit(command, 1)
    (report,) = h.reports()
    assert isinstance(report, OrderRejected) and report.venue_code == "gateway.order"
    assert "Shioaji" in report.reason and named in report.reason
    assert h.fake.placed == []  # nothing reached the broker


def test_events_of_orders_never_sent_count_as_foreign_after_a_wait(h: ShioajiHarness) -> None:
    """Shioaji's order callback carries every order of the account: an order placed from the
    broker's app (another client of the same account) is not ours. Its events wait a while for
    ids this adapter might still learn (a callback can beat ``place_order``'s return), then
    count for the unknown-order-storm watchdog and are dropped; our own order is unaffected."""
    clock = Clock()
    h.port.monotonic = clock
    dogs = Watchdogs(WatchdogConfig.model_validate(
        {"unknown_order_storm": {"reports": 1, "window_s": 30, "action": "halt"}}), [])
    assert dogs.check(Health(now_ns=1, foreign_reports=h.port.book.foreign)) == []
    other = h.sj.StockOrder(action="Buy", price=601.0, quantity=1, price_type="LMT",
                            time_in_force="ROD", order_lot="Common", custom_field="app01")
    h.fake.place_order(h.fake.Contracts.Stocks["2330"], other)  # not through the adapter
    h.settle()
    h.port.tick()
    assert h.port.book.foreign == 0  # it may still be ours: it waits
    h.port.submit(_stock_order("own-1"), 1)  # our own order is matched as always
    h.settle()
    assert kinds(h.reports()) == ["OrderAccepted"]
    clock.t = 4.9
    h.port.tick()
    assert h.port.book.foreign == 0
    clock.t = 5.0
    h.port.tick()
    assert h.port.book.foreign == 1  # counted once, then dropped
    assert h.port._orphans == []
    clock.t = 60.0
    h.port.tick()
    assert h.port.book.foreign == 1
    trips = dogs.check(Health(now_ns=2, foreign_reports=h.port.book.foreign))
    assert [t.action for t in trips] == [WatchdogAction.CANCEL_ALL]
