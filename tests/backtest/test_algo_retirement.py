"""Execution-algorithm parents retire with their children (``runtime.execution``): over days
of bars, a strategy that works TWAP parents and brackets leaves a kernel holding about the
last ``retire_orders_after_h`` of parents and orders, while the backtest's results (fills,
orders, parents) are those of a run that keeps everything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backtest.api import run_backtest, simulate
from backtest.config import load_config
from backtest.feed import load_feed
from tests.actors.paper_helpers import trading_config, write_sample

STRATEGY = {"id": "bt", "class": "tests.actors.test_lockstep_orders:BracketAndTwap",
            "instruments": ["SIM-A"]}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("algo-data"), days=3)


def _config(data_dir: Path, retire_h: float | None) -> Any:
    raw = trading_config("sma", data_dir)
    raw["strategies"] = [STRATEGY]
    raw["retire_orders_after_h"] = retire_h
    return load_config(raw)


def _neutral(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the run's namespace taken out of its ids (the config differs, so does
    the namespace)."""
    frame = frame.copy()
    for column in ("client_order_id", "parent_id"):
        if column in frame:
            frame[column] = frame[column].str.split("-", n=1).str[-1]
    return frame


def test_closed_parents_and_their_children_retire_and_the_results_keep_them(
        data_dir: Path) -> None:
    kept = run_backtest(_config(data_dir, None), write=False)
    retiring = run_backtest(_config(data_dir, 2.0), write=False)
    assert len(kept.parents) > 20
    for name in ("fills", "orders", "parents"):
        assert _neutral(getattr(retiring, name)).equals(_neutral(getattr(kept, name))), name

    config = _config(data_dir, 2.0)
    kernel, _ = simulate(config, load_feed(config, None))
    held = kernel.algos.state()
    assert 0 < len(held) < len(kept.parents) // 4  # about the last few hours' parents
    children = {c for p in held.values() for c in p["children"]}
    assert set(kernel.orders) >= children  # a held parent's children are held
    assert len(kernel.orders) < len(kept.orders) // 4
    assert kernel.ledger.total + len(kept.parents) == len(kept.orders)
