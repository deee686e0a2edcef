"""Stop and stop-limit orders through ccxt to Binance USD-M's Algo Order API (the fake speaks it,
signed requests checked): submit, trigger, the fill from the user stream or over REST after a
gap, cancel before and after the trigger, and a restart that finds a stop triggered meanwhile."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.messages import (
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderType,
    SubmitOrder,
    TimeInForce,
)
from runtime.values import fixed
from tests.venues.broker_helpers import FakeBinanceThread
from tests.venues.ccxt_helpers import IID, CcxtRig

pytest.importorskip("ccxt")

_seq = itertools.count(90_000)


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


def _stop(rig: CcxtRig, cid: str, qty: str, trigger: str, limit: str | None = None, *,
          side: OrderSide = OrderSide.BUY,
          tif: TimeInForce = TimeInForce.GTC) -> None:
    command = SubmitOrder(
        seq=next(_seq), ts_event=next(_seq), ts_init=0, client_order_id=cid, strategy_id="s",
        instrument_id=IID, side=side,
        order_type=OrderType.STOP if limit is None else OrderType.STOP_LIMIT,
        quantity=fixed(qty), price=None if limit is None else fixed(limit),
        trigger_price=fixed(trigger), time_in_force=tif)
    rig.link.call(rig.venue.submit, command, time.time_ns())


def _of(kind: type, reports: list[OrderEvent], cid: str | None = None) -> list[OrderEvent]:
    return [r for r in reports if isinstance(r, kind)
            and (cid is None or r.client_order_id == cid)]


def _algo(fake: FakeBinanceThread, cid: str) -> dict[str, object]:
    return fake.call(lambda: fake.fake.algo.by_client[cid].rest())  # type: ignore[no-any-return]


def _calls(fake: FakeBinanceThread, method: str, path: str) -> list[int]:
    return [s for m, p, s in fake.fake.requests if (m, p) == (method, path)]


def test_a_stop_goes_to_the_algo_api_rests_then_fills_when_triggered(
        rig: CcxtRig, fake: FakeBinanceThread) -> None:
    _stop(rig, "st-1", "0.004", "51000")
    rig.wait_for(lambda rs: _of(OrderAccepted, rs, "st-1"))
    algo = _algo(fake, "st-1")
    assert (algo["orderType"], algo["algoStatus"], algo["triggerPrice"]) == (
        "STOP_MARKET", "NEW", "51000")
    assert _calls(fake, "POST", "/fapi/v1/algoOrder") == [200]
    assert _calls(fake, "POST", "/fapi/v1/order") == []  # not the regular order endpoint
    assert [o.client_order_id for o in rig.open_orders()] == ["st-1"]
    time.sleep(0.5)
    assert _of(OrderFilled, rig.reports()) == []  # 50,000 is below the trigger
    fake.call(fake.fake.set_price, "BTCUSDT", 51_000.0)
    reports = rig.wait_for(lambda rs: _of(OrderFilled, rs, "st-1"))
    (fill,) = _of(OrderFilled, reports)
    assert (fill.last_qty, fill.last_price, fill.leaves_qty) == (  # type: ignore[attr-defined]
        fixed("0.004"), fixed("51000"), 0)
    actual = _algo(fake, "st-1")["actualOrderId"]
    assert fill.fill_id == f"CX-BTCUSDT-{fake.snapshot()['trades'][0]}"  # type: ignore[attr-defined]
    assert rig.venue.send_log.orders["st-1"].broker_ids["actual_id"] == actual
    assert _algo(fake, "st-1")["algoStatus"] == "FINISHED"
    assert rig.positions() == {IID: fixed("0.004")} and rig.open_orders() == []
    assert rig.link.call(lambda: rig.venue.book.foreign) == 0  # the placed order is ours


def test_a_stop_limit_that_rests_after_its_trigger_is_cancelled_in_the_matching_engine(
        rig: CcxtRig, fake: FakeBinanceThread) -> None:
    _stop(rig, "sl-1", "0.003", "49000", "49500", side=OrderSide.SELL)
    _stop(rig, "sl-2", "0.003", "52000", "52100")  # fills at its limit once triggered
    rig.wait_for(lambda rs: len(_of(OrderAccepted, rs)) == 2)
    assert _algo(fake, "sl-1")["orderType"] == "STOP"
    fake.call(fake.fake.set_price, "BTCUSDT", 49_000.0)  # sl-1 triggers: a sell at 49,500 rests
    rig.wait_for(lambda rs: rig.venue.send_log.orders["sl-1"].broker_ids.get("actual_id"))
    assert _algo(fake, "sl-1")["algoStatus"] == "TRIGGERED"
    rig.cancel("sl-1")
    reports = rig.wait_for(lambda rs: _of(OrderCanceled, rs, "sl-1"))
    assert _calls(fake, "DELETE", "/fapi/v1/order") == [200]  # the placed order, by its id
    assert _algo(fake, "sl-1")["algoStatus"] == "FINISHED"
    fake.call(fake.fake.set_price, "BTCUSDT", 52_000.0)
    reports = rig.wait_for(lambda rs: _of(OrderFilled, rs, "sl-2"))
    (fill,) = _of(OrderFilled, reports)
    assert fill.last_price == fixed("52100")  # type: ignore[attr-defined]
    assert rig.positions() == {IID: fixed("0.003")}


def test_cancel_before_the_trigger_goes_to_the_algo_api_and_modify_is_refused(
        rig: CcxtRig, fake: FakeBinanceThread) -> None:
    _stop(rig, "sc-1", "0.002", "55000")
    rig.wait_for(lambda rs: _of(OrderAccepted, rs, "sc-1"))
    rig.modify("sc-1", "0.003", "55000")
    rig.cancel("sc-1")
    reports = rig.wait_for(lambda rs: _of(OrderCanceled, rs, "sc-1")
                           and _of(OrderCancelRejected, rs, "sc-1"))
    assert "cannot amend a stop" in _of(OrderCancelRejected, reports)[0].reason  # type: ignore[attr-defined]
    assert _calls(fake, "DELETE", "/fapi/v1/algoOrder") == [200]
    assert _algo(fake, "sc-1")["algoStatus"] == "CANCELED"
    fake.call(fake.fake.set_price, "BTCUSDT", 56_000.0)
    time.sleep(0.5)
    assert _of(OrderFilled, rig.reports()) == [] and rig.open_orders() == []


def test_stops_off_the_grid_or_with_a_day_time_in_force_are_refused_by_name(
        rig: CcxtRig, fake: FakeBinanceThread) -> None:
    _stop(rig, "sx-1", "0.002", "51000.05")  # trigger off the 0.1 tick: never rounded
    _stop(rig, "sx-2", "0.002", "51000", tif=TimeInForce.DAY)
    reports = rig.wait_for(lambda rs: len(_of(OrderRejected, rs)) == 2)
    reasons = {r.client_order_id: r.reason for r in _of(OrderRejected, reports)}  # type: ignore[attr-defined]
    assert "trigger price 51000.05" in reasons["sx-1"] and "tick_size" in reasons["sx-1"]
    assert "DAY" in reasons["sx-2"]
    assert fake.snapshot()["attempts"] == []


def test_a_stop_triggered_and_filled_during_a_stream_outage_is_reported_once_over_rest(
        rig: CcxtRig, fake: FakeBinanceThread) -> None:
    _stop(rig, "sg-1", "0.005", "51000")
    rig.wait_for(lambda rs: _of(OrderAccepted, rs, "sg-1"))
    rig.wait_for(lambda rs: not rig.venue.stream.down, timeout_s=10)
    fake.run(fake.fake.streams_down())
    fake.call(fake.fake.set_price, "BTCUSDT", 51_500.0)  # triggered and filled, no event
    reports = rig.wait_for(lambda rs: _of(OrderFilled, rs, "sg-1"), timeout_s=20)  # REST
    assert rig.venue.stream.down
    fake.call(fake.fake.streams_up)
    rig.wait_for(lambda rs: not rig.venue.stream.down, timeout_s=20)
    time.sleep(1.0)  # reconciled again with the stream up: nothing more may come
    reports = rig.wait_for(lambda rs: True)
    (fill,) = _of(OrderFilled, reports)
    assert (fill.last_qty, fill.last_price) == (fixed("0.005"), fixed("51500"))  # type: ignore[attr-defined]
    assert rig.positions() == {IID: fixed("0.005")}
    assert ("GET", "/fapi/v1/algoOrder", 200) in fake.fake.requests  # asked where it went


def test_a_restart_finds_a_stop_that_triggered_while_the_gateway_was_down(
        fake: FakeBinanceThread, tmp_path: Path) -> None:
    first = CcxtRig(tmp_path, fake)
    try:
        _stop(first, "sr-1", "0.003", "51000")
        first.wait_for(lambda rs: _of(OrderAccepted, rs, "sr-1"))
    finally:
        first.close()
    fake.call(fake.fake.set_price, "BTCUSDT", 51_200.0)  # nobody listening
    again = CcxtRig(tmp_path, fake)
    try:
        reports = again.wait_for(lambda rs: _of(OrderFilled, rs, "sr-1"), timeout_s=20)
        (fill,) = _of(OrderFilled, reports)
        assert (fill.last_qty, fill.last_price) == (fixed("0.003"), fixed("51200"))  # type: ignore[attr-defined]
        assert again.positions() == {IID: fixed("0.003")} and again.open_orders() == []
        time.sleep(0.5)
        assert again.link.call(lambda: again.venue.reconciler.last_drifts) == []
    finally:
        again.close()
    assert fake.snapshot()["attempts"] == ["sr-1"]  # sent once, never again


def test_a_stop_whose_create_call_timed_out_is_found_by_its_client_id_never_resent(
        rig: CcxtRig, fake: FakeBinanceThread) -> None:
    """A 503 "execution status unknown" after the Algo service took the stop, the user stream
    down: reconciliation finds it among the open algo orders by its client algo id, and its
    trigger's fill comes over REST; the stop went to the exchange once."""
    from runtime.messages import OrderStatusUnknown

    rig.wait_for(lambda rs: not rig.venue.stream.down, timeout_s=10)
    fake.run(fake.fake.streams_down())
    fake.call(lambda: fake.fake.fail(1, take_it=True))
    _stop(rig, "su-1", "0.002", "51000")
    reports = rig.wait_for(lambda rs: _of(OrderAccepted, rs, "su-1")
                           and _of(OrderStatusUnknown, rs, "su-1"), timeout_s=20)
    assert len(_of(OrderAccepted, reports, "su-1")) == 1
    fake.call(fake.fake.set_price, "BTCUSDT", 51_000.0)
    reports = rig.wait_for(lambda rs: _of(OrderFilled, rs, "su-1"), timeout_s=20)
    assert _of(OrderFilled, reports)[0].last_qty == fixed("0.002")  # type: ignore[attr-defined]
    assert fake.snapshot()["attempts"] == ["su-1"]
    assert _calls(fake, "POST", "/fapi/v1/algoOrder") == [503]
    assert ("GET", "/fapi/v1/openAlgoOrders", 200) in fake.fake.requests
