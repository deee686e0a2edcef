"""The instrument registry: tick ladders, lots, minimums, multipliers, fees and sessions.

An instrument trades either by an exchange calendar (``calendar``: a
:class:`~runtime.calendar.SessionCalendar` resolved outside the core from the
``exchange-calendars`` package) or by hand-written daily ``sessions`` for markets the package does
not cover (TAIFEX futures); with neither it trades at any time and its day is the UTC day.

Orders are quantised with an explicit :class:`~runtime.values.Rounding`; an order that violates
precision, lot or notional is refused with a :class:`Violation` that names the rule and values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from zoneinfo import ZoneInfo

import msgspec

from runtime.calendar import SessionCalendar, utc_day
from runtime.errors import ConfigError
from runtime.values import FIXED_PRECISION, FIXED_SCALE, Rounding, div_round, fixed, from_fixed

__all__ = [
    "FeeSchedule",
    "Instrument",
    "InstrumentRegistry",
    "TickBand",
    "TradingSession",
    "Violation",
    "twse_tick_ladder",
]

_BPS = 10_000


class TickBand(msgspec.Struct, frozen=True):
    """From ``min_price`` (inclusive, fixed point) upward, prices move in steps of ``tick``."""

    min_price: int
    tick: int


class FeeSchedule(msgspec.Struct, frozen=True, kw_only=True):
    """Exact fee rules. Rates are fixed-point fractions (``fixed("0.001425")`` is 0.1425%)."""

    maker_rate: int = 0
    taker_rate: int = 0
    per_unit: int = 0  # money per share/contract, fixed point
    minimum: int = 0  # minimum fee per fill, money
    sell_tax_rate: int = 0  # e.g. Taiwan securities transaction tax 0.3%
    day_trade_sell_tax_rate: int = 0  # e.g. 0.15% for Taiwan day trades
    discount: int = FIXED_SCALE  # broker discount multiplier on commissions (0.6 = 40% off)
    rounding_unit: int = 1  # fees are rounded to a multiple of this (TWD: fixed(1))
    rounding: Rounding = Rounding.HALF_UP

    def fee(
        self,
        *,
        notional: int,
        quantity: int,
        is_maker: bool,
        is_sell: bool,
        is_day_trade: bool = False,
    ) -> int:
        """Fee for one fill: commission (rate and per-unit, discounted, minimum) plus sell tax."""
        rate = self.maker_rate if is_maker else self.taker_rate
        commission = abs(notional) * rate + abs(quantity) * self.per_unit  # scale 1e18
        commission = commission * self.discount // FIXED_SCALE  # still exact: discount is 1e9
        commission_money = self._round(commission)
        if commission_money < self.minimum and (rate or self.per_unit):
            commission_money = self.minimum
        tax = 0
        if is_sell:
            tax_rate = self.day_trade_sell_tax_rate if is_day_trade else self.sell_tax_rate
            tax = self._round(abs(notional) * tax_rate)
        return commission_money + tax

    def _round(self, amount_e18: int) -> int:
        # amount_e18 is money at scale 1e18; round it to a multiple of rounding_unit (scale 1e9)
        unit = self.rounding_unit * FIXED_SCALE
        return div_round(amount_e18, unit, self.rounding) * self.rounding_unit


class TradingSession(msgspec.Struct, frozen=True, kw_only=True):
    """A daily session in the exchange's time zone, e.g. 09:00-13:30 Asia/Taipei, Mon-Fri."""

    timezone: str = "UTC"
    open: str = "00:00"
    close: str = "24:00"
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)  # Monday = 0

    def contains(self, ts_ns: int) -> bool:
        local = dt.datetime.fromtimestamp(ts_ns / 1e9, ZoneInfo(self.timezone))
        if local.weekday() not in self.weekdays:
            return False
        minute = local.hour * 60 + local.minute
        return _minutes(self.open) <= minute < _minutes(self.close)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


class Violation(msgspec.Struct, frozen=True):
    """Why an order cannot be sent as is: the rule and a message naming the values."""

    rule: str
    message: str


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    instrument_id: str
    venue: str = "SIM"
    asset_class: str = "equity"
    currency: str = "USD"
    price_precision: int = 2
    size_precision: int = 0
    tick_ladder: tuple[TickBand, ...] = ()
    lot_size: int = FIXED_SCALE
    min_quantity: int = FIXED_SCALE
    min_notional: int = 0
    multiplier: int = FIXED_SCALE
    price_limit_rate: int | None = None  # daily limit vs reference price (0.1 = ±10%)
    borrow_rate: int = 0  # annual cost of holding it short (fixed fraction), unless data says
    fees: FeeSchedule = FeeSchedule()
    sessions: tuple[TradingSession, ...] = ()
    calendar: SessionCalendar | None = None

    def __post_init__(self) -> None:
        if self.calendar is not None and self.sessions:
            raise ConfigError(
                "give either a calendar or hand-written sessions, not both",
                field=f"instruments.{self.instrument_id}",
            )
        if self.price_precision + self.size_precision > FIXED_PRECISION:
            raise ConfigError(
                f"price_precision {self.price_precision} + size_precision {self.size_precision} "
                f"exceeds {FIXED_PRECISION}: notional would not be exact",
                field=f"instruments.{self.instrument_id}",
            )
        if not self.tick_ladder:
            tick = 10 ** (FIXED_PRECISION - self.price_precision)
            msgspec.structs.force_setattr(self, "tick_ladder", (TickBand(0, tick),))
        if self.lot_size <= 0 or self.min_quantity < 0 or self.multiplier <= 0:
            raise ConfigError(
                "lot_size and multiplier must be positive",
                field=f"instruments.{self.instrument_id}",
            )

    # --- ticks -----------------------------------------------------------------------------
    def tick_at(self, price: int) -> int:
        """The tick size that applies at ``price`` (ladders are sorted by ``min_price``)."""
        tick = self.tick_ladder[0].tick
        for band in self.tick_ladder:
            if price >= band.min_price:
                tick = band.tick
            else:
                break
        return tick

    def quantize_price(self, price: int, rounding: Rounding) -> int:
        tick = self.tick_at(price)
        return div_round(price, tick, rounding) * tick

    def quantize_quantity(self, quantity: int, rounding: Rounding = Rounding.DOWN) -> int:
        return div_round(quantity, self.lot_size, rounding) * self.lot_size

    def next_price(self, price: int, steps: int) -> int:
        """``steps`` ticks above (positive) or below (negative) an on-grid price."""
        for _ in range(abs(steps)):
            if steps > 0:
                price += self.tick_at(price)
            else:
                price -= self.tick_at(price - 1)
        return price

    def notional(self, price: int, quantity: int) -> int:
        """Exact money value of ``quantity`` at ``price`` (fixed point)."""
        return price * quantity * self.multiplier // (FIXED_SCALE * FIXED_SCALE)

    # --- checks ----------------------------------------------------------------------------
    def check_order(self, *, quantity: int, price: int | None) -> Violation | None:
        """Precision, lot, minimum quantity and minimum notional; ``None`` when fine."""
        if quantity <= 0:
            return Violation("quantity", f"quantity {from_fixed(quantity)} must be positive")
        if quantity % self.lot_size:
            return Violation(
                "lot_size",
                f"quantity {from_fixed(quantity)} is not a multiple of lot size "
                f"{from_fixed(self.lot_size)} for {self.instrument_id}",
            )
        if quantity < self.min_quantity:
            return Violation(
                "min_quantity",
                f"quantity {from_fixed(quantity)} is below the minimum "
                f"{from_fixed(self.min_quantity)} for {self.instrument_id}",
            )
        if price is None:
            return None
        if price <= 0:
            return Violation("price", f"price {from_fixed(price)} must be positive")
        tick = self.tick_at(price)
        if price % tick:
            return Violation(
                "tick_size",
                f"price {from_fixed(price)} is not a multiple of tick {from_fixed(tick)} "
                f"for {self.instrument_id}",
            )
        notional = self.notional(price, quantity)
        if notional < self.min_notional:
            return Violation(
                "min_notional",
                f"notional {from_fixed(notional)} is below the minimum "
                f"{from_fixed(self.min_notional)} {self.currency} for {self.instrument_id}",
            )
        return None

    def in_session(self, ts_ns: int) -> bool:
        if self.calendar is not None:
            return self.calendar.in_session(ts_ns)
        return not self.sessions or any(s.contains(ts_ns) for s in self.sessions)

    def why_closed(self, ts_ns: int) -> str | None:
        """``None`` when the instrument may trade at ``ts_ns``, else why not (naming it)."""
        if self.calendar is not None:
            reason = self.calendar.why_closed(ts_ns)
            return None if reason is None else f"{self.instrument_id}: {reason}"
        if self.in_session(ts_ns):
            return None
        return f"{self.instrument_id} is not in a trading session"

    def trading_day(self, ts_ns: int) -> int:
        """The trading day (days since the epoch) ``ts_ns`` belongs to: the calendar's session
        label (the day rolls at the session's last close), else the UTC day."""
        if self.calendar is not None:
            day = self.calendar.trading_day(ts_ns)
            if day is not None:
                return day
        return utc_day(ts_ns)


def twse_tick_ladder() -> tuple[TickBand, ...]:
    """Taiwan Stock Exchange tick sizes by price (stocks)."""
    bands = [
        ("0", "0.01"),
        ("10", "0.05"),
        ("50", "0.1"),
        ("100", "0.5"),
        ("500", "1"),
        ("1000", "5"),
    ]
    return tuple(TickBand(fixed(lo), fixed(tick)) for lo, tick in bands)


class InstrumentRegistry:
    """Instruments by id. Unknown ids are a clear error, never a silent default."""

    def __init__(self, instruments: Iterable[Instrument] = ()) -> None:
        self._by_id: dict[str, Instrument] = {}
        for instrument in instruments:
            self.add(instrument)

    def add(self, instrument: Instrument) -> None:
        self._by_id[instrument.instrument_id] = instrument

    def get(self, instrument_id: str) -> Instrument:
        try:
            return self._by_id[instrument_id]
        except KeyError:
            known = ", ".join(sorted(self._by_id)) or "none"
            raise ConfigError(f"unknown instrument {instrument_id!r} (known: {known})") from None

    def __contains__(self, instrument_id: object) -> bool:
        return instrument_id in self._by_id

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_id.values())

    def as_mapping(self) -> Mapping[str, Instrument]:
        return dict(self._by_id)


def decimal_str(raw: int) -> str:
    """Plain string of a fixed-point value, for messages and files."""
    return format(from_fixed(raw), "f") if raw else "0"
