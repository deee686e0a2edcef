"""``tradewind paper`` stopped by SIGTERM (systemd stop, container stop) in a subprocess: no new
orders, open orders cancelled (``cancel_on_stop``), journals and files written, exit 0, and the
session resumes from where it stopped."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.actors.paper_helpers import write_paper_config, write_sample

REPO = Path(__file__).parents[2]
_OPEN = {"submitted", "accepted", "partially_filled", "pending_cancel", "pending_update"}


def _start(path: Path, session_id: str, address: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "paper", "--config", str(path), "--json",
         "--session-id", session_id, "--speed", "10", "--address", address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def _until_orders(session_id: str, proc: subprocess.Popen[str], timeout_s: float = 600) -> None:
    """Until orders rest at the session's venue (its gateway's view, asked by name in the
    command's namespace): a condition, not a few seconds of market making, so it holds under
    load."""
    import ray

    name = f"tw.{session_id}.gateway"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        found = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"] == name]
        if found:
            try:
                gateway = ray.get_actor(name, namespace=found[0]["namespace"])
                if ray.get(gateway.view.remote(), timeout=30)["open_orders"]:
                    return
            except (ValueError, ray.exceptions.RayError):
                pass  # starting, or restarted meanwhile: ask again
        time.sleep(0.2)
    raise AssertionError("no order rested at the session's venue")


@pytest.mark.usefixtures("ray_local")
def test_sigterm_stops_the_session_gracefully_and_exits_0(ray_local: Any,
                                                          tmp_path: Path) -> None:
    address = ray_local.get_runtime_context().gcs_address
    path = write_paper_config(tmp_path / "cfg", "mm", write_sample(tmp_path / "data"),
                              cancel_on_stop=True, control={"enabled": False}, minutes=60)
    proc = _start(path, "sig1", address)
    try:
        _until_orders("sig1", proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["stopped_by"] == "SIGTERM" and result["orders"] > 0
    assert "SIGTERM: stopping the session" in err
    run = tmp_path / "cfg" / "runs" / "sig1"
    assert (run / "session.md").exists() and (run / "fills.csv").exists()
    with (run / "orders.csv").open() as fh:
        statuses = [row["status"] for row in csv.DictReader(fh)]
    assert not _OPEN & set(statuses), statuses  # every resting order was cancelled
    assert "canceled" in statuses
    # the data did not end: the same session id resumes from the journals
    again = _start(path, "sig1", address)
    log = tmp_path / "cfg" / "var" / "sig1" / "session.log.jsonl"
    try:
        deadline = time.monotonic() + 240
        while log.read_text().count("feed worker started") < 2:  # the resumed feed is there
            assert again.poll() is None and time.monotonic() < deadline, again.communicate()
            time.sleep(0.05)
        again.send_signal(signal.SIGTERM)
        out, err = again.communicate(timeout=240)
    finally:
        if again.poll() is None:
            again.kill()
    assert again.returncode == 0, err
    resumed = json.loads(out.strip().splitlines()[-1])
    assert resumed["resumed"] and resumed["stopped_by"] == "SIGTERM"
    assert resumed["orders"] >= result["orders"]
