"""An operator's commands are messages the kernel handles like any input: their effect is in
the state (and its hash), a journal replays them to the same state, close-out orders have
deterministic ids, and a command the kernel cannot carry out is refused before it changes
anything."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from runtime.errors import ConfigError, OperatorError
from runtime.journal import Journal
from runtime.kernel import Kernel
from runtime.messages import (
    CancelAllOrders,
    CancelOrder,
    ClosePositions,
    Message,
    OrderAccepted,
    OrderSide,
    OrderType,
    SetStrategyEnabled,
    SetStrategyParams,
    SetTradingState,
    SubmitOrder,
    TimeInForce,
    TimerFired,
    TradingState,
    TradingStateChanged,
)
from runtime.recovery import JournaledKernel
from runtime.risk import RiskLimits
from runtime.statehash import state_hash
from runtime.strategy import Strategy
from runtime.values import fixed
from tests.runtime.test_kernel import REG, Flipper, bar, fill_for, kernel, run

Q = 10**9


def test_halt_is_a_message_at_the_kernels_clock() -> None:
    k, _ = kernel()
    k.handle(bar(3))
    out = k.handle(SetTradingState(seq=0, ts_event=10**18, ts_init=10**18,
                                   state=TradingState.HALTED, reason="op"))
    assert out == [TradingStateChanged(seq=0, ts_event=bar(3).ts_event, ts_init=bar(3).ts_event,
                                       state=TradingState.HALTED, reason="op")]
    assert k.now == bar(3).ts_event  # an operator's command does not move the clock
    assert k.risk.state is TradingState.HALTED


def _open_orders(k: Kernel) -> list[SubmitOrder]:
    """Two resting limit buys on X (accepted), from the strategy's context."""
    cids = [k.context.submit("flip", instrument_id="X", side=OrderSide.BUY, quantity=Q,
                             order_type=OrderType.LIMIT, price=fixed(90 + i), trigger_price=None,
                             time_in_force=TimeInForce.GTC, post_only=False, reduce_only=False)
            for i in range(2)]
    out = k.handle(TimerFired(seq=0, ts_event=k.now, ts_init=k.now, name=""))
    commands = [m for m in out if isinstance(m, SubmitOrder)]
    assert [c.client_order_id for c in commands] == cids
    for c in commands:
        k.handle(OrderAccepted(seq=0, ts_event=c.ts_event, ts_init=c.ts_event,
                               client_order_id=c.client_order_id, strategy_id=c.strategy_id,
                               instrument_id=c.instrument_id, venue_order_id="v"))
    return commands


def test_cancel_all_cancels_every_open_order_oldest_first() -> None:
    k, _ = kernel()
    entry = [m for m in k.handle(bar(1)) if isinstance(m, SubmitOrder)]  # the flipper's buy
    commands = _open_orders(k)
    out = k.handle(CancelAllOrders(seq=0, ts_event=0, ts_init=0, reason="kill"))
    assert [m.client_order_id for m in out if isinstance(m, CancelOrder)] == [
        c.client_order_id for c in entry + commands
    ]
    assert all(o.status.value == "pending_cancel" for o in k.open.values())
    # a second one while the cancels are not confirmed sends nothing more
    assert k.handle(CancelAllOrders(seq=0, ts_event=0, ts_init=0, reason="again")) == []
    other = k.handle(CancelAllOrders(seq=0, ts_event=0, ts_init=0, reason="x", strategy_id="no"))
    assert other == []


def _long(k: Kernel) -> None:
    """The flipper buys 10 on its first bar; filled."""
    run(k, 1)
    assert k.portfolio.positions["X"].quantity == 10 * Q


def test_close_positions_sends_deterministic_reduce_only_market_orders() -> None:
    k, _ = kernel()
    _long(k)
    out = k.handle(ClosePositions(seq=0, ts_event=0, ts_init=0, reason="flatten"))
    (close,) = out
    assert isinstance(close, SubmitOrder)
    assert close.client_order_id == "t1-operator-1"  # from the kernel's id generator
    assert (close.strategy_id, close.side, close.quantity) == ("operator", OrderSide.SELL, 10 * Q)
    assert close.order_type is OrderType.MARKET and close.reduce_only
    # working: nothing more until it is filled or canceled
    assert k.handle(ClosePositions(seq=0, ts_event=0, ts_init=0, reason="again")) == []
    k.handle(fill_for(close, 100, "close-1"))
    assert k.portfolio.positions["X"].quantity == 0
    assert k.handle(ClosePositions(seq=0, ts_event=0, ts_init=0, reason="flat")) == []


def test_close_positions_are_checked_by_risk() -> None:
    """Close-only lets a close-out through; halted, it is denied like any order."""
    k, _ = kernel()
    _long(k)
    k.handle(SetTradingState(seq=0, ts_event=0, ts_init=0, state=TradingState.HALTED, reason="x"))
    out = k.handle(ClosePositions(seq=0, ts_event=0, ts_init=0, reason="flatten"))
    assert [type(m).__name__ for m in out] == ["OrderDenied"]
    assert k.orders["t1-operator-1"].status.value == "denied"


def test_a_strategy_called_operator_is_refused() -> None:
    with pytest.raises(ConfigError, match="reserved"):
        Kernel(registry=REG, strategies=[Flipper("operator", instruments=("X",))],
               initial_cash=0, namespace="t")


def test_a_disabled_strategy_hears_no_data_and_its_orders_live_on() -> None:
    k, strategy = kernel()
    _long(k)
    seen = len(strategy.seen)
    before = k.state_hash()
    assert k.handle(SetStrategyEnabled(seq=0, ts_event=0, ts_init=0, strategy_id="flip",
                                       enabled=False)) == []
    assert k.state_hash() != before  # inside the state
    assert k.state()["operator"] == {"disabled": ["flip"], "params": {}}
    assert k.handle(bar(5)) == []
    assert len(strategy.seen) == seen  # no data reached it
    k.handle(SetStrategyEnabled(seq=0, ts_event=0, ts_init=0, strategy_id="flip", enabled=True))
    assert k.handle(bar(6)) != [] and len(strategy.seen) == seen + 1


def test_a_disabled_strategy_hears_no_timers_which_keep_their_pace() -> None:
    class Ticker(Strategy):  # type: ignore[type-arg]
        def on_start(self) -> None:
            self.ticks: list[int] = []
            self.ctx.set_timer(self.strategy_id, "t", 10)

        def on_timer(self, timer: TimerFired) -> None:
            self.ticks.append(timer.ts_event)

    ticker = Ticker("tk", instruments=("X",))
    k = Kernel(registry=REG, strategies=[ticker], initial_cash=0, namespace="t")
    k.start(0)
    k.handle(SetStrategyEnabled(seq=0, ts_event=0, ts_init=0, strategy_id="tk", enabled=False))
    k.handle(TimerFired(seq=0, ts_event=25, ts_init=25, name=""))
    assert ticker.ticks == [] and k.next_timer_ns() == 30
    k.handle(SetStrategyEnabled(seq=0, ts_event=0, ts_init=0, strategy_id="tk", enabled=True))
    k.handle(TimerFired(seq=0, ts_event=30, ts_init=30, name=""))
    assert ticker.ticks == [30]


def test_params_change_the_strategy_and_the_state() -> None:
    k, strategy = kernel()
    k.handle(SetStrategyParams(seq=0, ts_event=0, ts_init=0, strategy_id="flip",
                               params={"size": 3 * Q}))
    assert strategy.params.size == 3 * Q
    state = k.state()
    assert state["operator"]["params"] == {"flip": '{"size":3000000000}'}
    state_hash(state)  # strict: no float anywhere
    out = k.handle(bar(1))
    assert [m.quantity for m in out if isinstance(m, SubmitOrder)] == [3 * Q]


@pytest.mark.parametrize(
    ("command", "match"),
    [
        (SetStrategyParams(seq=0, ts_event=0, ts_init=0, strategy_id="flip",
                           params={"nope": 1}),
         r"unknown params \[.nope.\]: Params has \[.size.\]"),
        (SetStrategyParams(seq=0, ts_event=0, ts_init=0, strategy_id="flip",
                           params={"size": 1.5}), "size: .*expected an integer in fixed-point"),
        (SetStrategyParams(seq=0, ts_event=0, ts_init=0, strategy_id="flip",
                           params={"size": "3"}), "size: .*expected an integer"),
        (SetStrategyParams(seq=0, ts_event=0, ts_init=0, strategy_id="flip",
                           params={"size": float("inf")}), "finite"),
        (SetStrategyParams(seq=0, ts_event=0, ts_init=0, strategy_id="ghost",
                           params={"size": 1}), r"no strategy 'ghost' here .*\['flip'\]"),
        (SetStrategyEnabled(seq=0, ts_event=0, ts_init=0, strategy_id="ghost", enabled=False),
         "no strategy 'ghost'"),
    ],
)
def test_a_command_the_kernel_cannot_carry_out_is_refused_changing_nothing(
    command: SetStrategyParams | SetStrategyEnabled, match: str
) -> None:
    k, strategy = kernel()
    run(k, 2)
    before, params = k.state_hash(), strategy.params
    with pytest.raises(OperatorError, match=match):
        k.check(command)
    with pytest.raises(OperatorError, match=match):
        k.handle(command)
    assert k.state_hash() == before and strategy.params is params


def test_bounds_of_the_params_model_hold() -> None:
    from backtest.strategies.market_maker import MarketMaker

    mm = MarketMaker("mm", {"size": 10, "max_inventory": 150}, instruments=("X",))
    k = Kernel(registry=REG, strategies=[mm], initial_cash=0, namespace="t")
    k.start(0)
    for params, match in (({"levels": 0}, "levels: Input should be greater than or equal to 1"),
                          ({"levels": True}, "levels: Input should be a valid integer"),
                          ({"size": -Q}, "size: Input should be greater than 0")):
        with pytest.raises(OperatorError, match=match):
            k.check(SetStrategyParams(seq=0, ts_event=0, ts_init=0, strategy_id="mm",
                                      params=params))
    k.handle(SetStrategyParams(seq=0, ts_event=0, ts_init=0, strategy_id="mm",
                               params={"levels": 2, "vol_mult": 0.5}))
    assert (mm.params.levels, mm.params.vol_mult, mm.params.size) == (2, 0.5, 10 * Q)


def test_without_operator_commands_the_state_has_no_operator_part() -> None:
    """Every backtest: the state (and its hash) is what it was before operator commands."""
    k, _ = kernel(RiskLimits(max_daily_loss=Decimal(5)))
    run(k, 6)
    assert "operator" not in k.state()


def _journaled(path: Path) -> JournaledKernel:
    from tests.runtime.test_recovery import ListFeed

    journal = Journal(path)
    return JournaledKernel.restore(lambda: Kernel(
        registry=REG, strategies=[Flipper("flip", {"size": 10}, instruments=("X",))],
        initial_cash=fixed(10_000), namespace="t1", seed=7), journal,
        ListFeed([bar(1), bar(2)]), snapshot_every=10**9)  # the feed's log: the bars it takes


def test_a_journal_replays_operator_commands_to_the_same_state(tmp_path: Path) -> None:
    jk = _journaled(tmp_path / "k.journal")
    jk.start(0)
    jk.handle(SetStrategyParams(seq=0, ts_event=0, ts_init=0, strategy_id="flip",
                                params={"size": 4 * Q}))
    (buy,) = jk.handle(bar(1))
    assert isinstance(buy, SubmitOrder) and buy.quantity == 4 * Q
    jk.handle(fill_for(buy, 101, "f1"))
    inputs: list[Message] = [
        SetStrategyEnabled(seq=0, ts_event=0, ts_init=0, strategy_id="flip", enabled=False),
        bar(2),
        SetTradingState(seq=0, ts_event=0, ts_init=0, state=TradingState.REDUCING, reason="r"),
        ClosePositions(seq=0, ts_event=0, ts_init=0, reason="flatten"),
    ]
    out: list[Message] = []
    for message in inputs:
        out += jk.handle(message)
    jk.journal.flush()
    closes = [m for m in out if isinstance(m, SubmitOrder) and m.strategy_id == "operator"]
    assert [c.client_order_id for c in closes] == ["t1-operator-1"]
    before = jk.kernel.state_hash()
    jk.journal.close()
    again = _journaled(tmp_path / "k.journal")
    assert again.kernel.state_hash() == before
    (strategy,) = again.kernel.strategies
    assert strategy.params.size == 4 * Q and not again.kernel.roster.enabled("flip")
    # the next close-out after the replay gets the next id, never one used before
    again.handle(ClosePositions(seq=0, ts_event=0, ts_init=0, reason="again"))
    assert again.kernel.ids.counters["operator"] == 1  # the first is still working


def test_a_snapshot_restores_what_an_operator_changed() -> None:
    k, _ = kernel()
    run(k, 2)
    k.handle(SetStrategyParams(seq=0, ts_event=0, ts_init=0, strategy_id="flip",
                               params={"size": 2 * Q}))
    k.handle(SetStrategyEnabled(seq=0, ts_event=0, ts_init=0, strategy_id="flip", enabled=False))
    restored, strategy = kernel()
    restored.load_state(k.state())
    assert restored.state_hash() == k.state_hash()
    assert strategy.params.size == 2 * Q and restored.handle(bar(9)) == []
