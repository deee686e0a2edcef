"""A strategy using a bracket (with a time stop) and TWAP parents gives the same fills and the
same state in a backtest and in a lockstep paper session (split kernel: strategy actor, risk
actor, paper gateway, in one process without Ray): the core emulates the linked orders and works
the parents in the strategy's kernel, from the same market data, in both."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from backtest.api import run_backtest
from backtest.config import load_config
from runtime.algos import Twap
from runtime.messages import Bar, OrderSide
from runtime.strategy import Strategy
from runtime.values import Rounding
from tests.actors.paper_helpers import backtest_fills, paper_fills, trading_config, write_sample
from tests.actors.test_lockstep_inprocess import _plain, _run

MIN_NS = 60 * 10**9


class BracketAndTwap(Strategy):  # type: ignore[type-arg]
    """Every 20 bars, when nothing is working: a bracket buy of 30 (take-profit and stop-loss
    0.1% away, closed by a time stop after 15 minutes), a TWAP buy of 40 over 10 minutes, or a
    TWAP sell of what is held, in turn."""

    def on_start(self) -> None:
        self.bars = 0

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1
        inst = bar.instrument_id
        if self.bars % 20 or self.open_orders(inst) or self.ctx.working_parents(
                self.strategy_id, inst):
            return
        turn = self.bars // 20 % 3
        twap = Twap(horizon_ns=10 * MIN_NS, slices=5, jitter_bps=3000)
        if turn == 0:
            close = self.to_float(bar.close)
            take = self.to_price(inst, close * 1.001, Rounding.UP)
            stop = self.to_price(inst, close * 0.999, Rounding.DOWN)
            entry = self.bracket(inst, OrderSide.BUY, 30 * 10**9, take_profit=take,
                                 stop_loss=stop)
            self.time_stop(inst, 15 * MIN_NS, cancel=entry, close=True)
        elif turn == 1:
            self.execute(inst, OrderSide.BUY, 40 * 10**9, twap)
        elif self.position(inst) > 0:
            self.execute(inst, OrderSide.SELL, self.position(inst), twap)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("orders-data"))


def _neutral_hash(state: dict[str, Any], namespace: str) -> str:
    """The state's hash with the run's namespace taken out of every id (a backtest and a
    session name their orders under different namespaces)."""
    text = json.dumps(state, sort_keys=True, separators=(",", ":")).replace(namespace, "NS")
    return hashlib.sha256(text.encode()).hexdigest()


def test_bracket_and_twap_fill_and_hash_alike_in_a_backtest_and_lockstep(
        data_dir: Path, tmp_path: Path) -> None:
    from actors.config import FeedConfig
    from actors.feed import write_cache
    from actors.gateway import GatewayActor
    from actors.risk import RiskActor
    from actors.setup import SessionSetup
    from actors.strategy import StrategyActor

    raw = trading_config("sma", data_dir, minutes=10)
    raw["strategies"] = [{"id": "bt", "class": f"{__name__}:BracketAndTwap",
                          "instruments": ["SIM-A"]}]
    config = load_config(raw)
    setup = SessionSetup("S1", str(tmp_path), config, snapshot_every=20_000)
    write_cache(setup, FeedConfig())
    risk, gateway = _plain(RiskActor)(setup), _plain(GatewayActor)(setup)
    hosts = {"bt": _plain(StrategyActor)(setup, "bt")}
    _run(setup, risk, gateway, hosts)

    expected = run_backtest(config, write=False)
    assert len(expected.parents) >= 4 and (expected.parents["filled_qty"] > 0).all()
    kinds = set(expected.orders["type"])
    assert {"twap", "limit", "stop", "market"} <= kinds  # parents, exits, entries and children
    assert paper_fills(gateway.fills()) == backtest_fills(expected)

    host = hosts["bt"].jk.kernel
    backtest_kernel_state = _backtest_state(config)
    for part in ("linked", "algos", "time_stops", "orders", "strategy_positions", "ids"):
        assert _neutral_hash(host.state()[part], host.namespace) == _neutral_hash(
            backtest_kernel_state[0][part], backtest_kernel_state[1]), part
    assert _neutral_hash(risk.jk.kernel.state()["portfolio"], risk.jk.kernel.namespace) == (
        _neutral_hash(backtest_kernel_state[0]["portfolio"], backtest_kernel_state[1]))


def _backtest_state(config: Any) -> tuple[dict[str, Any], str]:
    from backtest.api import simulate
    from backtest.feed import load_feed

    kernel, _ = simulate(config, load_feed(config, None))
    return kernel.state(), kernel.namespace


@pytest.mark.parametrize(("snapshot_every", "stop_at"), [(20_000, 65), (25, 65), (25, 85)])
def test_a_strategy_host_with_working_parents_is_rebuilt_from_its_journal(
        data_dir: Path, tmp_path: Path, snapshot_every: int, stop_at: int) -> None:
    """Stopped while a bracket's time stop (bar 65) or a TWAP parent (bar 85) is
    working: the actors rebuilt from their journals (all of it, or a snapshot and a short
    tail) hash as before."""
    from actors.config import FeedConfig
    from actors.feed import write_cache
    from actors.gateway import GatewayActor
    from actors.risk import RiskActor
    from actors.setup import SessionSetup
    from actors.strategy import StrategyActor

    raw = trading_config("sma", data_dir, minutes=10)
    raw["strategies"] = [{"id": "bt", "class": f"{__name__}:BracketAndTwap",
                          "instruments": ["SIM-A"]}]
    config = load_config(raw)

    def build() -> tuple[Any, Any, Any, dict[str, Any]]:
        setup = SessionSetup("S1", str(tmp_path), config, snapshot_every=snapshot_every)
        write_cache(setup, FeedConfig())
        risk, gateway = _plain(RiskActor)(setup), _plain(GatewayActor)(setup)
        return setup, risk, gateway, {"bt": _plain(StrategyActor)(setup, "bt")}

    setup, risk, gateway, hosts = build()
    _run(setup, risk, gateway, hosts, stop_at=stop_at)
    kernel = hosts["bt"].jk.kernel
    if stop_at == 65:
        assert kernel.time_stops.pending  # the bracket's time stop waits
    else:
        assert kernel.algos.working("bt", "SIM-A")
    before = (risk.state_hash(), gateway.state_hash(), hosts["bt"].state_hash())
    for component in (risk.jk.journal, gateway.venue.journal, hosts["bt"].jk.journal):
        component.close()
    _, risk2, gateway2, hosts2 = build()
    assert (risk2.state_hash(), gateway2.state_hash(), hosts2["bt"].state_hash()) == before


def test_a_session_on_a_native_broker_links_its_lists_a_paper_one_emulates(
        data_dir: Path, tmp_path: Path) -> None:
    """``SessionSetup.native_lists`` (from the broker's declaration) reaches the strategies'
    kernels: on IB a bracket leaves whole and linked; on the paper venue, the entry alone."""
    from actors.setup import SessionSetup
    from runtime.linked import Contingency, Leg, OrderList
    from runtime.messages import OrderType, SubmitOrder

    raw = trading_config("sma", data_dir, minutes=10)
    raw["strategies"] = [{"id": "bt", "class": f"{__name__}:BracketAndTwap",
                          "instruments": ["SIM-A"]}]
    config = load_config(raw)
    bracket = OrderList(instrument_id="SIM-A", contingency=Contingency.BRACKET, legs=(
        Leg(side=OrderSide.BUY, order_type=OrderType.MARKET, quantity=10**10),
        Leg(side=OrderSide.SELL, order_type=OrderType.LIMIT, price=101 * 10**9, protective=True),
        Leg(side=OrderSide.SELL, order_type=OrderType.STOP, trigger_price=99 * 10**9,
            protective=True)))
    sent = {}
    for name, native in (("ib", ("SIM-A",)), ("paper", ())):
        host = SessionSetup(name, str(tmp_path / name), config,
                            native_lists=native).strategy_host("bt")
        _, out = host.linked.submit("bt", bracket, 0)
        sent[name] = [(m.parent_id != "", m.oca_group != "") for m in out
                      if isinstance(m, SubmitOrder)]
    assert sent == {"ib": [(False, False), (True, True), (True, True)],
                    "paper": [(False, False)]}


def test_a_session_on_a_broker_without_stops_holds_them_in_the_strategies_kernels(
        data_dir: Path, tmp_path: Path) -> None:
    """``SessionSetup.emulated_stops`` (from the broker's ``native_stops``: Shioaji) reaches the
    strategies' kernels: a stop is held there, not sent to risk; on the paper venue, sent."""
    from actors.setup import SessionSetup
    from actors.venues.broker_config import PaperBrokerConfig, emulated_stops
    from actors.venues.shioaji_support import ShioajiConfig
    from runtime.messages import OrderType, SubmitOrder, TimeInForce

    raw = trading_config("sma", data_dir, minutes=10)
    raw["strategies"] = [{"id": "bt", "class": f"{__name__}:BracketAndTwap",
                          "instruments": ["SIM-A"]}]
    config = load_config(raw)
    sent = {}
    for name, broker in (("shioaji", ShioajiConfig()), ("paper", PaperBrokerConfig())):
        host = SessionSetup(name, str(tmp_path / name), config,
                            emulated_stops=emulated_stops(broker, ["SIM-A"])).strategy_host("bt")
        host.start(0)
        host.context.submit("bt", instrument_id="SIM-A", side=OrderSide.SELL, quantity=10**10,
                            order_type=OrderType.STOP, price=None, trigger_price=99 * 10**9,
                            time_in_force=TimeInForce.GTC, post_only=False, reduce_only=False,
                            protective=False)
        sent[name] = [m.order_type for m in host.flow.drain() if isinstance(m, SubmitOrder)]
    assert sent == {"shioaji": [], "paper": [OrderType.STOP]}


class SizedByLimits(Strategy):  # type: ignore[type-arg]
    """Every 15 bars: long up to its budget's position cap (the account's when it has no
    budget), then flat; it reports what it read, so a session shows it saw the same limits."""

    def on_start(self) -> None:
        self.bars = 0
        self.seen: list[str] = []

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1
        if self.bars % 15:
            return
        budget = self.budget
        cap = budget.max_position if budget and budget.max_position else self.limits.max_position
        assert cap is not None, "a session's strategy must see the limits a backtest's sees"
        self.seen.append(f"{cap}:{self.pnl}")
        inst = bar.instrument_id
        self.target_position(inst, 0 if self.position(inst) else int(cap) * 10**9)


def test_a_strategy_reads_the_same_limits_budget_and_pnl_in_a_session_as_in_a_backtest(
        data_dir: Path, tmp_path: Path) -> None:
    """``Strategy.limits``, ``.budget`` and ``.pnl`` in a lockstep session's strategy actor are
    the backtest's (the strategy's kernel knows the limits, enforces none): same fills, same
    readings (the daily loss is risk's to trip: tests/runtime/test_kernel_risk.py)."""
    from actors.config import FeedConfig
    from actors.feed import write_cache
    from actors.gateway import GatewayActor
    from actors.risk import RiskActor
    from actors.setup import SessionSetup
    from actors.strategy import StrategyActor
    raw = trading_config("sma", data_dir, minutes=10)
    raw["strategies"] = [{"id": "lim", "class": f"{__name__}:SizedByLimits",
                          "instruments": ["SIM-A"]}]
    raw["risk"] = {"max_position": 100, "strategies": {"lim": {"max_position": 40}}}
    config = load_config(raw)
    setup = SessionSetup("S1", str(tmp_path), config, snapshot_every=20_000)
    write_cache(setup, FeedConfig())
    risk, gateway = _plain(RiskActor)(setup), _plain(GatewayActor)(setup)
    hosts = {"lim": _plain(StrategyActor)(setup, "lim")}
    _run(setup, risk, gateway, hosts)

    expected = run_backtest(config, write=False)
    assert len(expected.fills) >= 2
    assert paper_fills(gateway.fills()) == backtest_fills(expected)
    host = hosts["lim"].jk.kernel
    backtest_strategy = _backtest_strategy(config)
    assert host.strategies[0].seen == backtest_strategy.seen and host.strategies[0].seen
    assert host.strategies[0].seen[0].startswith("40:")  # the budget's cap, not the account's


def _backtest_strategy(config: Any) -> Any:
    from backtest.api import simulate
    from backtest.feed import load_feed

    kernel, _ = simulate(config, load_feed(config, None))
    return kernel.strategies[0]


def test_a_session_on_a_trailing_broker_sends_its_trailing_stops_with_their_trail(
        data_dir: Path, tmp_path: Path) -> None:
    """``SessionSetup.native_trailing`` (from the broker's ``native_trailing``: IB) reaches the
    strategies' kernels: a trailing stop off the last price leaves with its trail for the
    broker to move; on the paper venue, a plain stop the core moves."""
    from actors.setup import SessionSetup
    from actors.venues.broker_config import PaperBrokerConfig, native_trailing
    from actors.venues.ib_support import IbConfig
    from runtime.linked import Leg
    from runtime.messages import OrderType, TradeTick
    from runtime.trailing import Trail

    raw = trading_config("sma", data_dir, minutes=10)
    raw["strategies"] = [{"id": "bt", "class": f"{__name__}:BracketAndTwap",
                          "instruments": ["SIM-A"]}]
    config = load_config(raw)
    sent = {}
    for name, broker in (("ib", IbConfig()), ("paper", PaperBrokerConfig())):
        host = SessionSetup(name, str(tmp_path / name), config,
                            native_trailing=native_trailing(broker, ["SIM-A"])).strategy_host("bt")
        host.start(0)
        host.handle(TradeTick(0, 1, 1, "SIM-A", 100 * 10**9, 10**9))
        leg = Leg(side=OrderSide.SELL, order_type=OrderType.STOP, quantity=10**10)
        stop = host.linked.trailing_stop("bt", "SIM-A", leg, Trail(offset=2 * 10**9), 1)
        sent[name] = (stop.trigger_price, stop.trail_amount, host.linked.tracks(
            stop.client_order_id))
    assert sent == {"ib": (98 * 10**9, 2 * 10**9, False), "paper": (98 * 10**9, 0, True)}
