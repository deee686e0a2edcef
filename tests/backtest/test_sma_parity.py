"""The SMA 10/50 long/flat crossover through the whole engine equals an independent reference.

Conventions stated once (they are the reference's, tests/backtest/sma_reference.py): a decision
at every bar once the slow SMA has 50 closes; long iff fast SMA > slow SMA exactly (integer
sums, strict); the market order for the difference fills in full at the NEXT bar's open, which
the trader hears of at that bar's close (the fill's ``ts_init``); zero fees, slippage and
latency; a decision on the last bar never fills.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from backtest.api import run_backtest
from backtest.data import load_file
from tests.backtest.sma_reference import sma_cross_fills

Q = 10**9
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def engine_fills(result: Any) -> list[tuple[int, str, int, int]]:
    f = result.fills
    return [
        (int(ts), "BUY" if side > 0 else "SELL", round(q * Q), round(p * Q))
        for ts, side, q, p in zip(f.ts_init, f.side, f.qty, f.price, strict=True)
    ]


def bars_config(path: Path, precision: int = 2, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "parity",
        "seed": 3,
        "initial_cash": 10**9,
        "instruments": [{"id": "X", "price_precision": precision}],
        "data": [{"kind": "bars", "instrument": "X", "path": str(path), **extra}],
        "strategies": [
            {
                "id": "sma",
                "class": "backtest.strategies.sma_cross:SmaCross",
                "instruments": ["X"],
                "params": {"fast": 10, "slow": 50, "size": 100},
            }
        ],
        "venue": {
            "latency": {"kind": "constant", "entry_ns": 0, "response_ns": 0},
            "fills": {"kind": "bars", "price": "next_open", "path": "auto"},
            "slippage": {"kind": "none"},
            "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 0},
        },
        "store": {"record": False},
    }
    return config


def reference(table: pa.Table) -> list[tuple[int, str, int, int]]:
    return sma_cross_fills(
        table.column("ts_event").to_numpy(),
        table.column("open").to_numpy(),
        table.column("close").to_numpy(),
        fast=10,
        slow=50,
        qty_raw=100 * Q,
    )


def test_nvda_daily_fills_equal_the_reference(shared_data: Any) -> None:
    path = shared_data("backtrader__nvda-1999-2014.txt")
    table = load_file(path, "bars", "X", timezone="America/New_York", interval="1d")
    expected = reference(table)
    # the file's prices are split-adjusted with 6 decimals: the instrument says so
    result = run_backtest(
        bars_config(path, 6, timezone="America/New_York", interval="1d"), write=False
    )
    assert len(expected) > 80  # a real test: many crossings over 16 years
    assert engine_fills(result) == expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_synthetic_bars_fills_equal_the_reference(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))), 2)
    open_ = np.round(close * np.exp(rng.normal(0, 0.003, n)), 2)
    high = np.maximum(open_, close) + 0.05
    low = np.minimum(open_, close) - 0.05
    ts = 1_700_000_000 + 60 * np.arange(1, n + 1)  # bar open times, 1 minute apart
    path = tmp_path / "bars.csv"
    with path.open("w") as out:
        out.write("timestamp,open,high,low,close,volume\n")
        for row in zip(ts, open_, high, low, close, strict=True):
            out.write(f"{row[0]},{row[1]:.2f},{row[2]:.2f},{row[3]:.2f},{row[4]:.2f},1000\n")
    table = load_file(path, "bars", "X", interval="1m")
    expected = reference(table)
    result = run_backtest(bars_config(path, interval="1m"), write=False)
    assert len(expected) > 20
    assert engine_fills(result) == expected
    assert result.manifest["events"] == n
