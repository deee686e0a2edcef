"""Fee models, all built on :class:`runtime.instruments.FeeSchedule` so every amount is exact.

The fee of a fill is money in the instrument's currency (fixed point) and goes in
``OrderFilled.fee``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from backtest.models.config import (
    BpsFeeConfig,
    FeeConfig,
    InstrumentFeeConfig,
    TaiwanStockFeeConfig,
)
from runtime.instruments import FeeSchedule, Instrument
from runtime.values import Rounding, fixed

__all__ = ["BpsFees", "FeeModel", "InstrumentFees", "TaiwanStockFees", "build_fees"]

_BPS = Decimal(10_000)


class FeeModel(Protocol):
    def fee(
        self,
        instrument: Instrument,
        *,
        is_sell: bool,
        price: int,
        qty: int,
        is_maker: bool,
        ts_ns: int,
    ) -> int:
        """Fee for one fill (commission and taxes), money, fixed point."""
        ...


class InstrumentFees:
    """Each instrument's own fee schedule (no day-trade detection)."""

    def fee(
        self,
        instrument: Instrument,
        *,
        is_sell: bool,
        price: int,
        qty: int,
        is_maker: bool,
        ts_ns: int,
    ) -> int:
        return instrument.fees.fee(
            notional=instrument.notional(price, qty),
            quantity=qty,
            is_maker=is_maker,
            is_sell=is_sell,
        )


class BpsFees:
    """Maker/taker basis points on notional plus money per unit, with a minimum per fill."""

    def __init__(self, config: BpsFeeConfig) -> None:
        self.schedule = FeeSchedule(
            maker_rate=fixed(config.maker_bps / _BPS),
            taker_rate=fixed(config.taker_bps / _BPS),
            per_unit=fixed(config.per_unit),
            minimum=fixed(config.minimum),
        )
        # no rate, per-unit fee or minimum (and bps schedules have no tax): every fee is 0
        schedule = self.schedule
        self.free = not (
            schedule.maker_rate or schedule.taker_rate or schedule.per_unit or schedule.minimum
        )

    def fee(
        self,
        instrument: Instrument,
        *,
        is_sell: bool,
        price: int,
        qty: int,
        is_maker: bool,
        ts_ns: int,
    ) -> int:
        if self.free:
            return 0
        return self.schedule.fee(
            notional=instrument.notional(price, qty),
            quantity=qty,
            is_maker=is_maker,
            is_sell=is_sell,
        )


class _DayBook:
    """Shares bought and sells already matched against them, on one local trading day."""

    __slots__ = ("bought", "date", "matched")

    def __init__(self, date: dt.date) -> None:
        self.date = date
        self.bought = 0
        self.matched = 0


class TaiwanStockFees:
    """Commission on both sides, securities transaction tax on sells.

    With ``detect_day_trades``, the part of a sell that does not exceed the shares bought earlier
    the same local day (the instrument's first session time zone, UTC when it has none) pays the
    day-trade rate; the rest the normal rate. Selling first and buying back later the same day is
    charged the normal rate (the venue cannot know at the sell). Commission and each tax part are
    rounded down to whole TWD separately.
    """

    def __init__(self, config: TaiwanStockFeeConfig) -> None:
        one_twd = fixed(1)
        self.commission = FeeSchedule(
            maker_rate=fixed(config.commission_rate),
            taker_rate=fixed(config.commission_rate),
            discount=fixed(config.discount),
            minimum=fixed(config.minimum),
            rounding_unit=one_twd,
            rounding=Rounding.DOWN,
        )
        self.tax = FeeSchedule(
            sell_tax_rate=fixed(config.sell_tax_rate),
            day_trade_sell_tax_rate=fixed(config.day_trade_tax_rate),
            rounding_unit=one_twd,
            rounding=Rounding.DOWN,
        )
        self.detect_day_trades = config.detect_day_trades
        self._days: dict[str, _DayBook] = {}

    def fee(
        self,
        instrument: Instrument,
        *,
        is_sell: bool,
        price: int,
        qty: int,
        is_maker: bool,
        ts_ns: int,
    ) -> int:
        notional = instrument.notional(price, qty)
        total = self.commission.fee(
            notional=notional, quantity=qty, is_maker=is_maker, is_sell=False
        )
        day_qty = self._day_trade_qty(instrument, is_sell=is_sell, qty=qty, ts_ns=ts_ns)
        if not is_sell:
            return total
        if day_qty:
            total += self._tax(instrument, price, day_qty, is_day_trade=True)
        if qty - day_qty:
            total += self._tax(instrument, price, qty - day_qty, is_day_trade=False)
        return total

    def _tax(self, instrument: Instrument, price: int, qty: int, *, is_day_trade: bool) -> int:
        return self.tax.fee(
            notional=instrument.notional(price, qty),
            quantity=qty,
            is_maker=False,
            is_sell=True,
            is_day_trade=is_day_trade,
        )

    def _day_trade_qty(self, instrument: Instrument, *, is_sell: bool, qty: int, ts_ns: int) -> int:
        if not self.detect_day_trades:
            return 0
        zone = instrument.sessions[0].timezone if instrument.sessions else "UTC"
        date = dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, ZoneInfo(zone)).date()
        book = self._days.get(instrument.instrument_id)
        if book is None or book.date != date:
            book = self._days[instrument.instrument_id] = _DayBook(date)
        if not is_sell:
            book.bought += qty
            return 0
        matched = min(qty, book.bought - book.matched)
        book.matched += matched
        return matched


def build_fees(config: FeeConfig) -> FeeModel:
    """The fee model a config names (stateful: build one per venue)."""
    if isinstance(config, InstrumentFeeConfig):
        return InstrumentFees()
    if isinstance(config, BpsFeeConfig):
        return BpsFees(config)
    if isinstance(config, TaiwanStockFeeConfig):
        return TaiwanStockFees(config)
    raise TypeError(f"not a fee config: {config!r}")
