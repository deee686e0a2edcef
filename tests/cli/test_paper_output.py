"""What ``tradewind paper --json`` leaves on a user's terminal: one JSON document on stdout, and
on stderr the session's own lines but none of Ray's notices (token auth, Serve's INFO lines, the
Serve controller's last task killed, ANSI colour codes). A private Ray session and the control
API, as a user runs it from their folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow  # a private Ray session and Serve, as a user's command starts them
def test_paper_json_stdout_is_one_json_document_and_stderr_has_no_ray_notices(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "me"
    folder.mkdir()
    shutil.copy(REPO / "configs" / "demo.yaml", folder / "demo.yaml")
    trading = yaml.safe_load((folder / "demo.yaml").read_text())
    trading["data"] = [{"kind": "bars", "instrument": d["instrument"], "sample_days": 1}
                       for d in trading["data"]]  # fmt: skip
    (folder / "demo.yaml").write_text(yaml.safe_dump(trading))
    paper = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    paper["control"] = {**paper.get("control", {}), "port": _free_port(),
                        "grpc_port": _free_port()}  # fmt: skip
    (folder / "paper.yaml").write_text(yaml.safe_dump(paper))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "paper", "--config", "paper.yaml", "--json"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)  # the whole of stdout: one document, nothing else
    assert proc.stdout.count("\n") == 1 and result["fills"] > 0
    assert result["mode"] == "paper" and result["positions_match"] is True
    err = proc.stderr
    for noise in ("\x1b[", "(raylet)", "graceful_shutdown", "Token authentication",
                  "INFO ", "Started Serve", "Deleting app"):  # fmt: skip
        assert noise not in err, (noise, err[-3000:])
    assert "control API: http://127.0.0.1:" in err  # the session's own line stays
    # the Ray dashboard runs by default, on the loopback interface, and says where
    assert re.search(r"^Ray dashboard: http://127\.0\.0\.1:\d+$", err, re.MULTILINE), err[-3000:]


def test_no_dashboard_turns_the_ray_dashboard_off() -> None:
    from cli.dashboard import dashboard_notice
    from cli.main import build_parser

    parser = build_parser()
    on = parser.parse_args(["paper", "--config", "paper.yaml"])
    off = parser.parse_args(["paper", "--config", "paper.yaml", "--no-dashboard"])
    live = parser.parse_args(["live", "--config", "live.yaml", "--no-dashboard"])
    assert callable(dashboard_notice(on))
    assert dashboard_notice(off) is None and dashboard_notice(live) is None
