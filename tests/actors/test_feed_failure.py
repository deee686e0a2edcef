"""The feed's loop failing for good (a carrier that gave up on a step, a step's own error) is a
child failure its supervisor decides on, like a crash: within the intensity the feed is
restarted and resumes from its cursor (no order sent twice, no fill lost or doubled); past it
the root gives up, halts trading and cancels every resting order, and the session's status and
session.md say why. The failure is injected through the feed's ``step_failure`` rehearsal
fault (the same path as the sockets carrier's ``the hot path failed 5 times on one step``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.actors.paper_helpers import write_paper_config, write_sample
from tests.actors.test_paper_session import _assert_consistent, _until

#: two hours of data at 60×: outlasts the restarts however loaded the machine
REAL_TIME = {"lockstep": False, "speed": 60}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("feed-failure-data"))


def _start(path: Path, session_id: str) -> Any:
    from actors.config import load_paper_config
    from actors.session import start_session

    return start_session(load_paper_config(path), session_id=session_id)


def _status(session: Any) -> dict[str, Any]:
    return dict(session.feed.get("status", timeout_s=30))


def _moves_on(session: Any) -> int:
    """The feed's cursor once it moved on by a few messages (a running loop)."""
    cursor = _status(session)["cursor"]
    return int(_until(lambda: (c := _status(session)["cursor"]) > cursor + 5 and c,
                      timeout_s=180))


def _feed_events(session: Any) -> list[dict[str, Any]]:
    import ray

    events = ray.get(session.supervisor.status.remote(), timeout=60)["events"]
    return [e for e in events if e["child"] == "feed"]


@pytest.mark.usefixtures("ray_local")
def test_a_failed_feed_loop_is_restarted_and_resumes_from_its_cursor(
        data_dir: Path, tmp_path: Path) -> None:
    path = write_paper_config(tmp_path, "mm", data_dir, minutes=120, feed=REAL_TIME)
    session = _start(path, "feedfail1")
    _moves_on(session)
    pid = session.feed.get("pid")
    session.feed.get("rehearse", "step_failure", {"times": 1})
    (event,) = _until(lambda: _feed_events(session), timeout_s=180)
    assert event["reason"] == "crash" and event["action"] == "restart"
    assert "rehearsed step_failure" in event["why"]  # the loop's error, in the decision
    resumed_at = _moves_on(session)  # a new feed, running its loop from its saved cursor
    status = _status(session)
    assert session.feed.get("pid") != pid and status["running"] and status["error"] is None
    assert resumed_at < status["total"]
    (failure,) = status["failures"]  # the predecessor's failure, kept with the cursor
    assert "rehearsed step_failure" in failure["error"] and failure["cursor"] <= resumed_at
    submitted = session.gateway.get("submitted")
    assert submitted and len(submitted) == len(set(submitted))  # every order sent once
    result = session.stop()
    assert result["feed"]["error"] is None
    _assert_consistent(session, result)


@pytest.mark.usefixtures("ray_local")
def test_a_feed_that_keeps_failing_halts_the_session_and_cancels_its_orders(
        data_dir: Path, tmp_path: Path) -> None:
    """One flat tree with intensity 1: the second failure within the period is a storm; the
    root gives up, halts trading and cancels every open order through the feed it starts
    again (the restart storm's path)."""
    children = [{"child_id": k} for k in ("risk", "gateway", "strategy", "reconciler", "book",
                                          "store", "recorder")]
    supervisor = {"intensity": 1, "period_s": 600, "backoff_max_s": 0.5,
                  "children": [*children, {"child_id": "feed", "restart": "transient"}]}
    path = write_paper_config(tmp_path, "mm", data_dir, minutes=120, feed=REAL_TIME,
                              supervisor=supervisor, cancel_on_stop=False)
    session = _start(path, "feedfail2")
    for n in (1, 2):  # each feed started fails at its next step
        _moves_on(session)
        _until(lambda: session.risk.get("summary")["open"] > 0, timeout_s=180)
        session.feed.get("rehearse", "step_failure", {"times": 1})
        _until(lambda n=n: len(_feed_events(session)) >= n, timeout_s=180)
    restart, escalate = _feed_events(session)[:2]
    assert restart["action"] == "restart" and escalate["action"] == "escalate"
    import ray

    sup = ray.get(session.supervisor.status.remote(), timeout=60)
    assert sup["escalated"] and "rehearsed step_failure" in sup["reason"]
    summary = _until(lambda: (s := session.risk.get("summary"))["state"] == "halted"
                     and s["open"] == 0 and s, timeout_s=180)
    assert summary["state_reason"].startswith("supervisor escalation")
    assert "rehearsed step_failure" in summary["state_reason"]
    # resting at the venue (the paper broker's own book): none
    _until(lambda: session.gateway.get("view")["open_orders"] == [], timeout_s=60)
    result = session.stop()  # cancel_on_stop is off: the halt cancelled them
    assert result["trading_state"] == "halted"
    text = (Path(result["output_dir"]) / result["session_id"] / "session.md").read_text()
    assert "escalated:" in text and "rehearsed step_failure" in text


@pytest.mark.usefixtures("ray_local")
def test_a_stop_that_meets_a_failed_feed_is_answered_by_its_successor(
        data_dir: Path, tmp_path: Path) -> None:
    """The session stopped just as its feed failed: the failed feed (or, once its supervisor
    replaced it, the successor) answers the stop, cancels the open orders and the session
    writes its files, saying what happened."""
    path = write_paper_config(tmp_path, "mm", data_dir, minutes=120, feed=REAL_TIME,
                              cancel_on_stop=True)
    session = _start(path, "feedfail3")
    _moves_on(session)
    session.feed.get("rehearse", "step_failure", {"times": 1})
    _until(lambda: _status(session)["error"] or _feed_events(session), timeout_s=180)
    result = session.stop()
    error = result["feed"]["error"]  # the failed feed's own answer, or the successor's
    assert error is None or "rehearsed step_failure" in error
    assert not result["feed"]["running"]
    assert "rehearsed step_failure" in result["feed"]["failures"][0]["error"]
    text = (Path(result["output_dir"]) / result["session_id"] / "session.md").read_text()
    assert ("stopped by an error: no" in text if error is None
            else "stopped by an error: RuntimeError: the step failed" in text)
    assert result["risk"]["open"] == 0  # cancel_on_stop, by the successor
    _assert_consistent(session, result)


# --- the failed feed's answers, without Ray ---------------------------------------------------
class FakeDriver:
    """The driver of a feed whose loop failed: its carrier closed; ``suspend`` (the stop's
    cancels) fails as ``fail`` says."""

    def __init__(self, fail: Exception | None) -> None:
        from actors.driver import Counters

        self.fail, self.counters, self.cursor, self.carrier = fail, Counters(), 7, None
        self.suspended: list[bool] = []

    async def suspend(self, *, cancel_open: bool) -> None:
        self.suspended.append(cancel_open)
        if self.fail is not None:
            raise self.fail


def _failed_feed(driver: FakeDriver, folder: Path) -> Any:
    import asyncio
    import time
    from types import SimpleNamespace

    from actors.feed import FeedActor

    cls = FeedActor.__ray_metadata__.modified_class.__mro__[1]  # the class Ray wraps
    feed = object.__new__(cls)
    feed.__dict__.update(
        error="RuntimeError: the hot path failed 5 times on one step: gone", driver=driver,
        failed=asyncio.Event(), lock=asyncio.Lock(), cancel_on_stop=True, task=None,
        saved={"failures": [{"error": "RuntimeError: the hot path failed", "cursor": 7}]},
        messages=[], wall0=time.monotonic(), paused=False, kill_halted=False, stream=None,
        feed=SimpleNamespace(lockstep=False), stop_requested=False, path=folder / "feed.json")
    feed.failed.set()
    return feed


def test_a_failed_feed_reports_through_watch_and_refuses_what_needs_its_loop(
        tmp_path: Path) -> None:
    import asyncio

    from actors.feed import FeedLoopFailed

    feed = _failed_feed(FakeDriver(None), tmp_path)
    with pytest.raises(FeedLoopFailed, match="the feed's loop failed: RuntimeError: the hot"):
        asyncio.run(feed.watch())
    for call in (feed.halt("supervisor escalation: x"), feed.pause(),
                 feed.operate("set_state", {"state": "halted", "reason": "x"})):
        with pytest.raises(FeedLoopFailed, match="its supervisor starts it again"):
            asyncio.run(call)


@pytest.mark.parametrize("fail", [None, OSError("the gateway is gone")])
def test_a_stop_of_a_failed_feed_tries_the_cancels_once_and_says_what_failed(
        fail: Exception | None, tmp_path: Path) -> None:
    """...and leaves the session stopped on that error in ``feed.json``: the successor its
    supervisor starts does not resume the loop, and reports the error."""
    import asyncio
    import json

    driver = FakeDriver(fail)
    status = asyncio.run(_failed_feed(driver, tmp_path).stop())
    assert driver.suspended == [True]  # cancel_on_stop: tried once, never waits
    assert status["error"].startswith("RuntimeError: the hot path failed 5 times")
    assert status["failures"] == [{"error": "RuntimeError: the hot path failed", "cursor": 7}]
    assert not status["running"]
    if fail is not None:
        assert "the stop's cancels failed too: OSError: the gateway is gone" in status["error"]
    saved = json.loads((tmp_path / "feed.json").read_text())
    assert saved["running"] is False and saved["stopped_by"] == status["error"]
