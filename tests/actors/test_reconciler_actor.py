"""The reconciler actor: drift events on demand, on a timer over the actors' views, and the
watchdogs carried out through the feed (fakes of the gateway, risk and the feed)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import ray

from actors.reconciler import ReconcilerActor
from runtime.instruments import Instrument

pytestmark = pytest.mark.ray

GATEWAY = {"positions": {"SIM-A": 3 * 10**9}, "open_orders": ["o1"], "fills": ["f1", "f2"]}


@ray.remote(num_cpus=0)
class FakeSide:
    """A gateway, risk or feed as the reconciler sees it: a view, health samples, and the
    operator actions it is asked for (checked as the feed's operator would)."""

    def __init__(self, view: dict[str, Any]) -> None:
        self._view = view
        self._health: dict[str, Any] = {"connected": True, "foreign_reports": 0,
                                        "exec_waiting_since_ns": None}
        self._market: dict[str, Any] | None = None
        self.actions: list[tuple[str, dict[str, Any]]] = []
        self.broken = False
        self.delivered = 0
        self.asked_as_of: list[int | None] = []  # the watermarks the gateway's view was asked at

    def break_it(self, broken: bool) -> None:
        self.broken = broken

    def view(self, delivered: int | None = None) -> dict[str, Any]:
        self.asked_as_of.append(delivered)
        return self._view

    def reports_delivered(self) -> int:
        return self.delivered

    def set_delivered(self, delivered: int) -> None:
        self.delivered = delivered

    def watermarks(self) -> list[int | None]:
        return self.asked_as_of

    def set_view(self, view: dict[str, Any]) -> None:
        self._view = view

    def health(self) -> dict[str, Any]:
        if self.broken:
            raise RuntimeError("health broke")
        return self._health

    def set_health(self, **values: Any) -> None:
        self._health = {**self._health, **values}

    def market_health(self) -> dict[str, Any] | None:
        return self._market

    def set_market(self, market: dict[str, Any]) -> None:
        self._market = market

    def operate(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        from actors import operator

        assert callable(getattr(operator, f"feed_{name}"))  # an action the feed knows
        if self.broken:
            raise RuntimeError("the feed refused")
        self.actions.append((name, args))
        return {}

    def request_reconcile(self) -> None:
        self.actions.append(("request_reconcile", {}))

    def taken(self) -> list[tuple[str, dict[str, Any]]]:
        return self.actions


def _wait_for(fn: Any, what: str, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_reconcile_returns_drift_events(ray_local: Any) -> None:
    actor = ReconcilerActor.remote("S1", {"halt_position_drift_lots": 1})
    assert ray_local.get(actor.reconcile.remote(GATEWAY, GATEWAY)) == []
    risk = {"positions": {"SIM-A": 2 * 10**9}, "open_orders": [], "fills": ["f1", "f2"]}
    events = ray_local.get(actor.reconcile.remote(GATEWAY, risk))
    assert [(e["kind"], e["recommended_state"]) for e in events] == [
        ("position_drift", "reducing"), ("order_drift", "reducing")]
    assert events[0]["gateway"] == 3 * 10**9 and events[0]["risk"] == 2 * 10**9
    assert events[1]["open_at"] == "gateway" and events[1]["session_id"] == "S1"
    assert isinstance(ray_local.get(actor.pid.remote()), int)
    ray_local.kill(actor)


def test_a_confirmed_desync_halts_and_cancels_resting_orders_through_the_feed(
    ray_local: Any,
) -> None:
    gateway = FakeSide.remote(GATEWAY)
    risk = FakeSide.remote({**GATEWAY, "fills": ["f1"]})
    feed = FakeSide.remote({})
    actor = ReconcilerActor.remote("S1", {})
    ray_local.get(actor.start.remote(gateway, risk, feed, 0.05, act=True))
    taken = _wait_for(lambda: ray_local.get(feed.taken.remote()), "the feed's action")
    name, args = taken[0]
    assert name == "kill"  # cancel_all_and_halt: halted and nothing left resting
    assert "inventory desync in 2 reconciliations in a row" in args["reason"]
    assert "fill f2 known to the gateway only" in args["reason"]
    events = ray_local.get(actor.events.remote())
    assert events[0]["kind"] == "fill_drift" and events[0]["known_to"] == "gateway"
    ray_local.get(risk.set_view.remote(GATEWAY))
    runs = ray_local.get(actor.status.remote())["runs"]
    while ray_local.get(actor.status.remote())["runs"] < runs + 2:
        time.sleep(0.05)
    status = ray_local.get(actor.status.remote())
    assert status["state"] == "active" and status["watchdogs"]["inventory_desync"] == "ok"
    assert len(ray_local.get(feed.taken.remote())) == 1  # once per episode
    ray_local.get(actor.stop.remote())
    for handle in (actor, gateway, risk, feed):
        ray_local.kill(handle)


def test_fills_in_flight_beyond_the_watermark_never_halt(ray_local: Any) -> None:
    """The gateway's view is asked as of the feed's delivered watermark; the fills it holds
    beyond it (``in_flight``, as ``GatewayActor.view(delivered)`` answers) are no drift, and
    their unknown quantities excuse the position."""
    risk_view = {"positions": {"SIM-A": 1 * 10**9}, "open_orders": ["o1"], "fills": ["f1"]}
    gateway = FakeSide.remote({**GATEWAY, "fills": ["f1"], "in_flight": {"f2": None}})
    risk = FakeSide.remote(risk_view)
    feed = FakeSide.remote({})
    ray_local.get(feed.set_delivered.remote(7))
    actor = ReconcilerActor.remote("S1", {})
    ray_local.get(actor.start.remote(gateway, risk, feed, 0.05, act=True))
    _wait_for(lambda: ray_local.get(actor.status.remote())["runs"] >= 5, "five runs")
    assert ray_local.get(actor.trips.remote()) == [] and ray_local.get(feed.taken.remote()) == []
    assert set(ray_local.get(gateway.watermarks.remote())) == {7}
    ray_local.get(actor.stop.remote())
    for handle in (actor, gateway, risk, feed):
        ray_local.kill(handle)


def test_without_act_trips_are_recorded_not_carried_out(ray_local: Any) -> None:
    gateway = FakeSide.remote(GATEWAY)
    risk = FakeSide.remote({**GATEWAY, "positions": {}})
    feed = FakeSide.remote({})
    actor = ReconcilerActor.remote("S1", {})
    ray_local.get(actor.start.remote(gateway, risk, feed, 0.05, act=False))
    trips = _wait_for(lambda: ray_local.get(actor.trips.remote()), "a trip")
    assert trips[0]["watchdog"] == "inventory_desync" and trips[0]["acted"] is False
    assert ray_local.get(feed.taken.remote()) == []
    ray_local.get(actor.stop.remote())
    for handle in (actor, gateway, risk, feed):
        ray_local.kill(handle)


def test_storm_silence_and_stale_stream_through_the_feed(ray_local: Any, tmp_path: Any) -> None:
    """An unknown-order storm cancels and reconciles, then halts if it persists; a silent
    stream of an instrument that trades goes reduce-only; a stale order stream halts."""
    gateway, risk, feed = (FakeSide.remote(GATEWAY) for _ in range(3))
    watchdogs = {
        "unknown_order_storm": {"reports": 5, "window_s": 1.0, "action": "halt"},
        "market_data_silence": {"after_s": 1.0, "action": "reduce_only"},
        "order_stream_stale": {"after_s": 1.0, "action": "cancel_all_and_halt"},
    }
    actor = ReconcilerActor.remote("S1", {}, watchdogs=watchdogs, watch_every_s=0.1,
                                   instruments=[Instrument(instrument_id="BTC")],
                                   journal_dir=str(tmp_path))
    ray_local.get(actor.start.remote(gateway, risk, feed, 60.0, act=True))
    health = _wait_for(lambda: ray_local.get(actor.status.remote())["health"], "a first sample")
    assert health["disk_free_bytes"] > 0 and health["connected"] is True
    ray_local.get(gateway.set_health.remote(foreign_reports=50))
    first = _wait_for(lambda: ray_local.get(gateway.taken.remote()), "a reconcile request")
    assert first == [("request_reconcile", {})]
    actions = [n for n, _ in ray_local.get(feed.taken.remote())]
    assert actions == ["cancel_all"]
    for foreign in range(60, 200, 10):  # the storm goes on
        ray_local.get(gateway.set_health.remote(foreign_reports=foreign))
        time.sleep(0.1)
    taken = _wait_for(lambda: len(ray_local.get(feed.taken.remote())) > 1 and
                      ray_local.get(feed.taken.remote()), "the storm's halt")
    assert taken[1][0] == "set_state" and taken[1][1]["state"] == "halted"
    now = time.time_ns()
    ray_local.get(feed.set_market.remote({"since_ns": now - 5 * 10**9, "last_ns": {}}))
    ray_local.get(gateway.set_health.remote(exec_waiting_since_ns=now - 5 * 10**9))
    _wait_for(lambda: len(ray_local.get(feed.taken.remote())) >= 4, "silence and staleness")
    later = dict(ray_local.get(feed.taken.remote())[2:])
    assert later["set_state"]["state"] == "reducing"
    assert "market data for BTC silent" in later["set_state"]["reason"]
    assert "has not answered a command" in later["kill"]["reason"]
    state = ray_local.get(actor.status.remote())["watchdogs"]
    assert state["market_data_silence"] == state["order_stream_stale"] == "tripped"
    ray_local.get(actor.stop.remote())
    for handle in (actor, gateway, risk, feed):
        ray_local.kill(handle)


def test_a_failed_sample_or_action_is_counted_and_the_watchdogs_go_on(ray_local: Any) -> None:
    gateway = FakeSide.remote(GATEWAY)
    risk = FakeSide.remote({**GATEWAY, "positions": {}})
    feed = FakeSide.remote({})
    ray_local.get([gateway.break_it.remote(True), feed.break_it.remote(True)])
    actor = ReconcilerActor.remote("S1", {}, watch_every_s=0.05)
    ray_local.get(actor.start.remote(gateway, risk, feed, 0.05, act=True))
    trips = _wait_for(lambda: [t for t in ray_local.get(actor.trips.remote()) if "error" in t],
                      "a trip whose action failed")
    assert "RuntimeError" in trips[0]["error"] and "the feed refused" in trips[0]["error"]
    _wait_for(lambda: ray_local.get(actor.status.remote())["timer_errors"] >= 2, "failed samples")
    ray_local.get(gateway.break_it.remote(False))
    _wait_for(lambda: ray_local.get(actor.status.remote())["health"], "a sample after the fix")
    ray_local.get(actor.stop.remote())
    for handle in (actor, gateway, risk, feed):
        ray_local.kill(handle)
