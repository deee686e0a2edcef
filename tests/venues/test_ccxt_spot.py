"""The CCXT adapter on a spot market: the unmodified ``ccxt.pro.binance`` client against the
loopback Binance spot fake (signed REST; the user data stream over the WebSocket API's
``userDataStream.subscribe.signature``, signature checked): fills from ``executionReport``s,
REST polling while the stream is down, a gap's fills reported once; and the ``borrow`` aux feed
(the margin rate of the base asset, ``/sapi/v1/margin/interestRateHistory``)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.venues.ccxt_support import CcxtConfig
from actors.venues.common import SendLog
from actors.venues.links import CcxtLink
from runtime.instruments import Instrument
from runtime.journal import Journal
from runtime.messages import (
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderType,
    SubmitOrder,
    TimeInForce,
)
from runtime.values import fixed
from tests.venues.broker_helpers import FakeThread
from tests.venues.fake_binance_spot import FakeBinanceSpot, spot_urls

pytest.importorskip("ccxt")

IID, SYMBOL = "BTC-USDT", "BTC/USDT"
_seq = itertools.count(70_000)


def btc_usdt() -> Instrument:
    return Instrument(instrument_id=IID, venue="BINANCE", asset_class="crypto",
                      currency="USDT", price_precision=2, size_precision=5,
                      lot_size=fixed("0.00001"), min_quantity=fixed("0.00001"),
                      min_notional=fixed("5"))


def spot_config(port: int, **extra: Any) -> CcxtConfig:
    return CcxtConfig.model_validate({
        "exchange": "binance", "symbols": {IID: SYMBOL}, "urls": spot_urls(port),
        "api_key_env": "TW_TEST_CCXT_API_KEY", "secret_env": "TW_TEST_CCXT_SECRET",
        "poll_every_s": 0.3, "backoff_min_s": 0.2, "backoff_max_s": 2.0} | extra)


class SpotRig:
    def __init__(self, tmp: Path, fake: FakeThread) -> None:
        self.fake = fake
        self.journal = Journal(tmp / "ccxt-spot.journal")
        self.link = CcxtLink(spot_config(fake.port), SendLog(self.journal),
                             instruments={IID: btc_usdt()})
        self.venue = self.link.venue
        self.collected: list[OrderEvent] = []

    def submit(self, cid: str, qty: str, price: str | None, side: OrderSide) -> None:
        self.link.call(self.venue.submit, SubmitOrder(
            seq=next(_seq), ts_event=next(_seq), ts_init=0, client_order_id=cid,
            strategy_id="s", instrument_id=IID, side=side,
            order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
            quantity=fixed(qty), price=None if price is None else fixed(price),
            time_in_force=TimeInForce.GTC), time.time_ns())

    def wait_for(self, check: Any, timeout_s: float = 20.0) -> list[OrderEvent]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.collected.extend(self.link.call(self.venue.drain_reports))
            if check(self.collected):
                return self.collected
            time.sleep(0.05)
        raise AssertionError(f"not reached; reports: {self.collected}")

    def close(self) -> None:
        self.link.close()
        self.journal.close()


@pytest.fixture
def fake() -> Iterator[FakeThread]:
    thread = FakeThread(FakeBinanceSpot())
    yield thread
    thread.close()


@pytest.fixture
def rig(fake: FakeThread, tmp_path: Path) -> Iterator[SpotRig]:
    rig = SpotRig(tmp_path, fake)
    yield rig
    rig.close()


def _of(kind: type, reports: list[OrderEvent], cid: str | None = None) -> list[OrderEvent]:
    return [r for r in reports if isinstance(r, kind)
            and (cid is None or r.client_order_id == cid)]


def test_spot_fills_come_from_the_user_data_stream(rig: SpotRig, fake: FakeThread) -> None:
    rig.submit("sp-1", "0.01000", "60000.00", OrderSide.SELL)
    rig.wait_for(lambda rs: _of(OrderAccepted, rs, "sp-1"))
    rig.wait_for(lambda rs: not rig.venue.stream.down)
    fake.call(fake.fake.fill, "sp-1", 0.004, 60000.0)
    fake.call(fake.fake.fill, "sp-1", 0.006, 60010.0)
    reports = rig.wait_for(lambda rs: len(_of(OrderFilled, rs)) == 2)
    fills = _of(OrderFilled, reports)
    assert [(f.last_qty, f.last_price) for f in fills] == [  # type: ignore[attr-defined]
        (fixed("0.004"), fixed("60000")), (fixed("0.006"), fixed("60010"))]
    # a sell pays its 0.1 % commission in the quote asset: USDT, as charged
    assert fills[0].fee == fixed("0.24")  # type: ignore[attr-defined]
    assert rig.venue.stream.down is False  # they came over the stream, not from polling
    assert fake.call(lambda: len(fake.fake.subscribers)) == 1  # signed subscription taken
    # the position is the base asset held: 1 BTC before, 0.01 sold
    assert rig.link.call(rig.venue.positions) == {IID: fixed("-0.01") + fixed("1")}


def test_spot_fills_in_a_stream_outage_come_back_once_over_rest(
        rig: SpotRig, fake: FakeThread) -> None:
    rig.submit("sg-1", "0.01000", "61000.00", OrderSide.SELL)
    rig.wait_for(lambda rs: _of(OrderAccepted, rs, "sg-1"))
    rig.wait_for(lambda rs: not rig.venue.stream.down)
    fake.run(fake.fake.streams_down())
    fake.call(fake.fake.fill, "sg-1", 0.003, 61000.0)  # in the gap: no event
    reports = rig.wait_for(lambda rs: len(_of(OrderFilled, rs)) == 1)  # REST polling
    assert rig.venue.stream.down
    fake.call(fake.fake.fill, "sg-1", 0.007, 61000.0)
    fake.call(fake.fake.streams_up)
    rig.wait_for(lambda rs: len(_of(OrderFilled, rs)) == 2 and not rig.venue.stream.down,
                 timeout_s=30)
    time.sleep(1.0)
    reports = rig.wait_for(lambda rs: True)
    fills = _of(OrderFilled, reports)
    assert len(fills) == 2
    assert {f.fill_id for f in fills} == {  # type: ignore[attr-defined]
        f"CX-BTCUSDT-{t['id']}" for t in fake.fake.trades}


def test_spot_cancel_and_exchange_rejects(rig: SpotRig, fake: FakeThread) -> None:
    rig.submit("sc-1", "0.01000", "70000.00", OrderSide.SELL)
    rig.submit("sc-2", "5.00000", "70000.00", OrderSide.SELL)  # more BTC than the account has
    reports = rig.wait_for(lambda rs: _of(OrderAccepted, rs, "sc-1")
                           and _of(OrderRejected, rs, "sc-2"))
    (refused,) = _of(OrderRejected, reports, "sc-2")
    assert refused.venue_code == "InsufficientFunds"  # type: ignore[attr-defined]
    assert "insufficient balance" in refused.reason  # type: ignore[attr-defined]
    rig.link.call(rig.venue.cancel, _cancel("sc-1"), time.time_ns())
    rig.wait_for(lambda rs: _of(OrderCanceled, rs, "sc-1"))
    assert rig.link.call(rig.venue.open_orders) == []


def _cancel(cid: str) -> Any:
    from runtime.messages import CancelOrder

    return CancelOrder(seq=next(_seq), ts_event=next(_seq), ts_init=0, client_order_id=cid,
                       strategy_id="s", instrument_id=IID)


def test_a_borrow_feed_polls_the_margin_rate_of_the_base_asset(fake: FakeThread) -> None:
    """``GET /sapi/v1/margin/interestRateHistory`` (signed) through ccxt's
    ``fetch_cross_borrow_rate``: Binance's daily rate, annualised on the carry's actual/360."""
    import asyncio

    from actors.venues.aux_feeds import AuxFeedConfig
    from actors.venues.ccxt_aux import CcxtAuxPoller
    from runtime.messages import AuxData, BorrowRate

    now_ms = int(time.time() * 1000)
    fake.call(fake.fake.set_borrow_rate, "BTC", "0.00020000", now_ms - 7_200_000)
    fake.call(fake.fake.set_borrow_rate, "BTC", "0.00026125", now_ms - 3_600_000)
    got: list[AuxData] = []
    clock = [1_000.0]
    poller = CcxtAuxPoller(spot_config(fake.port),
                           [AuxFeedConfig(kind="borrow", instrument=IID, every_s=60, ttl_s=600)],
                           got.extend, clock=lambda: clock[0])

    async def rounds() -> None:
        try:
            await poller.poll_due()
            clock[0] += 61
            fake.fake.borrow.clear()  # the exchange answers nothing for BTC now
            await poller.poll_due()
        finally:
            await poller.aclose()

    asyncio.run(rounds())
    (rate,) = got
    assert isinstance(rate, BorrowRate) and rate.instrument_id == IID
    assert rate.rate == fixed("0.09405")  # 0.026125 % a day, the newest row, x 360
    assert rate.ts_event == (now_ms - 3_600_000) * 1_000_000
    telemetry = poller.telemetry()[f"borrow/{IID}"]
    assert telemetry["errors"] == 1 and "borrow rate" in str(telemetry["last_error"])
    assert ("GET", "/sapi/v1/margin/interestRateHistory", 200) in fake.fake.requests


def test_a_borrow_feed_is_refused_where_it_cannot_be_polled(fake: FakeThread) -> None:
    from actors.venues.aux_feeds import AuxFeedConfig
    from actors.venues.ccxt_aux import CcxtAuxPoller
    from runtime.errors import ConfigError

    feed = [AuxFeedConfig(kind="borrow", instrument=IID)]
    demo = CcxtConfig.model_validate({"exchange": "binance", "symbols": {IID: SYMBOL}})
    with pytest.raises(ConfigError, match="paper environment has no margin API"):
        CcxtAuxPoller(demo, feed, lambda batch: None)
    other = CcxtConfig.model_validate({"exchange": "alpaca", "symbols": {IID: "BTC/USD"},
                                      "paper": True})
    with pytest.raises(ConfigError, match="no cross-margin borrow rate"):
        CcxtAuxPoller(other, feed, lambda batch: None)


def _portfolio_of(fills: list[OrderEvent]) -> Any:
    from runtime.instruments import InstrumentRegistry
    from runtime.portfolio import Portfolio

    book = Portfolio(InstrumentRegistry([btc_usdt()]), initial_cash=fixed(100_000),
                     currency="USDT")
    for fill in fills:
        book.apply_fill(fill)  # type: ignore[arg-type]
    return book


def test_a_buys_fee_in_btc_is_not_held_and_is_paid(rig: SpotRig, fake: FakeThread) -> None:
    """Binance takes a buy's 0.1 % commission from the BTC received (``commissionAsset`` BTC):
    the fills say so (``fee_qty``), the position is what the account holds, the fee's value is
    a fee, reconciliation against the BTC balance stays clean, and selling everything held
    goes through (the exchange would refuse a sell of the BTC the fee took)."""
    rig.submit("sb-1", "0.01000", "60000.00", OrderSide.BUY)
    rig.wait_for(lambda rs: _of(OrderAccepted, rs, "sb-1"))
    rig.wait_for(lambda rs: not rig.venue.stream.down)
    fake.call(fake.fake.fill, "sb-1", 0.004, 60000.0)  # over the user data stream
    rig.wait_for(lambda rs: len(_of(OrderFilled, rs)) == 1)
    fake.run(fake.fake.streams_down())
    fake.call(fake.fake.fill, "sb-1", 0.006, 60000.0)  # in the gap: from myTrades over REST
    reports = rig.wait_for(lambda rs: len(_of(OrderFilled, rs)) == 2, timeout_s=30)
    fills = _of(OrderFilled, reports)
    assert [(f.last_qty, f.fee_qty, f.fee) for f in fills] == [  # type: ignore[attr-defined]
        (fixed("0.004"), fixed("0.000004"), fixed("0.24")),
        (fixed("0.006"), fixed("0.000006"), fixed("0.36"))]
    assert fills[1].cum_qty == fixed("0.01")  # type: ignore[attr-defined]  # the order's own
    held = fixed("1.00999")  # 1 BTC before, 0.01 bought, 0.00001 taken as fee
    assert fake.call(lambda: fake.fake.balances["BTC"]) == Decimal("1.00999")
    assert rig.link.call(rig.venue.positions) == {IID: held}
    assert rig.link.run(rig.venue.reconcile())  # the account's BTC balance agrees
    assert rig.link.call(lambda: rig.venue.reconciler.last_drifts) == []
    portfolio = _portfolio_of(fills)
    assert portfolio.quantity(IID) == fixed("0.00999")
    assert portfolio.cash == fixed(100_000) - fixed(600)  # what the account paid in USDT
    assert portfolio.fees == fixed("0.6")  # 0.00001 BTC at 60 000
    assert portfolio.account().total_pnl == -fixed("0.6") and portfolio.identity_gap() == 0
    fake.call(fake.fake.streams_up)
    rig.submit("sb-2", "1.00999", "60000.00", OrderSide.SELL)  # all the account holds
    rig.wait_for(lambda rs: _of(OrderAccepted, rs, "sb-2") or _of(OrderRejected, rs, "sb-2"))
    assert not _of(OrderRejected, rig.collected, "sb-2")
    fake.call(fake.fake.fill, "sb-2", 1.00999, 60000.0)
    reports = rig.wait_for(lambda rs: len(_of(OrderFilled, rs, "sb-2")) == 1, timeout_s=30)
    (sold,) = _of(OrderFilled, reports, "sb-2")
    assert sold.fee_qty == 0 and sold.fee == fixed("60.5994")  # type: ignore[attr-defined]
    assert fake.call(lambda: fake.fake.balances["BTC"]) == 0
    assert rig.link.call(rig.venue.positions).get(IID, 0) == 0  # flat, as the account
    assert rig.link.run(rig.venue.reconcile())


def test_a_fee_in_bnb_is_counted_not_dropped(fake: FakeThread, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """With BNB fee payment the commission is in BNB, which ccxt's trade does not value in
    USDT: the fill's fee is what the trade values (nothing), and the BNB is warned about and
    counted per asset in the gateway's health; the position is the full BTC bought."""
    from actors.venues.links import open_broker_gateway

    fake.call(lambda: fake.fake.balances.__setitem__("BNB", Decimal("1")))
    fake.call(fake.fake.pay_fees_in_bnb, "600")
    gateway = open_broker_gateway(spot_config(fake.port), tmp_path,
                                  instruments={IID: btc_usdt()}, confirmed_live=False)
    collected: list[Any] = []

    def reports(check: Any) -> list[Any]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            collected.extend(gateway.reports_due(0))
            if check(collected):
                return collected
            time.sleep(0.05)
        raise AssertionError(f"not reached; reports: {collected}")

    try:
        reports(lambda _: gateway.health()["connected"])
        assert gateway.health()["unpriced_fees"] == {}
        gateway.send([SubmitOrder(
            seq=next(_seq), ts_event=next(_seq), ts_init=0, client_order_id="bn-1",
            strategy_id="s", instrument_id=IID, side=OrderSide.BUY, order_type=OrderType.LIMIT,
            quantity=fixed("0.01"), price=fixed("60000"), time_in_force=TimeInForce.GTC)])
        reports(lambda rs: _of(OrderAccepted, rs, "bn-1"))
        time.sleep(0.5)  # the user stream is subscribed (ccxt opens it on the first watch)
        with caplog.at_level("WARNING", logger="tradewind.venues.ccxt"):
            fake.call(fake.fake.fill, "bn-1", 0.01, 60000.0)
            (fill,) = _of(OrderFilled, reports(lambda rs: _of(OrderFilled, rs)))
        assert (fill.fee, fill.fee_qty, fill.last_qty) == (0, 0, fixed("0.01"))
        # 600 USDT × 0.075 % at 600 USDT a BNB
        assert gateway.health()["unpriced_fees"] == {"BNB": "0.00075"}
        assert any("0.00075 BNB" in r.getMessage() and "unpriced_fees" in r.getMessage()
                   for r in caplog.records)
        assert fake.call(lambda: fake.fake.balances["BTC"]) == Decimal("1.01")
    finally:
        gateway.close()
