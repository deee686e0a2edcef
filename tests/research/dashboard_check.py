"""A sweep on a private Ray session with its dashboard, run in its own process by
test_private_session.py (a private session must never meet the suite's shared cluster).

The dashboard's URL is announced as Ray comes up; when the first trial has finished (the
session is up and busy) the check asks the dashboard over loopback HTTP. Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

os.environ["RAY_AUTH_MODE"] = "disabled"
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from backtest.research.sweep import run_sweep
from tests.research.conftest import write_study


def _listening(port: int) -> list[str]:
    """The IPv4 addresses a socket listens on ``port`` at (from /proc/net/tcp)."""
    hosts = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        host, hex_port = fields[1].split(":")
        if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
            hosts.append(".".join(str(int(host[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return hosts


def main() -> None:
    seen: dict[str, Any] = {"urls": []}

    def announced(url: str) -> None:
        seen["urls"].append(url)

    def progress(done: int, total: int) -> None:
        if done == 1 and seen["urls"]:
            with urllib.request.urlopen(seen["urls"][0] + "/api/version", timeout=30) as answer:
                seen["status"] = answer.status
                seen["version"] = json.loads(answer.read())
            seen["listening_on"] = _listening(int(seen["urls"][0].rsplit(":", 1)[1]))

    with tempfile.TemporaryDirectory(prefix="tw-dashboard-check-") as work:
        study = write_study(Path(work))
        outcome = run_sweep(study, store_dsn=f"chdb://{Path(work) / 'store'}", report=False,
                            dashboard=announced, progress=progress)  # fmt: skip
        seen["n_runs"] = len(outcome.ranked)
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
