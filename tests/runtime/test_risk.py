"""Risk rules only block or reduce; every denial is an event with a reason code."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.instruments import Instrument, InstrumentRegistry
from runtime.messages import Liquidity, OrderFilled, OrderSide, OrderType, SubmitOrder, TradingState
from runtime.portfolio import Portfolio
from runtime.prices import LastPrices
from runtime.risk import RiskEngine, RiskLimits
from runtime.values import fixed

Q = 10**9
S = 10**9
REG = InstrumentRegistry([Instrument(instrument_id="X", price_precision=2)])


def engine(limits: RiskLimits, pending=(0, 0), last_price=100, cash=100_000):
    """A risk engine whose instrument last traded at ``last_price`` at t=0 (None: no data)."""
    portfolio = Portfolio(REG, initial_cash=fixed(cash))
    prices = LastPrices()
    if last_price is not None:
        prices.on_trade("X", 0, fixed(last_price))
    risk = RiskEngine(limits, REG, portfolio, lambda _i: pending, prices)
    risk.on_clock(0)
    return risk, portfolio


def order(qty=10, side=OrderSide.BUY, price=100, n=1, reduce_only=False) -> SubmitOrder:
    return SubmitOrder(
        seq=0,
        ts_event=0,
        ts_init=0,
        client_order_id=f"r-s-{n}",
        strategy_id="s",
        instrument_id="X",
        side=side,
        order_type=OrderType.LIMIT,
        quantity=qty * Q,
        price=fixed(price),
        reduce_only=reduce_only,
    )


def fill(qty, price, side=OrderSide.BUY, n=1) -> OrderFilled:
    return OrderFilled(
        seq=0,
        ts_event=0,
        ts_init=0,
        client_order_id=f"r-s-{n}",
        strategy_id="s",
        instrument_id="X",
        venue_order_id="v",
        fill_id=f"f{n}",
        side=side,
        last_qty=qty * Q,
        last_price=fixed(price),
        cum_qty=qty * Q,
        leaves_qty=0,
        fee=0,
        currency="USD",
        liquidity=Liquidity.TAKER,
    )


@pytest.mark.parametrize(
    ("limits", "cmd", "code"),
    [
        (RiskLimits(max_order_notional=Decimal(999)), order(10, price=100), "max_order_notional"),
        (RiskLimits(max_position=Decimal(5)), order(10), "max_position"),
        (RiskLimits(max_position_notional=Decimal(500)), order(10), "max_position_notional"),
        (RiskLimits(max_gross_exposure=Decimal(500)), order(10), "gross_exposure"),
        (RiskLimits(), order(10, price=100.001), "instrument.tick_size"),
    ],
)
def test_denials_carry_reason_codes(limits, cmd, code) -> None:
    risk, _ = engine(limits)
    approved, denial = risk.check(cmd, 0)
    assert approved is None
    assert denial is not None and denial.reason_code == code
    assert denial.client_order_id == cmd.client_order_id and denial.reason


def test_pending_orders_count_toward_position_limit() -> None:
    risk, _ = engine(RiskLimits(max_position=Decimal(15)), pending=(10 * Q, 0))
    _, denial = risk.check(order(10), 0)
    assert denial is not None and "20" in denial.reason


def test_stale_and_missing_data() -> None:
    risk, _ = engine(RiskLimits(stale_data_s=1.0), last_price=None)
    assert risk.check(order(), 0)[1].reason_code == "no_market_data"
    risk, _ = engine(RiskLimits(stale_data_s=1.0))
    assert risk.check(order(), 2 * S)[1].reason_code == "stale_data"
    assert risk.check(order(), S // 2)[0] is not None


def test_order_rate_and_trades_per_day() -> None:
    risk, _ = engine(RiskLimits(max_orders_per_window=2, order_window_s=1.0))
    assert risk.check(order(n=1), 0)[0] and risk.check(order(n=2), 1)[0]
    assert risk.check(order(n=3), 2)[1].reason_code == "order_rate"
    assert risk.check(order(n=4), S + 2)[0] is not None  # window slid
    risk, _ = engine(RiskLimits(max_trades_per_day=1))
    assert risk.check(order(n=1), 0)[0]
    assert risk.check(order(n=2), 1)[1].reason_code == "trades_per_day"
    risk.on_clock(86_400 * S)  # next UTC day
    assert risk.check(order(n=3), 86_400 * S)[0] is not None


def test_halted_blocks_everything_and_reducing_clips_to_close() -> None:
    risk, portfolio = engine(RiskLimits())
    portfolio.apply_fill(fill(10, 100))
    risk.halt("operator", 0)
    assert risk.check(order(1, side=OrderSide.SELL), 0)[1].reason_code == "halted"
    risk.set_state(TradingState.REDUCING, "test", 0)
    assert risk.check(order(1), 0)[1].reason_code == "reducing"  # a buy grows a long
    approved, denial = risk.check(order(25, side=OrderSide.SELL), 0)
    assert denial is None and approved.quantity == 10 * Q  # reduced, never flipped


def test_daily_loss_moves_to_reducing_and_cooldown_blocks_entries() -> None:
    risk, portfolio = engine(RiskLimits(max_daily_loss=Decimal(50), cooldown_after_loss_s=60))
    portfolio.apply_fill(fill(10, 100))
    portfolio.mark("X", fixed(94))
    change = risk.on_clock(S)
    assert change is not None and change.state is TradingState.REDUCING
    assert "daily loss 60" in change.reason
    risk2, _ = engine(RiskLimits(cooldown_after_loss_s=60))
    risk2.on_realized(-fixed(1), 0)
    assert risk2.check(order(), 30 * S)[1].reason_code == "cooldown"
    assert risk2.check(order(), 61 * S)[0] is not None


def test_price_band() -> None:
    risk, _ = engine(RiskLimits(price_band_pct=Decimal(5)))  # no position needed: last is 100
    assert risk.check(order(1, price=106), 0)[1].reason_code == "price_band"
    assert risk.check(order(1, price=104), 0)[0] is not None


def market_order(qty: int, side: OrderSide = OrderSide.BUY) -> SubmitOrder:
    return SubmitOrder(seq=0, ts_event=0, ts_init=0, client_order_id="r-s-9", strategy_id="s",
                       instrument_id="X", side=side, order_type=OrderType.MARKET,
                       quantity=qty * Q)


def test_orders_are_valued_at_the_market_never_below_it() -> None:
    risk, _ = engine(RiskLimits(max_order_notional=Decimal(999)), last_price=100)
    _, denial = risk.check(market_order(10), 0)  # a market order: at the last price, 1,000
    assert denial is not None and denial.reason_code == "max_order_notional"
    _, denial = risk.check(order(10, side=OrderSide.SELL, price=1), 0)  # marketable: at 100
    assert denial is not None and "1000" in denial.reason
    assert risk.check(market_order(9), 0)[0] is not None
    risk, _ = engine(RiskLimits(max_order_notional=Decimal(999)), last_price=None)
    assert risk.check(market_order(1), 0)[1].reason_code == "no_market_data"
    risk, _ = engine(RiskLimits(), last_price=None)  # no rule needs a price: no denial
    assert risk.check(market_order(1), 0)[0] is not None


def test_exits_skip_exposure_rules_and_cooldown() -> None:
    risk, portfolio = engine(RiskLimits(max_order_notional=Decimal(10), cooldown_after_loss_s=60))
    portfolio.apply_fill(fill(10, 100))
    risk.on_realized(-fixed(1), 0)
    assert risk.check(market_order(10, OrderSide.SELL), S)[0] is not None
    assert risk.check(market_order(11, OrderSide.SELL), S)[1].reason_code == "cooldown"


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 1_000),
    st.integers(1, 1_000),
    st.integers(1, 100_000),
    st.sampled_from([OrderSide.BUY, OrderSide.SELL]),
    st.integers(0, 1_000),
)
def test_an_order_that_only_reduces_is_never_denied_by_exposure_limits(
    held: int, qty: int, limit: int, side: OrderSide, last: int
) -> None:
    limits = RiskLimits(max_order_notional=Decimal(limit), max_position=Decimal(limit),
                        max_position_notional=Decimal(limit), max_gross_exposure=Decimal(limit))
    risk, portfolio = engine(limits, last_price=last or None)
    opposite = OrderSide.SELL if side is OrderSide.BUY else OrderSide.BUY
    portfolio.apply_fill(fill(held, 100, side=opposite))
    approved, denial = risk.check(market_order(min(qty, held), side), S)
    assert denial is None and approved is not None
