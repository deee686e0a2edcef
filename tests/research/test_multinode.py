"""A sweep over a head + 2 worker nodes on this machine (in its own process, away from the
shared cluster): it spreads over both workers, survives a worker node killed mid-sweep without
losing a result, and writes rows identical to a single-node run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_a_sweep_spreads_over_nodes_and_survives_losing_one() -> None:
    script = Path(__file__).with_name("multinode_check.py")
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=420,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = [ln for ln in done.stdout.splitlines() if ln.startswith('{"n_params"')][-1]
    result = json.loads(line)  # Ray's raylet logs share stdout
    assert result["killed_at"] == 6, result
    assert result["nodes"] == 2, result  # both worker nodes ran trials
    assert result["single_nodes"] == 1, result  # the reference ran on the survivor only
    assert result["rows"] == result["n_params"] == 30, result  # nothing lost
    assert result["same_id"] and result["rows_equal"], result
