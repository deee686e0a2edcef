"""The funding-carry strategy on the sample data as `tradewind data sample --days 3
--perpetuals SIM-A` writes it (seed 7): its figures (as docs/strategy-guide.md quotes them), its
funding, determinism, and its entries held while the funding feed is stale."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import yaml

from backtest.api import run_backtest, simulate
from backtest.config import load_config
from backtest.data import SampleSpec, generate_sample
from backtest.feed import Feed, load_feed
from backtest.store import open_store
from backtest.strategies.funding_carry import FundingCarry
from runtime.errors import DataError
from runtime.values import fixed

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "funding_carry.yaml"
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "strategy-guide.md"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("store") / "ch"
    with open_store(f"chdb://{path}") as s:
        tables = generate_sample(np.random.default_rng(7),
                                 SampleSpec(days=3, perpetuals=("SIM-A",)))
        s.write_market("bars", tables["bars"])
        s.write_market("funding", tables["funding"])
        yield s


def test_the_config_runs_collects_funding_and_is_deterministic(store: Any) -> None:
    first = run_backtest(CONFIG, store=store, write=False)
    second = run_backtest(CONFIG, store=store, write=False)
    assert first.state_hash == second.state_hash
    # one carry trade: long 200 SIM-A, short 200 SIM-A-PERP, entered on the second rate (the
    # first, 0.0065%, is below entry_rate) and held: no rate reaches exit_rate in the sessions
    assert list(first.fills["instrument_id"]) == ["SIM-A", "SIM-A-PERP"]
    assert list(first.fills["side"]) == [1, -1]
    carry = first.carry
    assert set(carry["kind"]) == {"funding"} and set(carry["instrument_id"]) == {"SIM-A-PERP"}
    assert len(carry) == 7 and (carry["amount"] > 0).sum() == 6
    # every charge is -notional * rate on the short, at the last mark (the sample's rates come
    # without one)
    assert all((carry["quantity"] == -200).tolist())
    assert np.allclose(carry["amount"], 200 * carry["price"] * carry["rate"], atol=5e-10)
    account = first.account
    assert account is not None
    assert account.funding == fixed("60.19897682")
    assert account.fees == fixed("6.5078")
    assert account.equity == fixed("100081.69117682")
    assert first.equity["equity"].iloc[-1] == pytest.approx(100_081.69117682)
    m = first.metrics["strategy"]
    quoted = re.search(r"^\| `funding_carry` \| (.+) \|$", GUIDE.read_text(), re.M)
    assert quoted is not None
    assert [c.strip() for c in quoted.group(1).split("|")] == [
        str(m["fills"]), f"{m['funding']:+.2f}", f"{m['fees_paid']:.2f}",
        f"{m['total_return']:+.2%}", f"{m['max_drawdown']:.2%}",
        f"{first.metrics['buy_and_hold']['total_return']:+.2%}"]


def test_a_gap_in_the_funding_series_holds_the_entry_until_a_fresh_rate() -> None:
    """The sample without two rates (Jan 2 16:00 and Jan 3 08:00 UTC): on Jan 3 the latest rate
    is from 00:00, older than the config's nine hours at the 14:30 open, so every entry is
    denied (``aux_stale``) until the 16:00 rate arrives; the carry then enters at once."""
    tables = generate_sample(np.random.default_rng(7), SampleSpec(days=3, perpetuals=("SIM-A",)))
    bars, funding = tables["bars"], tables["funding"]
    ids = np.asarray(bars.column("instrument_id").to_pylist())
    rates = funding.column("ts_event").to_numpy()
    keep = np.ones(len(rates), dtype=bool)
    keep[[1, 3]] = False
    feed = Feed(tables={("bars", "SIM-A"): bars.filter(pa.array(ids == "SIM-A")),
                        ("bars", "SIM-A-PERP"): bars.filter(pa.array(ids == "SIM-A-PERP")),
                        ("funding", "SIM-A-PERP"): funding.filter(pa.array(keep))},
                dataset_hash="sample-with-a-gap")
    feed.index()
    kernel, log = simulate(load_config(CONFIG), feed)
    jan3_open, jan3_16 = rates[2] + 14 * 3600 * 10**9 + 30 * 60 * 10**9, rates[4]
    assert log.denials and {d.reason_code for d in log.denials} == {"aux_stale"}
    assert all("SIM-A-PERP" in d.reason and jan3_open < d.ts_event <= jan3_16
               for d in log.denials)
    assert len(log.fills) == 2  # the two legs of the entry, after the fresh rate
    assert all(jan3_16 < f.ts_event <= jan3_16 + 3 * 60 * 10**9 for f in log.fills)
    strategy = kernel.roster.by_id["carry"]
    assert isinstance(strategy, FundingCarry)
    assert strategy.decisions[0][2] == fixed(200)


def test_a_carry_is_two_instruments_and_its_exit_below_its_entry() -> None:
    from pydantic import ValidationError

    from runtime.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\(spot, perpetual\): got 1"):
        FundingCarry("c", {"size": 1}, instruments=("SIM-A",)).aux_needs()
    with pytest.raises(ValidationError, match="exit_rate"):
        FundingCarry("c", {"size": 1, "entry_rate": 0.0001, "exit_rate": 0.0002},
                     instruments=("SIM-A", "SIM-A-PERP"))


def test_the_carry_runs_on_generated_sample_data_without_a_store() -> None:
    """``sample_days``: SIM-A-PERP sampled beside SIM-A is its perpetual, with its funding (the
    rows `tradewind data sample --instruments SIM-A --perpetuals SIM-A` writes from the seed)."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["data"] = [dict(d, sample_days=3) for d in raw["data"]]
    config = load_config(raw)
    kernel, log = simulate(config, load_feed(config))
    again, _ = simulate(config, load_feed(config))
    assert again.state_hash() == kernel.state_hash()
    assert {f.instrument_id for f in log.fills} == {"SIM-A", "SIM-A-PERP"}
    assert log.carry and {c.instrument_id for c in log.carry} == {"SIM-A-PERP"}
    assert kernel.account().funding == sum(c.amount for c in log.carry) != 0
    raw["data"].append({"kind": "funding", "instrument": "SIM-A", "sample_days": 3})
    with pytest.raises(DataError, match="no sample funding for SIM-A"):
        load_feed(load_config(raw))
    raw["data"] = [{"kind": "funding", "instrument": "SIM-A", "sample_days": 2}]
    with pytest.raises(DataError, match="sample data has no funding of SIM-A: it has funding "
                                        "only for a perpetual"):
        load_feed(load_config(raw))
