"""configs/bracket.yaml and configs/twap.yaml as a user runs them on a fresh clone: sample data
in the embedded store, `tradewind backtest --config … --json`, fills reported; the TWAP run's
orders.csv holds its parents with arrival and slippage, and fills.csv each child's parent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from tests.cli.test_cli_backtest import ROOT, tradewind


def test_bracket_and_twap_configs_run_and_report_fills(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    assert tradewind("data", "sample", "--days", "3", cwd=tmp_path).returncode == 0
    runs = {}
    for name in ("bracket", "twap"):
        proc = tradewind("backtest", "--config", f"configs/{name}.yaml", "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[name] = json.loads(proc.stdout)
        assert runs[name]["n_fills"] > 0
        assert Path(tmp_path, runs[name]["report"]).exists()
    bracket_dir = Path(tmp_path, runs["bracket"]["report"]).parent
    orders = pd.read_csv(bracket_dir / "orders.csv")
    exits = orders[orders["type"].isin(["limit", "stop"])]  # the exits the core released
    assert (exits["status"] == "filled").any() and (exits["status"] == "canceled").any()
    fills = pd.read_csv(bracket_dir / "fills.csv")
    signed = fills["qty"].where(fills["side"] == "BUY", -fills["qty"]).cumsum()
    assert signed.min() >= 0 and signed.max() <= 100  # long/flat: exits never flip it short

    twap_dir = Path(tmp_path, runs["twap"]["report"]).parent
    orders = pd.read_csv(twap_dir / "orders.csv")
    parents = orders[orders["type"] == "twap"]
    assert len(parents) > 0 and parents["arrival_price"].notna().all()
    filled = parents[parents["filled_qty"] > 0]
    assert filled["slippage_bps"].notna().all()
    children = orders[orders["parent_id"].fillna("") != ""]
    assert set(children["parent_id"]) <= set(parents["client_order_id"])
    assert (children["type"] == "market").all()
    fills = pd.read_csv(twap_dir / "fills.csv")
    assert (fills["parent_id"].fillna("") != "").all() and fills["slippage_bps"].notna().all()
    strategy = runs["twap"]["metrics"]["strategy"]
    assert strategy["algo_parents"] == len(parents)
    assert isinstance(strategy["algo_slippage_bps"], float)
    assert "Execution algorithms" in Path(tmp_path, runs["twap"]["report"]).read_text()
