"""The supervisor actor on the shared Ray cluster, over small children: a child that stops
answering heartbeats is detected as hung, killed and restarted; one_for_all and rest_for_one
restart exactly the siblings OTP says, counted once toward the intensity."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("ray_local")


def _child_class() -> Any:
    import ray

    from actors.base import ACTOR_OPTIONS, WATCH_GROUPS, Child, incarnate

    @ray.remote(concurrency_groups=WATCH_GROUPS, **ACTOR_OPTIONS)
    class FakeChild(Child):
        """A synchronous child like risk or gateway: ordered default group, watch group."""

        def __init__(self, folder: str, name: str) -> None:
            self._incarnation = incarnate(Path(folder) / f"{name}.incarnation")
            self.hooks = 0

        def block(self, seconds: float) -> None:
            time.sleep(seconds)  # holds the default group: heartbeats go unanswered

        def after_restart(self) -> None:
            self.hooks += 1

        def hook_calls(self) -> int:
            return self.hooks

    return FakeChild


def _feed_class() -> Any:
    import ray

    @ray.remote(num_cpus=0)
    class FakeFeed:
        def __init__(self) -> None:
            self.reasons: list[str] = []

        def halt(self, reason: str) -> None:
            self.reasons.append(reason)

        def halts(self) -> list[str]:
            return self.reasons

    return FakeFeed


def _tree(tmp_path: Path, strategy: str, *, hang_timeout_s: float = 30.0,
          intensity: int = 5) -> tuple[Any, dict[str, Any], Any]:
    import ray

    from actors.supervisor import SupervisorActor
    from runtime.supervision import ChildSpec, SupervisorSpec

    names = ("a", "b", "c")
    child_cls = _child_class()
    children = {n: child_cls.remote(str(tmp_path), n) for n in names}
    ray.get([c.ping.remote() for c in children.values()])
    spec = SupervisorSpec(strategy=strategy, intensity=intensity, period_s=60,
                          backoff_initial_s=0, backoff_max_s=0,
                          children=tuple(ChildSpec(child_id=n) for n in names))
    feed = _feed_class().remote()
    supervisor = SupervisorActor.remote(spec, children, feed=feed, heartbeat_s=0.2,
                                        hang_timeout_s=hang_timeout_s)
    ray.get(supervisor.start.remote())
    return supervisor, children, feed


def _pids(children: dict[str, Any]) -> dict[str, int]:
    import ray

    return {n: ray.get(c.pid.remote(), timeout=30) for n, c in children.items()}


def _until(check: Any, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def _status(supervisor: Any) -> dict[str, Any]:
    import ray

    return ray.get(supervisor.status.remote())


def _restarted(children: dict[str, Any], before: dict[str, int]) -> set[str]:
    """Children now answering from another process than ``before``."""
    import ray

    out = set()
    for name, handle in children.items():
        try:
            if ray.get(handle.pid.remote(), timeout=10) != before[name]:
                out.add(name)
        except (ray.exceptions.RayError, TimeoutError):
            pass
    return out


def _cleanup(supervisor: Any, children: dict[str, Any], feed: Any) -> None:
    import ray

    ray.kill(supervisor)
    for handle in [*children.values(), feed]:
        ray.kill(handle, no_restart=True)


def test_a_child_that_stops_answering_heartbeats_is_restarted(tmp_path: Path) -> None:
    import ray

    supervisor, children, feed = _tree(tmp_path, "one_for_one", hang_timeout_s=1.0)
    before = _pids(children)
    children["b"].block.options(max_task_retries=0).remote(600)  # alive, but stuck
    status = _until(lambda: (s := _status(supervisor))["restarts"] and s, timeout_s=30)
    (event,) = status["events"]
    assert (event["child"], event["reason"], event["action"]) == ("b", "hang", "restart")
    assert _until(lambda: _restarted(children, before)) == {"b"}
    assert ray.get(children["b"].incarnation.remote()) == 2
    _until(lambda: ray.get(children["b"].hook_calls.remote()) == 1)
    time.sleep(1.5)  # heartbeats go on: the killed hang is not counted again as a crash
    status = _status(supervisor)
    assert status["restarts"] == 1 and not status["escalated"]
    assert _restarted(children, before) == {"b"}
    assert ray.get(feed.halts.remote()) == []
    _cleanup(supervisor, children, feed)


@pytest.mark.parametrize(("strategy", "expected"), [("one_for_all", {"a", "b", "c"}),
                                                    ("rest_for_one", {"b", "c"}),
                                                    ("one_for_one", {"b"})])
def test_group_strategy_restarts_the_right_siblings(tmp_path: Path, strategy: str,
                                                     expected: set[str]) -> None:
    import ray

    supervisor, children, feed = _tree(tmp_path, strategy)
    before = _pids(children)
    os.kill(before["b"], signal.SIGKILL)
    status = _until(lambda: (s := _status(supervisor))["restarts"] and s, timeout_s=30)
    _until(lambda: _restarted(children, before) == expected)
    (event,) = status["events"]
    assert event["child"] == "b" and event["reason"] == "crash"
    assert set(event["start"]) == expected
    assert set(event["stop"]) == expected - {"b"}  # b is dead already
    for name in expected:  # each restarted sibling got its after_restart hook once
        _until(lambda name=name: ray.get(children[name].hook_calls.remote()) == 1)
    time.sleep(1.5)  # the siblings' exits were the supervisor's own: one restart in all
    status = _status(supervisor)
    assert status["restarts"] == 1 and not status["escalated"]
    assert _restarted(children, before) == expected
    for name in set(children) - expected:
        assert ray.get(children[name].incarnation.remote()) == 1
    _cleanup(supervisor, children, feed)


def test_group_restarts_beyond_the_intensity_escalate(tmp_path: Path) -> None:
    import ray

    supervisor, children, feed = _tree(tmp_path, "one_for_all", intensity=1)
    # the first crash restarts the whole group; the second exceeds the intensity: trading is
    # halted through the feed instead (Ray still brings the crashed process back)
    for n, restarted in enumerate(({"a", "b", "c"}, {"a"})):
        before = _pids(children)
        os.kill(before["a"], signal.SIGKILL)
        _until(lambda n=n: len(_status(supervisor)["events"]) > n, timeout_s=30)
        _until(lambda b=before, r=restarted: _restarted(children, b) == r)
    status = _status(supervisor)
    assert status["escalated"] and "intensity 1" in status["reason"]
    assert [e["action"] for e in status["events"]] == ["restart", "escalate"]
    (reason,) = ray.get(feed.halts.remote())
    assert "supervisor escalation" in reason
    _cleanup(supervisor, children, feed)
