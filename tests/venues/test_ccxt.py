"""The CCXT adapter driving the unmodified ccxt.pro binanceusdm client against the loopback
Binance USD-M fake (REST with HMAC-SHA256 signatures checked, the user-data WebSocket)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.messages import (
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderStatusUnknown,
    OrderUpdated,
    TimeInForce,
)
from runtime.values import fixed
from tests.venues.broker_helpers import FakeBinanceThread
from tests.venues.ccxt_helpers import IID, CcxtRig, submit_command

pytest.importorskip("ccxt")


@pytest.fixture
def fake() -> Iterator[FakeBinanceThread]:
    thread = FakeBinanceThread()
    thread.call(thread.fake.set_price, "BTCUSDT", 50_000.0)
    yield thread
    thread.close()


@pytest.fixture
def rig(fake: FakeBinanceThread, tmp_path: Path) -> Iterator[CcxtRig]:
    rig = CcxtRig(tmp_path, fake)
    yield rig
    rig.close()


def _of(kind: type, reports: list[OrderEvent], cid: str | None = None) -> list[OrderEvent]:
    return [r for r in reports if isinstance(r, kind)
            and (cid is None or r.client_order_id == cid)]


def test_limit_order_acked_then_partially_filled_with_cumulative_quantities(
        rig: CcxtRig, fake: FakeBinanceThread) -> None:
    rig.submit("o-1", "0.005", "49000")
    rig.wait_for(lambda rs: _of(OrderAccepted, rs, "o-1"))
    assert [o.client_order_id for o in rig.open_orders()] == ["o-1"]
    fake.call(fake.fake.fill, "o-1", 0.002, 49000.0)
    rig.wait_for(lambda rs: len(_of(OrderFilled, rs)) == 1)
    fake.call(fake.fake.fill, "o-1", 0.003, 48999.9)
    reports = rig.wait_for(lambda rs: len(_of(OrderFilled, rs)) == 2)
    fills = _of(OrderFilled, reports)
    assert [(f.last_qty, f.cum_qty, f.leaves_qty) for f in fills] == [  # type: ignore[attr-defined]
        (fixed("0.002"), fixed("0.002"), fixed("0.003")), (fixed("0.003"), fixed("0.005"), 0)]
    assert [f.last_price for f in fills] == [fixed("49000"), fixed("48999.9")]  # type: ignore[attr-defined]
    # Binance's maker commission 0.02% in USDT, as the exchange charged it
    assert fills[0].fee == fixed("0.0196") and fills[0].currency == "USDT"  # type: ignore[attr-defined]
    assert len({f.fill_id for f in fills}) == 2  # type: ignore[attr-defined]
    assert rig.positions() == {IID: fixed("0.005")}
    assert rig.open_orders() == []
    assert fake.snapshot()["placed"] == ["o-1"]


def test_market_order_fills_at_once_and_positions_follow(rig: CcxtRig,
                                                         fake: FakeBinanceThread) -> None:
    rig.submit("m-1", "0.004", None)
    rig.submit("m-2", "0.001", None, side=OrderSide.SELL, reduce_only=True,
               time_in_force=TimeInForce.DAY)  # DAY on a market order: it never rests
    reports = rig.wait_for(lambda rs: len(_of(OrderFilled, rs)) == 2)
    assert sorted(f.client_order_id for f in _of(OrderFilled, reports)) == ["m-1", "m-2"]
    assert fake.snapshot()["placed"] == ["m-1", "m-2"]  # sent in order, one after the other
    assert rig.positions() == {IID: fixed("0.003")}
    assert fake.snapshot()["positions"] == {"BTCUSDT": 0.003}


def test_exchange_rejects_carry_its_code_and_flags_it_lacks_are_refused_by_name(
        rig: CcxtRig, fake: FakeBinanceThread) -> None:
    rig.submit("r-1", "0.001", "49000")  # 49 USDT: below the 100 USDT minimum notional
    rig.submit("r-2", "0.003", "51000", post_only=True)  # would take: -5022
    rig.submit("r-3", "0.003", "49000", reduce_only=True)  # nothing to reduce: -2022
    rig.submit("r-4", "0.003", "49000.05")  # off the 0.1 tick: refused here, never rounded
    rig.submit("r-5", "0.003", "49000", time_in_force=TimeInForce.DAY)  # no DAY in crypto
    reports = rig.wait_for(lambda rs: len(_of(OrderRejected, rs)) == 5)
    codes = {r.client_order_id: r.venue_code for r in _of(OrderRejected, reports)}  # type: ignore[attr-defined]
    assert codes == {"r-1": "gateway.order", "r-2": "-5022", "r-3": "-2022",
                     "r-4": "gateway.order", "r-5": "gateway.order"}
    reasons = {r.client_order_id: r.reason for r in _of(OrderRejected, reports)}  # type: ignore[attr-defined]
    assert "min_notional" in reasons["r-1"] and "tick_size" in reasons["r-4"]
    assert "DAY" in reasons["r-5"]
    # refused at the gateway: never sent; the exchange saw only the two it refused itself
    assert fake.snapshot()["attempts"] == ["r-2", "r-3"]
    assert _of(OrderAccepted, reports) == []


def test_cancel_modify_and_cancel_of_an_unknown_order(rig: CcxtRig,
                                                      fake: FakeBinanceThread) -> None:
    rig.submit("c-1", "0.004", "49000")
    rig.wait_for(lambda rs: _of(OrderAccepted, rs, "c-1"))
    rig.modify("c-1", "0.003", "48500")
    reports = rig.wait_for(lambda rs: _of(OrderUpdated, rs, "c-1"))
    (update,) = _of(OrderUpdated, reports)
    assert (update.quantity, update.price) == (fixed("0.003"), fixed("48500"))  # type: ignore[attr-defined]
    (order,) = rig.open_orders()
    assert (order.quantity, order.price) == (fixed("0.003"), fixed("48500"))
    rig.cancel("c-1")
    rig.cancel("never-sent")
    reports = rig.wait_for(lambda rs: _of(OrderCanceled, rs) and _of(OrderCancelRejected, rs))
    assert [r.client_order_id for r in _of(OrderCanceled, reports)] == ["c-1"]
    assert [r.client_order_id for r in _of(OrderCancelRejected, reports)] == ["never-sent"]
    assert rig.open_orders() == []
    order_row = fake.call(lambda: fake.fake.by_client["c-1"].rest())
    assert (order_row["status"], order_row["origQty"], order_row["price"]) == (
        "CANCELED", "0.003", "48500")


def test_fills_during_a_stream_outage_come_back_once_over_rest(
        rig: CcxtRig, fake: FakeBinanceThread) -> None:
    rig.submit("g-1", "0.006", "49000")
    rig.wait_for(lambda rs: _of(OrderAccepted, rs, "g-1"))
    rig.wait_for(lambda rs: not rig.venue.stream.down, timeout_s=10)
    fake.run(fake.fake.streams_down())
    fake.call(fake.fake.fill, "g-1", 0.002, 49000.0)  # in the gap: no WebSocket event
    reports = rig.wait_for(lambda rs: len(_of(OrderFilled, rs)) == 1)  # REST polling
    assert rig.venue.stream.down
    fake.call(fake.fake.fill, "g-1", 0.004, 49000.0)
    fake.call(fake.fake.streams_up)
    reports = rig.wait_for(lambda rs: len(_of(OrderFilled, rs)) == 2
                           and not rig.venue.stream.down, timeout_s=20)
    time.sleep(1.0)  # the stream is back; a reconciliation ran: nothing more may come
    reports = rig.wait_for(lambda rs: True)
    fills = _of(OrderFilled, reports)
    assert len(fills) == 2 and len({f.fill_id for f in fills}) == 2  # type: ignore[attr-defined]
    assert {f.fill_id for f in fills} == {  # type: ignore[attr-defined]
        f"CX-BTCUSDT-{t}" for t in fake.snapshot()["trades"]}
    assert rig.positions() == {IID: fixed("0.006")}


def test_a_429_pauses_sending_for_retry_after_and_the_order_goes_once(
        rig: CcxtRig, fake: FakeBinanceThread) -> None:
    rig.wait_for(lambda rs: not rig.venue.stream.down, timeout_s=10)
    fake.call(fake.fake.throttle, 1, 1.0, "/fapi/v1/order")
    started = time.monotonic()
    rig.submit("t-1", "0.003", "49000")
    rig.wait_for(lambda rs: _of(OrderAccepted, rs))
    waited = time.monotonic() - started
    rig.submit("t-2", "0.003", "49000")
    reports = rig.wait_for(lambda rs: len(_of(OrderAccepted, rs)) == 2)
    assert [r.client_order_id for r in _of(OrderAccepted, reports)] == ["t-1", "t-2"]
    assert waited >= 0.9  # Retry-After honoured before the next request
    assert fake.snapshot()["placed"] == ["t-1", "t-2"]
    statuses = [s for m, p, s in fake.fake.requests if (m, p) == ("POST", "/fapi/v1/order")]
    assert statuses == [429, 200, 200]
    assert _of(OrderRejected, reports) == []


def test_a_5xx_after_the_exchange_took_the_order_is_reconciled_never_resent(
        rig: CcxtRig, fake: FakeBinanceThread) -> None:
    rig.wait_for(lambda rs: not rig.venue.stream.down, timeout_s=10)
    fake.call(lambda: fake.fake.fail(1, take_it=True))
    rig.submit("u-1", "0.003", "49000")
    reports = rig.wait_for(lambda rs: _of(OrderAccepted, rs, "u-1")
                           and _of(OrderStatusUnknown, rs, "u-1"), timeout_s=20)
    assert _of(OrderStatusUnknown, reports, "u-1")  # the stream's NEW may come first
    assert len(_of(OrderAccepted, reports, "u-1")) == 1
    fake.call(fake.fake.fill, "u-1", 0.003, 49000.0)
    rig.wait_for(lambda rs: _of(OrderFilled, rs, "u-1"))
    assert fake.snapshot()["attempts"] == ["u-1"]  # asked for by client id, never sent again


def test_a_5xx_before_the_exchange_took_it_ends_as_not_found(
        rig: CcxtRig, fake: FakeBinanceThread) -> None:
    fake.call(lambda: fake.fake.fail(1, take_it=False))
    rig.submit("u-2", "0.003", "49000")
    reports = rig.wait_for(lambda rs: _of(OrderRejected, rs, "u-2"), timeout_s=20)
    (reject,) = _of(OrderRejected, reports, "u-2")
    assert reject.venue_code == "not_found"  # type: ignore[attr-defined]
    assert fake.snapshot()["attempts"] == []


def test_clock_skew_beyond_the_limit_refuses_new_orders(fake: FakeBinanceThread,
                                                         tmp_path: Path) -> None:
    fake.fake.skew_ms = 3_000  # the exchange's clock runs 3 s ahead of ours
    rig = CcxtRig(tmp_path, fake, recv_window_ms=10_000)
    try:
        assert rig.venue.skewed and abs(rig.venue.skew_ms - 3_000) < 500
        rig.submit("k-1", "0.003", "49000")
        (reject,) = rig.wait_for(lambda rs: _of(OrderRejected, rs))
        assert reject.venue_code == "gateway.clock_skew"  # type: ignore[attr-defined]
        assert fake.snapshot()["attempts"] == []
    finally:
        rig.close()


def test_a_wrong_secret_fails_the_signature_check(fake: FakeBinanceThread,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TW_TEST_CCXT_SECRET", "not-the-secret")
    rig = CcxtRig(tmp_path, fake)
    try:
        assert not rig.venue.connected  # -1022: the exchange refused the signature
        rig.submit("s-1", "0.003", "49000")
        (reject,) = rig.wait_for(lambda rs: _of(OrderRejected, rs))
        assert reject.venue_code == "gateway.disconnected"  # type: ignore[attr-defined]
        assert fake.fake.signed_ok == 0
        assert any(s == 400 for _, _, s in fake.fake.requests)
    finally:
        rig.close()


def test_dry_run_refuses_every_order_at_the_gateway(fake: FakeBinanceThread,
                                                    tmp_path: Path) -> None:
    rig = CcxtRig(tmp_path, fake, dry_run=True)
    try:
        assert rig.venue.connected and rig.venue.account["total"]["USDT"] == 100_000
        rig.submit("d-1", "0.003", "49000")
        (reject,) = rig.wait_for(lambda rs: _of(OrderRejected, rs))
        assert reject.venue_code == "gateway.dry_run"  # type: ignore[attr-defined]
        assert "dry run" in reject.reason  # type: ignore[attr-defined]
        assert fake.snapshot()["attempts"] == []
    finally:
        rig.close()


def _gateway(port: int, folder: Path) -> Any:
    from actors.venues.links import open_broker_gateway
    from tests.venues.ccxt_helpers import btc_perp, ccxt_config

    return open_broker_gateway(ccxt_config(port), folder, instruments={IID: btc_perp()},
                               confirmed_live=False)


def _settle(gateway: Any) -> list[OrderEvent]:
    reports: list[OrderEvent] = []
    while (more := gateway.drain(len(reports))) is not None:
        reports.extend(more)
    return reports


def test_an_order_waiting_out_a_429_at_a_crash_goes_once_after_the_restart(
        fake: FakeBinanceThread, tmp_path: Path) -> None:
    """The gateway journaled the command, the exchange answered 429 (not processed), the order
    waited for Retry-After and the process died: the restarted gateway sends it, once."""
    fake.call(fake.fake.throttle, 1, 60.0, "/fapi/v1/order")
    gateway = _gateway(fake.port, tmp_path)
    command = submit_command("w-1", "0.003", "49000")
    try:
        time.sleep(0.5)  # the stream up (else its reconciliation is what meets the 429)
        assert gateway.send([command]) == 1
        deadline = time.monotonic() + 10
        while not any(s == 429 for _, _, s in fake.fake.requests):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        gateway.close()
    again = _gateway(fake.port, tmp_path)
    try:
        reports = _settle(again)
        assert again.send([command]) == 0  # a retried call: dropped
    finally:
        again.close()
    assert [type(r) for r in reports] == [OrderAccepted]
    assert fake.snapshot()["placed"] == ["w-1"]
    statuses = [s for m, p, s in fake.fake.requests if (m, p) == ("POST", "/fapi/v1/order")]
    assert statuses == [429, 200]


def test_an_order_journaled_before_a_crash_is_asked_for_never_resent(
        fake: FakeBinanceThread, tmp_path: Path) -> None:
    from actors.venues.common import SendLog
    from runtime.journal import Journal

    command = submit_command("w-2", "0.003", "49000")
    journal = Journal(tmp_path / "gateway.journal")
    journal.append(command, durable=True)
    journal.close()
    log = SendLog(Journal(tmp_path / "broker.ccxt.journal"))
    assert log.before_send(command)
    log.broker_ids("w-2", tag="w-2", sent_ms=str(time.time_ns() // 1_000_000))
    log.journal.close()
    gateway = _gateway(fake.port, tmp_path)
    try:
        (report,) = _settle(gateway)
    finally:
        gateway.close()
    assert isinstance(report, OrderRejected) and report.venue_code == "not_found"  # type: ignore[attr-defined]
    assert fake.snapshot()["attempts"] == []
    assert ("GET", "/fapi/v1/order", 400) in fake.fake.requests  # asked by client order id


def test_post_only_rejects_are_expected_and_do_not_trip_the_breaker(
        fake: FakeBinanceThread, tmp_path: Path) -> None:
    """A post-only order that would take (-5022) is the exchange answering as documented: more
    of them than the breaker's threshold leave it closed, and the next order goes; the same
    number of other rejects (-2022) open it."""
    rig = CcxtRig(tmp_path, fake, breaker_threshold=2)
    try:
        for i in range(3):
            rig.submit(f"p-{i}", "0.003", "51000", post_only=True)
        reports = rig.wait_for(lambda rs: len(_of(OrderRejected, rs)) == 3)
        assert {r.venue_code for r in _of(OrderRejected, reports)} == {"-5022"}  # type: ignore[attr-defined]
        assert rig.venue.breaker.allows_new_orders
        rig.submit("ok-1", "0.003", "49000")
        rig.wait_for(lambda rs: _of(OrderAccepted, rs, "ok-1"))
        for i in range(2):
            rig.submit(f"x-{i}", "0.003", "49000", side=OrderSide.SELL, reduce_only=True,
                       time_in_force=TimeInForce.GTC)
        rig.wait_for(lambda rs: len(_of(OrderRejected, rs)) == 5)
        assert not rig.venue.breaker.allows_new_orders  # real faults still count
    finally:
        rig.close()
