"""Slippage models: how much worse than the model price a *taker* fill is.

Maker fills never slip. Every adjusted price is put back on the instrument's tick grid rounding
against the taker (a buy rounds up, a sell down), and a sell never goes below one tick.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

from backtest.models.config import (
    NoSlippageConfig,
    ParticipationSlippageConfig,
    SlippageConfig,
    TickSlippageConfig,
    VolatilitySlippageConfig,
)
from runtime.instruments import Instrument
from runtime.messages import Bar, MarketData, QuoteTick, TradeTick
from runtime.values import FIXED_SCALE, Rounding, fixed

__all__ = [
    "NoSlippage",
    "ParticipationSlippage",
    "SlippageModel",
    "TickSlippage",
    "VolatilitySlippage",
    "against_taker",
    "build_slippage",
]


class SlippageModel(Protocol):
    #: True when the model must see every market data message (:meth:`observe`).
    observes: bool

    def observe(self, msg: MarketData) -> None: ...

    def adjust(
        self, instrument: Instrument, *, is_buy: bool, price: int, qty: int, volume: int
    ) -> int:
        """The taker's fill price for a fill of ``qty`` at model ``price``."""
        ...


def against_taker(instrument: Instrument, price: int, amount: int, *, is_buy: bool) -> int:
    """``price`` moved ``amount`` against the taker, on the tick grid (rounded against it)."""
    ladder = instrument.tick_ladder
    if len(ladder) == 1:  # one tick size: a positive price already on the grid stays as it is
        moved = price + amount if is_buy else price - amount
        if moved > 0 and moved % ladder[0].tick == 0:
            return moved
    if is_buy:
        return instrument.quantize_price(price + amount, Rounding.CEILING)
    moved = instrument.quantize_price(price - amount, Rounding.FLOOR)
    return moved if moved > 0 else instrument.tick_at(0)


class NoSlippage:
    observes = False

    def observe(self, msg: MarketData) -> None:
        return None

    def adjust(
        self, instrument: Instrument, *, is_buy: bool, price: int, qty: int, volume: int
    ) -> int:
        return against_taker(instrument, price, 0, is_buy=is_buy)


class TickSlippage:
    observes = False

    def __init__(self, ticks: int) -> None:
        self.ticks = ticks

    def observe(self, msg: MarketData) -> None:
        return None

    def adjust(
        self, instrument: Instrument, *, is_buy: bool, price: int, qty: int, volume: int
    ) -> int:
        on_grid = against_taker(instrument, price, 0, is_buy=is_buy)
        moved = instrument.next_price(on_grid, self.ticks if is_buy else -self.ticks)
        return moved if moved > 0 else instrument.tick_at(0)


class _Changes:
    """Rolling window of integer price changes with exact running sums."""

    __slots__ = ("last", "sum", "sumsq", "window")

    def __init__(self, size: int) -> None:
        self.window: deque[int] = deque(maxlen=size)
        self.last: int | None = None
        self.sum = 0
        self.sumsq = 0

    def push(self, price: int) -> None:
        last, self.last = self.last, price
        if last is None:
            return
        change = price - last
        window = self.window
        if len(window) == window.maxlen:
            old = window[0]
            self.sum -= old
            self.sumsq -= old * old
        window.append(change)
        self.sum += change
        self.sumsq += change * change

    def std(self) -> int:
        """Sample standard deviation of the changes (fixed point, floored); 0 below 2."""
        n = len(self.window)
        if n < 2:
            return 0
        numerator = n * self.sumsq - self.sum * self.sum
        return math.isqrt(max(numerator, 0) // (n * (n - 1)))


def _price_of(msg: MarketData) -> int | None:
    if type(msg) is Bar:
        return msg.close
    if type(msg) is QuoteTick:
        if msg.bid_price > 0 and msg.ask_price > 0:
            return (msg.bid_price + msg.ask_price) // 2
        return None
    if type(msg) is TradeTick:
        return msg.price
    return None


class VolatilitySlippage:
    observes = True

    def __init__(self, k: int, window: int) -> None:
        self.k = k  # fixed point
        self.window = window
        self._series: dict[str, _Changes] = {}

    def observe(self, msg: MarketData) -> None:
        price = _price_of(msg)
        if price is None:
            return
        series = self._series.get(msg.instrument_id)
        if series is None:
            series = self._series[msg.instrument_id] = _Changes(self.window)
        series.push(price)

    def realised_std(self, instrument_id: str) -> int:
        series = self._series.get(instrument_id)
        return series.std() if series is not None else 0

    def adjust(
        self, instrument: Instrument, *, is_buy: bool, price: int, qty: int, volume: int
    ) -> int:
        amount = -(-self.k * self.realised_std(instrument.instrument_id) // FIXED_SCALE)
        return against_taker(instrument, price, amount, is_buy=is_buy)


class ParticipationSlippage:
    observes = False

    def __init__(self, impact_bps: int, exponent: float) -> None:
        self.impact_bps = impact_bps  # fixed point
        self.exponent = exponent

    def adjust(
        self, instrument: Instrument, *, is_buy: bool, price: int, qty: int, volume: int
    ) -> int:
        ratio = 1.0 if volume <= 0 else min(qty / volume, 1.0)
        scaled = price * self.impact_bps // (10_000 * FIXED_SCALE)  # price x bps, fixed point
        amount = math.ceil(scaled * ratio**self.exponent)
        return against_taker(instrument, price, amount, is_buy=is_buy)

    def observe(self, msg: MarketData) -> None:
        return None


def build_slippage(config: SlippageConfig) -> SlippageModel:
    """The slippage model a config names."""
    if isinstance(config, NoSlippageConfig):
        return NoSlippage()
    if isinstance(config, TickSlippageConfig):
        return TickSlippage(config.ticks)
    if isinstance(config, VolatilitySlippageConfig):
        return VolatilitySlippage(fixed(config.k), config.window)
    if isinstance(config, ParticipationSlippageConfig):
        return ParticipationSlippage(fixed(config.impact_bps), config.exponent)
    raise TypeError(f"not a slippage config: {config!r}")
