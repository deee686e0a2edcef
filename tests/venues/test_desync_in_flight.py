"""The inventory-desync watchdog over a broker gateway's view as of the reports risk was handed
(``runtime.reconcile.as_of``), without Ray: the IB adapter against its loopback fake, the
gateway closed and reopened from its journals as a restarted gateway actor reopens them, and
risk's view the replay of the reports it was handed. Fills in flight across the restart never
trip the watchdog; a fill risk was handed and does not hold does, and the trip cancels; so do
fills a stalled feed never hands risk, once ``in_flight_runs`` reconciliations have excused them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from actors.venues.ib_support import ContractSpec, IbConfig
from actors.venues.links import open_broker_gateway
from runtime.messages import (
    OrderEvent,
    OrderFilled,
    OrderSide,
    OrderType,
    SubmitOrder,
    TimeInForce,
)
from runtime.reconcile import ReconcileThresholds, View, as_of, landed, reconcile
from runtime.values import FIXED_SCALE
from runtime.watchdog import (
    BrokerGap,
    BrokerPositions,
    DesyncRule,
    WatchdogAction,
    WatchdogConfig,
    Watchdogs,
)
from tests.venues.broker_helpers import FakeIbThread

pytest.importorskip("ib_async")


@pytest.fixture
def fake_ib() -> Iterator[FakeIbThread]:
    fake = FakeIbThread(auto_fill_price=100.0)  # each order fills in two executions
    yield fake
    fake.close()


def _open(port: int, folder: Path) -> object:
    config = IbConfig(port=port, client_id=22, reset_window=("00:00", "00:00"),
                      contracts={"SIM-A": ContractSpec(symbol="SIMA")})
    return open_broker_gateway(config, folder, instruments={}, confirmed_live=False)


def _submit(cid: str, qty: int) -> SubmitOrder:
    return SubmitOrder(seq=1, ts_event=1, ts_init=1, client_order_id=cid, strategy_id="s",
                       instrument_id="SIM-A", side=OrderSide.BUY, order_type=OrderType.MARKET,
                       quantity=qty * FIXED_SCALE, price=None, time_in_force=TimeInForce.DAY)


def _settle(gateway: object) -> list[OrderEvent]:
    reports: list[OrderEvent] = []
    while (more := gateway.drain(len(reports))) is not None:  # type: ignore[attr-defined]
        reports.extend(more)
    return reports


def _risk(handed: Sequence[OrderEvent]) -> View:
    """Risk's view after the reports it was handed: positions the replay of their fills."""
    fills = [r for r in handed if isinstance(r, OrderFilled)]
    return View.of({"SIM-A": sum(f.position_change for f in fills)}, (),
                   [f.fill_id for f in fills])


def _run(watchdogs: Watchdogs, gateway: object, risk: View, delivered: int) -> list[object]:
    """One reconciliation as the reconciler actor runs it (the watermark, risk, the gateway)."""
    view = landed(as_of(View.from_dict(gateway.view()),
                        gateway.reports, delivered), risk)  # type: ignore[attr-defined]
    report = reconcile(view, risk, thresholds=ReconcileThresholds())
    return list(watchdogs.desync(report.drifts, ReconcileThresholds(),
                                 in_flight=view.in_flight))


def test_fills_in_flight_across_a_gateway_restart_never_halt(fake_ib: FakeIbThread,
                                                            tmp_path: Path) -> None:
    watchdogs = Watchdogs(WatchdogConfig(), [])  # on by default: cancel_all_and_halt, 2 runs
    gateway = _open(fake_ib.port, tmp_path)
    gateway.send([_submit("d-1", 10)])  # type: ignore[attr-defined]
    first = _settle(gateway)
    assert sum(isinstance(r, OrderFilled) for r in first) == 2
    handed = first[:1]  # risk has the acceptance; both fills were on their way at the crash
    for _ in range(3):
        assert _run(watchdogs, gateway, _risk(handed), len(handed)) == []
    gateway.close()  # type: ignore[attr-defined]
    gateway = _open(fake_ib.port, tmp_path)  # the restarted gateway holds both fills again
    try:
        view = as_of(View.from_dict(gateway.view()), gateway.reports, len(handed))
        assert len(view.in_flight) == 2 and view.positions == {} and _unvalued(view) == 0
        for _ in range(5):  # however many runs the restart keeps them on their way
            assert _run(watchdogs, gateway, _risk(handed), len(handed)) == []
        # the other way round: risk got them in a step still on its way when the watermark
        # was read (or from a feed that resumed from an older saved count)
        for _ in range(3):
            assert _run(watchdogs, gateway, _risk(gateway.reports), len(handed)) == []
        handed = list(gateway.reports)  # delivered: the two views agree
        assert _run(watchdogs, gateway, _risk(handed), len(handed)) == []
        assert watchdogs.state()["inventory_desync"] == "ok"
    finally:
        gateway.close()  # type: ignore[attr-defined]


def test_fills_a_stalled_feed_never_hands_risk_are_excused_for_a_bounded_number_of_runs(
        fake_ib: FakeIbThread, tmp_path: Path) -> None:
    """The feed answers but delivers nothing more (its watermark stuck at the acceptance):
    both fills stay in flight. They are excused for ``in_flight_runs`` reconciliations, then
    they are fills known to the gateway only and, confirmed, trip the watchdog; once they
    reach risk it clears."""
    rule = DesyncRule(in_flight_runs=3, confirm_runs=2)
    watchdogs = Watchdogs(WatchdogConfig(inventory_desync=rule), [])
    gateway = _open(fake_ib.port, tmp_path)
    try:
        gateway.send([_submit("d-3", 10)])  # type: ignore[attr-defined]
        reports = _settle(gateway)
        handed = reports[:1]
        for _ in range(rule.in_flight_runs + rule.confirm_runs - 1):
            assert _run(watchdogs, gateway, _risk(handed), len(handed)) == []
        (trip,) = _run(watchdogs, gateway, _risk(handed), len(handed))
        assert trip.watchdog == "inventory_desync"  # type: ignore[attr-defined]
        assert trip.action is WatchdogAction.CANCEL_ALL_AND_HALT  # type: ignore[attr-defined]
        assert "has not reached risk in 5 reconciliations" in trip.reason  # type: ignore
        assert "feed has stalled" in trip.reason  # type: ignore[attr-defined]
        assert _run(watchdogs, gateway, _risk(handed), len(handed)) == []  # once per episode
        handed = list(gateway.reports)  # the feed moves again
        assert _run(watchdogs, gateway, _risk(handed), len(handed)) == []
        assert watchdogs.state()["inventory_desync"] == "ok"
    finally:
        gateway.close()  # type: ignore[attr-defined]


def test_a_fill_risk_was_handed_and_does_not_hold_halts_and_cancels(fake_ib: FakeIbThread,
                                                                    tmp_path: Path) -> None:
    watchdogs = Watchdogs(WatchdogConfig(), [])
    gateway = _open(fake_ib.port, tmp_path)
    gateway.send([_submit("d-2", 10)])  # type: ignore[attr-defined]
    reports = _settle(gateway)
    gateway.close()  # type: ignore[attr-defined]
    gateway = _open(fake_ib.port, tmp_path)
    try:
        lost = [r for r in reports if not isinstance(r, OrderFilled)] + [
            r for r in reports if isinstance(r, OrderFilled)][:1]  # risk lost the second fill
        assert _run(watchdogs, gateway, _risk(lost), len(reports)) == []  # one run: unconfirmed
        (trip,) = _run(watchdogs, gateway, _risk(lost), len(reports))
        assert trip.watchdog == "inventory_desync"  # type: ignore[attr-defined]
        assert trip.action is WatchdogAction.CANCEL_ALL_AND_HALT  # type: ignore[attr-defined]
        assert "known to the gateway only" in trip.reason  # type: ignore[attr-defined]
    finally:
        gateway.close()  # type: ignore[attr-defined]


def test_a_position_apart_beyond_what_is_in_flight_still_halts(fake_ib: FakeIbThread,
                                                               tmp_path: Path) -> None:
    """Fills in flight are taken out of the gateway's positions, not used to excuse them: risk
    holding 3 more than the broker reported halts while a fill is on its way."""
    watchdogs = Watchdogs(WatchdogConfig(), [])
    gateway = _open(fake_ib.port, tmp_path)
    try:
        gateway.send([_submit("d-3", 10)])  # type: ignore[attr-defined]
        reports = _settle(gateway)
        handed = reports[:-1]  # the last fill still on its way
        fills = [r for r in handed if isinstance(r, OrderFilled)]
        held = sum(f.position_change for f in fills) + 3 * FIXED_SCALE  # and 3 from nowhere
        risk = View.of({"SIM-A": held}, (), [f.fill_id for f in fills])
        assert _run(watchdogs, gateway, risk, len(handed)) == []
        (trip,) = _run(watchdogs, gateway, risk, len(handed))
        assert "position SIM-A" in trip.reason  # type: ignore[attr-defined]
    finally:
        gateway.close()  # type: ignore[attr-defined]


def test_the_brokers_own_position_apart_from_our_fills_halts(fake_ib: FakeIbThread,
                                                             tmp_path: Path) -> None:
    """A trade outside Tradewind moves the broker's position and not our fills (the risk and
    gateway views still agree): the adapter's reconciliation finds the gap, and the watchdog
    trips on the second of the adapter's reconciliations that finds it, never on the reconciler
    looking twice at the same one."""
    import time

    watchdogs = Watchdogs(WatchdogConfig(), [])
    gateway = _open(fake_ib.port, tmp_path)

    def reconciled_once() -> dict[str, object]:
        before = gateway.view()["broker_positions"]["run"]  # type: ignore[attr-defined]
        gateway.request_reconcile()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            view = gateway.view()  # type: ignore[attr-defined]
            if view["broker_positions"]["run"] > before:
                return view  # type: ignore[no-any-return]
            time.sleep(0.05)
        raise AssertionError("the adapter did not reconcile")

    def look(view: dict[str, object], risk: View) -> list[object]:
        found = view["broker_positions"]
        gaps = tuple(BrokerGap(instrument_id=i, broker=b, ours=o,
                               lots=-(-abs(b - o) // FIXED_SCALE))
                     for i, b, o in found["gaps"])  # type: ignore[index]
        report = reconcile(View.from_dict(view), risk, thresholds=ReconcileThresholds())
        return list(watchdogs.desync(report.drifts, ReconcileThresholds(),
                                     broker=BrokerPositions(run=found["run"], gaps=gaps)))  # type: ignore[index]

    try:
        gateway.send([_submit("d-4", 10)])  # type: ignore[attr-defined]
        reports = _settle(gateway)
        risk = _risk(reports)  # risk holds every fill: the two views agree
        view = reconciled_once()
        assert view["broker_positions"]["gaps"] == []
        assert look(view, risk) == []
        fake_ib.call(lambda: fake_ib.fake.positions.update(SIMA=25.0))  # 15 bought elsewhere
        view = reconciled_once()
        assert view["broker_positions"]["gaps"] == [["SIM-A", 25 * FIXED_SCALE,
                                                     10 * FIXED_SCALE]]
        assert look(view, risk) == [] and look(view, risk) == []  # one reconciliation, twice
        (trip,) = look(reconciled_once(), risk)
        assert trip.watchdog == "inventory_desync"  # type: ignore[attr-defined]
        assert trip.action is WatchdogAction.CANCEL_ALL_AND_HALT  # type: ignore[attr-defined]
        assert ("position SIM-A: the broker 25 vs our fills 10 (15 lot(s) apart)"
                in trip.reason)  # type: ignore[attr-defined]
        fake_ib.call(lambda: fake_ib.fake.positions.update(SIMA=10.0))  # put right
        assert look(reconciled_once(), risk) == []
        assert "inventory_desync" not in watchdogs.tripped
    finally:
        gateway.close()  # type: ignore[attr-defined]


def _unvalued(view: View) -> int:
    """Fills in flight whose quantity is still in the view's positions."""
    return sum(v is None for v in view.in_flight.values())
