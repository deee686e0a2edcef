"""Pre-trade risk through the kernel: orders are valued at the market, exits are never trapped
by limits, protective legs do not block ``target_position``, and every kind of market message
runs the daily-loss check."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from runtime.kernel import Kernel
from runtime.messages import (
    Bar,
    BookDeltas,
    BookSnapshot,
    CancelOrder,
    Message,
    ModifyOrder,
    OrderAccepted,
    OrderDenied,
    OrderSide,
    OrderType,
    QuoteTick,
    SubmitOrder,
    TimerFired,
    TradeTick,
    TradingState,
    TradingStateChanged,
)
from runtime.risk import RiskLimits
from runtime.strategy import Strategy
from runtime.values import fixed
from tests.runtime.test_kernel import REG, bar, fill_for

Q = 10**9
S = 10**9
Action = Callable[["Scripted"], None]


class Scripted(Strategy):  # type: ignore[type-arg]
    """Does what the test queued (``todo``) on its next timer, from inside the kernel."""

    def on_start(self) -> None:
        self.events: list[Message] = []
        self.todo: list[Action] = []

    def on_timer(self, timer: TimerFired) -> None:
        todo, self.todo = self.todo, []
        for do in todo:
            do(self)

    def on_order_event(self, event: Message) -> None:
        self.events.append(event)


def setup(limits: RiskLimits, cash: int = 1_000_000) -> tuple[Kernel, Scripted]:
    strategy = Scripted("s", instruments=("X",))
    k = Kernel(registry=REG, strategies=[strategy], risk_limits=limits,
               initial_cash=fixed(cash), namespace="kr", seed=1)
    k.start(0)
    return k, strategy


def act(k: Kernel, do: Action) -> list[Message]:
    """Run ``do(strategy)`` inside the kernel (as from a timer) and return what it produced."""
    strategy = k.strategies[0]
    assert isinstance(strategy, Scripted)
    strategy.todo.append(do)
    if k.next_timer_ns() is None:
        k.context.set_timer("s", "act", 1)
    return k.handle(TimerFired(seq=0, ts_event=k.next_timer_ns() or 0, ts_init=0, name="act"))


def fill_all(k: Kernel, out: list[Message], price: float) -> list[Message]:
    produced: list[Message] = []
    for i, msg in enumerate(out):
        if isinstance(msg, SubmitOrder) and msg.order_type is OrderType.MARKET:
            produced += k.handle(accepted(msg))
            produced += k.handle(fill_for(msg, price, f"{msg.client_order_id}-{i}"))
        elif isinstance(msg, SubmitOrder):
            produced += k.handle(accepted(msg))
    return produced


def accepted(cmd: SubmitOrder) -> OrderAccepted:
    return OrderAccepted(seq=0, ts_event=cmd.ts_event, ts_init=cmd.ts_event,
                         client_order_id=cmd.client_order_id, strategy_id=cmd.strategy_id,
                         instrument_id=cmd.instrument_id, venue_order_id="v")


def of(kind: type, out: list[Message]) -> list[Message]:
    return [m for m in out if isinstance(m, kind)]


# --- market orders are valued at the market ----------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "code"),
    [
        (RiskLimits(max_order_notional=Decimal(10_000)), "max_order_notional"),
        (RiskLimits(max_position_notional=Decimal(10_000)), "max_position_notional"),
        (RiskLimits(max_gross_exposure=Decimal(10_000)), "gross_exposure"),
    ],
)
def test_first_market_order_is_valued_at_the_last_price(limits: RiskLimits, code: str) -> None:
    """No position, so no mark: the market buy of 500 at ~100 (≈50,000) is still refused."""
    k, _ = setup(limits)
    k.handle(bar(1, 100))
    out = act(k, lambda s: s.buy("X", 500 * Q))
    denied = of(OrderDenied, out)
    assert not of(SubmitOrder, out)
    assert len(denied) == 1 and denied[0].reason_code == code  # type: ignore[attr-defined]
    assert "50000" in denied[0].reason  # type: ignore[attr-defined]


@pytest.mark.parametrize("feed", ["quote", "trade", "book"])
def test_every_market_message_kind_prices_orders(feed: str) -> None:
    k, _ = setup(RiskLimits(max_order_notional=Decimal(10_000)))
    k.handle(market(feed, 1 * S, 100))
    assert of(OrderDenied, act(k, lambda s: s.buy("X", 500 * Q)))
    assert of(SubmitOrder, act(k, lambda s: s.buy("X", 50 * Q)))  # ≈5,000 passes


def test_no_market_data_no_order_when_a_notional_rule_is_on() -> None:
    k, _ = setup(RiskLimits(max_order_notional=Decimal(10_000)))
    out = act(k, lambda s: s.buy("X", 1 * Q))
    assert [m.reason_code for m in of(OrderDenied, out)] == ["no_market_data"]  # type: ignore[attr-defined]


# --- exits are never trapped --------------------------------------------------------------------


def long_100_at_50_with_stop(limits: RiskLimits) -> tuple[Kernel, Scripted]:
    """Long 100 bought at 50 (notional 5,000), a stop-loss sell 100 resting at 40, then the
    price doubles: the position is now worth 10,000."""
    k, s = setup(limits)
    k.handle(bar(1, 50))
    fill_all(k, act(k, lambda st: st.buy("X", 100 * Q)), 50)
    stop = act(k, lambda st: st.submit("X", OrderSide.SELL, 100 * Q, order_type=OrderType.STOP,
                                       trigger_price=fixed(40)))
    fill_all(k, stop, 0)
    assert k.portfolio.quantity("X") == 100 * Q and len(k.open) == 1
    k.handle(bar(2, 100))
    return k, s


@pytest.mark.parametrize(
    "limits",
    [
        RiskLimits(max_order_notional=Decimal(6_000)),
        RiskLimits(max_position_notional=Decimal(6_000)),
        RiskLimits(max_gross_exposure=Decimal(6_000)),
    ],
)
def test_an_exit_is_never_denied_by_position_or_exposure_limits(limits: RiskLimits) -> None:
    k, _ = long_100_at_50_with_stop(limits)
    out = act(k, lambda s: s.sell("X", 100 * Q))
    assert not of(OrderDenied, out)
    fill_all(k, out, 100)
    assert k.portfolio.quantity("X") == 0


def test_a_run_of_small_exits_cannot_flip_past_the_limits() -> None:
    k, _ = setup(RiskLimits(max_position=Decimal(50)))
    k.handle(bar(1, 50))
    fill_all(k, act(k, lambda s: s.buy("X", 50 * Q)), 50)
    out = act(k, lambda s: [s.sell("X", 40 * Q), s.sell("X", 40 * Q), s.sell("X", 40 * Q)])
    # the first only reduces; with it, the second could reach -30 (within 50), the third -70
    assert len(of(SubmitOrder, out)) == 2
    assert [m.reason_code for m in of(OrderDenied, out)] == ["max_position"]  # type: ignore[attr-defined]


# --- protective legs and target_position ---------------------------------------------------------


def test_target_flat_cancels_the_protective_stop_and_exits() -> None:
    k, _ = long_100_at_50_with_stop(RiskLimits())
    out = act(k, lambda s: s.target_position("X", 0))
    cancels, sells = of(CancelOrder, out), of(SubmitOrder, out)
    assert len(cancels) == 1 and len(sells) == 1
    assert sells[0].side is OrderSide.SELL and sells[0].quantity == 100 * Q  # type: ignore[attr-defined]


def test_target_smaller_shrinks_the_stop_and_sells_the_rest() -> None:
    k, _ = long_100_at_50_with_stop(RiskLimits())
    out = act(k, lambda s: s.target_position("X", 30 * Q))
    modifies, sells = of(ModifyOrder, out), of(SubmitOrder, out)
    assert [m.quantity for m in modifies] == [30 * Q]  # type: ignore[attr-defined]
    assert [m.quantity for m in sells] == [70 * Q]  # type: ignore[attr-defined]
    assert act(k, lambda s: s.target_position("X", 30 * Q)) == []  # pending: nothing resent


def test_target_unchanged_keeps_the_stop() -> None:
    k, _ = long_100_at_50_with_stop(RiskLimits())
    assert act(k, lambda s: s.target_position("X", 100 * Q)) == []


# --- one path for every market message kind: the daily-loss check --------------------------------


def market(kind: str, ts: int, price: float) -> Message:
    p = fixed(price)
    if kind == "bar":
        return Bar(seq=0, ts_event=ts, ts_init=ts, instrument_id="X", open=p, high=p, low=p,
                   close=p, volume=Q, interval_ns=S)
    if kind == "quote":
        return QuoteTick(0, ts, ts, "X", p - fixed("0.01"), Q, p + fixed("0.01"), Q)
    if kind == "trade":
        return TradeTick(0, ts, ts, "X", p, Q)
    return BookSnapshot(seq=0, ts_event=ts, ts_init=ts, instrument_id="X",
                        bids=((p - fixed("0.01"), Q),), asks=((p + fixed("0.01"), Q),))


def mark(k: Kernel, kind: str, ts: int, price: float) -> list[Message]:
    """A market message of ``kind`` through the kernel; ``book_view``: a book kept outside the
    kernel (the compiled L2 replay's), as ``on_book_view`` takes it."""
    if kind != "book_view":
        return k.handle(market(kind, ts, price))
    from runtime.book import L2Book

    book = L2Book("X")
    snapshot = market("book", ts, price)
    assert isinstance(snapshot, BookSnapshot)
    book.apply_snapshot(snapshot)
    update = BookDeltas(seq=0, ts_event=ts, ts_init=ts, instrument_id="X",
                        bids=snapshot.bids, asks=snapshot.asks)
    return k.on_book_view(update, book)


KINDS = ["bar", "quote", "trade", "book", "book_view"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_market_message_kind_checks_the_daily_loss(kind: str) -> None:
    """A trader expects the daily loss limit checked on every mark of a held position, however
    the price came: every kind takes the same path."""
    k, _ = setup(RiskLimits(max_daily_loss=Decimal(1_000)))
    mark(k, kind, 1 * S, 100)
    fill_all(k, act(k, lambda s: s.buy("X", 100 * Q)), 100)
    assert k.risk.state is TradingState.ACTIVE
    out = mark(k, kind, 5 * S, 80)  # down 2,000 on the position
    changes = of(TradingStateChanged, out)
    assert [c.state for c in changes] == [TradingState.REDUCING]  # type: ignore[attr-defined]
    assert k.risk.state is TradingState.REDUCING


@pytest.mark.parametrize("kind", KINDS)
def test_the_daily_loss_is_checked_at_most_once_per_simulated_second_between_fills(
    kind: str,
) -> None:
    k, _ = setup(RiskLimits(max_daily_loss=Decimal(1_000)))
    mark(k, kind, 1 * S, 100)
    fill_all(k, act(k, lambda s: s.buy("X", 100 * Q)), 100)  # a fill checks at once
    fill_ts = k.now
    assert of(TradingStateChanged, mark(k, kind, fill_ts + S // 2, 80)) == []  # within 1 s
    assert k.risk.state is TradingState.ACTIVE
    out = mark(k, kind, fill_ts + S, 80)  # the next second: checked
    assert [c.state for c in of(TradingStateChanged, out)] == [  # type: ignore[attr-defined]
        TradingState.REDUCING
    ]


def test_a_book_without_both_sides_marks_nothing_and_checks_nothing() -> None:
    """No price, no mark: a one-sided book moves neither the mark nor the loss check."""
    k, _ = setup(RiskLimits(max_daily_loss=Decimal(1_000)))
    k.handle(market("bar", 1 * S, 100))
    fill_all(k, act(k, lambda s: s.buy("X", 100 * Q)), 100)
    one_sided = BookSnapshot(seq=0, ts_event=9 * S, ts_init=9 * S, instrument_id="X",
                             bids=((fixed(50), Q),), asks=())
    assert of(TradingStateChanged, k.handle(one_sided)) == []
    assert k.portfolio.positions["X"].mark == fixed(100)


def test_a_restored_kernel_still_fits_the_protective_stop() -> None:
    """The count of protective legs target_position reads is rebuilt on restore."""
    k, _ = long_100_at_50_with_stop(RiskLimits())
    restored, _ = setup(RiskLimits())
    restored.load_state(k.state())
    out = act(restored, lambda s: s.target_position("X", 0))
    assert len(of(CancelOrder, out)) == 1 and len(of(SubmitOrder, out)) == 1


def test_a_restored_kernel_values_orders_at_once() -> None:
    """The last prices are part of the state: after a restore, before any new data, an order
    is valued at the last price seen, not refused for want of one."""
    limits = RiskLimits(max_order_notional=Decimal(10_000))
    k, _ = setup(limits)
    k.handle(bar(1, 100))
    restored, _ = setup(limits)
    restored.load_state(k.state())
    out = act(restored, lambda s: s.buy("X", 500 * Q))
    assert [m.reason_code for m in of(OrderDenied, out)] == ["max_order_notional"]  # type: ignore[attr-defined]


def test_a_strategy_host_knows_the_limits_and_never_trips_the_daily_loss_itself() -> None:
    """A session's strategy kernel (``risk_elsewhere``) holds the limits for its strategy to
    read (``Strategy.limits``, as in a backtest) but enforces none: the daily loss that makes
    a backtest's kernel close-only is the risk actor's to trip, once, for the account."""
    limits = RiskLimits(max_daily_loss=Decimal(1_000))
    strategy = Scripted("s", instruments=("X",))
    k = Kernel(registry=REG, strategies=[strategy], risk_limits=limits, risk_elsewhere=True,
               initial_cash=fixed(1_000_000), namespace="kr", seed=1)
    k.start(0)
    assert strategy.limits.max_daily_loss == Decimal(1_000)
    mark(k, "bar", 1 * S, 100)
    (intent,) = of(SubmitOrder, act(k, lambda s: s.buy("X", 100 * Q)))
    k.handle(intent)  # risk's answer: approved as sent
    fill_all(k, [intent], 100)
    assert k.portfolio.positions["X"].quantity == 100 * Q
    out = mark(k, "bar", 5 * S, 80)  # down 2,000 on the position
    assert of(TradingStateChanged, out) == []
    assert k.risk.state is TradingState.ACTIVE
