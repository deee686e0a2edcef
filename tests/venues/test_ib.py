"""The IB adapter against the loopback TWS-protocol fake, driving the unmodified ib_async client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.venues.common import SendLog
from actors.venues.ib import IbVenue
from actors.venues.ib_support import ContractSpec, IbConfig, in_reset_window
from runtime.messages import (
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderType,
    SubmitOrder,
    TimeInForce,
)
from runtime.values import FIXED_SCALE, fixed
from tests.venues.harness import IbHarness

pytest.importorskip("ib_async")
Q = FIXED_SCALE


@pytest.fixture
def h(tmp_path: Path) -> Iterator[IbHarness]:
    harness = IbHarness(tmp_path)
    yield harness
    harness.close()


def kinds(reports: list[object]) -> list[str]:
    return [type(r).__name__ for r in reports]


def test_connect_synchronises_and_reconciles_clean(h: IbHarness) -> None:
    assert h.ib.isConnected() and h.port.link_up
    assert h.port.breaker.allows_new_orders
    assert h.port.reconciler.last_drifts == []


def test_fill_waits_for_its_commission_and_carries_it_as_fee(h: IbHarness) -> None:
    h.submit("f-1", 5)
    h.settle()
    ex = h.fake.fill("f-1", 2.0, 10.25, commission=1.35, send_commission=False)
    assert kinds(h.reports()) == ["OrderAccepted"]  # the execution waits for its commission
    h.fake.send_commission(ex)
    (fill,) = h.reports()
    assert isinstance(fill, OrderFilled)
    assert (fill.last_qty, fill.last_price, fill.cum_qty, fill.leaves_qty, fill.fee) == (
        2 * Q,
        fixed("10.25"),
        2 * Q,
        3 * Q,
        fixed("1.35"),
    )
    assert fill.fill_id == f"IB-{ex.exec_id}" and fill.venue_order_id == str(ex.order.perm_id)
    h.fake.fill("f-1", 3.0, 10.5)
    (last,) = h.reports()
    assert isinstance(last, OrderFilled) and (last.cum_qty, last.leaves_qty) == (5 * Q, 0)


def test_reject_is_cancelled_status_then_error_code(h: IbHarness) -> None:
    h.fake.reject_next = (201, "Order rejected - reason:insufficient margin")
    h.submit("r-1", 1)
    reports = h.reports()
    assert kinds(reports) == ["OrderRejected"]
    assert isinstance(reports[0], OrderRejected) and reports[0].venue_code == "201"
    assert "margin" in reports[0].reason


def test_cancel_then_a_late_fill(h: IbHarness) -> None:
    h.submit("l-1", 4)
    h.reports()
    h.cancel("l-1")
    assert kinds(h.reports()) == ["OrderCanceled"]
    h.fake.fill("l-1", 1.0, 10.0)  # crossed with the cancel at the exchange
    (late,) = h.reports()
    assert isinstance(late, OrderFilled) and late.cum_qty == Q
    assert h.port.positions() == {"AAPL.NASDAQ": Q}


def test_fills_during_a_disconnect_come_back_on_reconnect(h: IbHarness) -> None:
    h.submit("d-1", 3)
    h.reports()
    h.fake.drop_clients()
    h.settle()
    assert not h.ib.isConnected()
    h.fake.fill("d-1", 3.0, 9.5, commission=2.0)  # nobody hears it
    stop = asyncio.Event()
    task = h.loop.create_task(h.port.run(stop, tick_s=0.01))
    for _ in range(100):
        h.run(asyncio.sleep(0.02))
        if h.ib.isConnected() and h.port.book.fill_ids():
            break
    stop.set()
    h.run(task)
    (fill,) = [r for r in h.reports() if isinstance(r, OrderFilled)]
    assert (fill.cum_qty, fill.fee, fill.last_price) == (3 * Q, fixed(2), fixed("9.5"))
    assert h.port.positions() == {"AAPL.NASDAQ": 3 * Q}
    assert h.port.breaker.allows_new_orders  # the reconciliation was clean


def test_gateway_restart_reuses_order_ids_but_not_perm_ids(h: IbHarness) -> None:
    h.submit("g-1", 1)
    h.fill("g-1", 1)
    h.reports()
    h.run(h.fake.restart())
    h.settle()
    h.run(h.port.connect())
    h.submit("g-2", 2)
    h.settle()
    first = next(o for o in h.fake.orders.values() if o.order_ref == "g-1")
    second = next(o for o in h.fake.orders.values() if o.order_ref == "g-2")
    assert first.order_id == second.order_id and first.perm_id != second.perm_id
    h.fill("g-2", 2)
    reports = h.reports()
    assert [(f.client_order_id, f.cum_qty) for f in reports if isinstance(f, OrderFilled)] == [
        ("g-2", 2 * Q)
    ]
    assert h.run(h.port.reconcile())  # both executions attributed: positions agree
    assert h.port.positions() == {"AAPL.NASDAQ": 3 * Q}


def test_a_position_held_before_the_first_connect_survives_restarts(tmp_path: Path) -> None:
    import ib_async

    h = IbHarness(tmp_path, positions={"AAPL": 10.0})  # held before Tradewind's first order
    again: IbVenue | None = None
    try:
        assert h.port.reconciler.last_drifts == []  # the starting point: 10 already held
        h.submit("pre-1", 99)
        h.fill("pre-1", 99)
        h.reports()
        assert h.port.positions() == {"AAPL.NASDAQ": 109 * Q}
        # IB Gateway restarts, and so does our gateway: a new adapter on the same journal
        h.ib.disconnect()
        h.run(h.fake.restart())
        again = IbVenue(ib_async.IB(), config=h.port.config, send_log=SendLog(h.journal))
        h.run(again.connect())
        assert again.reconciler.last_drifts == []
        assert again.positions() == {"AAPL.NASDAQ": 109 * Q}
        for n in range(3):  # a breaker opened after the restart closes on a clean reconcile
            again.breaker.failure(f"reject {n}")
        assert not again.breaker.allows_new_orders
        assert h.run(again.reconcile())
        assert again.breaker.allows_new_orders
        h.fake.positions["AAPL"] = 108.0  # a real difference is still a drift, in human units
        assert not h.run(again.reconcile())
        assert again.reconciler.last_drifts == ["position AAPL.NASDAQ: IB 108 vs fills 109"]
    finally:
        if again is not None:
            again.ib.disconnect()
        h.close()


def test_the_baseline_is_taken_once_per_journal(tmp_path: Path) -> None:
    h = IbHarness(tmp_path, positions={"AAPL": -5.0})
    try:
        assert SendLog(h.journal).baseline == {"AAPL.NASDAQ": -5 * Q}
        h.fake.positions["AAPL"] = 0.0  # sold outside Tradewind: a drift, not a new baseline
        h.ib.disconnect()
        h.settle()
        h.run(h.port.connect())
        assert h.port.reconciler.last_drifts == ["position AAPL.NASDAQ: IB 0 vs fills -5"]
        assert SendLog(h.journal).baseline == {"AAPL.NASDAQ": -5 * Q}
    finally:
        h.close()


def test_a_journaled_order_is_never_sent_twice(h: IbHarness, tmp_path: Path) -> None:
    command = h.command("j-1", 1)
    h.port.submit(command, 1)
    h.settle()
    h.port.submit(command, 2)  # a retry after a crash would look like this
    h.settle()
    assert [o.order_ref for o in h.fake.orders.values()] == ["j-1"]
    again = IbVenue(h.ib, config=h.port.config, send_log=SendLog(h.journal))  # a restart
    again.link_up = True
    assert list(again.book.orders) == ["j-1"]
    again.submit(command, 3)
    h.settle()
    assert [o.order_ref for o in h.fake.orders.values()] == ["j-1"]
    assert again.reconcile_requested


def test_breaker_opens_after_repeated_rejects_and_closes_on_clean_reconcile(
    h: IbHarness,
) -> None:
    for n in range(3):
        h.fake.reject_next = (201, "rejected")
        h.submit(f"b-{n}", 1)
        h.reports()
    assert not h.port.breaker.allows_new_orders
    h.submit("b-blocked", 1)
    (blocked,) = h.reports()
    assert isinstance(blocked, OrderRejected) and blocked.venue_code == "gateway.breaker_open"
    assert h.run(h.port.reconcile())
    assert h.port.breaker.allows_new_orders
    h.submit("b-ok", 1)
    assert kinds(h.reports()) == ["OrderAccepted"]


def test_no_new_orders_in_the_daily_reset_window(tmp_path: Path) -> None:
    config = IbConfig(reset_timezone="UTC", reset_window=("23:45", "00:45"))
    at = 1_763_769_600 * 10**9  # 2025-11-22 00:00 UTC
    assert in_reset_window(at, config) and not in_reset_window(at + 3600 * 10**9, config)
    h = IbHarness(tmp_path)
    try:
        h.port.config = h.port.config.model_copy(
            update={"reset_timezone": "UTC", "reset_window": ("23:45", "00:45")}
        )
        h.port.submit(h.command("w-1", 1), at)
        (report,) = h.reports()
        assert isinstance(report, OrderRejected) and report.venue_code == "gateway.reset_window"
        assert h.fake.orders == {}
    finally:
        h.close()


def test_connectivity_lost_blocks_and_restored_reconciles(h: IbHarness) -> None:
    h.fake._broadcast(4, 2, -1, 1100, "Connectivity between IB and TWS has been lost.", "")
    h.settle()
    h.submit("x-1", 1)
    (report,) = h.reports()
    assert isinstance(report, OrderRejected) and report.venue_code == "gateway.disconnected"
    h.fake._broadcast(4, 2, -1, 1102, "Connectivity restored - data maintained.", "")
    h.settle()
    assert h.port.link_up and h.port.reconcile_requested


def test_unknown_contract_config_error_names_the_field() -> None:
    config = IbConfig(contracts={"AAPL.NASDAQ": ContractSpec(symbol="AAPL")})
    with pytest.raises(Exception, match=r"broker\.contracts\.MSFT"):
        config.contract_for("MSFT")


def test_cancel_reject_for_a_filled_order(h: IbHarness) -> None:
    h.submit("z-1", 1)
    h.fill("z-1", 1)
    reports = h.reports()
    assert kinds(reports) == ["OrderAccepted", "OrderFilled"]
    h.cancel("z-1")
    assert kinds(h.reports()) == ["OrderCancelRejected"]
    assert not any(isinstance(r, OrderCanceled | OrderAccepted) for r in h.reports())


def _order(cid: str, *, tif: TimeInForce = TimeInForce.DAY, post_only: bool = False) -> SubmitOrder:
    return SubmitOrder(seq=1, ts_event=1, ts_init=1, client_order_id=cid, strategy_id="s",
                       instrument_id="AAPL.NASDAQ", side=OrderSide.BUY,
                       order_type=OrderType.LIMIT, quantity=Q, price=fixed(10),
                       time_in_force=tif, post_only=post_only)


@pytest.mark.parametrize(("tif", "wire"), [(TimeInForce.IOC, "IOC"), (TimeInForce.FOK, "FOK"),
                                           (TimeInForce.GTC, "GTC"), (TimeInForce.DAY, "DAY")])
def test_time_in_force_reaches_ib_as_its_own_tif(h: IbHarness, tif: TimeInForce, wire: str) -> None:
    h.port.submit(_order("t-1", tif=tif), 1)
    assert kinds(h.reports()) == ["OrderAccepted"]
    (placed,) = h.fake.orders.values()
    assert placed.tif == wire


def test_post_only_is_refused_by_name_never_sent(h: IbHarness) -> None:
    h.port.submit(_order("p-1", post_only=True), 1)
    (report,) = h.reports()
    assert isinstance(report, OrderRejected) and report.venue_code == "gateway.order"
    assert "IB" in report.reason and "post-only" in report.reason
    assert h.fake.orders == {}  # nothing reached the broker
    h.port.submit(_order("p-2"), 2)  # and the gateway goes on
    assert kinds(h.reports()) == ["OrderAccepted"]
