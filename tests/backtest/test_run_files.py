"""What a recorded run leaves behind, as its reader sees it: store rows, CSVs, manifest, report."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backtest.api import run_backtest
from backtest.data import SampleSpec, generate_sample
from backtest.store import open_store
from tests.backtest.test_api import config


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("store") / "ch"
    with open_store(f"chdb://{path}") as s:
        spec = SampleSpec(instruments=("SIM-A",), days=2)
        for kind, table in generate_sample(np.random.default_rng(3), spec).items():
            s.write_market(kind, table)
        yield s


def test_recording_a_run_warns_nothing_and_keeps_times(tmp_path: Path, store: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run_backtest(config(tmp_path), store=store)
    ts = store.query_arrow(
        "SELECT ts FROM backtest_timeseries FINAL WHERE run_id = {r:String} ORDER BY ts",
        {"r": result.run_id},
    ).column("ts").to_pylist()
    assert ts == [t.value for t in result.equity.index]
