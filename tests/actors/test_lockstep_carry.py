"""Funding in a paper session: the split kernel (strategy actor, risk actor, paper gateway)
driven in lockstep in one process replays the funding history beside the bars and ends with
the backtest's fills, denials (stale funding holds the entry in the risk actor) and funding, to
the unit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from actors.config import FeedConfig
from actors.driver import Driver, Ports
from actors.feed import load_messages, write_cache
from actors.gateway import GatewayActor
from actors.recording import decode_batch
from actors.risk import RiskActor
from actors.setup import SessionSetup
from actors.strategy import StrategyActor
from backtest.api import run_backtest
from backtest.config import load_config
from backtest.data import SampleSpec, generate_sample
from runtime.messages import Bar, FundingRate, Message
from tests.actors.paper_helpers import FakeHandle, backtest_fills, paper_fills
from tests.actors.test_lockstep_inprocess import _carrier, _plain

_FIXED = {"open", "high", "low", "close", "volume", "rate", "mark_price"}


def _write(folder: Path) -> Path:
    """Two days of SIM-A and its perpetual; the funding history without the first day's rates
    and the second day's 08:00 one (a gap: on the second day the 00:00 rate is stale at the
    open, older than the strategy's nine hours, until the 16:00 rate)."""
    tables = generate_sample(np.random.default_rng(7), SampleSpec(instruments=("SIM-A",),
                                                                  days=2, perpetuals=("SIM-A",)))
    keep = np.ones(tables["funding"].num_rows, dtype=bool)
    keep[[0, 1, 3]] = False
    tables["funding"] = tables["funding"].filter(pa.array(keep))
    bars = tables["bars"]
    ids = np.asarray(bars.column("instrument_id").to_pylist())
    for name, table in (("spot", bars.filter(pa.array(ids == "SIM-A"))),
                        ("perp", bars.filter(pa.array(ids == "SIM-A-PERP"))),
                        ("funding", tables["funding"])):
        cols = {n: (pa.array(table.column(n).to_numpy() / 1e9) if n in _FIXED
                    else table.column(n)) for n in table.schema.names if n != "ts_init"}
        pq.write_table(pa.table(cols), folder / f"{name}.parquet")
    return folder


def _config(folder: Path) -> dict[str, Any]:
    return {
        "name": "t_carry", "seed": 3, "initial_cash": 100000,
        "instruments": [{"id": "SIM-A", "price_precision": 2},
                        {"id": "SIM-A-PERP", "asset_class": "future", "price_precision": 2}],
        "data": [{"kind": "bars", "instrument": "SIM-A", "path": str(folder / "spot.parquet"),
                  "bar_stamp": "close"},
                 {"kind": "bars", "instrument": "SIM-A-PERP",
                  "path": str(folder / "perp.parquet"), "bar_stamp": "close"},
                 {"kind": "funding", "instrument": "SIM-A-PERP",
                  "path": str(folder / "funding.parquet")}],
        "strategies": [{"id": "carry", "class": "backtest.strategies.funding_carry:FundingCarry",
                        "instruments": ["SIM-A", "SIM-A-PERP"],
                        "params": {"entry_rate": 0.0001, "exit_rate": 0.0, "size": 200}}],
        "venue": {"latency": {"kind": "constant", "entry_ns": 0, "response_ns": 0},
                  "fills": {"kind": "bars", "price": "next_open", "path": "auto"},
                  "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 1}},
        "store": {"record": False},
    }


def test_lockstep_paper_charges_the_backtests_funding(tmp_path: Path) -> None:
    config = load_config(_config(_write(tmp_path)))
    setup = SessionSetup("S1", str(tmp_path / "journal"), config)
    write_cache(setup, FeedConfig())
    risk, gateway = _plain(RiskActor)(setup), _plain(GatewayActor)(setup)
    hosts = {s.id: _plain(StrategyActor)(setup, s.id) for s in config.strategies}
    messages, start_ns = load_messages(setup, FeedConfig())
    recorded: list[Message] = []

    class Recorder:  # the recorder's port: what a broker feed's data copies would reach
        def record(self, payload: bytes, source: str) -> None:
            recorded.extend(decode_batch(payload))

    ports = Ports(gateway=FakeHandle(gateway), risk=FakeHandle(risk),
                  hosts={k: FakeHandle(v) for k, v in hosts.items()},
                  recorder=FakeHandle(Recorder()))
    driver = Driver(ports, messages, start_ns=start_ns, batch_size=64, carrier=_carrier(ports),
                    record_feed=True)

    async def go() -> None:
        await driver.start()
        while await driver.step():
            pass
        await driver.finish(cancel_open=False)

    asyncio.run(go())
    expected = run_backtest(config, write=False)
    assert expected.denials and {d["reason_code"] for d in expected.denials} == {"aux_stale"}
    assert driver.counters.denials == len(expected.denials)
    assert expected.account is not None and expected.account.funding != 0
    assert paper_fills(gateway.fills()) == backtest_fills(expected)
    portfolio = risk.jk.kernel.portfolio
    assert portfolio.funding == expected.account.funding
    assert portfolio.cash == expected.account.cash
    assert portfolio.identity_gap() == 0
    # the feed's data reached the recorder once each, auxiliary data included, in feed order
    assert [m for m in recorded if isinstance(m, Bar | FundingRate)] == list(messages)
    assert any(isinstance(m, FundingRate) for m in messages)
    # (state hashes differ by the client order ids' namespace: a session's is its own)
