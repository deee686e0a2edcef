"""A strategy reads its account and converts human units at the API's edge, in a real run."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from backtest.api import run_backtest
from backtest.data import SampleSpec, generate_sample
from backtest.store import open_store
from runtime.errors import ConfigError
from runtime.messages import Bar
from runtime.portfolio import Account
from runtime.strategy import NoParams, Strategy
from runtime.values import Rounding, fixed
from tests.backtest.test_api import config


class BuyAndWatch(Strategy[NoParams]):
    """Buys 10 on the first bar, then records the account on every bar."""

    seen: ClassVar[list[Account]] = []

    def on_bar(self, bar: Bar) -> None:
        BuyAndWatch.seen.append(self.account)
        self.target_position(bar.instrument_id, self.to_qty(bar.instrument_id, 10.9))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("store") / "ch"
    with open_store(f"chdb://{path}") as s:
        spec = SampleSpec(instruments=("SIM-A",), days=1)
        s.write_market("bars", generate_sample(np.random.default_rng(2), spec)["bars"])
        yield s


def test_the_account_a_strategy_reads_is_the_runs(tmp_path: Path, store: Any) -> None:
    BuyAndWatch.seen = []
    strategy = {"id": "watch", "class": f"{__name__}:BuyAndWatch", "instruments": ["SIM-A"]}
    result = run_backtest(config(tmp_path, strategies=[strategy]), store=store, write=False)
    first, last = BuyAndWatch.seen[0], BuyAndWatch.seen[-1]
    assert first.cash == first.equity == first.initial_cash == fixed(100_000)
    assert first.fees == first.gross_exposure == 0
    [fill] = result.fills.itertuples()  # to_qty(10.9) is 10 whole lots
    assert fill.qty == 10
    assert last.cash == fixed(100_000) - fixed(str(fill.price)) * 10 - fixed(str(fill.fee))
    assert last.fees == fixed(str(fill.fee))
    assert last.equity == fixed(str(round(result.equity["equity"].iloc[-1], 9)))
    assert last.total_pnl == last.realized_pnl + last.unrealized_pnl - last.fees
    assert last.as_floats()["equity"] == pytest.approx(result.equity["equity"].iloc[-1])


def test_human_prices_and_quantities_land_on_the_grid() -> None:
    from runtime.instruments import Instrument, InstrumentRegistry
    from runtime.kernel import Kernel

    strategy = BuyAndWatch("w", instruments=("X",))
    inst = Instrument(instrument_id="X", price_precision=2, lot_size=fixed(5))
    Kernel(registry=InstrumentRegistry([inst]), strategies=[strategy], initial_cash=fixed(1),
           namespace="t").start(0)
    assert strategy.to_price("X", 101.237) == fixed("101.24")
    assert strategy.to_price("X", 101.237, Rounding.DOWN) == fixed("101.23")
    assert strategy.to_price("X", "99.995", Rounding.UP) == fixed(100)
    assert strategy.to_qty("X", 12.7) == fixed(10)  # whole lots of 5, never more than asked
    assert strategy.to_float(fixed("101.25")) == 101.25


class Reader(Strategy[NoParams]):
    """Buys 10 on its first bar; records its limits, budget and PnL (or the refusal) each bar."""

    seen: ClassVar[dict[str, list[Any]]] = {}

    def on_bar(self, bar: Bar) -> None:
        try:
            pnl: Any = self.pnl
        except ConfigError as exc:
            pnl = exc
        Reader.seen.setdefault(self.strategy_id, []).append(
            (self.limits, self.budget, pnl, self.account))
        self.target_position(bar.instrument_id, fixed(10))


def _reader(sid: str) -> dict[str, Any]:
    return {"id": sid, "class": f"{__name__}:Reader", "instruments": ["SIM-A"]}


def test_a_strategy_reads_its_limits_budget_and_own_pnl(tmp_path: Path, store: Any) -> None:
    Reader.seen = {}
    risk = {"max_position": 50, "strategies": {"a": {"max_loss": 1000}, "b": {}}}
    result = run_backtest(config(tmp_path, strategies=[_reader("a"), _reader("b"), _reader("c")],
                                 risk=risk), store=store, write=False)  # fmt: skip
    limits, budget, _, _ = Reader.seen["a"][-1]
    assert limits.max_position == Decimal(50) and budget.max_loss == Decimal(1000)
    assert Reader.seen["b"][-1][1] is not None and Reader.seen["c"][-1][1] is None
    # each budgeted strategy's PnL is its own fills' cash plus its position at the last close
    last_close = fixed(str(result.prices["SIM-A"].iloc[-1]))
    for sid in ("a", "b"):
        fills = result.fills[result.fills["strategy_id"] == sid]
        cash = -sum(fixed(str(f.price)) * int(f.qty) * int(f.side) + fixed(str(f.fee))
                    for f in fills.itertuples())  # fmt: skip
        held = int((fills["qty"] * fills["side"]).sum())
        pnls = [p for _, _, p, _ in Reader.seen[sid]]
        assert pnls[0] == 0 and held == 10
        assert pnls[-1] == cash + held * last_close  # read on the last bar, marked at its close
    refusal = Reader.seen["c"][-1][2]
    assert isinstance(refusal, ConfigError)
    assert "risk.strategies.c: strategy 'c' shares the account" in str(refusal)
    assert "{strategies: {c: {}}}" in str(refusal)


def test_a_strategy_alone_reads_the_accounts_pnl(tmp_path: Path, store: Any) -> None:
    Reader.seen = {}
    run_backtest(config(tmp_path, strategies=[_reader("solo")]), store=store, write=False)
    for limits, budget, pnl, account in Reader.seen["solo"]:
        assert budget is None and limits.max_position is None
        assert pnl == account.total_pnl
