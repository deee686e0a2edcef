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


STOPPED = """
from runtime.messages import Bar, OrderFilled, OrderSide, OrderType
from runtime.strategy import Qty, Strategy, StrategyParams


class StopParams(StrategyParams):
    size: Qty = 10
    stop_pct: float = 0.2
    label: str = "default kept"


class BuyWithStop(Strategy[StopParams]):
    def on_bar(self, bar: Bar) -> None:
        if not self.position(bar.instrument_id) and not self.open_orders():
            self.buy(bar.instrument_id, self.params.size)

    def on_order_event(self, event: object) -> None:
        if isinstance(event, OrderFilled) and event.side == OrderSide.BUY:
            stop = self.to_price(event.instrument_id,
                                 self.to_float(event.last_price) * (1 - self.params.stop_pct / 100))
            self.submit(event.instrument_id, OrderSide.SELL, event.last_qty,
                        order_type=OrderType.STOP, trigger_price=stop)
"""


def test_csvs_manifest_and_report_say_what_a_reader_needs(tmp_path: Path, store: Any) -> None:
    import csv
    import json

    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "stopped_strategy.py").write_text(STOPPED)
    import yaml

    raw = config(tmp_path, strategies=[{"id": "stopped", "instruments": ["SIM-A"],
                                        "class": "stopped_strategy:BuyWithStop",
                                        "params": {"size": 10, "stop_pct": 0.1}}])
    (folder / "run.yaml").write_text(yaml.safe_dump(raw))
    result = run_backtest(folder / "run.yaml", store=store)
    run_dir = tmp_path / "runs" / result.run_id

    orders = list(csv.DictReader((run_dir / "orders.csv").open()))
    stops = [o for o in orders if o["type"] == "stop"]
    assert stops and all(float(o["trigger_price"]) > 0 for o in stops)
    assert {o["side"] for o in orders} == {"BUY", "SELL"}
    first = orders[0]
    assert first["ts_init_utc"].startswith("2024-01-0") and first["ts_init_utc"].endswith("Z")
    fills = list(csv.DictReader((run_dir / "fills.csv").open()))
    assert {f["side"] for f in fills} == {"BUY", "SELL"}
    assert fills[0]["ts_event_utc"] == np.datetime_as_string(
        np.datetime64(int(fills[0]["ts_event"]), "ns"), unit="ns") + "Z"

    trips = list(csv.DictReader((run_dir / "round_trips.csv").open()))
    assert trips and {t["closed_by"] for t in trips} == {"stop"}
    assert trips[0]["direction"] == "LONG" and trips[0]["exit_ts_utc"].endswith("Z")

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["strategy_params"] == {"stopped": {
        "class": "stopped_strategy:BuyWithStop",
        "params": {"size": 10, "stop_pct": 0.1, "label": "default kept"}}}
    report = (run_dir / "report.html").read_text()
    assert "stopped: BuyWithStop(size=10, stop_pct=0.1, label=default kept)" in report
    assert "Closed by" in report and ">stop<" in report
    assert 'id="prices"' in report and report.count('<path class="buy"') == sum(
        f["side"] == "BUY" for f in fills)
    assert "Buy &amp; hold SIM-A" in report and "sample data" not in report
    assert "bars SIM-A" in report and "[{" not in report
    held = result.baseline_equity["Buy & hold SIM-A"]
    assert list(held.index) == list(result.equity.index)
    assert held.iloc[-1] == pytest.approx(result.metrics["buy_and_hold"]["final_equity"])
    assert "stretch 1.3 days of data to a year" in report  # two sessions: 1.3 calendar days
    from cli.backtest import summary_lines

    summary = "\n".join(summary_lines(result))
    assert "stopped: BuyWithStop(size=10, stop_pct=0.1, label=default kept)" in summary
    assert "note: Annualised figures" in summary and "round_trips.csv" in summary
