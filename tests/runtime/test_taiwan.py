"""Taiwan market rules: lots, ticks, price limits, fees and taxes, TAIFEX specs and sessions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from backtest.calendars import CalendarConfig
from runtime.errors import ConfigError
from runtime.taiwan import price_limits, taifex_future, twse_stock
from runtime.values import FIXED_SCALE, fixed

Q = FIXED_SCALE
TPE = ZoneInfo("Asia/Taipei")


def ns(year: int, month: int, day: int, hour: int, minute: int) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=TPE).timestamp()) * 10**9


def test_board_lots_and_odd_lots() -> None:
    board, odd = twse_stock("2330"), twse_stock("2330", lot="odd")
    assert board.check_order(quantity=1000 * Q, price=fixed(600)) is None
    violation = board.check_order(quantity=500 * Q, price=fixed(600))
    assert violation is not None and violation.rule == "lot_size"
    assert odd.instrument_id == "2330.TWSE.ODD"
    assert odd.check_order(quantity=37 * Q, price=fixed(600)) is None


@pytest.mark.parametrize(
    ("price", "ok"),
    [
        ("9.99", True),
        ("10.03", False),
        ("10.05", True),
        ("99.9", True),
        ("100.3", False),
        ("100.5", True),
        ("999", True),
        ("1005", True),
        ("1003", False),
    ],
)
def test_twse_tick_ladder(price: str, ok: bool) -> None:
    violation = twse_stock("2330").check_order(quantity=1000 * Q, price=fixed(price))
    assert (violation is None) is ok


def test_daily_limits_are_ten_percent_on_the_tick_grid() -> None:
    stock = twse_stock("2330")
    assert price_limits(stock, fixed(1000)) == (fixed(900), fixed(1100))
    assert price_limits(stock, fixed(95)) == (fixed("85.5"), fixed("104.5"))
    assert price_limits(stock, fixed("110.5")) == (fixed("99.5"), fixed("121.5"))


def test_commission_discount_minimum_and_sell_taxes() -> None:
    stock = twse_stock("2330", discount=Decimal("0.6"))
    notional = stock.notional(fixed(600), 1000 * Q)  # 600,000 TWD
    buy = stock.fees.fee(notional=notional, quantity=1000 * Q, is_maker=False, is_sell=False)
    assert buy == fixed(513)  # 855 × 0.6, rounded down
    sell = stock.fees.fee(notional=notional, quantity=1000 * Q, is_maker=False, is_sell=True)
    assert sell == fixed(513 + 1800)  # + 0.3% tax
    day = stock.fees.fee(
        notional=notional, quantity=1000 * Q, is_maker=False, is_sell=True, is_day_trade=True
    )
    assert day == fixed(513 + 900)  # + 0.15% day-trade tax
    small = twse_stock("2330", lot="odd")
    tiny = small.fees.fee(
        notional=small.notional(fixed(600), Q), quantity=Q, is_maker=False, is_sell=False
    )
    assert tiny == fixed(20)  # the 20 TWD minimum


def test_taifex_contract_specs_and_fees() -> None:
    txf, mxf = taifex_future("TXF", "202612"), taifex_future("MXF", "202612")
    assert txf.notional(fixed(23000), Q) == fixed(4_600_000)  # 200 TWD per point
    assert mxf.notional(fixed(23000), Q) == fixed(1_150_000)  # 50 TWD per point
    assert txf.check_order(quantity=Q, price=fixed("23000.5")) is not None  # tick 1 point
    fee = txf.fees.fee(notional=fixed(4_600_000), quantity=Q, is_maker=False, is_sell=True)
    assert fee == fixed(50 + 92)  # commission + 0.002% tax on both sides
    with pytest.raises(ConfigError):
        taifex_future("ZZZ", "202612")


def test_sessions_in_taipei() -> None:
    """TWSE stocks trade by the XTAI calendar (holidays included); TAIFEX by its own hours."""
    xtai = CalendarConfig(name="XTAI").resolve()
    stock, txf = twse_stock("2330", calendar=xtai), taifex_future("TXF", "202612")
    assert stock.in_session(ns(2026, 11, 20, 9, 0))
    assert not stock.in_session(ns(2026, 11, 20, 13, 30))
    assert not stock.in_session(ns(2026, 10, 9, 10, 0))  # National Day eve holiday (Friday)
    assert not stock.in_session(ns(2026, 11, 21, 10, 0))  # Saturday
    assert twse_stock("2330").in_session(ns(2026, 11, 21, 10, 0))  # no calendar: no rule
    odd = twse_stock(
        "2330", lot="odd", calendar=CalendarConfig(name="XTAI", post_market_minutes=60).resolve()
    )
    assert odd.in_session(ns(2026, 11, 20, 14, 0)) and not odd.in_session(ns(2026, 11, 20, 14, 30))
    assert txf.in_session(ns(2026, 11, 20, 8, 45)) and not txf.in_session(ns(2026, 11, 20, 14, 0))
    assert txf.in_session(ns(2026, 11, 20, 23, 0))  # Friday night session
    assert txf.in_session(ns(2026, 11, 21, 4, 59))  # ... into Saturday morning
    assert not txf.in_session(ns(2026, 11, 21, 5, 0))
    assert not txf.in_session(ns(2026, 11, 23, 2, 0))  # Monday 02:00: no Sunday night session
