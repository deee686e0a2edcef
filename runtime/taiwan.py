"""Taiwan market rules: TWSE stocks (board and odd lots) and TAIFEX TXF/MXF futures.

Functions here *build* :class:`~runtime.instruments.Instrument` values; they do not change the
registry module. What they encode:

* TWSE stocks: a board lot is 1,000 shares, odd lots trade in single shares (intraday odd-lot
  session 09:00–13:30 and after-hours 13:40–14:30); prices move on :func:`twse_tick_ladder`;
  daily price limits are ±10% of the reference price (:func:`price_limits`); commission 0.1425%
  of notional (brokers discount it: ``discount=0.6`` is 40% off), at least 20 TWD per order fill
  unless a broker's odd-lot minimum is given; securities transaction tax on sells 0.3% (0.15% for
  day trades); fees round down to whole TWD.
* TAIFEX futures: TXF (TAIEX futures, 200 TWD per index point) and MXF (mini, 50 TWD per
  point), tick 1 point, ±10% daily limit; costs are the broker's commission per contract plus the
  futures transaction tax (0.002% of notional, both sides), rounded to whole TWD.
* Sessions: TWSE stocks trade by the exchange's calendar, passed in as a
  :class:`~runtime.calendar.SessionCalendar` (``XTAI`` from the ``exchange-calendars`` package,
  resolved outside the core by ``backtest/calendars.py``: 09:00–13:30 Asia/Taipei on trading days,
  holidays included; odd lots add a 60-minute post-market window for the after-hours odd-lot
  session to 14:30). TAIFEX futures, which the package does not cover, keep their hand-written
  hours: day 08:45–13:45 and night 15:00–05:00 (the night session of a weekday runs past
  midnight into the next calendar day).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from runtime.calendar import SessionCalendar
from runtime.errors import ConfigError
from runtime.instruments import FeeSchedule, Instrument, TickBand, TradingSession, twse_tick_ladder
from runtime.values import FIXED_SCALE, Rounding, fixed

__all__ = [
    "TAIFEX_DAY",
    "TAIFEX_NIGHT",
    "TAIPEI",
    "FutureSpec",
    "price_limits",
    "taifex_future",
    "twse_fees",
    "twse_stock",
]

TAIPEI = "Asia/Taipei"
_WEEKDAYS = (0, 1, 2, 3, 4)
TAIFEX_DAY = (TradingSession(timezone=TAIPEI, open="08:45", close="13:45", weekdays=_WEEKDAYS),)
TAIFEX_NIGHT = (
    TradingSession(timezone=TAIPEI, open="15:00", close="24:00", weekdays=_WEEKDAYS),
    # the part after midnight belongs to the previous weekday's night session (Tue–Sat mornings)
    TradingSession(timezone=TAIPEI, open="00:00", close="05:00", weekdays=(1, 2, 3, 4, 5)),
)

BOARD_LOT_SHARES = 1_000
COMMISSION_RATE = Decimal("0.001425")
MIN_COMMISSION_TWD = Decimal(20)
SELL_TAX_RATE = Decimal("0.003")
DAY_TRADE_SELL_TAX_RATE = Decimal("0.0015")
FUTURES_TAX_RATE = Decimal("0.00002")
PRICE_LIMIT_RATE = Decimal("0.1")


class FutureSpec(msgspec.Struct, frozen=True):
    root: str
    multiplier_twd: int  # TWD per index point
    default_commission_twd: Decimal  # per contract per side; brokers differ


FUTURES: dict[str, FutureSpec] = {
    "TXF": FutureSpec("TXF", 200, Decimal(50)),
    "MXF": FutureSpec("MXF", 50, Decimal(20)),
}


def twse_fees(
    *, discount: Decimal = Decimal(1), minimum_twd: Decimal = MIN_COMMISSION_TWD
) -> FeeSchedule:
    """Commission 0.1425% × discount (at least ``minimum_twd``), sell tax 0.3% / 0.15% day trade."""
    if not Decimal(0) < discount <= Decimal(1):
        raise ConfigError(f"discount must be in (0, 1], got {discount}", field="discount")
    return FeeSchedule(
        maker_rate=fixed(COMMISSION_RATE),
        taker_rate=fixed(COMMISSION_RATE),
        minimum=fixed(minimum_twd),
        sell_tax_rate=fixed(SELL_TAX_RATE),
        day_trade_sell_tax_rate=fixed(DAY_TRADE_SELL_TAX_RATE),
        discount=fixed(discount),
        rounding_unit=fixed(1),
        rounding=Rounding.DOWN,
    )


def twse_stock(
    code: str,
    *,
    lot: Literal["board", "odd"] = "board",
    discount: Decimal = Decimal(1),
    odd_lot_minimum_twd: Decimal | None = None,
    calendar: SessionCalendar | None = None,
) -> Instrument:
    """A TWSE stock: ``2330.TWSE`` trades in board lots of 1,000 shares; ``2330.TWSE.ODD`` in
    single shares. ``calendar`` is the exchange's (``XTAI``; for odd lots resolved with
    ``post_market_minutes=60``); without one the stock has no session rule."""
    odd = lot == "odd"
    minimum = odd_lot_minimum_twd if odd and odd_lot_minimum_twd is not None else MIN_COMMISSION_TWD
    unit = FIXED_SCALE * (1 if odd else BOARD_LOT_SHARES)
    return Instrument(
        instrument_id=f"{code}.TWSE.ODD" if odd else f"{code}.TWSE",
        venue="TWSE",
        asset_class="equity",
        currency="TWD",
        price_precision=2,
        size_precision=0,
        tick_ladder=twse_tick_ladder(),
        lot_size=unit,
        min_quantity=unit,
        price_limit_rate=fixed(PRICE_LIMIT_RATE),
        fees=twse_fees(discount=discount, minimum_twd=minimum),
        calendar=calendar,
    )


def taifex_future(
    root: str,
    month: str,
    *,
    commission_twd: Decimal | None = None,
    night: bool = True,
) -> Instrument:
    """``TXF202612.TAIFEX`` / ``MXF202612.TAIFEX``: index futures, tick 1 point, ±10% limit.

    ``month`` is ``YYYYMM``; ``commission_twd`` the broker's fee per contract per side.
    """
    spec = FUTURES.get(root)
    if spec is None:
        raise ConfigError(f"unknown TAIFEX root {root!r} (known: {', '.join(sorted(FUTURES))})")
    if len(month) != 6 or not month.isdigit():
        raise ConfigError(f"contract month must be YYYYMM, got {month!r}", field="month")
    commission = spec.default_commission_twd if commission_twd is None else commission_twd
    return Instrument(
        instrument_id=f"{root}{month}.TAIFEX",
        venue="TAIFEX",
        asset_class="future",
        currency="TWD",
        price_precision=0,
        size_precision=0,
        tick_ladder=(TickBand(0, fixed(1)),),
        lot_size=FIXED_SCALE,
        min_quantity=FIXED_SCALE,
        multiplier=fixed(spec.multiplier_twd),
        price_limit_rate=fixed(PRICE_LIMIT_RATE),
        fees=FeeSchedule(
            maker_rate=fixed(FUTURES_TAX_RATE),  # the transaction tax, on both sides
            taker_rate=fixed(FUTURES_TAX_RATE),
            per_unit=fixed(commission),
            rounding_unit=fixed(1),
            rounding=Rounding.HALF_UP,
        ),
        sessions=TAIFEX_DAY + TAIFEX_NIGHT if night else TAIFEX_DAY,
    )


def price_limits(instrument: Instrument, reference_price: int) -> tuple[int, int]:
    """(limit down, limit up) around ``reference_price``: ±rate, kept inside the band and on the
    tick grid that applies at each limit (up rounds down, down rounds up)."""
    rate = instrument.price_limit_rate
    if rate is None:
        raise ConfigError(f"{instrument.instrument_id} has no daily price limit")
    up_raw = reference_price * (FIXED_SCALE + rate) // FIXED_SCALE
    down_raw = -(-reference_price * (FIXED_SCALE - rate) // FIXED_SCALE)
    up = instrument.quantize_price(up_raw, Rounding.FLOOR)
    down = instrument.quantize_price(down_raw, Rounding.CEILING)
    return down, up
