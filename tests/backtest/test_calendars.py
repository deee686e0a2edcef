"""Exchange calendars: sessions from exchange-calendars, in risk, in the venue and in the config."""

from __future__ import annotations

import datetime as dt
from typing import Any

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


# --- a whole backtest ------------------------------------------------------------------------


def _quotes(start_ns: int, n: int, step_s: int) -> Any:
    import numpy as np
    import pyarrow as pa

    from backtest.feed import Feed

    rng = np.random.default_rng(3)
    mid = np.round(100 + np.cumsum(rng.normal(0, 0.05, n)), 2)
    ts = start_ns + np.arange(n, dtype=np.int64) * step_s * S
    table = pa.table({
        "ts_event": ts, "ts_init": ts, "seq": np.zeros(n, np.int64),
        "instrument_id": ["X"] * n,
        "bid_price": np.round(mid * 100).astype(np.int64) * 10**7,
        "ask_price": np.round((mid + 0.02) * 100).astype(np.int64) * 10**7,
        "bid_size": np.full(n, 20 * 10**9), "ask_size": np.full(n, 20 * 10**9),
    })
    feed = Feed(tables={("quotes", "X"): table}, dataset_hash="cal")
    feed.index()
    return feed


def _backtest(calendar: str | None, feed: Any) -> tuple[Any, Any]:
    from backtest.api import build_run
    from backtest.config import load_config
    from backtest.engine import run_loop

    instrument: dict[str, Any] = {"id": "X", "price_precision": 2}
    if calendar is not None:
        instrument["calendar"] = calendar
    config = load_config({
        "name": "cal", "seed": 1, "initial_cash": 10**6, "instruments": [instrument],
        "data": [{"kind": "quotes", "instrument": "X", "path": "unused"}],
        "strategies": [{"id": "mm", "class": "backtest.strategies.market_maker:MarketMaker",
                        "instruments": ["X"],
                        "params": {"size": 5, "max_inventory": 50, "requote_ms": 500,
                                   "vol_mult": 0.5, "levels": 1}}],
        "venue": {"latency": {"kind": "constant", "entry_ns": 10**6, "response_ns": 10**6},
                  "fills": {"kind": "l1"}, "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 0}},
        "risk": {"max_position": 40},
    })
    kernel, venue, _ = build_run(config, feed)
    log = run_loop(kernel, venue, feed.iter_messages(), start_ns=feed.start_ns)
    return kernel, log


def test_a_backtest_inside_the_session_trades_as_without_a_calendar() -> None:
    feed = _quotes(utc(2026, 12, 7, 15, 0), 600, 5)  # 10:00-10:50 New York
    plain_kernel, plain = _backtest(None, feed)
    cal_kernel, cal = _backtest("XNYS", _quotes(utc(2026, 12, 7, 15, 0), 600, 5))
    def trades(log: Any) -> list[tuple[int, int, int, int, int]]:
        return [(f.ts_event, f.side, f.last_qty, f.last_price, f.fee) for f in log.fills]

    assert plain.fills and trades(cal) == trades(plain)  # ids differ: the config hash names them
    assert cal_kernel.state()["portfolio"] == plain_kernel.state()["portfolio"]
    assert not cal.denials and not plain.denials


def test_a_backtest_across_the_open_trades_only_in_the_session() -> None:
    open_ns = utc(2026, 12, 7, 14, 30)
    _, log = _backtest("XNYS", _quotes(utc(2026, 12, 7, 14, 0), 720, 5))  # to 15:00
    sessions = [d for d in log.denials if d.reason_code == "session"]
    assert sessions and all(d.ts_event < open_ns for d in sessions)
    assert log.fills and all(f.ts_event >= open_ns for f in log.fills)
    _, again = _backtest("XNYS", _quotes(utc(2026, 12, 7, 14, 0), 720, 5))
    assert [f.fill_id for f in again.fills] == [f.fill_id for f in log.fills]  # deterministic
