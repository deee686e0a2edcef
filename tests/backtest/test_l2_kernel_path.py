"""The L2 replay through the core kernel: risk, order state machine, portfolio, same queue fills."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backtest.l2 import (
    BookView,
    L2Events,
    L2Fill,
    L2KernelReplay,
    L2KernelResult,
    L2ReplayConfig,
    L2ReplayEngine,
    MarketMaker,
    MarketMakerParams,
    OrderSink,
    load_binance_capture,
)
from backtest.l2.data import ASK, TRADE_SELL
from backtest.strategies.market_maker import MarketMaker as CoreMarketMaker
from backtest.strategies.market_maker_l2 import L2MarketMaker
from runtime.errors import ConfigError
from runtime.instruments import FeeSchedule, Instrument, InstrumentRegistry
from runtime.kernel import Kernel
from runtime.messages import Message, OrderSide, OrderType, TimerFired
from runtime.orders import OrderStatus
from runtime.risk import RiskLimits
from runtime.strategy import NoParams, Strategy
from runtime.values import fixed
from tests.backtest.test_l2_engine import BOOK, QUEUE_SEQUENCE, config, events

S = 1_000_000_000
CASH = fixed("1000000")
Act = Callable[["FakeScript"], None]


class FakeScript(Strategy[NoParams]):
    """A core strategy that runs scripted actions at given wake-up times."""

    def __init__(self, script: dict[int, list[Act]]) -> None:
        super().__init__("fake", instruments=("X",))
        self.script = script
        self.ids: list[str] = []
        self.events: list[Message] = []

    def on_start(self) -> None:
        self.set_timer("wake", 100)

    def on_timer(self, timer: TimerFired) -> None:
        for act in self.script.get(timer.ts_event, []):
            act(self)

    def on_order_event(self, event: Message) -> None:
        self.events.append(event)


def buy(price: int, qty: int, *, post_only: bool = True) -> Act:
    return lambda s: s.ids.append(s.buy("X", qty * S, price * S, post_only=post_only))


def cancel(index: int) -> Act:
    return lambda s: s.cancel(s.ids[index])


def x_kernel(strategy: Strategy[Any], risk: RiskLimits | None = None) -> Kernel:
    x = Instrument(instrument_id="X", price_precision=0, size_precision=0,
                   fees=FeeSchedule(maker_rate=fixed("0.001")))
    return Kernel(registry=InstrumentRegistry([x]), strategies=[strategy], risk_limits=risk,
                  initial_cash=CASH, namespace="t", seed=1)


def run_x(rows: list[tuple[int, int, int, int]], script: dict[int, list[Act]],
          fill_model: str = "partial", risk: RiskLimits | None = None) -> L2KernelResult:
    kernel = x_kernel(FakeScript(script), risk)
    return L2KernelReplay(events(rows), config(fill_model), kernel).run()


def fill_rows(result: L2KernelResult) -> list[tuple[int, ...]]:
    return [(f.ts_event, f.ts_init, f.last_price // S, f.last_qty // S, f.leaves_qty // S)
            for f in result.fills]


# --- queue-position fills: the same as the standalone engine ----------------------------------

class FakeSinkScript:
    """The standalone engine's side of the same scripts (buys and cancels by index)."""

    def __init__(self, script: dict[int, list[tuple[Any, ...]]]) -> None:
        self.script, self.ids = script, []  # type: ignore[var-annotated]

    def on_timer(self, ts: int, book: BookView, orders: OrderSink) -> None:
        for act in self.script.get(ts, []):
            if act[0] == "buy":
                self.ids.append(orders.submit_limit(side=OrderSide.BUY, price=act[1] * S,
                                                    quantity=act[2] * S))
            else:
                orders.cancel(self.ids[act[1]])

    def on_fill(self, fill: L2Fill) -> None:
        pass


SCENARIOS = {
    "queue_partial": (QUEUE_SEQUENCE, "partial", {100: [("buy", 100, 2)]},
                      [(140, 150, 100, 1, 1), (150, 160, 100, 1, 0)]),
    "queue_no_partial": (QUEUE_SEQUENCE, "no_partial", {100: [("buy", 100, 2)]},
                         [(140, 150, 100, 2, 0)]),
    "trades_before_arrival": ([*BOOK, (105, TRADE_SELL, 100, 50), (120, TRADE_SELL, 100, 4),
                               (400, ASK, 101, 5)], "partial", {100: [("buy", 100, 1)]}, []),
    "size_added_behind": ([*BOOK, (120, 1, 100, 50), (130, TRADE_SELL, 100, 6),
                           (400, ASK, 101, 5)], "partial", {100: [("buy", 100, 1)]},
                          [(130, 140, 100, 1, 0)]),
    "opposite_best_reaches": ([*BOOK, (120, ASK, 100, 1), (400, ASK, 101, 5)], "partial",
                              {100: [("buy", 100, 3)]}, [(120, 130, 100, 3, 0)]),
    "fill_before_cancel": ([(0, 1, 100, 0), (0, ASK, 101, 5), (205, TRADE_SELL, 100, 1),
                            (215, TRADE_SELL, 100, 1), (400, ASK, 101, 5)], "partial",
                           {100: [("buy", 100, 1)], 200: [("cancel", 0)]},
                           [(205, 215, 100, 1, 0)]),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_queue_position_fills_match_the_standalone_engine(name: str) -> None:
    rows, fill_model, script, expected = SCENARIOS[name]
    core_script = {ts: [buy(a[1], a[2]) if a[0] == "buy" else cancel(a[1]) for a in acts]
                   for ts, acts in script.items()}
    result = run_x(rows, core_script, fill_model)
    standalone = L2ReplayEngine(events(rows), config(fill_model), FakeSinkScript(script)).run()
    old = [(f.ts_exch, f.ts_local, f.price // S, f.qty // S, f.leaves_qty // S)
           for f in standalone.fills]
    assert fill_rows(result) == old == expected
    assert result.kernel.portfolio.identity_gap() == 0


def test_fills_update_the_kernel_portfolio_and_order_state_exactly() -> None:
    result = run_x(QUEUE_SEQUENCE, {100: [buy(100, 2)]})
    kernel = result.kernel
    (order,) = kernel.orders.values()
    assert order.client_order_id == "t-fake-1" and order.status is OrderStatus.FILLED
    assert order.venue_order_id == "L2SIM-1" and order.fill_ids == {"L2SIM-F1", "L2SIM-F2"}
    assert [f.cum_qty // S for f in result.fills] == [1, 2]
    fee = fixed("0.1")  # 0.1% of 100 per fill
    assert result.fees == 2 * fee and kernel.portfolio.fees == 2 * fee
    assert result.position == 2 * S and kernel.context.position("fake", "X") == 2 * S
    assert result.cash == CASH - 200 * S - 2 * fee
    assert kernel.portfolio.identity_gap() == 0
    kinds = [type(e).__name__ for e in kernel.strategies[0].events]  # type: ignore[attr-defined]
    assert kinds == ["OrderAccepted", "OrderFilled", "OrderFilled"]


def test_max_position_denies_orders_and_fewer_fill() -> None:
    rows = [*BOOK, (120, 1, 99, 5), (300, TRADE_SELL, 98, 20), (400, ASK, 101, 5)]
    script = {100: [buy(100, 2), buy(99, 2)]}  # the second would make a possible 4 > 3
    free = run_x(rows, script)
    limited = run_x(rows, script, risk=RiskLimits(max_position=3))
    assert free.denials == [] and len(free.fills) == 2 and free.position == 4 * S
    (denial,) = limited.denials
    assert denial.reason_code == "max_position" and denial.client_order_id == "t-fake-2"
    assert limited.kernel.orders["t-fake-2"].status is OrderStatus.DENIED
    assert len(limited.fills) == 1 and limited.position == 2 * S
    assert limited.orders["denied"] == 1 and limited.orders["submitted"] == 1
    assert limited.kernel.portfolio.identity_gap() == 0


def test_commands_the_venue_cannot_carry_are_venue_events() -> None:
    def market(s: FakeScript) -> None:
        s.ids.append(s.submit("X", OrderSide.BUY, S, order_type=OrderType.MARKET))

    def modify(s: FakeScript) -> None:
        s.modify(s.ids[0], price=98 * S)

    script = {100: [buy(99, 1), market, buy(99, 1, post_only=False), buy(101, 1)], 200: [modify]}
    result = run_x([*BOOK, (400, ASK, 101, 5)], script)
    orders = result.kernel.orders
    assert orders["t-fake-1"].status is OrderStatus.ACCEPTED  # the modify was refused
    assert [orders[f"t-fake-{n}"].status for n in (2, 3, 4)] == [OrderStatus.REJECTED] * 3
    assert "post-only order would take" in orders["t-fake-4"].reason
    assert result.orders["rejected"] == 3 and result.orders["cancel_rejected"] == 1


def test_a_fee_rate_that_disagrees_with_the_instrument_is_refused() -> None:
    cfg = L2ReplayConfig(instrument_id="X", entry_latency_ns=10, response_latency_ns=10,
                         queue_model="risk_averse", fill_model="partial", maker_fee_rate=5)
    with pytest.raises(ConfigError):
        L2KernelReplay(events(QUEUE_SEQUENCE), cfg, x_kernel(FakeScript({})))


# --- the real capture ------------------------------------------------------------------------

BTC = "BTCUSDT-PERP.BINANCE"
BTC_CONFIG = L2ReplayConfig(instrument_id=BTC, entry_latency_ns=10_000_000,
                            response_latency_ns=10_000_000, queue_model="risk_averse",
                            fill_model="partial", maker_fee_rate=fixed("0.0002"))


def btc_kernel(strategy: Strategy[Any], risk: RiskLimits | None = None) -> Kernel:
    btc = Instrument(instrument_id=BTC, currency="USDT", price_precision=1, size_precision=3,
                     lot_size=fixed("0.001"), min_quantity=fixed("0.001"),
                     fees=FeeSchedule(maker_rate=fixed("0.0002"), taker_rate=fixed("0.0005")))
    return Kernel(registry=InstrumentRegistry([btc]), strategies=[strategy], risk_limits=risk,
                  initial_cash=fixed("100000"), currency="USDT", namespace="smoke", seed=3)


def l2_mm(max_position: str = "0.05") -> L2MarketMaker:
    return L2MarketMaker("mm", {"order_qty": "0.01", "max_position": max_position},
                         instruments=(BTC,))


@pytest.fixture
def btc_prefix(shared_data: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
               ) -> L2Events:
    path = shared_data("hftbacktest__btcusdt_20240808.gz")
    return load_binance_capture(path, cache_dir=tmp_path_factory.getbasetemp() / "l2").head(150_000)


def test_real_capture_prefix_through_the_kernel(btc_prefix: L2Events) -> None:
    result = L2KernelReplay(btc_prefix, BTC_CONFIG, btc_kernel(l2_mm())).run()
    portfolio = result.kernel.portfolio
    assert result.fills and all(f.liquidity == "maker" for f in result.fills)
    assert all(f.ts_init == f.ts_event + 10_000_000 for f in result.fills)
    assert portfolio.identity_gap() == 0
    assert result.position == sum(f.last_qty * f.side for f in result.fills)
    assert result.fees == sum(f.fee for f in result.fills)
    assert result.cash == fixed("100000") - result.fees - sum(
        f.last_price * f.last_qty // S * f.side for f in result.fills)
    # the same market maker on the standalone engine makes exactly the same fills and equity
    mm = MarketMaker(MarketMakerParams(tick_size=fixed("0.1"), order_qty=fixed("0.01"),
                                       max_position=fixed("0.05")))
    standalone = L2ReplayEngine(btc_prefix, BTC_CONFIG, mm).run()
    assert [(f.ts_event, f.ts_init, f.last_price, f.last_qty, f.leaves_qty) for f in result.fills] \
        == [(f.ts_exch, f.ts_local, f.price, f.qty, f.leaves_qty) for f in standalone.fills]
    assert np.array_equal(result.equity - fixed("100000"), standalone.equity)


def test_real_capture_same_inputs_and_seed_same_fills_and_state_hash(btc_prefix: L2Events) -> None:
    first = L2KernelReplay(btc_prefix, BTC_CONFIG, btc_kernel(l2_mm())).run()
    again = L2KernelReplay(btc_prefix, BTC_CONFIG, btc_kernel(l2_mm())).run()
    assert again.fills == first.fills and again.state_hash == first.state_hash
    assert np.array_equal(again.equity, first.equity)
    assert first.state_hash == first.kernel.state_hash()


def test_real_capture_risk_limit_binds(btc_prefix: L2Events) -> None:
    limit = fixed("0.02")
    result = L2KernelReplay(btc_prefix, BTC_CONFIG,
                            btc_kernel(l2_mm("0.1"), RiskLimits(max_position="0.02"))).run()
    assert result.denials and {d.reason_code for d in result.denials} == {"max_position"}
    position, worst = 0, 0
    for f in result.fills:
        position += f.last_qty * f.side
        worst = max(worst, abs(position))
    assert worst <= limit and result.kernel.portfolio.identity_gap() == 0


def test_real_capture_unchanged_core_market_maker(btc_prefix: L2Events) -> None:
    mm = CoreMarketMaker("mm", {"size": "0.01", "max_inventory": "0.05"}, instruments=(BTC,))
    result = L2KernelReplay(btc_prefix, BTC_CONFIG, btc_kernel(mm)).run()
    assert result.fills and result.kernel.portfolio.identity_gap() == 0
    assert result.orders["submitted"] > 0 and result.wakeups > 100
