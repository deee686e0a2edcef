"""``tradewind rehearse`` through the command line: a paper session on generated data, every
drill of the runbook against it (SIGKILL of an actor, each risk guard by the guard probe's
orders, the kill file, the disk_low watchdog, the paper broker's faults tripping the stale order
stream, unknown-order storm and inventory desync watchdogs and its circuit breaker, the daily
loss, a restart storm, SIGTERM; the market-data silence watchdog by the replayed stream's
silence), a table of which passed, exit 0 when none failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from actors.drills import Drill

REPO = Path(__file__).parents[2]
PASSING = {
    "market-data silence": "watchdog market_data_silence",
    "actor crash (SIGKILL)": "supervisor restart",
    "oversized position": "risk max_position",
    "oversized order": "risk max_order_notional",
    "price far from the market": "risk price_band",
    "order on stale data": "risk stale_data",
    "kill file": "kill file",
    "disk filling up": "watchdog disk_low",
    "broker link stalls": "watchdog order_stream_stale",
    "unknown-order storm": "watchdog unknown_order_storm",
    "broker and risk drift apart": "watchdog inventory_desync (drift)",
    "broker rejects in a row": "circuit breaker",
    "losing day": "risk daily loss",
    "restart storm": "supervisor escalation",
    "graceful stop (SIGTERM)": "stop signal",
}


def _rehearse(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "cli.main", "rehearse", *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=1200)


@pytest.mark.usefixtures("ray_local")
def test_rehearse_trips_every_guard_and_prints_which_fired(ray_local: Any,
                                                           tmp_path: Path) -> None:
    address = ray_local.get_runtime_context().gcs_address
    done = _rehearse("--dir", str(tmp_path / "r"), "--address", address, "--json")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    drills = {d["name"]: d for d in result["drills"]}
    assert {n: d["guard"] for n, d in drills.items()} == PASSING
    assert result["passed"], result
    for name in PASSING:  # every guard tripped: none is left out as not rehearsable
        assert drills[name]["result"] == "PASS", drills[name]
    # what fired is what the session reported: risk's reason codes, the watchdogs' reasons
    for code in ("max_position", "max_order_notional", "price_band", "stale_data"):
        assert any(d["fired"].startswith(f"{code}: ") for d in drills.values()), code
    silence = drills["market-data silence"]  # the feed's stream health, read by the watchdog
    assert silence["fired"].startswith("market data for SIM-A silent for ")
    assert "while its market is open" in silence["fired"]
    assert silence["did"].startswith("cancel_all_and_halt") and "none left open" in silence["did"]
    assert "restarted as pid" in drills["actor crash (SIGKILL)"]["fired"]
    assert "free where the session journals" in drills["disk filling up"]["fired"]
    # the paper broker's faults, seen by the watchdogs through its health and view
    stale = drills["broker link stalls"]
    assert "has not answered a command" in stale["fired"]
    assert stale["did"].startswith("cancel_all_and_halt") and "none left open" in stale["did"]
    storm = drills["unknown-order storm"]
    assert "reports for orders this session never sent" in storm["fired"]
    assert storm["did"].startswith("cancel_all, the broker asked to reconcile; then halt")
    drift = drills["broker and risk drift apart"]
    assert drift["fired"].startswith("inventory desync")
    assert drift["did"].startswith("cancel_all_and_halt") and "none left open" in drift["did"]
    breaker = drills["broker rejects in a row"]
    assert breaker["fired"] == "breaker opened: 3 sends failed in a row"
    assert "refused (gateway.breaker_open)" in breaker["did"]
    assert drills["losing day"]["fired"].startswith("daily loss")
    assert "close-only" in drills["losing day"]["did"]
    assert "restarts within" in drills["restart storm"]["fired"]
    assert "no order left open" in drills["restart storm"]["did"]
    assert "none left open" in drills["graceful stop (SIGTERM)"]["did"]
    files = tmp_path / "r" / "runs" / "rehearsal"
    assert (files / "session.md").exists() and (files / "orders.csv").exists()
    assert not (tmp_path / "r" / "var" / "KILL").exists()  # the drills clean up after them
    assert not list((tmp_path / "r" / "var" / "rehearsal").glob("*.ballast"))

    again = _rehearse("--dir", str(tmp_path / "r"), "--address", address)
    assert again.returncode == 2  # a folder with a rehearsal would resume it: refused
    assert "holds a rehearsal already" in again.stderr


def test_a_failed_drill_fails_the_rehearsal(capsys: pytest.CaptureFixture[str]) -> None:
    """The table prints every drill; a FAIL (not an N/A) makes the exit code 1."""
    from cli.rehearse import _print, exit_code

    drills = [Drill("a", "risk max_position", True, "max_position: x", "denied"),
              Drill("b", "circuit breaker", None, "not rehearsable on the paper broker: y"),
              Drill("c", "kill file", False, "TimeoutError: waited 1 s for trading to halt")]
    _print(drills, as_json=False)
    out = capsys.readouterr().out
    assert "PASS" in out and "N/A" in out and "FAIL" in out
    assert "1 passed, 1 failed, 1 not rehearsable here" in out
    _print(drills, as_json=True)
    assert json.loads(capsys.readouterr().out)["passed"] is False
    assert exit_code(drills) == 1
    _print(drills[:2], as_json=True)
    assert json.loads(capsys.readouterr().out)["passed"] is True
    assert exit_code(drills[:2]) == 0
