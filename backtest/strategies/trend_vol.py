"""Trend following over several instruments, sized by volatility targeting.

Per instrument, the signal is the side of a fast EMA against a slow one (long above, short
below; flat instead of short with ``long_only``). Each position's notional is set so that its
volatility is ``target_vol / sqrt(N)`` of the equity (N instruments: uncorrelated positions add
up to ``target_vol``), at most ``max_leverage`` times the equity; the positions together are then
capped through their rolling correlation (``max_exposure`` times the equity, counted as
``sqrt(eᵀ C e)``: two instruments that move together count nearly as one bet twice the size).
A position is traded only when it is more than ``rebalance_band`` away from its target, so
volatility noise does not churn it. Decisions are taken once every instrument has its bar for
the same close time.
"""

from __future__ import annotations

import math

from pydantic import Field, model_validator

from backtest.strategies._sync import BarSync
from runtime.indicators import Ema
from runtime.messages import Bar
from runtime.sizing import (
    ReturnVol,
    RollingCorrelation,
    cap_correlated_exposure,
    vol_target_notional,
)
from runtime.strategy import Strategy, StrategyParams

__all__ = ["TrendVolTarget", "TrendVolTargetParams"]


class TrendVolTargetParams(StrategyParams):
    fast: int = Field(20, ge=1)
    slow: int = Field(100, ge=2)
    vol_window: int = Field(60, ge=2, description="bars of returns in the volatility estimate")
    bars_per_year: float = Field(252 * 390, gt=0, description="annualises the bar volatility")
    target_vol: float = Field(0.10, gt=0, description="annualised, of the equity, all positions")
    max_leverage: float = Field(1.0, gt=0, description="per instrument, times the equity")
    corr_window: int = Field(120, ge=3)
    max_exposure: float = Field(1.5, gt=0, description="correlated exposure cap, times equity")
    rebalance_band: float = Field(0.25, ge=0, description="trade when this far off the target")
    long_only: bool = False

    @model_validator(mode="after")
    def _fast_below_slow(self) -> TrendVolTargetParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class TrendVolTarget(Strategy[TrendVolTargetParams]):
    def on_start(self) -> None:
        p = self.params
        self.sync = BarSync(self.instruments)
        self.fast = {i: Ema(p.fast) for i in self.instruments}
        self.slow = {i: Ema(p.slow) for i in self.instruments}
        self.vol = {i: ReturnVol(p.vol_window) for i in self.instruments}
        self.corr = RollingCorrelation(self.instruments, p.corr_window)
        self.rebalances = 0  # steps on which at least one position was traded
        self.capped = 0  # steps on which the correlation cap cut the positions

    def on_bar(self, bar: Bar) -> None:
        inst = bar.instrument_id
        self.fast[inst].update(bar.close)
        self.slow[inst].update(bar.close)
        self.vol[inst].update(bar.close)
        if not self.sync.add(bar):
            return
        self.corr.update(self.sync.closes)
        if not (self.corr.ready and all(self.slow[i].ready and self.vol[i].ready
                                        for i in self.instruments)):
            return
        self._rebalance()

    def _rebalance(self) -> None:
        p = self.params
        equity = self.to_float(self.account.equity)
        per_instrument = p.target_vol / math.sqrt(len(self.instruments))
        exposures = []
        for inst in self.instruments:
            signal = 1.0 if self.fast[inst].value > self.slow[inst].value else -1.0
            if p.long_only and signal < 0:
                signal = 0.0
            annual = self.vol[inst].value * math.sqrt(p.bars_per_year)
            notional = vol_target_notional(
                equity, annual, target_vol=per_instrument, max_leverage=p.max_leverage
            )
            exposures.append(signal * notional)
        capped = cap_correlated_exposure(exposures, self.corr.matrix(), p.max_exposure * equity)
        if capped != tuple(exposures):
            self.capped += 1
        traded = False
        for inst, exposure in zip(self.instruments, capped, strict=True):
            instrument = self.instrument(inst)
            price = self.to_float(self.sync.bars[inst].close) * self.to_float(
                instrument.multiplier
            )
            size = self.to_qty(inst, abs(exposure) / price)
            target = size if exposure >= 0 else -size
            held = self.position(inst) + sum(  # what target_position trades from
                o.leaves_qty * o.side for o in self.open_orders(inst) if not o.protective
            )
            off = abs(target - held)
            if off and (off > p.rebalance_band * abs(target) or target * held <= 0):
                traded = self.target_position(inst, target) is not None or traded
        self.rebalances += traded
