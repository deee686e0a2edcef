"""The strategy/risk split is composition: a kernel whose risk decides elsewhere (a strategy
actor's), paired with a kernel without strategies (the risk actor's), keeps the strategy's view
exactly as one kernel that checks at once (a backtest's): pending, committed and protective
legs, and the same orders approved, reduced or denied."""

from __future__ import annotations

from decimal import Decimal

from runtime.kernel import Kernel
from runtime.messages import (
    Message,
    OrderDenied,
    OrderSide,
    OrderType,
    SetTradingState,
    SubmitOrder,
    TimerFired,
    TradingState,
)
from runtime.risk import RiskLimits
from runtime.values import fixed
from tests.runtime.test_kernel import REG, bar
from tests.runtime.test_kernel_risk import Action, Scripted, accepted, fill_for

Q = 10**9
LIMITS = RiskLimits(max_position=Decimal(150))


def _kernels() -> tuple[Kernel, Kernel, Kernel]:
    """(one kernel checking here, a strategy kernel with risk elsewhere, its risk kernel)."""
    def strategy_kernel(limits: RiskLimits | None, elsewhere: bool) -> Kernel:
        k = Kernel(registry=REG, strategies=[Scripted("s", instruments=("X",))],
                   risk_limits=limits, initial_cash=fixed(1_000_000), namespace="ap", seed=1,
                   risk_elsewhere=elsewhere)
        k.start(0)
        k.context.set_timer("s", "act", 1)
        return k

    risk = Kernel(registry=REG, strategies=[], risk_limits=LIMITS,
                  initial_cash=fixed(1_000_000), namespace="ap", seed=1)
    risk.start(0)
    return strategy_kernel(LIMITS, False), strategy_kernel(None, True), risk


def _act(k: Kernel, do: Action) -> list[Message]:
    """Run ``do(strategy)`` inside the kernel, on its next timer tick."""
    strategy = k.strategies[0]
    assert isinstance(strategy, Scripted)
    strategy.todo.append(do)
    ts = k.next_timer_ns() or 0
    return k.handle(TimerFired(seq=0, ts_event=ts, ts_init=ts, name=""))


def _through_risk(host: Kernel, risk: Kernel, intents: list[Message]) -> list[Message]:
    """The risk actor's answers to the host's intents, handed back to the host (as the
    pipeline does); the commands risk approved."""
    approved: list[Message] = []
    for intent in intents:
        for answer in risk.handle(intent):
            if isinstance(answer, SubmitOrder | OrderDenied):
                host.handle(answer)
            if isinstance(answer, SubmitOrder):
                approved.append(answer)
    return approved


def _views(k: Kernel) -> tuple[object, ...]:
    ledger = k.ledger
    return (dict(ledger.pending), dict(ledger.committed_view("s")),
            dict(ledger.protective_view("s")), sorted(ledger.open),
            {c: (o.status, o.quantity) for c, o in sorted(ledger.orders.items())})


def test_risk_elsewhere_keeps_the_strategys_view_as_risk_here() -> None:
    here, host, risk = _kernels()
    for k in (here, host, risk):
        k.handle(bar(1, 50))
    steps: list[tuple[Action, float | None]] = [
        (lambda s: s.buy("X", 100 * Q), 50),  # filled
        (lambda s: s.submit("X", OrderSide.SELL, 100 * Q, order_type=OrderType.STOP,
                            trigger_price=fixed(40)), None),  # protective, resting
        (lambda s: s.buy("X", 100 * Q, fixed(45)), None),  # reduced? no: denied (max 150)
        (lambda s: s.buy("X", 40 * Q, fixed(45)), None),  # resting: pending, committed
    ]
    for n, (do, fill_price) in enumerate(steps, start=1):
        direct = [m for m in _act(here, do) if isinstance(m, SubmitOrder)]
        sent = [m for m in _act(host, do) if isinstance(m, SubmitOrder)]
        assert [m.client_order_id for m in sent] == [
            m.client_order_id for m in direct
        ] or not direct  # a denied order was sent, then denied
        approved = _through_risk(host, risk, list(sent))
        assert approved == direct
        for command in direct:
            reports: list[Message] = [accepted(command)]
            if fill_price is not None:
                reports.append(fill_for(command, fill_price, f"f{n}"))
            for report in reports:
                for k in (here, host, risk):
                    k.handle(report)
        assert _views(host) == _views(here), n
        assert host.unanswered() == []
    assert here.ledger.protective_view("s") == {"X": 1}
    assert here.context.committed("s", "X") == 140 * Q  # held 100 + resting 40, stop left out


def test_an_operator_halt_reaches_the_strategy_as_a_denial_from_risk() -> None:
    _, host, risk = _kernels()
    for k in (host, risk):
        k.handle(bar(1, 50))
    risk.handle(SetTradingState(seq=0, ts_event=0, ts_init=0, state=TradingState.HALTED,
                                reason="op"))
    sent = _act(host, lambda s: s.buy("X", Q))
    assert _through_risk(host, risk, sent) == []
    (order,) = host.orders.values()
    assert order.status.value == "denied" and host.context.pending("s", "X") == 0
