"""A regime switch: trend following in a trend, mean reversion in a range, and no new entries
when the regime is unknown.

Per instrument, per bar: the regime is ``trend`` when ADX is at least ``trend_adx``, ``range``
when it is below ``range_adx``, and ``unknown`` while the indicators warm up, between the two
thresholds (no clear call), or when the annualised volatility is above ``max_vol`` (a shock:
neither model is trusted). In ``trend`` it enters on the side of the fast EMA against the slow;
in ``range`` against a z-score beyond ``entry_z``. In ``unknown`` it enters nothing and adds to
nothing; what it holds leaves by the rules of the regime it was entered in (trend: the EMAs
cross back; range: the z-score is back within ``exit_z``), or at once with ``flat_on_unknown``.
Entries are sized by volatility targeting (``target_vol`` of the equity per instrument).
``regimes`` counts bars per regime, ``blocked`` the entry signals refused in ``unknown``.
"""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import Field, model_validator

from runtime.indicators import Adx, Ema, ZScore
from runtime.messages import Bar
from runtime.sizing import ReturnVol, vol_target_notional
from runtime.strategy import Strategy, StrategyParams

__all__ = ["Regime", "RegimeSwitch", "RegimeSwitchParams"]


class Regime(StrEnum):
    TREND = "trend"
    RANGE = "range"
    UNKNOWN = "unknown"


class RegimeSwitchParams(StrategyParams):
    adx_period: int = Field(14, ge=2)
    trend_adx: float = Field(25.0, gt=0, lt=100)
    range_adx: float = Field(20.0, gt=0, lt=100)
    vol_window: int = Field(60, ge=2)
    bars_per_year: float = Field(252 * 390, gt=0)
    max_vol: float = Field(0.60, gt=0, description="annualised; above it the regime is unknown")
    fast: int = Field(10, ge=1)
    slow: int = Field(40, ge=2)
    z_period: int = Field(40, ge=2)
    entry_z: float = Field(2.0, gt=0)
    exit_z: float = Field(0.5, ge=0)
    target_vol: float = Field(0.10, gt=0, description="annualised, of the equity, per instrument")
    max_leverage: float = Field(1.0, gt=0)
    flat_on_unknown: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> RegimeSwitchParams:
        if self.range_adx > self.trend_adx:
            raise ValueError(f"range_adx ({self.range_adx}) must not exceed trend_adx "
                             f"({self.trend_adx})")
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        if self.exit_z >= self.entry_z:
            raise ValueError(f"exit_z ({self.exit_z}) must be below entry_z ({self.entry_z})")
        return self


class RegimeSwitch(Strategy[RegimeSwitchParams]):
    def on_start(self) -> None:
        p = self.params
        self.adx = {i: Adx(p.adx_period) for i in self.instruments}
        self.vol = {i: ReturnVol(p.vol_window) for i in self.instruments}
        self.fast = {i: Ema(p.fast) for i in self.instruments}
        self.slow = {i: Ema(p.slow) for i in self.instruments}
        self.z = {i: ZScore(p.z_period) for i in self.instruments}
        self.entered_in: dict[str, Regime] = {}  # the regime each held position was entered in
        self.regimes = dict.fromkeys(Regime, 0)
        self.blocked = 0
        self.entries: list[tuple[int, str, Regime]] = []  # (ts, instrument, regime)

    def regime(self, inst: str) -> Regime:
        p = self.params
        adx, vol = self.adx[inst], self.vol[inst]
        ready = adx.ready and vol.ready and self.slow[inst].ready and self.z[inst].ready
        if not ready or vol.value * math.sqrt(p.bars_per_year) > p.max_vol:
            return Regime.UNKNOWN
        if adx.value >= p.trend_adx:
            return Regime.TREND
        if adx.value < p.range_adx:
            return Regime.RANGE
        return Regime.UNKNOWN

    def on_bar(self, bar: Bar) -> None:
        inst = bar.instrument_id
        self.adx[inst].update(bar.high, bar.low, bar.close)
        self.vol[inst].update(bar.close)
        self.fast[inst].update(bar.close)
        self.slow[inst].update(bar.close)
        self.z[inst].update(bar.close)
        regime = self.regime(inst)
        self.regimes[regime] += 1
        if self.open_orders(inst):
            return
        held = self.position(inst)
        if held:
            self._maybe_exit(inst, held, regime)
            return
        signal = self._signal(inst, regime)
        if regime is Regime.UNKNOWN:
            # what either model would do, had the regime been clear: refused all the same
            if self._signal(inst, Regime.TREND) or self._signal(inst, Regime.RANGE):
                self.blocked += 1
            return
        if signal:
            self._enter(bar, signal, regime)

    def _signal(self, inst: str, regime: Regime) -> int:
        if not (self.slow[inst].ready and self.z[inst].ready):
            return 0
        if regime is Regime.TREND:
            return 1 if self.fast[inst].value > self.slow[inst].value else -1
        if regime is Regime.RANGE:
            z = self.z[inst].value
            return 1 if z <= -self.params.entry_z else (-1 if z >= self.params.entry_z else 0)
        return 0

    def _enter(self, bar: Bar, side: int, regime: Regime) -> None:
        p, inst = self.params, bar.instrument_id
        annual = self.vol[inst].value * math.sqrt(p.bars_per_year)
        equity = self.to_float(self.account.equity)
        notional = vol_target_notional(equity, annual, target_vol=p.target_vol,
                                       max_leverage=p.max_leverage)
        unit = self.to_float(bar.close) * self.to_float(self.instrument(inst).multiplier)
        size = self.to_qty(inst, notional / unit)
        if size:
            self.target_position(inst, side * size)
            self.entered_in[inst] = regime
            self.entries.append((bar.ts_event, inst, regime))

    def _maybe_exit(self, inst: str, held: int, regime: Regime) -> None:
        entered = self.entered_in.get(inst, Regime.TREND)
        if regime is Regime.UNKNOWN and self.params.flat_on_unknown:
            done = True
        elif entered is Regime.TREND:
            done = (self.fast[inst].value > self.slow[inst].value) != (held > 0)
        else:
            done = abs(self.z[inst].value) <= self.params.exit_z
        if done:
            self.close_position(inst)
            self.entered_in.pop(inst, None)
