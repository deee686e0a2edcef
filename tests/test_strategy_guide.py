"""Every command in docs/strategy-guide.md runs as written, in an empty folder, on sample data.

The guide's ``bash`` blocks run in order, each with ``bash -eu``, in one fresh folder, with
``tradewind`` and ``python`` the project's (small shims first on ``PATH``; no ``../shared``).
The guide's paper-trading section only points to docs/paper.md: commands that start paper
sessions are left out of the guide, and so out of this test. Its Python excerpt must be what
``tradewind new strategy`` writes, and its YAML fragments must validate.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from backtest.config import BacktestConfig, DataConfig, StrategyConfig

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "strategy-guide.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", GUIDE.read_text(), re.M | re.S)


def _shims(folder: Path) -> dict[str, str]:
    folder.mkdir()
    for name, target in (("tradewind", f'"{sys.executable}" -m cli.main'),
                         ("python", f'"{sys.executable}"')):
        shim = folder / name
        shim.write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
    return dict(env, PATH=f"{folder}:/usr/bin:/bin", PYTHONPATH=str(ROOT),
                RAY_AUTH_MODE="disabled")


def test_every_command_in_the_guide_runs(tmp_path: Path) -> None:
    env = _shims(tmp_path / "bin")
    work = tmp_path / "work"
    work.mkdir()
    blocks = _blocks("bash")
    assert len(blocks) >= 4
    for block in blocks:
        proc = subprocess.run(["bash", "-eu", "-c", block], cwd=work, env=env, text=True,
                              capture_output=True, timeout=900, check=False)  # fmt: skip
        assert proc.returncode == 0, f"{block}\n---\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    reports = sorted(p.parent.name.split("-")[0] for p in (work / "runs").glob("*/report.html"))
    # the backtest, the sweep's trial 2 opened as a backtest, the sweep, the walk-forward
    assert reports == ["rsi_revert", "rsi_revert", "rsi_sweep", "rsi_walkforward"]
    # the excerpt of the template in the guide is the template
    written = (work / "rsi_revert.py").read_text()
    [excerpt] = _blocks("python")[:1]
    assert excerpt in written


def test_the_guides_yaml_fragments_validate(tmp_path: Path) -> None:
    fragments = [yaml.safe_load(b) for b in _blocks("yaml")]
    data = [d for f in fragments for d in f.get("data", [])]
    assert data and all(DataConfig.model_validate(d).path for d in data)
    with_paths = [f for f in fragments if "strategy_paths" in f]
    assert with_paths
    for fragment in with_paths:
        assert set(fragment) <= set(BacktestConfig.model_fields)
        for spec in fragment["strategies"]:
            StrategyConfig.model_validate(spec)
