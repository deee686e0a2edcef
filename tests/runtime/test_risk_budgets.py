"""Per-strategy risk budgets (``RiskLimits.strategies``) through the kernel: each limit denies
with a code and a reason naming the strategy and the limit, counts only that strategy's own
positions, orders and PnL, lets exits through, and lives in the state (hash, restore)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.instruments import Instrument, InstrumentRegistry
from runtime.kernel import Kernel
from runtime.messages import Bar, Message, OrderDenied, OrderSide, SubmitOrder, TimerFired
from runtime.risk import RiskLimits, StrategyBudget
from runtime.values import fixed
from tests.runtime.test_kernel import fill_for
from tests.runtime.test_kernel_risk import Scripted, accepted, of

Q = 10**9
DAY = 86_400 * 10**9
REG = InstrumentRegistry(
    [Instrument(instrument_id="X", price_precision=2), Instrument(instrument_id="Y",
                                                                  price_precision=2)]
)


def setup(limits: RiskLimits) -> tuple[Kernel, dict[str, Scripted]]:
    strategies = {sid: Scripted(sid, instruments=("X", "Y")) for sid in ("a", "b")}
    k = Kernel(registry=REG, strategies=list(strategies.values()), risk_limits=limits,
               initial_cash=fixed(1_000_000), namespace="rb", seed=1)
    k.start(0)
    return k, strategies


def px(k: Kernel, instrument: str, price: float, ts: int | None = None) -> None:
    ts = k.now + 1 if ts is None else ts
    p = fixed(str(price))
    k.handle(Bar(seq=0, ts_event=ts, ts_init=ts, instrument_id=instrument, open=p, high=p,
                 low=p, close=p, volume=1000 * Q, interval_ns=60 * 10**9))


def act(k: Kernel, s: Scripted, side: OrderSide, instrument: str, qty: int,
        fill_at: float | None = None) -> list[Message]:
    """``s`` sends one market order from inside the kernel; filled at ``fill_at`` when given,
    else left open (accepted)."""
    s.todo.append(lambda st: st.submit(instrument, side, qty * Q))
    name = f"act{k.now}"
    k.context.set_timer(s.strategy_id, name, 1)
    out = k.handle(TimerFired(seq=0, ts_event=k.next_timer_ns() or 0, ts_init=0, name=name))
    while k.timers.pop_due(2**62) is not None:  # one shot: the rescheduled timer taken off
        pass
    for msg in of(SubmitOrder, out):
        assert isinstance(msg, SubmitOrder)
        out += k.handle(accepted(msg))
        if fill_at is not None:
            out += k.handle(fill_for(msg, fill_at, f"{msg.client_order_id}-f"))  # type: ignore[arg-type]
    return out


def denial(out: list[Message]) -> OrderDenied | None:
    denied = of(OrderDenied, out)
    assert len(denied) <= 1
    return denied[0] if denied else None  # type: ignore[return-value]


BUY, SELL = OrderSide.BUY, OrderSide.SELL


def test_max_position_counts_the_strategys_own_position_and_open_orders() -> None:
    k, s = setup(RiskLimits(strategies={"a": StrategyBudget(max_position=Decimal(100))}))
    px(k, "X", 100)
    assert denial(act(k, s["a"], BUY, "X", 60, fill_at=100)) is None
    assert denial(act(k, s["a"], BUY, "X", 30)) is None  # open, not filled: 90 committed
    d = denial(act(k, s["a"], BUY, "X", 20))
    assert d is not None and d.reason_code == "strategy.max_position"
    assert d.reason == "strategy a: position in X would reach 110 (budget 100)"
    assert d.strategy_id == "a"
    # another strategy is not bound by a's budget, and does not use it up
    assert denial(act(k, s["b"], BUY, "X", 500, fill_at=100)) is None
    assert denial(act(k, s["a"], BUY, "X", 10)) is None
    # short side too
    assert denial(act(k, s["a"], SELL, "Y", 101)) is not None


def test_max_position_notional_at_the_market() -> None:
    k, s = setup(RiskLimits(strategies={"a": StrategyBudget(max_position_notional=Decimal(5_000))}))
    px(k, "X", 100)
    assert denial(act(k, s["a"], BUY, "X", 50, fill_at=100)) is None
    px(k, "X", 110)  # 50 now worth 5,500: one more unit is over
    d = denial(act(k, s["a"], BUY, "X", 1))
    assert d is not None and d.reason_code == "strategy.max_position_notional"
    assert d.reason == "strategy a: position notional in X would reach 5610 (budget 5000)"


def test_gross_exposure_across_the_strategys_instruments() -> None:
    k, s = setup(RiskLimits(strategies={"a": StrategyBudget(max_gross_exposure=Decimal(15_000))}))
    px(k, "X", 100)
    px(k, "Y", 50)
    assert denial(act(k, s["a"], BUY, "X", 100, fill_at=100)) is None  # 10,000
    assert denial(act(k, s["a"], SELL, "Y", 100, fill_at=50)) is None  # short 5,000: 15,000
    d = denial(act(k, s["a"], SELL, "Y", 1))
    assert d is not None and d.reason_code == "strategy.max_gross_exposure"
    assert d.reason == "strategy a: gross exposure would reach 15050 (budget 15000)"
    assert denial(act(k, s["b"], BUY, "Y", 1000, fill_at=50)) is None  # b is unbudgeted


def test_daily_loss_makes_the_strategy_close_only_until_the_next_day() -> None:
    k, s = setup(RiskLimits(strategies={"a": StrategyBudget(max_daily_loss=Decimal(500))}))
    px(k, "X", 100, ts=10)
    assert denial(act(k, s["a"], BUY, "X", 100, fill_at=100)) is None
    px(k, "X", 94)  # a is down 600 today
    d = denial(act(k, s["a"], BUY, "X", 1))
    assert d is not None and d.reason_code == "strategy.max_daily_loss"
    assert d.reason == (
        "strategy a: loss today 600.5 reached its budget 500: close-only until tomorrow"
    )  # fees count: 0.5 a fill
    assert denial(act(k, s["a"], SELL, "X", 40, fill_at=94)) is None  # exits pass
    assert denial(act(k, s["b"], BUY, "X", 10)) is None  # b trades on
    px(k, "X", 94, ts=DAY + 10)  # a new day: the loss so far is the day's start
    assert denial(act(k, s["a"], BUY, "X", 1)) is None


def test_total_loss_stays_close_only_across_days() -> None:
    k, s = setup(RiskLimits(strategies={"a": StrategyBudget(max_loss=Decimal(500))}))
    px(k, "X", 100, ts=10)
    act(k, s["a"], BUY, "X", 100, fill_at=100)
    px(k, "X", 95)  # down 500, and a 0.5 fee
    d = denial(act(k, s["a"], BUY, "X", 1))
    assert d is not None and d.reason_code == "strategy.max_loss"
    assert d.reason == "strategy a: loss 500.5 reached its budget 500: close-only"
    px(k, "X", 95, ts=3 * DAY)
    assert denial(act(k, s["a"], BUY, "X", 1)) is not None
    # going short would grow a position too: still refused; closing is not
    assert denial(act(k, s["a"], SELL, "X", 150)) is not None
    assert denial(act(k, s["a"], SELL, "X", 100, fill_at=95)) is None


def test_the_accounts_limits_apply_as_well() -> None:
    limits = RiskLimits(
        max_position=Decimal(150), strategies={"a": StrategyBudget(max_position=Decimal(100))}
    )
    k, s = setup(limits)
    px(k, "X", 100)
    assert denial(act(k, s["b"], BUY, "X", 100, fill_at=100)) is None
    d = denial(act(k, s["a"], BUY, "X", 60))  # inside a's budget, over the account's
    assert d is not None and d.reason_code == "max_position"


def test_budget_books_are_state_and_restore() -> None:
    limits = RiskLimits(strategies={"a": StrategyBudget(max_daily_loss=Decimal(500))})
    k, s = setup(limits)
    px(k, "X", 100, ts=10)
    act(k, s["a"], BUY, "X", 100, fill_at=100)
    act(k, s["b"], BUY, "X", 7, fill_at=100)
    px(k, "X", 94)
    state = k.state()
    assert state["risk"]["budgets"]["a"]["positions"] == {"X": 100 * Q}
    assert set(state["risk"]["budgets"]) == {"a"}
    assert k.risk.strategy_pnl("a") == fixed("-600.5")
    k2, s2 = setup(limits)
    k2.load_state(state)
    assert k2.state_hash() == k.state_hash()
    px(k2, "X", 94)
    d = denial(act(k2, s2["a"], BUY, "X", 1))
    assert d is not None and d.reason_code == "strategy.max_daily_loss"


def test_no_budgets_no_budget_state() -> None:
    k, s = setup(RiskLimits())
    px(k, "X", 100)
    act(k, s["a"], BUY, "X", 100, fill_at=100)
    assert "budgets" not in k.state()["risk"]


def test_a_budget_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="max_position"):
        StrategyBudget(max_position=Decimal(-1))
    with pytest.raises(ValueError, match="max_positon"):
        StrategyBudget.model_validate({"max_positon": 5})


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.sampled_from([BUY, SELL]),
                  st.integers(1, 60), st.booleans(), st.integers(90, 110)),
        min_size=1, max_size=25,
    )
)
def test_a_budgeted_strategy_never_holds_or_asks_past_its_position_budget(
    steps: list[tuple[str, OrderSide, int, bool, int]],
) -> None:
    """Whatever the strategies send, filled or left open, at any price: the budgeted strategy's
    position plus its open orders on either side stays within its budget."""
    k, s = setup(RiskLimits(strategies={"a": StrategyBudget(max_position=Decimal(100))}))
    px(k, "X", 100)
    for sid, side, qty, filled, price in steps:
        px(k, "X", price)
        act(k, s[sid], side, "X", qty, fill_at=price if filled else None)
        held = k.context.position("a", "X")
        buys = sum(o.leaves_qty for o in k.open.values()
                   if o.strategy_id == "a" and o.side is BUY)
        sells = sum(o.leaves_qty for o in k.open.values()
                    if o.strategy_id == "a" and o.side is SELL)
        assert max(abs(held + buys), abs(held - sells)) <= 100 * Q


def test_a_kernel_with_budgets_pickles_whole_and_keeps_enforcing_them() -> None:
    """Recovery snapshots pickle the kernel: the budgets' books and their wiring come back."""
    import pickle

    k, s = setup(RiskLimits(strategies={"a": StrategyBudget(max_position=Decimal(100))}))
    px(k, "X", 100)
    act(k, s["a"], BUY, "X", 60, fill_at=100)
    act(k, s["a"], BUY, "X", 30)  # left open
    restored: Kernel = pickle.loads(pickle.dumps(k))
    assert restored.state_hash() == k.state_hash()
    [again] = [st for st in restored.strategies if st.strategy_id == "a"]
    assert isinstance(again, Scripted)
    d = denial(act(restored, again, BUY, "X", 20))  # 60 held + 30 open + 20 > 100
    assert d is not None and d.reason_code == "strategy.max_position"


def test_a_fee_in_kind_moves_every_book_by_what_is_held() -> None:
    """A buy of 100 whose venue kept 1 as its fee (``fee_qty``, valued at 100 in ``fee``): the
    account, the strategy's own position (what it sees) and its budget book all hold 99, and
    the budget's PnL is the fee."""
    import msgspec

    limits = RiskLimits(strategies={"a": StrategyBudget(max_daily_loss=Decimal(500))})
    k, s = setup(limits)
    px(k, "X", 100, ts=10)
    (cmd,) = of(SubmitOrder, act(k, s["a"], BUY, "X", 100))  # accepted, not filled
    assert isinstance(cmd, SubmitOrder)
    fill = msgspec.structs.replace(fill_for(cmd, 100, "kind-f"), fee=fixed(100), fee_qty=Q)
    k.handle(fill)
    assert k.portfolio.quantity("X") == 99 * Q
    assert k.context.position("a", "X") == 99 * Q
    assert k.state()["risk"]["budgets"]["a"]["positions"] == {"X": 99 * Q}
    assert k.risk.strategy_pnl("a") == -fixed(100)
    assert k.portfolio.account().fees == fixed(100) and k.portfolio.identity_gap() == 0
    assert k.ledger.get(cmd.client_order_id).filled_qty == 100 * Q  # type: ignore[union-attr]
