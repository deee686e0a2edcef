"""Pairs trading: an Engle-Granger cointegration test and an OLS hedge ratio (``statsmodels``).

Two instruments, ``(y, x)`` in the order of ``instruments``. Every ``retest_every`` steps, on the
last ``lookback`` log closes, the strategy tests cointegration (``statsmodels.tsa.stattools.
coint``) and fits ``log y = alpha + beta · log x`` (``OLS``); the spread ``log y − beta · log x``
is then z-scored against its values over the same window. Only while the test's p-value is at
most ``max_pvalue`` does it enter: long the spread (long y, short beta times the notional in x)
when the z-score is below ``−entry_z``, short it above ``entry_z``; it exits when the z-score is
back within ``exit_z``, or when the pair stops passing the test (``exit_on_break``). Each leg's
notional is ``gross`` times the equity split ``1 : |beta|``. ``tests`` keeps every test's time,
p-value and hedge ratio.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from pydantic import Field, model_validator
from statsmodels.regression.linear_model import OLS
from statsmodels.tools.tools import add_constant
from statsmodels.tsa.stattools import coint

from backtest.strategies._sync import BarSync
from runtime.errors import ConfigError
from runtime.messages import Bar
from runtime.strategy import Strategy, StrategyParams

__all__ = ["PairsCoint", "PairsCointParams"]


class PairsCointParams(StrategyParams):
    lookback: int = Field(390, ge=30, description="steps the test and the fit look back over")
    retest_every: int = Field(30, ge=1)
    max_pvalue: float = Field(0.05, gt=0, lt=1)
    entry_z: float = Field(2.0, gt=0)
    exit_z: float = Field(0.5, ge=0)
    gross: float = Field(0.5, gt=0, description="both legs' notional, times equity")
    exit_on_break: bool = True

    @model_validator(mode="after")
    def _exit_inside_entry(self) -> PairsCointParams:
        if self.exit_z >= self.entry_z:
            raise ValueError(f"exit_z ({self.exit_z}) must be below entry_z ({self.entry_z})")
        return self


class PairsCoint(Strategy[PairsCointParams]):
    def on_start(self) -> None:
        if len(self.instruments) != 2:
            raise ConfigError(
                f"a pair is two instruments, got {len(self.instruments)}",
                field=f"strategies.{self.strategy_id}.instruments",
            )
        self.sync = BarSync(self.instruments)
        self.logs: deque[tuple[float, float]] = deque(maxlen=self.params.lookback)
        self.steps = 0
        self.beta = math.nan
        self.pvalue = math.nan
        self.mean = self.std = math.nan
        self.tests: list[tuple[int, float, float]] = []  # (ts, p-value, hedge ratio)

    @property
    def cointegrated(self) -> bool:
        return self.pvalue <= self.params.max_pvalue

    def on_bar(self, bar: Bar) -> None:
        if not self.sync.add(bar):
            return
        y, x = (math.log(self.to_float(c)) for c in self.sync.closes)
        self.logs.append((y, x))
        self.steps += 1
        if len(self.logs) < self.params.lookback:
            return
        if math.isnan(self.pvalue) or self.steps % self.params.retest_every == 0:
            self._test(bar.ts_event)
        if self.std == 0 or math.isnan(self.std):
            return
        z = (y - self.beta * x - self.mean) / self.std
        self._trade(z)

    def _test(self, ts: int) -> None:
        data = np.array(self.logs)
        ys, xs = data[:, 0], data[:, 1]
        self.pvalue = float(coint(ys, xs)[1])
        fit = OLS(ys, add_constant(xs)).fit()
        self.beta = float(fit.params[1])
        spread = ys - self.beta * xs
        self.mean, self.std = float(spread.mean()), float(spread.std())
        self.tests.append((ts, self.pvalue, self.beta))

    def _trade(self, z: float) -> None:
        p = self.params
        if any(self.open_orders(i) for i in self.instruments):
            return
        if any(self.position(i) for i in self.instruments):  # in the spread (or a leg of it)
            reverted = abs(z) <= p.exit_z
            if reverted or (p.exit_on_break and not self.cointegrated):
                for inst in self.instruments:
                    self.close_position(inst)
            return
        if not self.cointegrated:
            return
        side = 1 if z <= -p.entry_z else (-1 if z >= p.entry_z else 0)
        if not side:
            return
        equity = self.to_float(self.account.equity)
        y_inst, x_inst = self.instruments
        y_notional = p.gross * equity / (1 + abs(self.beta))
        x_notional = abs(self.beta) * y_notional
        y_qty = self.to_qty(y_inst, y_notional / self._unit(y_inst))
        x_qty = self.to_qty(x_inst, x_notional / self._unit(x_inst))
        if not y_qty or not x_qty:
            return
        hedge = -1 if self.beta > 0 else 1  # long y is hedged by short x when they move together
        self.target_position(y_inst, side * y_qty)
        self.target_position(x_inst, side * hedge * x_qty)

    def _unit(self, inst: str) -> float:
        """One unit's value: the last close times the multiplier."""
        close = self.sync.bars[inst].close
        return self.to_float(close) * self.to_float(self.instrument(inst).multiplier)
