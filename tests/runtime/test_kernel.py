"""Kernel: one message at a time, deterministic; state hash; strategies act through risk."""

from __future__ import annotations

from decimal import Decimal

from runtime.instruments import Instrument, InstrumentRegistry
from runtime.kernel import Kernel
from runtime.messages import (
    Bar,
    Liquidity,
    Message,
    OrderAccepted,
    OrderDenied,
    OrderFilled,
    PositionChanged,
    SubmitOrder,
    TimerFired,
)
from runtime.risk import RiskLimits
from runtime.strategy import Qty, Strategy, StrategyParams
from runtime.values import fixed

Q = 10**9
REG = InstrumentRegistry([Instrument(instrument_id="X", price_precision=2)])


class Params(StrategyParams):
    size: Qty = 10 * Q


class Flipper(Strategy[Params]):
    """Targets +size on even bars, flat on odd bars; records what it saw."""

    def on_start(self) -> None:
        self.seen: list[int] = []
        self.events: list[Message] = []
        self.n = 0

    def on_bar(self, bar: Bar) -> None:
        assert bar.ts_event <= self.now_ns  # never sees data after the clock
        self.seen.append(bar.ts_event)
        self.n += 1
        self.target_position(bar.instrument_id, self.params.size if self.n % 2 else 0)

    def on_order_event(self, event: Message) -> None:
        self.events.append(event)


def bar(i: int, close: int = 100) -> Bar:
    return Bar(
        seq=i,
        ts_event=i * 60 * 10**9,
        ts_init=i * 60 * 10**9,
        instrument_id="X",
        open=fixed(close),
        high=fixed(close),
        low=fixed(close),
        close=fixed(close),
        volume=1000 * Q,
        interval_ns=60 * 10**9,
    )


def kernel(limits: RiskLimits | None = None) -> tuple[Kernel, Flipper]:
    strategy = Flipper("flip", {"size": 10}, instruments=("X",))
    k = Kernel(
        registry=REG,
        strategies=[strategy],
        risk_limits=limits,
        initial_cash=fixed(10_000),
        namespace="t1",
        seed=7,
    )
    k.start(0)
    return k, strategy


def fill_for(cmd: SubmitOrder, price: int, fid: str) -> OrderFilled:
    return OrderFilled(
        seq=0,
        ts_event=cmd.ts_event + 1,
        ts_init=cmd.ts_event + 1,
        client_order_id=cmd.client_order_id,
        strategy_id=cmd.strategy_id,
        instrument_id=cmd.instrument_id,
        venue_order_id="v",
        fill_id=fid,
        side=cmd.side,
        last_qty=cmd.quantity,
        last_price=fixed(price),
        cum_qty=cmd.quantity,
        leaves_qty=0,
        fee=fixed("0.5"),
        currency="USD",
        liquidity=Liquidity.TAKER,
    )


def run(k: Kernel, n: int) -> list[Message]:
    produced: list[Message] = []
    for i in range(1, n + 1):
        out = k.handle(bar(i, 100 + i))
        produced.extend(out)
        for msg in out:
            if isinstance(msg, SubmitOrder):
                produced.extend(
                    k.handle(
                        OrderAccepted(
                            seq=0,
                            ts_event=msg.ts_event,
                            ts_init=msg.ts_event,
                            client_order_id=msg.client_order_id,
                            strategy_id=msg.strategy_id,
                            instrument_id=msg.instrument_id,
                            venue_order_id="v",
                        )
                    )
                )
                produced.extend(k.handle(fill_for(msg, 100 + i, f"f{i}")))
    return produced


def test_orders_flow_through_risk_to_fills_and_positions() -> None:
    k, s = kernel()
    out = run(k, 4)
    submits = [m for m in out if isinstance(m, SubmitOrder)]
    assert [m.client_order_id for m in submits] == [f"t1-flip-{i}" for i in range(1, 5)]
    assert k.portfolio.quantity("X") == 0
    assert k.portfolio.realized_pnl == fixed(2) * 10  # bought 101 sold 102, bought 103 sold 104
    assert k.portfolio.fees == fixed(2)
    assert k.portfolio.identity_gap() == 0
    assert [type(e).__name__ for e in s.events[:2]] == ["OrderAccepted", "OrderFilled"]
    assert sum(isinstance(m, PositionChanged) for m in out) == 4


def test_pending_orders_stop_target_position_from_resending() -> None:
    k, _ = kernel()
    first = k.handle(bar(1))
    assert len([m for m in first if isinstance(m, SubmitOrder)]) == 1
    k.strategies[0].n = 2  # wants +size again next bar (n becomes 3)
    again = k.handle(bar(2))
    assert not [m for m in again if isinstance(m, SubmitOrder)]  # the order is still open


def test_denial_reaches_strategy_as_event() -> None:
    k, s = kernel(RiskLimits(max_position=Decimal(5)))
    out = k.handle(bar(1))
    denials = [m for m in out if isinstance(m, OrderDenied)]
    assert denials and denials[0].reason_code == "max_position"
    assert s.events == denials
    assert k.orders[denials[0].client_order_id].status == "denied"


def test_same_inputs_same_state_hash_and_snapshot_roundtrip() -> None:
    a, _ = kernel()
    b, _ = kernel()
    run(a, 7)
    run(b, 7)
    assert a.state_hash() == b.state_hash()
    c, _ = kernel()
    run(c, 6)
    assert c.state_hash() != a.state_hash()
    d, _ = kernel()
    d.load_state(a.state())
    assert d.state_hash() == a.state_hash()


def test_timers_fire_in_order() -> None:
    fired: list[int] = []

    class Ticker(Strategy[Params]):
        def on_start(self) -> None:
            self.set_timer("t", 100)

        def on_timer(self, timer: TimerFired) -> None:
            fired.append(timer.ts_event)

    k = Kernel(
        registry=REG,
        strategies=[Ticker("tick", instruments=("X",))],
        initial_cash=0,
        namespace="t2",
    )
    k.start(0)
    assert k.next_timer_ns() == 100
    k.handle(TimerFired(seq=0, ts_event=350, ts_init=350, name=""))
    assert fired == [100, 200, 300]
    assert k.next_timer_ns() == 400


def test_target_position_trades_from_a_restored_kernel_state() -> None:
    """The strategy reads the kernel's committed quantities live, restores included: a kernel
    with an order of its own pending, restored to a flat state, trades again from flat."""
    flat, _ = kernel()
    run(flat, 2)  # bought 10, sold 10: flat, nothing open
    k, s = kernel()
    k.handle(bar(1))  # +10 pending here
    assert s.target_position("X", 10 * Q) is None
    k.load_state(flat.state())
    assert k.context.committed("flip", "X") == 0
    assert s.target_position("X", 10 * Q) is not None  # from flat again, not from the stale +10


class FakeContext:
    """A context with only what target_position needs (no committed_view)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def committed(self, strategy_id: str, instrument_id: str) -> int:
        return 4 * Q

    def protective_orders(self, strategy_id: str, instrument_id: str) -> list[object]:
        return []

    def submit(self, strategy_id: str, **order: object) -> str:
        self.sent.append((str(order["side"]), int(order["quantity"])))  # type: ignore[call-overload]
        return "fake-1"


def test_target_position_asks_a_context_without_a_committed_view() -> None:
    strategy = Flipper("flip", {"size": 10}, instruments=("X",))
    ctx = FakeContext()
    strategy.bind(ctx, seed=1)  # type: ignore[arg-type]
    assert strategy.target_position("X", 4 * Q) is None
    assert strategy.target_position("X", 10 * Q) == "fake-1"
    assert ctx.sent == [("1", 6 * Q)]
