"""The reconciler actor: drift events on demand and on a timer over two actors' views."""

from __future__ import annotations

import time
from typing import Any

import pytest
import ray

from actors.reconciler import ReconcilerActor
from runtime.messages import SetTradingState

pytestmark = pytest.mark.ray

GATEWAY = {"positions": {"SIM-A": 3 * 10**9}, "open_orders": ["o1"], "fills": ["f1", "f2"]}


@ray.remote(num_cpus=0)
class FakeSide:
    def __init__(self, view: dict[str, Any]) -> None:
        self._view = view
        self.states: list[tuple[str, str]] = []

    def view(self) -> dict[str, Any]:
        return self._view

    def set_view(self, view: dict[str, Any]) -> None:
        self._view = view

    def command(self, command: SetTradingState) -> list[Any]:
        """What ``RiskActor.command`` takes: an operator command (checked as it would be)."""
        from actors.operator import checked

        checked(command)
        self.states.append((str(command.state), command.reason))
        return []

    def trading_states(self) -> list[tuple[str, str]]:
        return self.states


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


def test_timer_reconciles_and_halts_on_an_unknown_fill(ray_local: Any) -> None:
    gateway = FakeSide.remote(GATEWAY)
    risk = FakeSide.remote({**GATEWAY, "fills": ["f1"]})
    actor = ReconcilerActor.remote("S1", {})
    ray_local.get(actor.start.remote(gateway, risk, 0.05, act=True))
    deadline = time.monotonic() + 10
    while not ray_local.get(risk.trading_states.remote()) and time.monotonic() < deadline:
        time.sleep(0.05)
    state, reason = ray_local.get(risk.trading_states.remote())[0]
    assert state == "halted" and "fill known to one side only" in reason
    events = ray_local.get(actor.events.remote())
    assert events[0]["kind"] == "fill_drift" and events[0]["known_to"] == "gateway"
    ray_local.get(risk.set_view.remote(GATEWAY))
    runs = ray_local.get(actor.status.remote())["runs"]
    while ray_local.get(actor.status.remote())["runs"] < runs + 2:
        time.sleep(0.05)
    assert ray_local.get(actor.status.remote())["state"] == "active"
    ray_local.get(actor.stop.remote())
    for handle in (actor, gateway, risk):
        ray_local.kill(handle)
