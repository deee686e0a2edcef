"""`tradewind new strategy`: three files that run as written, found without PYTHONPATH."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli_backtest import ROOT, tradewind


@pytest.mark.parametrize("kind", ["bars", "quotes", "book"])
def test_new_strategy_writes_a_module_config_and_a_passing_test(tmp_path: Path, kind: str) -> None:
    work = tmp_path / "mine"
    work.mkdir()
    proc = tradewind("new", "strategy", "my_edge", "--kind", kind, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in work.iterdir()) == ["my_edge.py", "my_edge.yaml",
                                                      "test_my_edge.py"]
    assert "class MyEdge(Strategy[MyEdgeParams])" in (work / "my_edge.py").read_text()
    # the test it wrote runs it (on its own sample data) and passes
    test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "test_my_edge.py"], cwd=work, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300,
                          check=False)  # fmt: skip
    assert test.returncode == 0, test.stdout[-3000:]


def test_backtest_finds_the_new_strategy_from_another_folder(tmp_path: Path) -> None:
    (tmp_path / "strategies").mkdir()
    assert tradewind("new", "strategy", "dip_buyer", "--dir", "strategies",
                     cwd=tmp_path).returncode == 0
    assert tradewind("data", "sample", "--days", "1", cwd=tmp_path).returncode == 0
    proc = tradewind("backtest", "--config", "strategies/dip_buyer.yaml", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["n_fills"] > 0 and (tmp_path / out["report"]).exists()


def test_existing_files_are_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "test_keep.py").write_text("# mine\n")
    proc = tradewind("new", "strategy", "keep", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "tradewind new: error: test_keep.py already exist(s): nothing written "
        "(move them away or choose another name)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test_keep.py"]
    assert (tmp_path / "test_keep.py").read_text() == "# mine\n"


@pytest.mark.parametrize(("name", "why"), [
    ("2fast", "is not a Python identifier"),
    ("rsi-revert", "is not a Python identifier"),
    ("class", "is not a Python identifier"),
    ("json", "is already an importable module"),
    ("backtest", "is already an importable module"),
])
def test_a_name_that_cannot_be_a_module_is_refused(tmp_path: Path, name: str, why: str) -> None:
    proc = tradewind("new", "strategy", name, cwd=tmp_path)
    assert proc.returncode == 2 and why in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
