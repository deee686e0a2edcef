"""Funding carry: long spot, short the perpetual while funding pays the short.

Two instruments, ``(spot, perpetual)`` in the order of ``instruments``. The strategy keeps the
perpetual's latest funding rate (``on_aux``) and decides on the perpetual's bars: when the rate
is at least ``entry_rate`` it buys ``size`` of spot and sells ``size`` of the perpetual
(delta-neutral: the two prices move together, and the short collects funding at every funding
time, :mod:`runtime.carry`); when the rate is at most ``exit_rate`` it closes both legs. It
declares the funding feed it needs (:meth:`aux_needs`): with no rate newer than
``funding_ttl_s``, risk holds its entries (``aux_stale``) and still lets it exit.
``decisions`` keeps each decision's time, rate and target.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from runtime.auxdata import AuxNeed
from runtime.errors import ConfigError
from runtime.messages import AuxData, Bar, FundingRate
from runtime.strategy import Qty, Strategy, StrategyParams

__all__ = ["FundingCarry", "FundingCarryParams"]


class FundingCarryParams(StrategyParams):
    entry_rate: float = Field(0.0001, description="enter when a funding rate is at least this")
    exit_rate: float = Field(0.0, description="exit when a funding rate is at most this")
    size: Qty = Field(description="units of each leg")
    funding_ttl_s: float = Field(9 * 3600, gt=0, description="a funding rate older than this "
                                 "is stale: no new entries")

    @model_validator(mode="after")
    def _exit_below_entry(self) -> FundingCarryParams:
        if self.exit_rate >= self.entry_rate:
            raise ValueError(
                f"exit_rate ({self.exit_rate}) must be below entry_rate ({self.entry_rate})"
            )
        return self


class FundingCarry(Strategy[FundingCarryParams]):
    def aux_needs(self) -> tuple[AuxNeed, ...]:
        self._check_instruments()
        ttl_ns = int(self.params.funding_ttl_s * 10**9)
        return (AuxNeed(kind="funding", instrument_id=self.instruments[1], ttl_ns=ttl_ns),)

    def on_start(self) -> None:
        self._check_instruments()
        self.spot, self.perp = self.instruments
        self.decisions: list[tuple[int, float, int]] = []  # (ts, rate, target of the spot leg)
        self.rate: float | None = None  # the latest funding rate of the perpetual

    def _check_instruments(self) -> None:
        if len(self.instruments) != 2:
            raise ConfigError(
                f"funding carry trades (spot, perpetual): got {len(self.instruments)} "
                "instrument(s)",
                field=f"strategies.{self.strategy_id}.instruments",
            )

    def on_aux(self, data: AuxData) -> None:
        if isinstance(data, FundingRate) and data.instrument_id == self.perp:
            self.rate = self.to_float(data.rate)

    def on_bar(self, bar: Bar) -> None:
        rate = self.rate
        if bar.instrument_id != self.perp or rate is None:
            return
        # held or on its way (a denied entry is neither: it is tried again on the next bar)
        entered = self.ctx.committed(self.strategy_id, self.spot) != 0
        if not entered and rate >= self.params.entry_rate:
            target = self.params.size
        elif entered and rate <= self.params.exit_rate:
            target = 0
        else:
            return
        self.decisions.append((bar.ts_event, rate, target))
        self.target_position(self.spot, target)
        self.target_position(self.perp, -target)
