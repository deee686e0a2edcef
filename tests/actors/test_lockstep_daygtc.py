"""GTC bids that rest overnight at a venue with day orders only (the paper venue configured as
Shioaji: ``venue.day_orders_only``) fill alike in a backtest and in a lockstep paper session
(split kernel: strategy actor, risk actor, paper gateway, in one process without Ray): the
core sends each a DAY order per session, from the same market data, in both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backtest.api import run_backtest
from backtest.config import load_config
from backtest.data import SampleSpec, generate_sample
from runtime.messages import Bar, OrderSide, OrderType, TimeInForce
from runtime.strategy import Strategy
from runtime.values import Rounding
from tests.actors.paper_helpers import backtest_fills, paper_fills, trading_config
from tests.actors.test_lockstep_inprocess import _plain, _run


class OvernightBids(Strategy):  # type: ignore[type-arg]
    """On each day's last bar (390 a day), with nothing open: a GTC bid 0.1% under the close,
    or a GTC offer 0.2% over it for what is held; each rests into the next day."""

    def on_start(self) -> None:
        self.bars = 0

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1
        inst = bar.instrument_id
        if self.bars % 390 or self.open_orders(inst):
            return
        close = self.to_float(bar.close)
        if self.position(inst) > 0:
            self.submit(inst, OrderSide.SELL, self.position(inst), order_type=OrderType.LIMIT,
                        price=self.to_price(inst, close * 1.002, Rounding.UP),
                        time_in_force=TimeInForce.GTC)
        else:
            self.submit(inst, OrderSide.BUY, 20 * 10**9, order_type=OrderType.LIMIT,
                        price=self.to_price(inst, close * 0.999, Rounding.DOWN),
                        time_in_force=TimeInForce.GTC)


_FIXED = {"open", "high", "low", "close", "volume"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three days of SIM-A bars (human units): orders rest across two nights."""
    folder = tmp_path_factory.mktemp("gtc-data")
    table = generate_sample(np.random.default_rng(7),
                            SampleSpec(instruments=("SIM-A",), days=3))["bars"]
    cols = {name: (pa.array(table.column(name).to_numpy() / 1e9) if name in _FIXED
                   else table.column(name)) for name in table.schema.names if name != "ts_init"}
    pq.write_table(pa.table(cols), folder / "bars.parquet")
    return folder


def test_overnight_gtc_bids_fill_alike_in_a_backtest_and_lockstep_at_a_day_orders_venue(
        data_dir: Path, tmp_path: Path) -> None:
    from actors.config import FeedConfig
    from actors.feed import write_cache
    from actors.gateway import GatewayActor
    from actors.risk import RiskActor
    from actors.setup import SessionSetup
    from actors.strategy import StrategyActor

    raw = trading_config("sma", data_dir)
    raw["strategies"] = [{"id": "ob", "class": f"{__name__}:OvernightBids",
                          "instruments": ["SIM-A"]}]
    raw["venue"] = {**raw["venue"], "day_orders_only": True}
    config = load_config(raw)
    setup = SessionSetup("S1", str(tmp_path), config, snapshot_every=20_000,
                         day_orders_only=("SIM-A",))
    write_cache(setup, FeedConfig())
    risk, gateway = _plain(RiskActor)(setup), _plain(GatewayActor)(setup)
    hosts = {"ob": _plain(StrategyActor)(setup, "ob")}
    _run(setup, risk, gateway, hosts)

    expected = run_backtest(config, write=False)
    fills = backtest_fills(expected)
    assert len(fills) >= 1
    at_venue = paper_fills(gateway.fills())  # the venue's: a later session's leg is <id>~n
    assert any("~" in f[-1] for f in at_venue)  # some filled after resting overnight
    assert [(*f[:-1], f[-1].split("~")[0]) for f in at_venue] == fills
    assert not (expected.orders["status"] == "expired").any()  # GTC: none expired
    host = hosts["ob"].jk.kernel
    assert host.state().get("gtc") == risk.jk.kernel.state().get("gtc")
