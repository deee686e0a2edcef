"""Fixtures of the research tests: the shared local Ray cluster and a small synthetic study.

Ray tests use the suite's one session-scoped cluster, ``ray_local`` in tests/conftest.py. The
multi-node test runs in its own process (``multinode_check.py``) so that it never meets it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml


def write_bars_csv(path: Path, n: int, seed: int, *, drift: float = 0.0) -> Path:
    """``n`` one-minute bars of a random walk (cents), UTC ISO times, valid OHLC."""
    rng = np.random.default_rng(seed)
    close = np.maximum(100.0 * np.exp(np.cumsum(drift + 0.002 * rng.standard_normal(n))), 1.0)
    close = np.round(close, 2)
    open_ = np.round(np.concatenate(([100.0], close[:-1])), 2)
    high = np.round(np.maximum(open_, close) + 0.01, 2)
    low = np.round(np.minimum(open_, close) - 0.01, 2)
    start = np.datetime64("2024-01-02T00:00:00")
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(n):
        stamp = str(start + np.timedelta64(i, "m")) + "Z"
        lines.append(f"{stamp},{open_[i]:.2f},{high[i]:.2f},{low[i]:.2f},{close[i]:.2f},1000")
    path.write_text("\n".join(lines) + "\n")
    return path


def backtest_dict(data_path: str) -> dict[str, Any]:
    return {
        "name": "rs",
        "seed": 3,
        "initial_cash": 100000,
        "instruments": [{"id": "SIM", "price_precision": 2}],
        "data": [{"kind": "bars", "instrument": "SIM", "path": data_path, "interval": "1m"}],
        "strategies": [
            {
                "id": "sma",
                "class": "backtest.strategies.sma_cross:SmaCross",
                "instruments": ["SIM"],
                "params": {"fast": 5, "slow": 20, "size": 10},
            }
        ],
        "venue": {
            "latency": {"kind": "constant", "entry_ns": 0, "response_ns": 0},
            "fills": {"kind": "bars", "price": "next_open", "path": "auto"},
            "slippage": {"kind": "none"},
            "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 1},
        },
        "store": {"record": False},
    }


def write_study(tmp: Path, *, n_bars: int = 1500, seed: int = 5, **study: Any) -> Path:
    """A sweep/walk-forward YAML over synthetic bars in ``tmp``; ``study`` overrides keys."""
    data = write_bars_csv(tmp / f"bars-{n_bars}-{seed}.csv", n_bars, seed)
    config: dict[str, Any] = {
        "name": "rs_sweep",
        "backtest": backtest_dict(data.name),
        "grid": {"fast": [3, 5, 8], "slow": [13, 21, 34]},
        "constraints": ["fast < slow"],
        "objective": {"metric": "sharpe", "goal": "maximize"},
        "heatmap": ["fast", "slow"],
        "stats": {"pbo_blocks": 8},
        "output_dir": str(tmp / "runs"),
        "flush_every": 4,
    }
    config.update(study)
    path = tmp / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    return write_study(tmp_path)


@pytest.fixture
def store_dsn(tmp_path: Path) -> str:
    return f"chdb://{tmp_path / 'store'}"
