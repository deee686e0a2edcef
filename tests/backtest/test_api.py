"""The backtest API end to end: files, store rows, determinism, no look-ahead, clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from backtest.api import run_backtest
from backtest.data import SampleSpec, generate_sample
from backtest.store import open_store
from runtime.errors import ConfigError, DataError
from runtime.messages import Bar
from runtime.strategy import Strategy, StrategyParams


def config(tmp_path: Path, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "t", "seed": 4, "initial_cash": 100_000,
        "instruments": [{"id": "SIM-A", "price_precision": 2}],
        "data": [{"kind": "bars", "instrument": "SIM-A"}],
        "strategies": [{"id": "sma", "class": "backtest.strategies.sma_cross:SmaCross",
                        "instruments": ["SIM-A"], "params": {"fast": 5, "slow": 20, "size": 10}}],
        "venue": {"latency": {"kind": "sampled",
                              "entry": {"kind": "lognormal", "median_ns": 2_000_000, "sigma": 0.8},
                              "response": {"kind": "lognormal", "median_ns": 2_000_000,
                                           "sigma": 0.8}},
                  "fills": {"kind": "bars", "price": "next_open", "path": "auto",
                            "max_participation": 0.05},
                  "slippage": {"kind": "ticks", "ticks": 1},
                  "fees": {"kind": "bps", "maker_bps": 1, "taker_bps": 2, "minimum": 1}},
        "output_dir": str(tmp_path / "runs"),
    }
    base.update(over)
    return base


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("store") / "ch"
    with open_store(f"chdb://{path}") as s:
        for kind, table in generate_sample(np.random.default_rng(7),
                                           SampleSpec(instruments=("SIM-A",), days=2)).items():
            s.write_market(kind, table)
        yield s


def test_run_writes_files_and_store_rows(tmp_path: Path, store: Any) -> None:
    result = run_backtest(config(tmp_path), store=store)
    run_dir = tmp_path / "runs" / result.run_id
    for name in ("manifest.json", "fills.csv", "orders.csv", "equity.parquet", "report.html"):
        assert (run_dir / name).stat().st_size > 0, name
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {"config_hash", "dataset_hash", "code_version", "seed"} <= set(manifest)
    assert manifest["seed"] == 4 and manifest["state_hash"] == result.state_hash
    assert result.n_fills > 0
    rows = store.query_arrow(
        "SELECT count() AS n FROM backtest_fills FINAL WHERE run_id = {r:String}",
        {"r": result.run_id}).column("n")[0].as_py()
    assert rows == result.n_fills
    runs = store.query_arrow("SELECT state_hash FROM backtest_runs FINAL WHERE run_id = {r:String}",
                             {"r": result.run_id})
    assert runs.column("state_hash").to_pylist() == [result.state_hash]
    series = store.query_arrow("SELECT count() AS n FROM backtest_timeseries FINAL "
                               "WHERE run_id = {r:String}", {"r": result.run_id})
    assert series.column("n")[0].as_py() == len(result.equity)


def test_same_data_config_seed_give_same_fills_and_state_hash(tmp_path: Path, store: Any) -> None:
    a = run_backtest(config(tmp_path), store=store, write=False)
    b = run_backtest(config(tmp_path), store=store, write=False)
    assert a.state_hash == b.state_hash
    assert a.fills.drop(columns=[]).equals(b.fills)


def test_seeded_latency_on_ticks_is_deterministic_and_seed_dependent(
    tmp_path: Path, store: Any,
) -> None:
    cfg = config(tmp_path, data=[{"kind": "quotes", "instrument": "SIM-A"},
                                 {"kind": "trades", "instrument": "SIM-A"}])
    cfg["venue"]["fills"] = {"kind": "l1", "queue_shrink": "behind_first"}
    cfg["strategies"] = [{"id": "taker", "instruments": ["SIM-A"],
                          "class": "backtest.strategies.imbalance_taker:ImbalanceTaker",
                          "params": {"size": 5, "entry_spreads": 0.45, "exit_spreads": 0.1}}]
    a = run_backtest(cfg, store=store, write=False)
    b = run_backtest(cfg, store=store, write=False)
    assert a.n_fills > 50
    assert a.state_hash == b.state_hash and a.fills.equals(b.fills)
    c = run_backtest(dict(cfg, seed=99), store=store, write=False)
    assert not c.fills["ts_init"].equals(a.fills["ts_init"])  # other latency draws


def test_equity_curve_ends_at_the_kernels_exact_equity(tmp_path: Path, store: Any) -> None:
    result = run_backtest(config(tmp_path), store=store, write=False)
    fees = result.fills["fee"].sum()
    assert result.metrics["strategy"]["fees_paid"] == pytest.approx(fees)
    cash_flow = -(result.fills["side"] * result.fills["qty"] * result.fills["price"]).sum() - fees
    position = (result.fills["side"] * result.fills["qty"]).sum()
    last = result.equity.iloc[-1]
    assert last["cash"] == pytest.approx(100_000 + cash_flow)
    assert last["equity"] == pytest.approx(last["cash"] + last["position_value"])
    assert position == 0 or last["position_value"] != 0


class Spy(Strategy[StrategyParams]):
    seen: ClassVar[list[tuple[int, int]]] = []

    def on_bar(self, bar: Bar) -> None:
        Spy.seen.append((bar.ts_event, self.now_ns))
        if len(Spy.seen) % 7 == 0:
            self.target_position(bar.instrument_id, 10**10 if len(Spy.seen) % 14 else 0)


def test_strategy_never_sees_data_after_the_clock_nor_fills_before_delivery(
    tmp_path: Path, store: Any,
) -> None:
    Spy.seen = []
    cfg = config(tmp_path)
    cfg["strategies"] = [{"id": "spy", "class": f"{__name__}:Spy", "instruments": ["SIM-A"]}]
    result = run_backtest(cfg, store=store, write=False)
    assert Spy.seen and all(ts <= now for ts, now in Spy.seen)
    assert all(ts_init >= ts for ts, ts_init in zip(result.fills.ts_event, result.fills.ts_init,
                                                    strict=True))
    decisions = sorted(ts for ts, _ in Spy.seen[6::7])
    assert all(f > decisions[0] for f in result.fills.ts_event)


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["venue"].pop("fills"), "venue.fills: Field required"),
    (lambda c: c["venue"].update(fills={"kind": "magic"}), "venue.fills"),
    (lambda c: c["strategies"][0].update({"class": "nope.mod:X"}),
     "cannot import module 'nope.mod'"),
    (lambda c: c["strategies"][0].update(instruments=["ZZZ"]), "unknown instrument 'ZZZ'"),
    (lambda c: c["strategies"][0]["params"].update(fast=0), "strategies.sma.params"),
    (lambda c: c.update(initial_cash=-1), "initial_cash"),
])
def test_bad_config_names_the_field(tmp_path: Path, store: Any, change: Any, message: str) -> None:
    cfg = config(tmp_path)
    change(cfg)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        run_backtest(cfg, store=store, write=False)


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{bad}: not valid YAML"):
        run_backtest(bad)
    with pytest.raises(ConfigError, match="no such file"):
        run_backtest(tmp_path / "missing.yaml")
    bad.write_text("name: x\nvenue: {}\n")
    with pytest.raises(ConfigError, match=f"{bad}: "):
        run_backtest(bad)


def test_missing_data_in_store_is_a_data_error(tmp_path: Path, store: Any) -> None:
    cfg = config(tmp_path, instruments=[{"id": "NOPE"}], data=[{"kind": "bars",
                                                                 "instrument": "NOPE"}])
    cfg["strategies"][0]["instruments"] = ["NOPE"]
    with pytest.raises(DataError, match=r"holds no bars for NOPE.*tradewind data sample"):
        run_backtest(cfg, store=store, write=False)
