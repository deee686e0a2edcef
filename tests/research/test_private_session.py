"""Studies on a private Ray session (no ``--address``), each in its own process so that it never
meets the suite's shared cluster: the dashboard on 127.0.0.1 (answering over loopback HTTP),
``--no-dashboard``, bad data found while Ray starts, and no Ray process outliving the command
(the session is stopped without waiting on it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from backtest.store import open_store
from tests.research.conftest import write_study

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _env(mark: str) -> dict[str, str]:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", TW_TEST_MARK=mark)
    env.pop("RAY_ADDRESS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _marked(mark: str) -> list[int]:
    """Processes whose environment carries ``mark`` (Ray's processes inherit the driver's)."""
    pids = []
    needle = f"TW_TEST_MARK={mark}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _none_left(mark: str, within_s: float = 60.0) -> list[str]:
    """The processes of the session still alive ``within_s`` after it ended (pid and command
    line, so a failure names them)."""
    deadline = time.monotonic() + within_s
    while (left := _marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    named = []
    for pid in left:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
        except OSError:
            continue  # gone meanwhile
        named.append(f"{pid}: {cmd}")
    return named


def _sweep(args: list[str], mark: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", "sweep", *args], cwd=ROOT,
                          env=_env(mark), capture_output=True, text=True, timeout=600,
                          check=False)  # fmt: skip


def test_the_dashboard_is_on_loopback_and_answers_during_a_sweep() -> None:
    mark = uuid.uuid4().hex
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("dashboard_check.py"))],
                          env=_env(mark), capture_output=True, text=True, timeout=600,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads([ln for ln in done.stdout.splitlines() if ln.startswith('{"urls"')][-1])
    assert len(seen["urls"]) == 1 and seen["urls"][0].startswith("http://127.0.0.1:"), seen
    assert seen["status"] == 200 and seen["version"]["ray_version"], seen
    assert seen["listening_on"] == ["127.0.0.1"], seen  # loopback only, no 0.0.0.0
    assert seen["n_runs"] == 9
    assert _none_left(mark) == []


def test_the_cli_prints_the_dashboard_address_and_leaves_no_ray_process(tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    study = write_study(tmp_path)
    done = _sweep(["--config", str(study), "--store", f"chdb://{tmp_path / 's'}", "--json"], mark)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])["n_runs"] == 9
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("Ray dashboard: ")]
    assert len(lines) == 1 and lines[0].startswith("Ray dashboard: http://127.0.0.1:"), lines
    assert _none_left(mark) == []


def test_bad_data_found_while_ray_starts_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    study = write_study(tmp_path)
    data = tmp_path / "bars-1500-5.csv"
    rows = data.read_text().splitlines()
    stamp, open_, high, low, close, volume = rows[100].split(",")
    rows[100] = ",".join([stamp, open_, low, high, close, volume])  # high below low
    data.write_text("\n".join(rows) + "\n")
    dsn = f"chdb://{tmp_path / 's'}"
    done = _sweep(["--config", str(study), "--store", dsn, "--no-dashboard"], mark)
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("tradewind sweep: error")]
    assert len(errors) == 1 and "high" in errors[0], done.stderr[-3000:]
    assert "Ray dashboard" not in done.stderr
    assert _none_left(mark) == []
    with open_store(dsn):  # the store the loading thread opened was closed (its lock released)
        pass
