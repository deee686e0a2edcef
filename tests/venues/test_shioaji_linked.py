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
)
from runtime.taiwan import twse_stock
from runtime.values import fixed
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
    k = Kernel(registry=InstrumentRegistry([twse_stock("2330")]),
               strategies=[Scripted("s", instruments=(INST,))], initial_cash=fixed(10**8),
               currency="TWD", namespace="sj", seed=1)  # no native lists: emulated
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


def test_a_bracket_at_shioaji_is_refused_by_name_and_leaves_nothing_behind(
        h: ShioajiHarness) -> None:
    """The entry fills; the core releases the take-profit and the stop-loss for the filled
    quantity as plain orders. Shioaji can hold neither: the take-profit is GTC (a bracket's
    exits are; Shioaji has no GTC) and it has no stop order. Each is refused by name before
    anything is sent, the list is canceled with the reason, nothing is left open at the
    broker, and the entry's position stands for the strategy to handle."""
    k = kernel()
    start = route(k, h, act(k, lambda s: s.bracket(INST, BUY, 2 * LOT, entry_price=fixed(600),
                                                    take_profit=fixed(620),
                                                    stop_loss=fixed(590),
                                                    time_in_force=TimeInForce.DAY)))
    (entry,) = [m for m in start if isinstance(m, SubmitOrder)]
    released = deal(k, h, entry.client_order_id, 2, 600.0)
    exits = submits(released)
    assert exits[OrderType.LIMIT].quantity == exits[OrderType.STOP].quantity == 2 * LOT
    refused = {m.client_order_id: m.reason for m in released if isinstance(m, OrderRejected)}
    assert "no GTC" in refused[exits[OrderType.LIMIT].client_order_id]
    assert "not stop" in refused[exits[OrderType.STOP].client_order_id]
    assert [t.order.custom_field for t in h.fake.trades] == [
        h.port.send_log.orders[entry.client_order_id].broker_ids["tag"]]  # only the entry
    (canceled,) = [m for m in released if isinstance(m, OrderListChanged)
                   and m.status is OrderListStatus.CANCELED]
    assert "Shioaji has no GTC" in canceled.reason
    assert list_statuses(released)[-1] is OrderListStatus.COMPLETED and not k.open
    assert k.portfolio.quantity(INST) == 2 * LOT


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
