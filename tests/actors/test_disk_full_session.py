"""A paper session whose journals sit on a real small filesystem (a 64 MB tmpfs mounted for the
test) fills its disk mid-session: the first write the disk refuses releases the session's disk
reserve and goes through; the ``disk_full`` watchdog cancels every open order and halts
(journaled in the reserve's space), with a CRITICAL line naming the file and the error; once
space is freed the reserve is held again, the watchdog clears, the operator resumes; the session
stopped and started again resumes from its journals with nothing lost or doubled. Mounting needs
root: elsewhere the test skips, saying so."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import disk_reserve
from tests.actors.paper_helpers import write_paper_config, write_sample
from tests.small_disk import fill_up, mounted_tmpfs

pytestmark = pytest.mark.usefixtures("ray_local")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "var", "64m") as folder:
        yield folder


def _until(check: Any, what: str, timeout_s: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:  # an actor restarting answers nothing yet
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout_s:.0f} s for {what}")


def _start(path: Path, session_id: str) -> Any:
    from actors.config import load_paper_config
    from actors.session import start_session

    return start_session(load_paper_config(path), session_id=session_id)


def test_a_full_disk_mid_session_cancels_halts_and_resumes(small_disk: Path,
                                                           tmp_path: Path) -> None:
    import ray

    data_dir = write_sample(tmp_path / "data")
    # disk_low off: the disk fills faster than it could act (the case the reserve is for)
    path = write_paper_config(tmp_path / "cfg", "mm", data_dir, minutes=30,
                              journal_dir=str(small_disk), reconcile_act=True,
                              feed={"lockstep": False, "speed": 5},
                              watchdogs={"disk_low": None, "disk_full": {"reserve_mb": 4}})
    session = _start(path, "full1")
    reserve = small_disk / "full1" / disk_reserve.RESERVE
    assert reserve.stat().st_size == 4 * 2**20 and disk_reserve.released(reserve) is None
    risk, feed = session.risk, session.feed
    _until(lambda: ray.get(risk.summary.remote())["open"] > 0, "orders resting")

    ballast = fill_up(small_disk)  # full: the next write the session makes is refused
    summary = _until(lambda: (s := ray.get(risk.summary.remote()))["state"] == "halted"
                     and s["open"] == 0 and s, "the halt and the cancels")
    assert summary["state_reason"].startswith("watchdog disk_full: the disk is full: ")
    note = disk_reserve.released(reserve)
    assert note is not None and note.startswith(str(small_disk / "full1"))
    trips = [t for t in ray.get(session.children["reconciler"].trips.remote())
             if t["watchdog"] == "disk_full"]
    assert len(trips) == 1 and trips[0]["acted"] and "error" not in trips[0]
    assert note in trips[0]["reason"]
    lines = [json.loads(line) for line in
             (small_disk / "full1" / "session.log.jsonl").read_text().splitlines()]
    assert any(r["level"] == "critical" and "watchdog disk_full tripped" in r["msg"]
               and note in r["msg"] for r in lines)
    status = ray.get(feed.status.remote())
    assert status["error"] is None  # the session goes on, halted

    ballast.unlink()  # space again: the reserve is held again, the watchdog clears
    reconciler = session.children["reconciler"]
    _until(lambda: ray.get(reconciler.status.remote())["watchdogs"]["disk_full"] == "ok",
           "the disk_full watchdog to clear")
    assert disk_reserve.released(reserve) is None and reserve.stat().st_size == 4 * 2**20
    orders = ray.get(risk.summary.remote())["orders"]
    ray.get(feed.operate.remote("set_state", {"state": "active", "reason": "space freed"}))
    _until(lambda: ray.get(risk.summary.remote())["orders"] > orders, "orders to flow again")
    ray.get(feed.pause.remote())
    first = session.stop()
    assert first["feed"]["error"] is None

    again = _start(path, "full1")  # resumes from its journals, none corrupted
    _until(lambda: ray.get(again.feed.status.remote())["cursor"] > first["feed"]["cursor"],
           "the resumed session to move on")
    ray.get(again.feed.pause.remote())
    submitted = ray.get(again.gateway.submitted.remote())
    assert len(submitted) == len(set(submitted))  # nothing sent twice
    risk_view, gateway_view = ray.get([again.risk.view.remote(), again.gateway.view.remote()])
    result = again.stop()
    assert result["resumed"] is True and result["feed"]["error"] is None
    assert risk_view["positions"] == gateway_view["positions"]
