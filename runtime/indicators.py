"""Strategy indicators over fixed-point values (:mod:`runtime.values`).

``update(value)`` takes a fixed-point int (e.g. ``bar.close``); ``value`` is a float in price
units (``raw / 1e9``). :class:`Sma` and :class:`RollingStd` keep exact int running sums in a ring
buffer, so they never drift; :class:`Sma` also gives its exact mean with an explicit rounding.
"""

from __future__ import annotations

import math

from runtime.errors import InvariantError
from runtime.values import FIXED_SCALE, Rounding, div_round

__all__ = ["Ema", "RollingStd", "Sma"]


def _check_period(period: int) -> None:
    if period < 1:
        raise InvariantError(f"indicator period must be >= 1, got {period}")


class Sma:
    """Simple moving average of the last ``period`` values (exact int running sum).

    ``ready`` (a plain attribute, read on every bar: cheaper than a property) turns True once
    ``period`` values were seen; only :meth:`update` sets it.
    """

    __slots__ = ("_buf", "_i", "_n", "_sum", "period", "ready")

    def __init__(self, period: int) -> None:
        _check_period(period)
        self.period = period
        self._buf = [0] * period
        self._i = 0
        self._n = 0
        self._sum = 0
        self.ready = False

    def update(self, value: int) -> None:
        i = self._i
        self._sum += value - self._buf[i]
        self._buf[i] = value
        i += 1
        if i == self.period:
            i = 0
        self._i = i
        if not self.ready:
            self._n += 1
            self.ready = self._n == self.period

    @property
    def count(self) -> int:
        return self._n

    @property
    def value(self) -> float:
        """Mean of the values seen (of the last ``period`` once ready), in price units."""
        return self._sum / (self._n * FIXED_SCALE) if self._n else math.nan

    def above(self, other: Sma) -> bool:
        """Exactly ``self.value > other.value``: integer cross-multiplication, no rounding."""
        return self._sum * other._n > other._sum * self._n

    def value_fixed(self, rounding: Rounding = Rounding.HALF_EVEN) -> int:
        """The exact mean in fixed point, quantised with an explicit rounding."""
        if not self._n:
            raise InvariantError("Sma has no values yet")
        return div_round(self._sum, self._n, rounding)


class Ema:
    """Exponential moving average, ``alpha = 2 / (period + 1)``, seeded with the first value.

    ``ready`` after ``period`` updates (the seed's weight has decayed below ``(1-alpha)^period``).
    """

    __slots__ = ("_alpha", "_n", "_value", "period")

    def __init__(self, period: int) -> None:
        _check_period(period)
        self.period = period
        self._alpha = 2.0 / (period + 1)
        self._n = 0
        self._value = math.nan

    def update(self, value: int) -> None:
        x = value / FIXED_SCALE
        if self._n == 0:
            self._value = x
        else:
            self._value += self._alpha * (x - self._value)
        self._n += 1

    @property
    def ready(self) -> bool:
        return self._n >= self.period

    @property
    def value(self) -> float:
        return self._value


class RollingStd:
    """Standard deviation of the last ``period`` values, ``ddof`` as in :func:`numpy.std`.

    Sums and sums of squares are exact ints; only the final square root is a float.
    """

    __slots__ = ("_buf", "_i", "_n", "_sum", "_sumsq", "ddof", "period")

    def __init__(self, period: int, *, ddof: int = 0) -> None:
        _check_period(period)
        if ddof < 0 or ddof >= period:
            raise InvariantError(f"ddof must be in [0, period), got {ddof}")
        self.period = period
        self.ddof = ddof
        self._buf = [0] * period
        self._i = 0
        self._n = 0
        self._sum = 0
        self._sumsq = 0

    def update(self, value: int) -> None:
        i = self._i
        old = self._buf[i]
        self._sum += value - old
        self._sumsq += value * value - old * old
        self._buf[i] = value
        self._i = 0 if i + 1 == self.period else i + 1
        if self._n < self.period:
            self._n += 1

    @property
    def ready(self) -> bool:
        return self._n == self.period

    @property
    def value(self) -> float:
        """Standard deviation in price units (``nan`` until more than ``ddof`` values)."""
        n = self._n
        if n <= self.ddof:
            return math.nan
        # n * sum((x - mean)^2) == n * sumsq - sum^2, exactly, in ints
        numerator: int = n * self._sumsq - self._sum * self._sum
        variance: float = numerator / (n * (n - self.ddof))
        return math.sqrt(variance) / float(FIXED_SCALE)
