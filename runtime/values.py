"""Exact values inside the core.

Prices, quantities and money are plain ``int`` values in fixed point with nine decimals
(``FIXED_SCALE = 10**9``): ``1.25`` is ``1_250_000_000``. Arithmetic on them is exact; division
happens only in explicit, named places with an explicit :class:`Rounding`. Decimal appears only at
the edges (parsing config and data, printing), floats only in features and analytics.

An instrument's price and size precisions together never exceed nine decimals (the registry
checks this), so ``price * quantity`` is always an exact amount of money.
"""

from __future__ import annotations

import enum
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
    InvalidOperation,
)

from runtime.errors import DataError, InvariantError

__all__ = [
    "FIXED_PRECISION",
    "FIXED_SCALE",
    "Rounding",
    "div_round",
    "fixed",
    "from_fixed",
    "mul_fixed",
    "to_float",
]

FIXED_PRECISION = 9
FIXED_SCALE: int = 10**FIXED_PRECISION
_QUANT = Decimal(1).scaleb(-FIXED_PRECISION)


class Rounding(enum.StrEnum):
    """An explicit rounding rule: every quantisation in Tradewind names one."""

    DOWN = "down"  # toward zero
    UP = "up"  # away from zero
    FLOOR = "floor"  # toward -inf
    CEILING = "ceiling"  # toward +inf
    HALF_UP = "half_up"  # nearest, ties away from zero
    HALF_EVEN = "half_even"  # nearest, ties to even (banker's)
    REJECT = "reject"  # not on the grid: refuse


_DECIMAL_ROUNDING = {
    Rounding.DOWN: ROUND_DOWN,
    Rounding.UP: ROUND_UP,
    Rounding.FLOOR: ROUND_FLOOR,
    Rounding.CEILING: ROUND_CEILING,
    Rounding.HALF_UP: ROUND_HALF_UP,
    Rounding.HALF_EVEN: ROUND_HALF_EVEN,
}


def fixed(value: Decimal | str | int | float) -> int:
    """Convert an edge value to fixed point, exactly; more than nine decimals is an error.

    Floats are converted through their shortest ``repr`` (``0.1`` means ``0.1``).
    """
    if isinstance(value, bool):
        raise DataError(f"expected a number, got a bool {value!r}")
    if isinstance(value, int):
        return value * FIXED_SCALE
    try:
        dec = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError) as exc:
        raise DataError(f"not a number: {value!r}") from exc
    if not dec.is_finite():
        raise DataError(f"not a finite number: {value!r}")
    scaled = dec.scaleb(FIXED_PRECISION)
    if scaled != scaled.to_integral_value():
        raise DataError(f"{value!r} has more than {FIXED_PRECISION} decimals")
    return int(scaled)


def from_fixed(raw: int) -> Decimal:
    """The exact Decimal of a fixed-point value (for printing and the edges)."""
    if not raw:
        return Decimal(0)
    value = Decimal(raw).scaleb(-FIXED_PRECISION).normalize()
    exponent = value.as_tuple().exponent
    return value.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else value


def to_float(raw: int) -> float:
    """A float for analytics; never feed it back into the core."""
    return raw / FIXED_SCALE


def div_round(numerator: int, denominator: int, rounding: Rounding) -> int:
    """Integer division with an explicit rounding rule (exact, no floats)."""
    if denominator == 0:
        raise InvariantError("division by zero in div_round")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    q, r = divmod(numerator, denominator)  # floor division
    if r == 0:
        return q
    if rounding is Rounding.REJECT:
        raise InvariantError(f"{numerator}/{denominator} is not exact")
    if rounding is Rounding.FLOOR:
        return q
    if rounding is Rounding.CEILING:
        return q + 1
    negative = numerator < 0
    if rounding is Rounding.DOWN:
        return q + 1 if negative else q
    if rounding is Rounding.UP:
        return q if negative else q + 1
    twice = 2 * r
    if twice < denominator:
        return q
    if twice > denominator:
        return q + 1
    if rounding is Rounding.HALF_UP:
        return q if negative else q + 1
    return q if q % 2 == 0 else q + 1  # HALF_EVEN


def mul_fixed(a: int, b: int, rounding: Rounding = Rounding.REJECT) -> int:
    """Multiply two fixed-point values; exact unless a rounding rule is given."""
    return div_round(a * b, FIXED_SCALE, rounding)


def decimal_rounding(rounding: Rounding) -> str:
    """The ``decimal`` module's constant for a rounding rule."""
    return _DECIMAL_ROUNDING[rounding]
