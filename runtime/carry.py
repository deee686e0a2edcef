"""Carry: cash moved by holding positions, not by trading them (funding and borrow).

* **Funding** (perpetual futures). A settled :class:`~runtime.messages.FundingRate` (its
  ``ts_event`` at or after its ``funding_ts``) moves cash on the instrument's open position once
  per funding time: ``amount = -round(notional(mark, quantity) * rate)``, rounded half-even to
  the money grid, where ``mark`` is the rate's own mark price (or the position's last mark when
  it has none). A long pays a positive rate; a short receives it. A rate published before its
  funding time is an estimate and moves nothing; the same funding time is never charged twice.
* **Borrow** (short positions). At every UTC midnight a short position accrues one day of its
  annual borrow rate on its market value at the last mark: ``amount = -round(|notional| * rate
  / 360)`` (actual/360, the stock-loan convention), so a weekend costs three days. The rate is
  the latest :class:`~runtime.messages.BorrowRate` of the instrument, else its configured
  ``borrow_rate``; a rate of 0 costs nothing.

Each charge is applied to the portfolio (:meth:`runtime.portfolio.Portfolio.apply_carry`) and
returned as a :class:`~runtime.messages.CarryCharged` event. The accrual is lazy: the kernel calls
:meth:`Carry.accrue_until` before it applies anything stamped at or after the next midnight, so
the position charged is the one held at midnight; the first midnight is the one after the first
time it is called with. Part of the kernel's state (the last funding
charged per instrument, the borrow rates from data, the next accrual).
"""

from __future__ import annotations

from typing import Any

from runtime.instruments import InstrumentRegistry
from runtime.messages import BorrowRate, CarryCharged, FundingRate
from runtime.portfolio import Portfolio
from runtime.values import FIXED_SCALE, Rounding, div_round

__all__ = ["BORROW_DAY_COUNT", "DAY_NS", "Carry"]

DAY_NS = 86_400 * 10**9
#: days in a borrow year (actual/360)
BORROW_DAY_COUNT = 360


class Carry:
    """Funding and borrow charges of one portfolio."""

    def __init__(self, registry: InstrumentRegistry, portfolio: Portfolio) -> None:
        self.registry = registry
        self.portfolio = portfolio
        self.funded: dict[str, int] = {}  # instrument -> the last funding_ts charged
        self.borrow_rates: dict[str, int] = {}  # instrument -> annual rate from data
        self.next_accrual_ns = 0  # 0: set from the first time seen (the next midnight)

    # --- funding -----------------------------------------------------------------------------
    def on_funding(self, rate: FundingRate) -> CarryCharged | None:
        inst = rate.instrument_id
        if rate.ts_event < rate.funding_ts or rate.funding_ts <= self.funded.get(inst, -1):
            return None  # an estimate, or a funding time already charged
        self.funded[inst] = rate.funding_ts
        pos = self.portfolio.positions.get(inst)
        if pos is None or not pos.quantity:
            return None
        mark = rate.mark_price or pos.mark
        instrument = self.registry.get(inst)
        notional = instrument.notional(mark, pos.quantity)
        amount = -div_round(notional * rate.rate, FIXED_SCALE, Rounding.HALF_EVEN)
        return self._charge(inst, "funding", pos.quantity, mark, rate.rate, amount, rate.funding_ts)

    # --- borrow ------------------------------------------------------------------------------
    def on_borrow_rate(self, rate: BorrowRate) -> None:
        self.borrow_rates[rate.instrument_id] = rate.rate

    def borrow_rate(self, instrument_id: str) -> int:
        rate = self.borrow_rates.get(instrument_id)
        return self.registry.get(instrument_id).borrow_rate if rate is None else rate

    def accrue_until(self, ts_ns: int) -> list[CarryCharged]:
        """One day of borrow on each short, at each midnight at or before ``ts_ns``."""
        out: list[CarryCharged] = []
        if not self.next_accrual_ns:
            self.next_accrual_ns = (ts_ns // DAY_NS + 1) * DAY_NS
        while self.next_accrual_ns <= ts_ns:
            midnight = self.next_accrual_ns
            for inst, pos in sorted(self.portfolio.positions.items()):
                if pos.quantity >= 0:
                    continue
                rate = self.borrow_rate(inst)
                if not rate:
                    continue
                value = abs(self.registry.get(inst).notional(pos.mark, pos.quantity))
                amount = -div_round(
                    value * rate, FIXED_SCALE * BORROW_DAY_COUNT, Rounding.HALF_EVEN
                )
                out.append(self._charge(inst, "borrow", pos.quantity, pos.mark, rate, amount,
                                        midnight))
            self.next_accrual_ns = midnight + DAY_NS
        return out

    def _charge(
        self, inst: str, kind: str, quantity: int, price: int, rate: int, amount: int, ts: int
    ) -> CarryCharged:
        self.portfolio.apply_carry(inst, kind, amount)
        return CarryCharged(
            seq=0,
            ts_event=ts,
            ts_init=ts,
            instrument_id=inst,
            kind=kind,
            quantity=quantity,
            price=price,
            rate=rate,
            amount=amount,
            currency=self.registry.get(inst).currency,
        )

    # --- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any] | None:
        """None until carry matters (a run without funding or borrow keeps the state it had)."""
        shorts_accrue = any(
            p.quantity < 0 and self.borrow_rate(i) for i, p in self.portfolio.positions.items()
        )
        if not (self.funded or self.borrow_rates or self.portfolio.carried() or shorts_accrue):
            return None
        return {
            "funded": dict(sorted(self.funded.items())),
            "borrow_rates": dict(sorted(self.borrow_rates.items())),
            "next_accrual_ns": self.next_accrual_ns,
        }

    def load_state(self, state: dict[str, Any] | None) -> None:
        state = state or {}
        self.funded = {str(k): int(v) for k, v in state.get("funded", {}).items()}
        self.borrow_rates = {str(k): int(v) for k, v in state.get("borrow_rates", {}).items()}
        self.next_accrual_ns = int(state.get("next_accrual_ns", 0))
