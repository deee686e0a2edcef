"""The funding-carry strategy on the sample data as `tradewind data sample --days 5
--perpetuals SIM-A` writes it (seed 7): its figures, its funding, determinism, and its entries
held while the funding feed is stale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import yaml

from backtest.api import run_backtest, simulate
from backtest.config import load_config
from backtest.data import SampleSpec, generate_sample
from backtest.feed import Feed
from backtest.store import open_store
from backtest.strategies.funding_carry import FundingCarry
from runtime.values import fixed

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "funding_carry.yaml"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("store") / "ch"
    with open_store(f"chdb://{path}") as s:
        tables = generate_sample(np.random.default_rng(7),
                                 SampleSpec(days=5, perpetuals=("SIM-A",)))
        s.write_market("bars", tables["bars"])
        s.write_market("funding", tables["funding"])
        yield s


def test_the_config_runs_collects_funding_and_is_deterministic(store: Any) -> None:
    first = run_backtest(CONFIG, store=store, write=False)
    second = run_backtest(CONFIG, store=store, write=False)
    assert first.state_hash == second.state_hash
    # one carry trade: long 200 SIM-A, short 200 SIM-A-PERP from the first session's open
    assert list(first.fills["instrument_id"]) == ["SIM-A", "SIM-A-PERP", "SIM-A", "SIM-A-PERP"]
    assert list(first.fills["side"]) == [1, -1, -1, 1]
    carry = first.carry
    assert set(carry["kind"]) == {"funding"} and set(carry["instrument_id"]) == {"SIM-A-PERP"}
    assert len(carry) == 9
    # every charge is -notional * rate on the short at the funding time's mark
    assert all((carry["quantity"] == -200).tolist())
    assert np.allclose(carry["amount"], 200 * carry["price"] * carry["rate"], atol=5e-10)
    account = first.account
    assert account is not None
    assert account.funding == fixed("59.48337698")
    assert account.fees == fixed("13.0688")
    assert first.metrics["strategy"]["funding"] == pytest.approx(59.48337698)
    assert first.metrics["strategy"]["final_equity"] == pytest.approx(100_070.41457698)
    assert first.equity["equity"].iloc[-1] == pytest.approx(100_070.41457698)


def test_stale_funding_holds_the_entry_until_a_fresh_rate(tmp_path: Path) -> None:
    """With a one-hour TTL, rates are stale for most of each session: every entry is denied
    (``aux_stale``) until a rate that pays enough is at most an hour old."""
    tables = generate_sample(np.random.default_rng(7), SampleSpec(days=5, perpetuals=("SIM-A",)))
    bars = tables["bars"]
    ids = np.asarray(bars.column("instrument_id").to_pylist())
    feed = Feed(tables={("bars", "SIM-A"): bars.filter(pa.array(ids == "SIM-A")),
                        ("bars", "SIM-A-PERP"): bars.filter(pa.array(ids == "SIM-A-PERP")),
                        ("funding", "SIM-A-PERP"): tables["funding"]},
                dataset_hash="sample")
    feed.index()
    raw = yaml.safe_load(CONFIG.read_text())
    raw["strategies"][0]["params"]["funding_ttl_s"] = 3600
    raw["output_dir"] = str(tmp_path)
    kernel, log = simulate(load_config(raw), feed)
    rates = tables["funding"].column("ts_event").to_numpy()
    assert len(log.fills) == 4
    entry = log.fills[0].ts_event
    assert log.denials and {d.reason_code for d in log.denials} == {"aux_stale"}
    assert all("SIM-A-PERP" in d.reason and d.ts_event <= entry for d in log.denials)
    # entered within the hour after a rate: the first bar with fresh funding that paid enough
    assert entry - rates[rates <= entry].max() <= 3600 * 10**9
    strategy = kernel.roster.by_id["carry"]
    assert isinstance(strategy, FundingCarry)
    assert strategy.decisions[0][2] == fixed(200)
