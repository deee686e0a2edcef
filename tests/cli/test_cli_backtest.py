"""The command line as a user meets it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tradewind(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TRADEWIND_STORE_DSN", None)
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_backtest_json_on_real_nvda(tmp_path: Path, shared_data: object) -> None:
    shared_data("backtrader__nvda-1999-2014.txt")  # type: ignore[operator]
    proc = tradewind("backtest", "--config", str(ROOT / "configs" / "sma_nvda.yaml"), "--json",
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"run_id", "metrics", "n_fills", "state_hash", "report"}
    assert out["n_fills"] == 103
    assert out["metrics"]["strategy"]["fills"] == 103
    assert Path(tmp_path, out["report"]).exists()


@pytest.mark.parametrize(("yaml", "expected"), [
    ("name: x\n", "instruments: Field required"),
    ("{broken", "not valid YAML"),
])
def test_bad_config_is_one_line_exit_2(tmp_path: Path, yaml: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml)
    proc = tradewind("backtest", "--config", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith(f"tradewind backtest: error: {path}") and expected in lines[0]


def test_no_command_prints_help_and_exits_2(tmp_path: Path) -> None:
    proc = tradewind(cwd=tmp_path)
    assert proc.returncode == 2 and "backtest" in proc.stdout


def test_demo_from_scratch_then_again(tmp_path: Path) -> None:
    store = f"chdb://{tmp_path / 'store'}"
    first = tradewind("demo", "--store", store, "--days", "1", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["sampled"] is True and len(out["runs"]) == 2
    assert all(Path(tmp_path, r["report"]).exists() for r in out["runs"])
    again = json.loads(tradewind("demo", "--store", store, "--json", cwd=tmp_path).stdout)
    assert again["sampled"] is False  # data already there: not written twice
    assert [r["state_hash"] for r in again["runs"]] == [r["state_hash"] for r in out["runs"]]


def test_readme_examples_run_on_a_fresh_clone(tmp_path: Path) -> None:
    """README's backtest, new strategy, sweep and walk-forward commands, as written, on the
    sample data only (a fresh clone has no ../shared): from a copy of configs/ in an empty
    folder."""
    import shutil

    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    assert tradewind("data", "sample", "--days", "3", cwd=tmp_path).returncode == 0
    assert tradewind("new", "strategy", "rsi_revert", cwd=tmp_path).returncode == 0
    for args in (["backtest", "--config", "configs/sma.yaml"],
                 ["backtest", "--config", "rsi_revert.yaml"],
                 ["sweep", "--config", "configs/sweep.yaml"],
                 ["walkforward", "--config", "configs/walkforward.yaml"]):
        proc = tradewind(*args, "--json", cwd=tmp_path)
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
        out = json.loads(proc.stdout)
        assert Path(tmp_path, out["report"]).exists(), args
