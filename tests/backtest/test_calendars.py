"""Exchange calendars: sessions from exchange-calendars, in risk, in the venue and in the config."""

from __future__ import annotations

import datetime as dt

import pytest

from backtest.calendars import CalendarConfig
from backtest.config import InstrumentConfig
from runtime.calendar import SessionCalendar
from runtime.errors import ConfigError
from runtime.instruments import Instrument, InstrumentRegistry
from runtime.messages import (
    OrderExpired,
    OrderRejected,
    OrderSide,
    OrderType,
    SubmitOrder,
    TimeInForce,
)
from runtime.portfolio import Portfolio
from runtime.prices import LastPrices
from runtime.risk import RiskEngine, RiskLimits
from runtime.values import fixed
from tests.backtest.test_venue_helpers import Q, all_reports, bar, make_venue, px, submit

S = 10**9
XNYS = CalendarConfig(name="XNYS").resolve()
XNYS_EXT = CalendarConfig(name="XNYS", pre_market_minutes=330, post_market_minutes=240).resolve()
FUTURES = CalendarConfig(name="us_futures").resolve()


def utc(*parts: int) -> int:
    return int(dt.datetime(*parts, tzinfo=dt.UTC).timestamp()) * S


def test_nyse_regular_hours_holidays_and_early_close() -> None:
    assert XNYS.in_session(utc(2026, 12, 7, 14, 30))  # 09:30 New York
    assert not XNYS.in_session(utc(2026, 12, 7, 14, 29))
    assert not XNYS.in_session(utc(2026, 12, 7, 21, 0))  # 16:00: the close is exclusive
    assert not XNYS.in_session(utc(2026, 12, 25, 15, 0))  # Christmas
    assert not XNYS.in_session(utc(2026, 11, 27, 18, 30))  # the day after Thanksgiving: 13:00
    assert XNYS.in_session(utc(2026, 11, 27, 17, 59))
    reason = XNYS.why_closed(utc(2026, 12, 25, 15, 0))
    assert reason is not None and "XNYS" in reason and "opens 2026-12-28 14:30 UTC" in reason


def test_pre_and_post_market_only_when_configured() -> None:
    pre, post = utc(2026, 12, 7, 9, 0), utc(2026, 12, 8, 0, 59)  # 04:00 and 19:59 New York
    assert not XNYS.in_session(pre) and not XNYS.in_session(post)
    assert XNYS_EXT.in_session(pre) and XNYS_EXT.in_session(post)
    assert not XNYS_EXT.in_session(utc(2026, 12, 7, 8, 59))
    assert XNYS_EXT.day_end_ns(pre) == utc(2026, 12, 8, 1, 0)  # the post-market close
    assert XNYS.day_end_ns(pre) == utc(2026, 12, 7, 21, 0)


def test_resolution_is_fixed_by_the_config_and_bad_names_are_refused() -> None:
    assert CalendarConfig.model_validate("XNYS") == CalendarConfig(name="XNYS")
    beyond = XNYS.why_closed(utc(2031, 6, 2, 15, 0))
    assert beyond is not None and "calendar.start/end" in beyond
    assert (
        CalendarConfig(name="XNYS", end=dt.date(2031, 12, 31))
        .resolve()
        .in_session(utc(2031, 6, 2, 15, 0))
    )
    with pytest.raises(ConfigError, match="unknown exchange calendar 'NOPE'"):
        CalendarConfig(name="NOPE").resolve()
    with pytest.raises(ValueError, match="calendar range is empty"):
        CalendarConfig(name="XNYS", start=dt.date(2030, 1, 1), end=dt.date(2020, 1, 1))


def test_windows_must_be_sorted() -> None:
    with pytest.raises(ConfigError, match="sorted"):
        SessionCalendar(
            name="BAD", opens=(10, 5), closes=(20, 8), labels=(0, 1), start_ns=0, end_ns=100
        )


def test_instrument_config_takes_a_calendar_or_sessions_not_both() -> None:
    built = InstrumentConfig.model_validate({"id": "AAPL", "calendar": "XNAS"}).build()
    assert built.calendar is not None and built.calendar.name == "XNAS"
    with pytest.raises(ValueError, match="either calendar or sessions"):
        InstrumentConfig.model_validate(
            {"id": "AAPL", "calendar": "XNAS", "sessions": [{"open": "09:30", "close": "16:00"}]}
        )


# --- pre-trade risk --------------------------------------------------------------------------


def _risk(calendar: SessionCalendar | None, limits: RiskLimits) -> RiskEngine:
    registry = InstrumentRegistry([Instrument(instrument_id="X", calendar=calendar)])
    prices = LastPrices()
    prices.on_trade("X", 0, fixed(100))
    return RiskEngine(
        limits, registry, Portfolio(registry, initial_cash=fixed(10**6)), lambda _i: (0, 0), prices
    )


def _order(n: int) -> SubmitOrder:
    return SubmitOrder(
        seq=0,
        ts_event=0,
        ts_init=0,
        client_order_id=f"r-s-{n}",
        strategy_id="s",
        instrument_id="X",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=Q,
        price=fixed(100),
    )


def test_risk_denies_outside_the_session_naming_the_next_open() -> None:
    risk = _risk(XNYS, RiskLimits())
    approved, denied = risk.check(_order(1), utc(2026, 12, 7, 9, 0))  # 04:00 New York
    assert approved is None and denied is not None and denied.reason_code == "session"
    assert "X: " in denied.reason and "opens 2026-12-07 14:30 UTC" in denied.reason
    assert risk.check(_order(2), utc(2026, 12, 7, 15, 0))[0] is not None
    extended = _risk(XNYS_EXT, RiskLimits())
    assert extended.check(_order(3), utc(2026, 12, 7, 9, 0))[0] is not None
    plain = _risk(None, RiskLimits())  # no calendar: no session rule, as before
    assert plain.check(_order(4), utc(2026, 12, 7, 9, 0))[0] is not None


def test_trades_per_day_roll_at_the_session_boundary_not_utc_midnight() -> None:
    """CME's equity futures trade 17:00–16:00 Chicago: UTC midnight falls inside a session."""
    risk = _risk(FUTURES, RiskLimits(max_trades_per_day=1))
    assert risk.check(_order(1), utc(2026, 12, 7, 23, 30))[0] is not None  # Monday's evening
    _, denied = risk.check(_order(2), utc(2026, 12, 8, 0, 30))  # past UTC midnight: same day
    assert denied is not None and denied.reason_code == "trades_per_day"
    assert risk.check(_order(3), utc(2026, 12, 8, 23, 30))[0] is not None  # the next session
    utc_days = _risk(None, RiskLimits(max_trades_per_day=1))  # no calendar: the UTC day
    assert utc_days.check(_order(1), utc(2026, 12, 7, 23, 30))[0] is not None
    assert utc_days.check(_order(2), utc(2026, 12, 8, 0, 30))[0] is not None


def test_daily_limits_across_calendars_with_different_sessions_are_refused() -> None:
    registry = InstrumentRegistry(
        [
            Instrument(instrument_id="X", calendar=XNYS),
            Instrument(instrument_id="T", calendar=CalendarConfig(name="XTAI").resolve()),
        ]
    )
    with pytest.raises(ConfigError, match="one trading day"):
        RiskEngine(
            RiskLimits(max_trades_per_day=5),
            registry,
            Portfolio(registry, initial_cash=0),
            lambda _i: (0, 0),
            LastPrices(),
        )
    RiskEngine(
        RiskLimits(), registry, Portfolio(registry, initial_cash=0), lambda _i: (0, 0), LastPrices()
    )  # no daily limit: no day to agree on


# --- the simulated venue ---------------------------------------------------------------------


def test_venue_refuses_outside_the_calendar_and_expires_day_orders_at_its_close() -> None:
    aaa = Instrument(instrument_id="AAA", calendar=XNYS)
    venue = make_venue({"kind": "bars", "price": "next_open", "path": "auto"}, instruments=(aaa,))
    open_ts = utc(2026, 11, 27, 14, 31)
    venue.on_market(bar(open_ts, "10", "10", "10", "10"))
    submit(
        venue,
        "day",
        OrderSide.BUY,
        Q,
        ts=open_ts,
        order_type=OrderType.LIMIT,
        price=px("5"),
        tif=TimeInForce.DAY,
    )
    venue.on_market(bar(utc(2026, 11, 27, 19, 0), "10", "10", "10", "10"))  # after the 13:00 close
    submit(venue, "holiday", OrderSide.BUY, Q, ts=utc(2026, 12, 25, 15, 0))
    reports = all_reports(venue)
    rejected = [r for r in reports if isinstance(r, OrderRejected)]
    assert [(r.client_order_id, r.venue_code) for r in rejected] == [("holiday", "session")]
    assert "XNYS market is closed" in rejected[0].reason
    expired = [r for r in reports if isinstance(r, OrderExpired)]
    assert [(r.client_order_id, r.ts_event) for r in expired] == [("day", utc(2026, 11, 27, 18))]
