"""The market maker's fair value blends its microprice with the market's mid (``fair_weight``),
and configs/market_maker.yaml runs on the sample quotes with the figures the guide gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backtest.api import run_backtest
from backtest.data import SampleSpec, generate_sample
from backtest.store import open_store
from backtest.strategies.market_maker import MarketMaker
from runtime.instruments import Instrument, InstrumentRegistry
from runtime.kernel import Kernel
from runtime.messages import OrderSide, QuoteTick, SubmitOrder, TimerFired
from runtime.values import fixed

ROOT = Path(__file__).resolve().parents[2]


def _bid_ask(weight: float) -> tuple[float, float, dict[str, float]]:
    """The first bid and ask the maker quotes on a book with 900 bid, 100 offered."""
    mm = MarketMaker("mm", {"size": 1, "max_inventory": 10, "half_spread_ticks": 1,
                            "skew_ticks": 0, "fair_weight": weight}, instruments=("X",))
    registry = InstrumentRegistry([Instrument(instrument_id="X", price_precision=2)])
    k = Kernel(registry=registry, strategies=[mm], initial_cash=fixed(100_000), namespace="mm")
    k.start(0)
    k.handle(QuoteTick(1, 1, 1, "X", fixed(100), fixed(900), fixed(101), fixed(100)))
    out = k.handle(TimerFired(seq=0, ts_event=k.next_timer_ns() or 0, ts_init=0, name="requote"))
    orders = [m for m in out if isinstance(m, SubmitOrder)]
    [bid] = [o.price for o in orders if o.side is OrderSide.BUY]
    [ask] = [o.price for o in orders if o.side is OrderSide.SELL]
    assert bid is not None and ask is not None
    return bid / 1e9, ask / 1e9, k.context.features("X")


@pytest.mark.parametrize("weight", [0.0, 0.25, 0.5, 1.0])
def test_quotes_centre_on_the_blend_of_microprice_and_mid(weight: float) -> None:
    bid, ask, features = _bid_ask(weight)
    micro, mid = features["microprice"], features["mid"]
    assert micro > mid  # more bid than offer: the next trade is likelier up
    fair = weight * micro + (1 - weight) * mid
    assert bid == pytest.approx(np.floor(round((fair - 0.01) * 100, 6)) / 100)
    assert ask == pytest.approx(np.ceil(round((fair + 0.01) * 100, 6)) / 100)


def test_the_weight_moves_quotes_from_the_mid_to_the_microprice() -> None:
    bids = [_bid_ask(w)[0] for w in (0.0, 0.5, 1.0)]
    assert bids[0] < bids[1] < bids[2]


def test_fair_weight_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="fair_weight"):
        MarketMaker("mm", {"size": 1, "max_inventory": 10, "fair_weight": 1.5})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The quotes and trades `tradewind data sample --days 3` writes (seed 7)."""
    path = tmp_path_factory.mktemp("store") / "ch"
    with open_store(f"chdb://{path}") as s:
        tables = generate_sample(np.random.default_rng(7), SampleSpec(days=3))
        s.write_market("quotes", tables["quotes"])
        s.write_market("trades", tables["trades"])
        yield s


def test_the_config_runs_with_the_guides_figures(store: Any) -> None:
    import re

    result = run_backtest(ROOT / "configs" / "market_maker.yaml", store=store, write=False)
    m = result.metrics["strategy"]
    guide = (ROOT / "docs" / "strategy-guide.md").read_text()
    [row] = re.findall(r"^\| `market_maker` \| `MarketMaker` \| (.+) \|$", guide, re.M)
    assert [c.strip() for c in row.split("|")] == [
        str(m["fills"]), str(m["trades"]), f"{m['total_return']:+.2%}",
        f"{m['max_drawdown']:.2%}", f"{m['fees_paid']:.2f}",
    ]
