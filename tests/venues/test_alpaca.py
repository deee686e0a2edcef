"""The Alpaca adapter driving the unmodified alpaca-py clients (TradingClient, TradingStream)
against the loopback Alpaca fake (REST with its key headers checked, trade_updates)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.venues.alpaca_support import AlpacaConfig
from actors.venues.common import SendLog
from actors.venues.links import AlpacaLink
from runtime.instruments import Instrument
from runtime.journal import Journal
from runtime.messages import (
    CancelOrder,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderStatusUnknown,
    OrderType,
    OrderUpdated,
    SubmitOrder,
    TimeInForce,
)
from runtime.values import fixed
from tests.venues.broker_helpers import FakeAlpacaThread

pytest.importorskip("alpaca")

IID = "AAPL.NASDAQ"
_ts = itertools.count(50_000)


class AlpacaRig:
    def __init__(self, tmp: Path, fake: FakeAlpacaThread, **extra: Any) -> None:
        self.fake = fake
        self.journal = Journal(tmp / "alpaca.journal")
        config = AlpacaConfig.model_validate(fake.broker_block(**extra))
        self.link = AlpacaLink(config, SendLog(self.journal),
                               instruments={IID: Instrument(instrument_id=IID)})
        self.venue = self.link.venue
        self.collected: list[OrderEvent] = []

    def submit(self, cid: str, qty: int, price: str | None, *,
               side: OrderSide = OrderSide.BUY, **extra: Any) -> None:
        self.link.call(self.venue.submit, SubmitOrder(
            seq=next(_ts), ts_event=next(_ts), ts_init=0, client_order_id=cid, strategy_id="s",
            instrument_id=IID, side=side,
            order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
            quantity=fixed(qty), price=None if price is None else fixed(price),
            time_in_force=extra.pop("time_in_force", TimeInForce.DAY), **extra),
            time.time_ns())

    def cancel(self, cid: str) -> None:
        self.link.call(self.venue.cancel, CancelOrder(
            seq=next(_ts), ts_event=next(_ts), ts_init=0, client_order_id=cid,
            strategy_id="s", instrument_id=IID), time.time_ns())

    def modify(self, cid: str, qty: int, price: str) -> None:
        self.link.call(self.venue.modify, ModifyOrder(
            seq=next(_ts), ts_event=next(_ts), ts_init=0, client_order_id=cid,
            strategy_id="s", instrument_id=IID, quantity=fixed(qty), price=fixed(price)),
            time.time_ns())

    def wait_for(self, check: Any, timeout_s: float = 15.0) -> list[OrderEvent]:
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
def fake() -> Iterator[FakeAlpacaThread]:
    thread = FakeAlpacaThread(auto_fill_price=190.0)
    yield thread
    thread.close()


@pytest.fixture
def rig(fake: FakeAlpacaThread, tmp_path: Path) -> Iterator[AlpacaRig]:
    rig = AlpacaRig(tmp_path, fake)
    yield rig
    rig.close()


def _of(kind: type, reports: list[OrderEvent], cid: str | None = None) -> list[OrderEvent]:
    return [r for r in reports if isinstance(r, kind)
            and (cid is None or r.client_order_id == cid)]


def test_limit_order_acked_then_partially_filled_from_trade_updates(
        rig: AlpacaRig, fake: FakeAlpacaThread) -> None:
    rig.wait_for(lambda rs: not rig.venue.stream_down)
    rig.submit("a-1", 10, "189.5")
    rig.wait_for(lambda rs: _of(OrderAccepted, rs, "a-1"))
    fake.call(fake.fake.fill, "a-1", 4, 189.5)
    fake.call(fake.fake.fill, "a-1", 6, 189.4)
    reports = rig.wait_for(lambda rs: len(_of(OrderFilled, rs)) == 2)
    fills = _of(OrderFilled, reports)
    assert [(f.last_qty, f.cum_qty, f.leaves_qty, f.last_price) for f in fills] == [  # type: ignore[attr-defined]
        (fixed(4), fixed(4), fixed(6), fixed("189.5")), (fixed(6), fixed(10), 0, fixed("189.4"))]
    assert rig.link.call(rig.venue.positions) == {IID: fixed(10)}
    assert fake.snapshot()["placed"] == ["a-1"]


def test_market_order_fills_and_refusals_carry_alpacas_code(
        rig: AlpacaRig, fake: FakeAlpacaThread) -> None:
    rig.submit("m-1", 5, None)
    rig.submit("m-2", 1000, None)  # 190,000 USD: beyond the 100,000 buying power
    rig.submit("m-3", 5, "190", post_only=True)  # Alpaca has no post-only: refused here
    reports = rig.wait_for(lambda rs: _of(OrderFilled, rs) and len(_of(OrderRejected, rs)) == 2)
    codes = {r.client_order_id: r.venue_code for r in _of(OrderRejected, reports)}  # type: ignore[attr-defined]
    assert codes == {"m-2": "40310000", "m-3": "gateway.order"}
    assert fake.snapshot()["attempts"] == ["m-1", "m-2"]


def test_cancel_modify_and_cancel_of_an_unknown_order(rig: AlpacaRig,
                                                      fake: FakeAlpacaThread) -> None:
    rig.submit("c-1", 10, "180")
    rig.wait_for(lambda rs: _of(OrderAccepted, rs, "c-1"))
    rig.modify("c-1", 8, "181")
    reports = rig.wait_for(lambda rs: _of(OrderUpdated, rs, "c-1"))
    (update,) = _of(OrderUpdated, reports)
    assert (update.quantity, update.price) == (fixed(8), fixed(181))  # type: ignore[attr-defined]
    fake.call(lambda: fake.fake.fill(fake.fake.by_client["c-1.r1"].client_order_id, 3, 181.0))
    rig.wait_for(lambda rs: _of(OrderFilled, rs, "c-1"))  # the replacement's fill, same cid
    rig.cancel("c-1")
    rig.cancel("never-sent")
    reports = rig.wait_for(lambda rs: _of(OrderCanceled, rs) and _of(OrderCancelRejected, rs))
    assert [r.client_order_id for r in _of(OrderCanceled, reports)] == ["c-1"]
    assert rig.link.call(rig.venue.open_orders) == []


def test_fills_during_a_stream_outage_come_back_once_over_rest(
        rig: AlpacaRig, fake: FakeAlpacaThread) -> None:
    rig.wait_for(lambda rs: not rig.venue.stream_down)
    rig.submit("g-1", 10, "189")
    rig.wait_for(lambda rs: _of(OrderAccepted, rs, "g-1"))
    fake.run(fake.fake.streams_down())
    fake.call(fake.fake.fill, "g-1", 3, 189.0)
    fake.call(fake.fake.fill, "g-1", 2, 188.5)  # two fills in the gap: one at their average
    reports = rig.wait_for(lambda rs: _of(OrderFilled, rs))
    fake.call(fake.fake.streams_up)
    fake.call(fake.fake.fill, "g-1", 5, 188.0)  # after the stream is back
    reports = rig.wait_for(lambda rs: len(_of(OrderFilled, rs)) == 2, timeout_s=40)
    fills = _of(OrderFilled, reports)
    assert [(f.last_qty, f.last_price) for f in fills] == [  # type: ignore[attr-defined]
        (fixed(5), fixed("188.8")), (fixed(5), fixed(188))]
    assert rig.link.call(rig.venue.positions) == {IID: fixed(10)}


def test_a_429_waits_and_the_order_goes_once(rig: AlpacaRig, fake: FakeAlpacaThread) -> None:
    rig.wait_for(lambda rs: not rig.venue.stream_down)
    fake.call(fake.fake.throttle, 1)
    rig.submit("t-1", 5, "189")
    reports = rig.wait_for(lambda rs: _of(OrderAccepted, rs))
    assert _of(OrderRejected, reports) == []
    assert fake.snapshot()["placed"] == ["t-1"]
    assert 429 in [s for _, _, s in fake.fake.requests]


def test_a_504_after_alpaca_took_the_order_is_reconciled_never_resent(
        rig: AlpacaRig, fake: FakeAlpacaThread) -> None:
    rig.wait_for(lambda rs: not rig.venue.stream_down)
    fake.call(lambda: fake.fake.fail(1, take_it=True))
    rig.submit("u-1", 5, "189")
    reports = rig.wait_for(lambda rs: _of(OrderAccepted, rs, "u-1")
                           and _of(OrderStatusUnknown, rs, "u-1"), timeout_s=20)
    # the stream's "new" may come before or after the 504: either way one ack, one order
    assert len(_of(OrderAccepted, reports, "u-1")) == 1
    fake.call(fake.fake.fill, "u-1", 5, 189.0)
    rig.wait_for(lambda rs: _of(OrderFilled, rs, "u-1"))
    assert fake.snapshot()["attempts"] == ["u-1"]  # alpaca-py's own 504 retry is off


def test_dry_run_checks_the_account_and_refuses_every_order(fake: FakeAlpacaThread,
                                                            tmp_path: Path) -> None:
    rig = AlpacaRig(tmp_path, fake, dry_run=True)
    try:
        assert rig.venue.connected and rig.venue.account["account_number"] == "PA3FAKE0001"
        rig.submit("d-1", 5, None)
        (reject,) = rig.wait_for(lambda rs: _of(OrderRejected, rs))
        assert reject.venue_code == "gateway.dry_run"  # type: ignore[attr-defined]
        assert fake.snapshot()["attempts"] == []
    finally:
        rig.close()
