"""The supervisor actor on the shared Ray cluster, over small children it starts itself:
a hung child is stopped and restarted; one_for_all and rest_for_one restart exactly the
siblings OTP says, counted once; temporary children are never restarted, transient ones only
after an abnormal exit, and a group restart drops its temporary children; a subtree that
exceeds its intensity escalates to its parent, which restarts it; the root halts trading
instead; stop goes in reverse start order and kills a child that overstays its shutdown
timeout.

Every check waits on a condition (starts, hooks and stops are lines in files; decisions are in
the supervisor's status), never on a sleep, so the tests hold under load."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.actors.supervision_fakes import lines

pytestmark = pytest.mark.usefixtures("ray_local")

FAKE = "tests.actors.supervision_fakes:FakeChild"
FAKE_LOOP = "tests.actors.supervision_fakes:FakeLoop"


def _child(tmp_path: Path, name: str, factory: str = FAKE, **spec: Any) -> Any:
    from runtime.supervision import Call, ChildSpec

    return ChildSpec(child_id=name, factory=factory, args=(str(tmp_path), name),
                     after_restart=(Call(method="after_restart"),),
                     before_stop=(Call(method="stopping"),), **spec)


def _spec(children: Any, strategy: str = "one_for_one", intensity: int = 5) -> Any:
    from runtime.supervision import SupervisorSpec

    return SupervisorSpec(strategy=strategy, intensity=intensity, period_s=600,
                          backoff_initial_s=0, backoff_max_s=0, children=tuple(children))


class Tree:
    """A root supervisor over ``spec``, with a fake feed to halt, under a fresh prefix."""

    def __init__(self, spec: Any, *, hang_timeout_s: float = 60.0,
                 prefix: str | None = None) -> None:
        from actors.supervisor import SupervisorActor
        from tests.actors.supervision_fakes import FakeFeed

        self.prefix = prefix or f"tw.sup{uuid.uuid4().hex[:8]}."
        self.feed = FakeFeed.options(name=self.prefix + "feed").remote()
        # as the session starts its root: nothing above it but Ray, which restarts it
        self.root = SupervisorActor.options(name=self.prefix + "supervisor",
                                            max_restarts=-1).remote(
            spec, prefix=self.prefix, halt_via="feed", heartbeat_s=0.2,
            hang_timeout_s=hang_timeout_s)
        self.get(self.root.start.remote())

    @staticmethod
    def get(ref: Any) -> Any:
        import ray

        return ray.get(ref, timeout=120)

    def child(self, name: str) -> Any:
        from actors.names import Named

        return Named(self.prefix + name, restart_timeout_s=120)

    def pid(self, name: str) -> int:
        return int(self.child(name).get("pid", timeout_s=60))

    def status(self) -> dict[str, Any]:
        return dict(self.get(self.root.status.remote()))

    def events(self, n: int) -> list[dict[str, Any]]:
        """The first ``n`` decisions, once there are ``n``."""
        def enough() -> list[dict[str, Any]] | None:
            events: list[dict[str, Any]] = self.status()["events"]
            return events if len(events) >= n else None

        return list(_until(enough))[:n]

    def absent(self, name: str) -> bool:
        import ray

        try:
            ray.get_actor(self.prefix + name)
        except ValueError:
            return True
        return False

    def close(self) -> list[dict[str, Any]]:
        import ray

        stops = list(self.get(self.root.stop.remote()))
        ray.kill(self.root, no_restart=True)
        ray.kill(self.feed, no_restart=True)
        return stops


def _until(check: Any, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def _starts(tmp_path: Path, *names: str) -> dict[str, int]:
    return {n: len(lines(tmp_path / f"{n}.starts")) for n in names}


def _kill(tree: Tree, name: str) -> None:
    os.kill(tree.pid(name), signal.SIGKILL)


def test_a_child_that_stops_answering_heartbeats_is_restarted(tmp_path: Path) -> None:
    tree = Tree(_spec(_child(tmp_path, n) for n in "abc"), hang_timeout_s=1.0)
    tree.child("b").block.remote(600)  # alive, but stuck
    (event,) = tree.events(1)
    assert (event["child"], event["reason"], event["action"]) == ("b", "hang", "restart")
    _until(lambda: len(lines(tmp_path / "b.hooks")) == 1)  # the new b answered its hook
    assert _starts(tmp_path, "a", "b", "c") == {"a": 1, "b": 2, "c": 1}
    assert tree.child("b").get("ping")  # the name reaches the new process
    status = tree.status()
    assert status["restarts"] == 1 and not status["escalated"]
    assert tree.get(tree.feed.halts.remote()) == []
    tree.close()


@pytest.mark.parametrize(("strategy", "expected"), [("one_for_all", {"a", "b", "c"}),
                                                    ("rest_for_one", {"b", "c"}),
                                                    ("one_for_one", {"b"})])
def test_group_strategy_restarts_the_right_siblings(tmp_path: Path, strategy: str,
                                                     expected: set[str]) -> None:
    tree = Tree(_spec((_child(tmp_path, n) for n in "abc"), strategy))
    _kill(tree, "b")
    (event,) = tree.events(1)
    assert event["child"] == "b" and event["reason"] == "crash"
    assert set(event["start"]) == expected
    assert set(event["stop"]) == expected - {"b"}  # b is dead already
    for name in expected:  # the restart is done once each restarted child ran its hook
        _until(lambda name=name: len(lines(tmp_path / f"{name}.hooks")) == 1)
    # the siblings the supervisor stopped itself are not exits: one restart in all
    assert _starts(tmp_path, "a", "b", "c") == {n: 1 + (n in expected) for n in "abc"}
    assert sorted(lines(tmp_path / "stops")) == sorted(expected - {"b"})  # stopped gently
    status = tree.status()
    assert status["restarts"] == 1 and not status["escalated"]
    tree.close()


def test_restarts_beyond_the_intensity_escalate_at_the_root(tmp_path: Path) -> None:
    tree = Tree(_spec((_child(tmp_path, n) for n in "abc"), "one_for_all", intensity=1))
    _kill(tree, "a")
    tree.events(1)
    _until(lambda: len(lines(tmp_path / "c.hooks")) == 1)  # the group is back
    _kill(tree, "a")
    events = tree.events(2)
    assert [e["action"] for e in events] == ["restart", "escalate"]
    status = tree.status()
    assert status["escalated"] and "intensity 1" in status["reason"]
    (reason,) = _until(lambda: tree.get(tree.feed.halts.remote()))
    assert "supervisor escalation" in reason
    # the root keeps the halted session reachable: the crashed child alone comes back
    _until(lambda: len(lines(tmp_path / "a.hooks")) == 2)
    assert _starts(tmp_path, "a", "b", "c") == {"a": 3, "b": 2, "c": 2}
    tree.close()


def test_temporary_child_is_never_restarted(tmp_path: Path) -> None:
    tree = Tree(_spec([_child(tmp_path, "a"), _child(tmp_path, "t", restart="temporary")]))
    _kill(tree, "t")
    (event,) = tree.events(1)
    assert (event["child"], event["action"]) == ("t", "no restart")
    _until(lambda: tree.absent("t"))
    assert _starts(tmp_path, "a", "t") == {"a": 1, "t": 1}
    tree.close()


def test_transient_child_is_restarted_only_after_an_abnormal_exit(tmp_path: Path) -> None:
    tree = Tree(_spec([_child(tmp_path, "done", restart="transient"),
                       _child(tmp_path, "dies", restart="transient")]))
    tree.child("done").finish.remote()  # its work is done: a normal exit
    (event,) = tree.events(1)
    assert (event["child"], event["reason"], event["action"]) == ("done", "normal",
                                                                   "no restart")
    _until(lambda: tree.absent("done"))
    _kill(tree, "dies")
    event = tree.events(2)[1]
    assert (event["child"], event["reason"], event["action"]) == ("dies", "crash", "restart")
    _until(lambda: len(lines(tmp_path / "dies.hooks")) == 1)
    assert _starts(tmp_path, "done", "dies") == {"done": 1, "dies": 2}
    tree.close()


def test_a_group_restart_removes_its_temporary_children(tmp_path: Path) -> None:
    tree = Tree(_spec([_child(tmp_path, "a"), _child(tmp_path, "t", restart="temporary"),
                       _child(tmp_path, "c")], "one_for_all"))
    _kill(tree, "a")
    (event,) = tree.events(1)
    assert event["remove"] == ["t"] and event["start"] == ["a", "c"]
    _until(lambda: len(lines(tmp_path / "c.hooks")) == 1)
    _until(lambda: tree.absent("t"))
    assert _starts(tmp_path, "a", "t", "c") == {"a": 2, "t": 1, "c": 2}
    tree.close()


def test_a_subtree_beyond_its_intensity_escalates_to_its_parent(tmp_path: Path) -> None:
    """The subtree (x, y; intensity 0) gives up on x's crash: it stops y and its parent
    restarts the whole subtree; z, beside it, is untouched; the root does not escalate."""
    from runtime.supervision import ChildSpec

    sub = ChildSpec(child_id="sub", supervisor=_spec(
        [_child(tmp_path, "x"), _child(tmp_path, "y")], intensity=0))
    tree = Tree(_spec([sub, _child(tmp_path, "z")]))
    _kill(tree, "x")
    _until(lambda: _starts(tmp_path, "x", "y") == {"x": 2, "y": 2})
    _until(lambda: tree.child("y").get("ping"))
    (event,) = tree.events(1)  # the root's decision on its child "sub"
    assert (event["supervisor"], event["child"], event["action"]) == ("supervisor", "sub",
                                                                      "restart")
    assert "intensity 0 (last: x crash)" in event["why"]  # why the subtree gave up
    assert lines(tmp_path / "stops") == ["y"]  # the subtree stopped its live child first
    status = tree.status()
    assert not status["escalated"] and _starts(tmp_path, "z") == {"z": 1}
    assert tree.get(tree.feed.halts.remote()) == []
    tree.close()


def test_a_subtree_escalation_beyond_the_root_intensity_halts_trading(tmp_path: Path) -> None:
    from runtime.supervision import ChildSpec

    sub = ChildSpec(child_id="sub", supervisor=_spec([_child(tmp_path, "x")], intensity=0))
    tree = Tree(_spec([sub], intensity=0))
    _kill(tree, "x")
    (reason,) = _until(lambda: tree.get(tree.feed.halts.remote()))
    assert "intensity 0" in reason and "sub: " in reason  # why the subtree gave up, too
    _until(lambda: _starts(tmp_path, "x") == {"x": 2})  # reachable again, halted
    tree.close()


def test_stop_goes_in_reverse_order_and_kills_a_child_past_its_timeout(tmp_path: Path) -> None:
    tree = Tree(_spec([_child(tmp_path, "a"), _child(tmp_path, "b"),
                       _child(tmp_path, "c", shutdown_timeout_s=1.0)]))
    tree.child("c").block.remote(600)  # busy: its stop waits behind the work
    _until(lambda: not _answers_soon(tree, "c"))
    stops = tree.close()
    assert [(s["child"], s["how"]) for s in stops] == [("c", "killed"), ("b", "shutdown"),
                                                       ("a", "shutdown")]
    assert 1.0 <= stops[0]["s"] < 30
    assert lines(tmp_path / "stops") == ["b", "a"]  # c never got to its before_stop hook
    for name in "abc":
        assert tree.absent(name)


def _answers_soon(tree: Tree, name: str) -> bool:
    import ray

    try:
        ray.get(tree.child(name).ping.remote(), timeout=0.5)
    except ray.exceptions.GetTimeoutError:
        return False
    return True


def test_a_call_in_flight_is_answered_by_the_successor(tmp_path: Path) -> None:
    """``Named`` in an event loop: a call the dying child never answered goes to the actor its
    supervisor started under the same name; a method's own error is raised, not retried."""
    import asyncio

    import ray

    tree = Tree(_spec([_child(tmp_path, "a")]))
    named = tree.child("a")
    first = tree.pid("a")

    async def calls() -> tuple[int, BaseException | None]:
        pending = named.pid_after.remote(5.0)  # in flight when the child dies
        await asyncio.sleep(0.5)
        os.kill(first, signal.SIGKILL)
        pid = int(await pending)
        try:
            await named.fail.remote()
        except ray.exceptions.RayTaskError as exc:
            return pid, exc
        return pid, None

    pid, error = asyncio.run(calls())
    assert pid != first and pid == tree.pid("a")
    assert isinstance(error, ValueError)  # the method's error, once (not an actor's death)
    assert _starts(tmp_path, "a") == {"a": 2}
    tree.close()


def test_a_killed_root_is_restarted_by_ray_and_starts_its_tree_again(tmp_path: Path) -> None:
    """The root has no supervisor but Ray: its children die with it (Ray ends an actor whose
    owner dies) and the restarted root starts the whole tree again, in order."""
    from runtime.supervision import ChildSpec

    sub = ChildSpec(child_id="sub", supervisor=_spec([_child(tmp_path, "x")]))
    tree = Tree(_spec([_child(tmp_path, "a"), sub]))
    root_pid = tree.get(tree.root.pid.remote())
    os.kill(root_pid, signal.SIGKILL)
    _until(lambda: _starts(tmp_path, "a", "x") == {"a": 2, "x": 2})
    tree.get(tree.root.start.remote())
    assert tree.get(tree.root.pid.remote()) != root_pid
    assert tree.child("x").get("ping") and tree.child("a").get("ping")
    tree.close()


def test_a_child_that_fails_to_start_fails_the_start_and_stops_the_others(
        tmp_path: Path) -> None:
    import ray

    from actors.supervisor import SupervisorActor
    from runtime.errors import ChildStartError
    from runtime.supervision import ChildSpec

    broken = ChildSpec(child_id="broken", factory="tests.actors.supervision_fakes:FakeBroken",
                       args=(str(tmp_path), "broken"))
    prefix = f"tw.sup{uuid.uuid4().hex[:8]}."
    root = SupervisorActor.remote(_spec([_child(tmp_path, "a"), broken, _child(tmp_path, "c")]),
                                  prefix=prefix)
    with pytest.raises(ChildStartError, match="'broken' failed to start"):
        ray.get(root.start.remote(), timeout=120)
    assert lines(tmp_path / "stops") == ["a"]  # the one started before it, stopped again
    assert _starts(tmp_path, "a", "c") == {"a": 1, "c": 0}
    ray.kill(root, no_restart=True)


def test_a_halt_that_fails_is_logged_and_tried_again_until_it_lands(tmp_path: Path) -> None:
    """The root's halt is the session's last safety: a feed that raises (its risk actor
    restarting, say) gets the halt again, each failure an event, until it lands once."""
    tree = Tree(_spec([_child(tmp_path, "x")], intensity=0))
    tree.get(tree.feed.fail_halts.remote(2))
    _kill(tree, "x")
    (reason,) = _until(lambda: tree.get(tree.feed.halts.remote()))
    assert "supervisor escalation" in reason and "intensity 0" in reason
    events = _until(lambda: (e := tree.status()["events"]) and e[-1]["action"] == "halted" and e)
    assert [e["action"] for e in events] == ["escalate", "halt failed", "halt failed", "halted"]
    assert "is not running" in events[1]["why"] and events[2]["retry_s"] > events[1]["retry_s"]
    assert tree.get(tree.feed.halts.remote()) == [reason]  # landed once
    tree.close()



def test_a_child_that_reports_its_loop_failed_is_stopped_and_restarted(tmp_path: Path) -> None:
    """Alive but failed (the feed's loop ended with an error): its watch raises, which is a
    crash decided on as any other, with the child's error as the event's why."""
    tree = Tree(_spec([_child(tmp_path, "f", FAKE_LOOP)]))
    pid = tree.pid("f")
    tree.get(tree.child("f").handle().fail_loop.remote("the hot path failed 5 times"))
    (event,) = tree.events(1)
    assert (event["child"], event["reason"], event["action"]) == ("f", "crash", "restart")
    assert event["why"] == "RuntimeError: the hot path failed 5 times"
    _until(lambda: _starts(tmp_path, "f") == {"f": 2})
    assert tree.pid("f") != pid and lines(tmp_path / "f.hooks")  # a new one, after_restart
    assert lines(tmp_path / "stops") == ["f"]  # the failed one was stopped, not left alive
    tree.close()


def test_a_loop_failure_beyond_the_intensity_halts_with_its_error(tmp_path: Path) -> None:
    from runtime.supervision import ChildSpec

    sub = ChildSpec(child_id="sub", supervisor=_spec([_child(tmp_path, "f", FAKE_LOOP)],
                                                     intensity=0))
    tree = Tree(_spec([sub], intensity=0))
    tree.get(tree.child("f").handle().fail_loop.remote("the hot path failed 5 times"))
    (reason,) = _until(lambda: tree.get(tree.feed.halts.remote()))
    assert "sub: " in reason and "f: RuntimeError: the hot path failed 5 times" in reason
    assert "the hot path failed" in tree.status()["reason"]
    tree.close()


def test_a_child_not_restarted_fails_its_callers_at_once(tmp_path: Path) -> None:
    """A temporary child that died is gone for good: a caller by its name gets
    ``ActorRetired`` with the supervisor's reason, not a wait of ``restart_timeout_s``."""
    from actors.names import ActorRetired, Named

    tree = Tree(_spec([_child(tmp_path, "t", restart="temporary")]))
    _kill(tree, "t")
    late = Named(tree.prefix + "t", restart_timeout_s=600)
    with pytest.raises(ActorRetired, match="not restarted"):
        late.get("ping")
    tree.close()


def test_a_stopped_tree_fails_its_callers_at_once_and_a_new_one_revives_them(
        tmp_path: Path) -> None:
    """The session stopping: callers waiting for a successor of a stopped child (an actor's
    background call, the session's own) fail at once; a tree started again under the same
    names (a resumed session) is reachable as before."""
    import asyncio

    from actors.names import ActorRetired, Named

    tree = Tree(_spec([_child(tmp_path, "a"), _child(tmp_path, "b")]))
    tree.pid("a")
    tree.close()
    with pytest.raises(ActorRetired, match="tree stopped"):
        Named(tree.prefix + "a", restart_timeout_s=600).get("ping")

    async def in_a_loop() -> None:  # an actor's call (the event loop's path)
        await Named(tree.prefix + "b", restart_timeout_s=600).ping.remote()

    with pytest.raises(ActorRetired):
        asyncio.run(in_a_loop())
    again = Tree(_spec([_child(tmp_path, "a"), _child(tmp_path, "b")]), prefix=tree.prefix)
    assert again.pid("a") and again.pid("b")
    again.close()
