"""No actor process outlives its cluster: the driver of a private local cluster (a
subprocess) is killed, its raylet and GCS go with it, and each actor process it left — one
stuck in its exit on a thread that is not a daemon, a reconciler whose calls were waiting for
actors that never came back — ends too (``actors.base.exit_with_raylet``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    """Running (a zombie has ended: it only waits for its parent to read its status)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def test_actor_processes_end_when_their_cluster_goes() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    driver = subprocess.Popen([sys.executable, "-m", "tests.actors.orphan_cluster"], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    pids: dict[str, int] = {}
    try:
        assert driver.stdout is not None
        line = driver.stdout.readline()  # after the actors were told to exit
        assert line, f"the driver ended first (exit {driver.wait(60)})"
        pids = json.loads(line)
        # with its cluster still there: the reconciler's waits for successors do not hold its
        # exit (they run on daemon threads) ...
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _alive(pids["reconciler"]):
            time.sleep(0.2)
        assert not _alive(pids["reconciler"]), "the reconciler did not exit when told to"
        # ... while the stuck one has not exited (Python waits for its thread): the scenario
        assert _alive(pids["stuck"]), "the stuck actor exited: nothing to check"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver, and the raylet and GCS with it
        driver.wait(60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids.values()):
        time.sleep(0.2)
    left = {kind: pid for kind, pid in pids.items() if _alive(pid)}
    for pid in left.values():  # not left behind for the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"outlived their cluster: {left}"
