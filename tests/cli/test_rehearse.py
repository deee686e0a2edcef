"""``tradewind rehearse`` through the command line: a paper session on generated data, the
runbook's drills against it (SIGKILL of an actor, the kill file, the disk_low watchdog, SIGTERM),
a table of which passed, exit 0 when all did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).parents[2]
DRILLS = ["actor crash (SIGKILL)", "kill file", "watchdog disk_low", "graceful stop (SIGTERM)"]


def _rehearse(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "cli.main", "rehearse", *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=900)


@pytest.mark.usefixtures("ray_local")
def test_rehearse_runs_every_drill_and_prints_which_passed(ray_local: Any,
                                                            tmp_path: Path) -> None:
    address = ray_local.get_runtime_context().gcs_address
    done = _rehearse("--dir", str(tmp_path / "r"), "--address", address, "--json")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert [d["name"] for d in result["drills"]] == DRILLS
    assert result["passed"] and all(d["passed"] for d in result["drills"]), result
    crash, kill, disk, stop = result["drills"]
    assert "restarted as pid" in crash["detail"]
    assert "halted" in kill["detail"] and "active once it went" in kill["detail"]
    assert "tripped (halt)" in disk["detail"] and "resumed" in disk["detail"]
    assert "none left open" in stop["detail"]
    files = tmp_path / "r" / "runs" / "rehearsal"
    assert (files / "session.md").exists() and (files / "orders.csv").exists()
    assert not (tmp_path / "r" / "var" / "KILL").exists()  # the drills clean up after them
    assert not list((tmp_path / "r" / "var" / "rehearsal").glob("*.ballast"))

    again = _rehearse("--dir", str(tmp_path / "r"), "--address", address)
    assert again.returncode == 2  # a folder with a rehearsal would resume it: refused
    assert "holds a rehearsal already" in again.stderr
