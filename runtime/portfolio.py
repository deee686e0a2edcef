"""Portfolio: netting positions, average cost, realized/unrealized PnL, fees, cash, exposure.

Everything is exact fixed-point money derived from fills only. Each position keeps its signed
*cost basis* (the money paid for what is still held; negative for shorts). Reducing a position
removes ``cost_basis * closed / held`` from it (rounded half-even); because exactly what is
removed is what realizes, the accounting identity holds exactly, whatever the rounding::

    cash + market_value == initial_cash + realized_pnl + unrealized_pnl - fees + funding - borrow

where ``market_value = Σ notional(mark, qty)`` and ``unrealized = market_value - Σ cost_basis``.
``funding`` (net funding received, signed) and ``borrow`` (borrow paid) are the carry of held
positions (:mod:`runtime.carry`): cash that moves without a fill. One account currency (cash
is kept per currency, but PnL aggregation assumes one); spot-style settlement (futures are
cash-settled on the full notional, not margined — see docs).

A fee paid in kind (``OrderFilled.fee_qty``: a spot buy whose fee the exchange takes from the
base asset) is not held: the position changes by ``fill.position_change`` (``last_qty -
fee_qty`` for a buy) at the fill's price, and the fee's value (in ``fill.fee``) is a fee like
any other, so the identity above holds unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.errors import InvariantError
from runtime.instruments import InstrumentRegistry
from runtime.messages import OrderFilled
from runtime.values import Rounding, div_round, to_float

__all__ = ["Account", "Portfolio", "Position"]


@dataclass(frozen=True, slots=True)
class Account:
    """A read-only snapshot of the account, in fixed-point money like the rest of the core
    (``to_float(account.equity)`` for price units). Positions are marked at the last price
    seen (a bar's close, a quote's mid, a trade)."""

    currency: str
    initial_cash: int
    cash: int
    equity: int  # cash + market value of the positions
    realized_pnl: int
    unrealized_pnl: int
    fees: int
    gross_exposure: int
    funding: int = 0  # net funding received (paid < 0)
    borrow: int = 0  # borrow paid on shorts

    @property
    def total_pnl(self) -> int:
        """``equity - initial_cash``: realized + unrealized − fees + funding − borrow."""
        return self.equity - self.initial_cash

    def as_floats(self) -> dict[str, float]:
        """The money fields in price units, for logging or sizing arithmetic."""
        names = ("initial_cash", "cash", "equity", "realized_pnl", "unrealized_pnl", "fees",
                 "gross_exposure", "funding", "borrow")
        return {name: to_float(getattr(self, name)) for name in names}


class Position:
    __slots__ = (
        "borrow",
        "cost_basis",
        "fees",
        "funding",
        "instrument_id",
        "mark",
        "quantity",
        "realized_pnl",
    )

    def __init__(self, instrument_id: str) -> None:
        self.instrument_id = instrument_id
        self.quantity = 0  # signed, fixed point
        self.cost_basis = 0  # signed money, fixed point
        self.realized_pnl = 0
        self.fees = 0
        self.mark = 0  # last mark price, fixed point (0 = never marked)
        self.funding = 0  # net funding received on this position (signed)
        self.borrow = 0  # borrow paid on this position

    def carried(self) -> bool:
        return bool(self.funding or self.borrow)

    def avg_price(self, multiplier: int) -> int:
        """Average entry price (rounded half-even) for an instrument with ``multiplier``."""
        if not self.quantity:
            return 0
        # cost_basis = avg * qty * multiplier / 1e18  (see Instrument.notional)
        return div_round(self.cost_basis * 10**18, self.quantity * multiplier, Rounding.HALF_EVEN)

    def state(self) -> list[int | str]:
        row: list[int | str] = [
            self.instrument_id, self.quantity, self.cost_basis, self.realized_pnl, self.fees
        ]
        if self.carried():  # only then: positions without carry keep the state they had
            row += [self.funding, self.borrow]
        return row


class Portfolio:
    """Account-level netting positions and cash."""

    __slots__ = (
        "borrow",
        "cash",
        "currency",
        "fees",
        "funding",
        "initial_cash",
        "n_fills",
        "positions",
        "realized_pnl",
        "registry",
    )

    def __init__(self, registry: InstrumentRegistry, *, initial_cash: int, currency: str = "USD"):
        self.registry = registry
        self.currency = currency
        self.initial_cash = initial_cash
        self.cash = initial_cash
        self.positions: dict[str, Position] = {}
        self.fees = 0
        self.realized_pnl = 0
        self.n_fills = 0
        self.funding = 0
        self.borrow = 0

    def position(self, instrument_id: str) -> Position:
        pos = self.positions.get(instrument_id)
        if pos is None:
            pos = self.positions[instrument_id] = Position(instrument_id)
        return pos

    def quantity(self, instrument_id: str) -> int:
        pos = self.positions.get(instrument_id)
        return pos.quantity if pos is not None else 0

    def mark(self, instrument_id: str, price: int) -> None:
        pos = self.positions.get(instrument_id)
        if pos is not None:
            pos.mark = price

    def apply_fill(self, fill: OrderFilled) -> Position:
        """Apply one fill; returns the changed position."""
        instrument = self.registry.get(fill.instrument_id)
        pos = self.positions.get(fill.instrument_id) or self.position(fill.instrument_id)
        # What the account holds changes by position_change (a fee in kind is not held); the
        # fee's value is in fill.fee, so cash still moves by what the trade itself cost.
        signed = fill.position_change
        sign = 1 if signed > 0 else -1
        value = instrument.notional(fill.last_price, abs(signed)) * sign  # + bought, - sold
        self.cash -= value + fill.fee
        pos.fees += fill.fee
        self.fees += fill.fee
        self.n_fills += 1
        held = pos.quantity
        if held == 0 or (held > 0) == (signed > 0):  # opening or adding
            pos.cost_basis += value
        elif abs(signed) <= abs(held):  # reducing or closing
            removed = div_round(pos.cost_basis * abs(signed), abs(held), Rounding.HALF_EVEN)
            realized = -value - removed
            pos.cost_basis -= removed
            pos.realized_pnl += realized
            self.realized_pnl += realized
        else:  # flipping: close all at this price, open the rest
            close_value = instrument.notional(fill.last_price, abs(held)) * sign
            realized = -close_value - pos.cost_basis
            pos.realized_pnl += realized
            self.realized_pnl += realized
            pos.cost_basis = value - close_value
        pos.quantity = held + signed
        if pos.mark == 0:
            pos.mark = fill.last_price
        return pos

    def apply_carry(self, instrument_id: str, kind: str, amount: int) -> None:
        """Cash moved by holding ``instrument_id``: ``kind`` ``funding`` (signed, received > 0)
        or ``borrow`` (``amount`` <= 0: paid)."""
        if kind not in ("funding", "borrow"):
            raise InvariantError(f"unknown carry kind {kind!r} (funding or borrow)")
        pos = self.position(instrument_id)
        self.cash += amount
        if kind == "funding":
            pos.funding += amount
            self.funding += amount
        else:
            pos.borrow -= amount
            self.borrow -= amount

    def carried(self) -> bool:
        """Whether any funding or borrow moved cash."""
        return bool(self.funding or self.borrow)

    # --- valuation -------------------------------------------------------------------------
    def market_value(self, instrument_id: str | None = None) -> int:
        positions = (
            self.positions.values() if instrument_id is None else [self.position(instrument_id)]
        )
        total = 0
        for pos in positions:
            if pos.quantity:
                instrument = self.registry.get(pos.instrument_id)
                total += instrument.notional(pos.mark, pos.quantity)
        return total

    def unrealized_pnl(self) -> int:
        return self.market_value() - sum(p.cost_basis for p in self.positions.values())

    def equity(self) -> int:
        return self.cash + self.market_value()

    def gross_exposure(self) -> int:
        total = 0
        for pos in self.positions.values():
            if pos.quantity:
                total += abs(self.registry.get(pos.instrument_id).notional(pos.mark, pos.quantity))
        return total

    def net_exposure(self) -> int:
        return self.market_value()

    def account(self) -> Account:
        """A snapshot of cash, equity, PnL, fees and exposure."""
        value = self.market_value()
        return Account(
            currency=self.currency,
            initial_cash=self.initial_cash,
            cash=self.cash,
            equity=self.cash + value,
            realized_pnl=self.realized_pnl,
            unrealized_pnl=value - sum(p.cost_basis for p in self.positions.values()),
            fees=self.fees,
            gross_exposure=self.gross_exposure(),
            funding=self.funding,
            borrow=self.borrow,
        )

    def identity_gap(self) -> int:
        """``0`` exactly when the accounting identity holds (it always should)."""
        lhs = self.cash + self.market_value()
        rhs = self.initial_cash + self.realized_pnl + self.unrealized_pnl() - self.fees
        return lhs - (rhs + self.funding - self.borrow)

    def state(self) -> dict[str, object]:
        state: dict[str, object] = {
            "cash": self.cash,
            "initial_cash": self.initial_cash,
            "fees": self.fees,
            "realized": self.realized_pnl,
            "n_fills": self.n_fills,
            "positions": [p.state() for _, p in sorted(self.positions.items())],
        }
        if self.carried():  # only then: a run without carry keeps the state it had
            state["funding"], state["borrow"] = self.funding, self.borrow
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.cash = int(state["cash"])
        self.initial_cash = int(state["initial_cash"])
        self.fees = int(state["fees"])
        self.realized_pnl = int(state["realized"])
        self.n_fills = int(state["n_fills"])
        self.funding = int(state.get("funding", 0))
        self.borrow = int(state.get("borrow", 0))
        self.positions.clear()
        for row in state["positions"]:
            pos = self.position(str(row[0]))
            pos.quantity, pos.cost_basis, pos.realized_pnl, pos.fees = (int(v) for v in row[1:5])
            if len(row) > 5:
                pos.funding, pos.borrow = int(row[5]), int(row[6])
