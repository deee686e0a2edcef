"""The strategy library (backtest/strategies/): each config under configs/ runs on the sample
data as `tradewind data sample --days 3` writes it (seed 7), trades, and is deterministic; and
each strategy does what its docstring says (sizing, budgets, the test, the regimes)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backtest.api import run_backtest, simulate
from backtest.config import load_config
from backtest.data import SampleSpec, generate_sample
from backtest.feed import load_feed
from backtest.store import open_store
from backtest.strategies.pairs import PairsCoint
from backtest.strategies.regime import Regime, RegimeSwitch
from backtest.strategies.trend_vol import TrendVolTarget
from backtest.strategies.zscore_revert import ZScoreRevert
from runtime.errors import ConfigError
from runtime.kernel import Kernel
from runtime.risk import RiskLimits

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
LIBRARY = ["trend_vol", "zscore_revert", "pairs", "regime"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The bars `tradewind data sample --days 3` writes (seed 7, SIM-A and SIM-B)."""
    path = tmp_path_factory.mktemp("store") / "ch"
    with open_store(f"chdb://{path}") as s:
        tables = generate_sample(np.random.default_rng(7), SampleSpec(days=3))
        s.write_market("bars", tables["bars"])
        yield s


def _config(name: str, tmp_path: Path, **risk: Any) -> Any:
    config = load_config(CONFIGS / f"{name}.yaml")
    update: dict[str, Any] = {"output_dir": str(tmp_path / "runs")}
    if risk:
        update["risk"] = RiskLimits.model_validate({**config.risk.model_dump(), **risk})
    return config.model_copy(update=update)


def _kernel(name: str, store: Any, tmp_path: Path, **risk: Any) -> Kernel:
    config = _config(name, tmp_path, **risk)
    kernel, _ = simulate(config, load_feed(config, store))
    return kernel


@pytest.mark.parametrize("name", LIBRARY)
def test_each_config_runs_trades_and_is_deterministic(
    name: str, store: Any, tmp_path: Path
) -> None:
    first = run_backtest(CONFIGS / f"{name}.yaml", store=store, write=False)
    again = run_backtest(CONFIGS / f"{name}.yaml", store=store, write=False)
    assert first.n_fills > 0
    assert set(first.fills["instrument_id"]) == {"SIM-A", "SIM-B"}
    assert first.state_hash == again.state_hash
    assert first.fills.equals(again.fills)
    assert first.events == 2340


def test_trend_sizes_by_volatility_within_its_budget(store: Any, tmp_path: Path) -> None:
    kernel = _kernel("trend_vol", store, tmp_path)
    [strategy] = kernel.strategies
    assert isinstance(strategy, TrendVolTarget)
    assert strategy.rebalances == 33  # as docs/strategy-guide.md says
    assert strategy.capped == 0
    # long and short over the run, on both instruments
    sides = {(f.instrument_id, f.side) for f in kernel.orders.values() if f.filled_qty}
    assert len(sides) == 4
    # a tight budget: the strategy's orders are refused by name once they would pass it
    tight = _kernel("trend_vol", store, tmp_path,
                    strategies={"trend": {"max_gross_exposure": 20_000}})
    assert tight.risk.denials > 0
    result = run_backtest(
        _config("trend_vol", tmp_path).model_copy(update={"risk": tight.risk.limits}),
        store=store, write=False,
    )
    codes = {d["reason_code"] for d in result.denials}
    assert "strategy.max_gross_exposure" in codes
    reasons = [d["reason"] for d in result.denials]
    assert all(r.startswith("strategy trend: gross exposure would reach") for r in reasons)
    # as docs/strategy-guide.md quotes it
    assert reasons[0] == "strategy trend: gross exposure would reach 37038.6 (budget 20000)"


def test_trend_correlation_cap_binds_when_set_low(store: Any, tmp_path: Path) -> None:
    config = _config("trend_vol", tmp_path)
    [spec] = config.strategies
    low = spec.model_copy(update={"params": {**spec.params, "max_exposure": 0.2}})
    kernel, _ = simulate(config.model_copy(update={"strategies": (low,)}),
                         load_feed(config, store))
    [strategy] = kernel.strategies
    assert isinstance(strategy, TrendVolTarget)
    assert strategy.capped > 0
    # at the end, the positions' correlated exposure is within 0.2 of the equity (+ a lot)
    from runtime.sizing import correlated_exposure

    marks = {i: kernel.prices.price[i] / 1e9 for i in strategy.instruments}
    held = [kernel.context.position("trend", i) / 1e9 * marks[i] for i in strategy.instruments]
    equity = kernel.portfolio.equity() / 1e9
    assert correlated_exposure(held, strategy.corr.matrix()) <= 0.2 * equity * 1.05 + max(
        marks.values()
    )


def test_kelly_sizing_of_the_mean_reversion() -> None:
    strategy = ZScoreRevert("z", {"min_trades": 3, "kelly_cap": 0.4, "probe_fraction": 0.05},
                            instruments=("SIM-A",))
    strategy.on_start()
    assert strategy.fraction() == 0.05  # no history: the probe
    strategy.returns.extend([0.002, 0.001, 0.003])
    # half Kelly of mean 0.002 / variance 1e-6 = 1000: capped at 0.4 of the equity
    assert strategy.fraction() == 0.4
    strategy.returns.clear()
    strategy.returns.extend([0.0001, -0.02, 0.02])
    # mean 0.0000333 / variance 0.0004: half Kelly ≈ 0.0417
    assert strategy.fraction() == pytest.approx(0.5 * (0.0001 / 3) / 0.00040001, rel=1e-3)
    strategy.returns.clear()
    strategy.returns.extend([-0.002, -0.001, -0.003])
    assert strategy.fraction() == 0.05  # no edge: back to the probe


def test_mean_reversion_bets_the_probe_then_capped_kelly(store: Any, tmp_path: Path) -> None:
    kernel = _kernel("zscore_revert", store, tmp_path)
    [strategy] = kernel.strategies
    assert isinstance(strategy, ZScoreRevert)
    p = strategy.params
    assert len(strategy.fractions) > p.min_trades
    assert all(f == p.probe_fraction for f in strategy.fractions[: p.min_trades])
    assert all(0 < f <= p.kelly_cap for f in strategy.fractions)
    assert len(strategy.returns) >= p.min_trades
    assert strategy.fractions == [0.1] * 37  # as the guide says: no positive edge, all probes


def test_pairs_enters_only_while_the_test_passes(store: Any, tmp_path: Path) -> None:
    kernel = _kernel("pairs", store, tmp_path)
    [strategy] = kernel.strategies
    assert isinstance(strategy, PairsCoint)
    # independent random walks: most windows fail the test, as they should
    pvalues = [p for _, p, _ in strategy.tests]
    assert len(pvalues) == (1170 - 390) // 30 + 1
    assert sum(p > 0.05 for p in pvalues) > len(pvalues) / 2
    betas = [b for _, _, b in strategy.tests]
    assert (len(pvalues), sum(p <= 0.05 for p in pvalues)) == (27, 4)  # as the guide says
    assert (round(min(betas), 2), round(max(betas), 2)) == (-0.88, 1.01)
    entries = sorted(o.ts_init for o in kernel.orders.values()
                     if o.filled_qty and not o.reduce_only)
    for ts in entries:  # the last test before each entry passed
        last = max((t for t in strategy.tests if t[0] <= ts), key=lambda t: t[0])
        assert last[1] <= strategy.params.max_pvalue


def _cointegrated_files(folder: Path, n: int = 1170) -> tuple[Path, Path]:
    """Two one-minute bar files: x a random walk, log y = log 2 + log x + an AR(1) spread."""
    rng = np.random.default_rng(3)
    log_x = math.log(100) + np.cumsum(rng.normal(0, 0.001, n))
    spread = np.zeros(n)
    for i in range(1, n):
        spread[i] = 0.9 * spread[i - 1] + rng.normal(0, 0.002)
    log_y = math.log(2) + log_x + spread
    start = dt.datetime(2024, 1, 2, 14, 31, tzinfo=dt.UTC)
    paths = []
    for name, logs in (("y", log_y), ("x", log_x)):
        lines = ["time,open,high,low,close,volume"]
        for i, v in enumerate(np.exp(logs)):
            stamp = (start + dt.timedelta(minutes=i)).isoformat()
            px = f"{v:.2f}"
            lines.append(f"{stamp},{px},{px},{px},{px},1000")
        path = folder / f"{name}.csv"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths[0], paths[1]


def test_pairs_trades_a_cointegrated_pair_hedged(tmp_path: Path) -> None:
    y, x = _cointegrated_files(tmp_path)
    raw = load_config(CONFIGS / "pairs.yaml").model_dump(by_alias=True, exclude={"base_dir"})
    raw["data"] = [
        {"kind": "bars", "instrument": "SIM-A", "path": str(y), "interval": "1m",
         "bar_stamp": "close"},
        {"kind": "bars", "instrument": "SIM-B", "path": str(x), "interval": "1m",
         "bar_stamp": "close"},
    ]
    raw["risk"] = {}
    raw.pop("source", None)
    config = load_config(raw)
    kernel, _ = simulate(config, load_feed(config))
    [strategy] = kernel.strategies
    assert isinstance(strategy, PairsCoint)
    assert all(p < 0.05 for _, p, _ in strategy.tests)
    # the true ratio is 1; 390 minutes of a slow walk pin it down only roughly
    assert all(0.5 < beta < 1.5 for _, _, beta in strategy.tests)
    filled = [o for o in kernel.orders.values() if o.filled_qty and not o.reduce_only]
    assert len(filled) >= 4
    by_ts: dict[int, set[tuple[str, int]]] = {}
    for o in filled:
        by_ts.setdefault(o.ts_init, set()).add((o.instrument_id, int(o.side)))
    for legs in by_ts.values():  # each entry: one leg bought, the other sold
        assert len(legs) == 2 and sum(side for _, side in legs) == 0
    assert kernel.portfolio.realized_pnl > 0


def test_regime_switch_enters_nothing_while_unknown(store: Any, tmp_path: Path) -> None:
    kernel = _kernel("regime", store, tmp_path)
    [strategy] = kernel.strategies
    assert isinstance(strategy, RegimeSwitch)
    assert all(strategy.regimes[r] > 0 for r in Regime)
    assert strategy.blocked > 0  # signals it refused in the unknown regime
    # as the guide says
    assert [strategy.regimes[r] for r in Regime] == [462, 925, 953]
    assert strategy.blocked == 413
    assert [sum(e[2] is r for e in strategy.entries) for r in Regime] == [16, 28, 0]
    assert strategy.entries
    assert {regime for _, _, regime in strategy.entries} <= {Regime.TREND, Regime.RANGE}
    # every order that opened a position came on a bar whose regime was clear
    opened = {(ts, inst) for ts, inst, _ in strategy.entries}
    entries = [o for o in kernel.orders.values() if not o.reduce_only and o.filled_qty]
    assert {(o.ts_init, o.instrument_id) for o in entries} <= opened


def test_a_budget_for_an_unknown_strategy_is_refused(tmp_path: Path) -> None:
    raw = load_config(CONFIGS / "regime.yaml").model_dump(by_alias=True, exclude={"base_dir"})
    raw.pop("source", None)
    raw["risk"] = {"strategies": {"regmie": {"max_position": 10}}}
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    assert info.value.field == "risk.strategies.regmie"
    assert "unknown strategy 'regmie' (strategies: regime)" in str(info.value)
    raw["risk"] = {"strategies": {"regime": {"max_positon": 10}}}
    with pytest.raises(ConfigError, match="max_positon"):
        load_config(raw)


def test_bad_params_are_refused_naming_them() -> None:
    raw = load_config(CONFIGS / "pairs.yaml").model_dump(by_alias=True, exclude={"base_dir"})
    raw.pop("source", None)
    raw["strategies"][0]["params"]["exit_z"] = 3.0
    with pytest.raises(ConfigError, match=r"exit_z \(3.0\) must be below entry_z"):
        load_config(raw)



GUIDE = Path(__file__).resolve().parents[2] / "docs" / "strategy-guide.md"


def test_the_guides_figures_are_the_runs(store: Any) -> None:
    """The library table in docs/strategy-guide.md is what the configs give on the sample."""
    import re

    rows = re.findall(r"^\| `(\w+)` \| `\w+` \| (.+) \|$", GUIDE.read_text(), re.M)
    table = {name: [c.strip() for c in cells.split("|")] for name, cells in rows}
    assert sorted(table) == sorted([*LIBRARY, "market_maker"])  # its own test checks it
    for name in LIBRARY:
        m = run_backtest(CONFIGS / f"{name}.yaml", store=store, write=False).metrics["strategy"]
        assert table[name] == [
            str(m["fills"]),
            str(m["trades"]),
            f"{m['total_return']:+.2%}",
            f"{m['max_drawdown']:.2%}",
            f"{m['fees_paid']:.2f}",
        ], name


@pytest.mark.parametrize("name", LIBRARY)
def test_each_strategy_snapshots_whole(name: str, store: Any, tmp_path: Path) -> None:
    """A paper session's snapshots pickle the kernel, strategies included."""
    from runtime.recovery import check_snapshot

    kernel = _kernel(name, store, tmp_path)
    check_snapshot(kernel)
