"""Strategy indicators over fixed-point values (:mod:`runtime.values`).

``update(value)`` takes a fixed-point int (e.g. ``bar.close``; :class:`Atr` takes a bar's high,
low and close); ``value`` (and every other reading) is a float in price units (``raw / 1e9``),
``nan`` until the indicator has seen a value, meaningful once ``ready``. Each update is O(1).
:class:`Sma` and :class:`RollingStd` keep exact int running sums in a ring buffer, so they never
drift; :class:`Sma` also gives its exact mean with an explicit rounding.

- ``Sma(n)``: mean of the last n values; ready after n values.
- ``Ema(n)``: alpha = 2/(n+1), seeded with the first value; ready after n values.
- ``RollingStd(n, ddof=0)``: standard deviation of the last n values; ready after n values.
- ``Rsi(n=14)``: Wilder's RSI, 0..100: average gain and loss over the first n changes, then
  ``avg = (avg·(n−1) + x) / n``; ``100 − 100 / (1 + gain/loss)``; ready after n + 1 values.
- ``Atr(n=14)``: Wilder average of the true range ``max(high − low, |high − prev close|,
  |low − prev close|)``; ``update(high, low, close)``; ready after n bars.
- ``Bollinger(n=20, k=2, ddof=0)``: ``middle`` = mean of the last n values, ``upper``/``lower``
  = middle ± k·std (ddof 0 as TA-Lib; pandas' rolling std is ddof 1); ready after n values.
- ``Macd(12, 26, 9)``: ``macd`` = Ema(fast) − Ema(slow), ``signal`` = Ema(signal) of macd,
  ``histogram`` = macd − signal (EMAs seeded with the first value, as pandas
  ``ewm(span, adjust=False)``); ready after slow + signal − 1 values.
- ``Stochastic(k=14, d=3, smooth=1)``: ``k`` = 100·(close − lowest low)/(highest high − lowest
  low) over the last k bars (50 when that range is 0), averaged over ``smooth`` bars (1: the
  fast stochastic, 3: the slow); ``d`` = mean of the last d values of ``k``;
  ``update(high, low, close)``; ready after k + smooth + d − 2 bars.
- ``Adx(n=14)``: Wilder's average directional index. Per bar after the first: +DM = up move
  (high − previous high) when larger than the down move (previous low − low) and positive, −DM
  likewise, the true range as in ``Atr``; each smoothed as ``Rsi``'s averages (seeded with the mean
  of the first n); ``plus_di``/``minus_di`` = 100·DM/TR; DX = 100·|+DI − −DI|/(+DI + −DI) (0
  when both are 0); ``value`` (ADX) = the same smoothing of DX; ready after 2n bars (DIs after
  n + 1).
- ``ZScore(n, ddof=0)``: (value − mean)/std of the last n values (the latest included); 0 when
  they are all equal; ready after n values.
"""

from __future__ import annotations

import math
from collections import deque

from runtime.errors import InvariantError
from runtime.values import FIXED_SCALE, Rounding, div_round

__all__ = ["Adx", "Atr", "Bollinger", "Ema", "Macd", "RollingStd", "Rsi", "Sma", "Stochastic",
           "ZScore"]


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


class Rsi:
    """Wilder's relative strength index of the last ``period`` changes, 0..100.

    Average gain and loss are seeded with the plain mean of the first ``period`` changes, then
    smoothed ``avg = (avg * (period - 1) + x) / period``. ``value`` is 100 when there were only
    gains, 0 with only losses, 50 when the price did not move.
    """

    __slots__ = ("_changes", "_gain", "_last", "_loss", "period")

    def __init__(self, period: int = 14) -> None:
        _check_period(period)
        self.period = period
        self._last: int | None = None
        self._changes = 0
        self._gain = 0.0
        self._loss = 0.0

    def update(self, value: int) -> None:
        last, self._last = self._last, value
        if last is None:
            return
        change = (value - last) / FIXED_SCALE
        gain, loss = (change, 0.0) if change > 0 else (0.0, -change)
        n = self.period
        self._changes += 1
        if self._changes <= n:  # the seed: a plain mean of the first n changes
            self._gain += gain / n
            self._loss += loss / n
        else:
            self._gain = (self._gain * (n - 1) + gain) / n
            self._loss = (self._loss * (n - 1) + loss) / n

    @property
    def ready(self) -> bool:
        return self._changes >= self.period

    @property
    def value(self) -> float:
        if not self.ready:
            return math.nan
        if self._loss == 0.0:
            return 50.0 if self._gain == 0.0 else 100.0
        return 100.0 - 100.0 / (1.0 + self._gain / self._loss)


class Atr:
    """Wilder's average true range over ``period`` bars, in price units.

    ``update(high, low, close)`` per bar. The first bar's true range is ``high - low``; the
    average is seeded with the mean of the first ``period`` true ranges, then smoothed as
    :class:`Rsi` is.
    """

    __slots__ = ("_close", "_n", "_value", "period")

    def __init__(self, period: int = 14) -> None:
        _check_period(period)
        self.period = period
        self._close: int | None = None
        self._n = 0
        self._value = 0.0

    def update(self, high: int, low: int, close: int) -> None:
        prev = self._close
        if prev is None:
            true_range = high - low
        else:
            true_range = max(high - low, abs(high - prev), abs(low - prev))
        self._close = close
        x = true_range / FIXED_SCALE
        n = self.period
        self._n += 1
        if self._n <= n:
            self._value += x / n
        else:
            self._value = (self._value * (n - 1) + x) / n

    @property
    def ready(self) -> bool:
        return self._n >= self.period

    @property
    def value(self) -> float:
        return self._value if self.ready else math.nan


class Bollinger:
    """Bollinger bands: ``middle`` the mean of the last ``period`` values, ``upper``/``lower``
    ``k`` standard deviations (``ddof``, default 0) above and below it."""

    __slots__ = ("_sma", "_std", "k", "period")

    def __init__(self, period: int = 20, k: float = 2.0, *, ddof: int = 0) -> None:
        self.period = period
        self.k = k
        self._sma = Sma(period)
        self._std = RollingStd(period, ddof=ddof)

    def update(self, value: int) -> None:
        self._sma.update(value)
        self._std.update(value)

    @property
    def ready(self) -> bool:
        return self._sma.ready

    @property
    def middle(self) -> float:
        return self._sma.value if self.ready else math.nan

    @property
    def std(self) -> float:
        return self._std.value if self.ready else math.nan

    @property
    def upper(self) -> float:
        return self.middle + self.k * self.std

    @property
    def lower(self) -> float:
        return self.middle - self.k * self.std

    def percent_b(self, value: int) -> float:
        """Where ``value`` sits in the band: 0 at ``lower``, 1 at ``upper`` (nan if flat)."""
        width = self.upper - self.lower
        return (value / FIXED_SCALE - self.lower) / width if width > 0 else math.nan


class _FloatEma:
    __slots__ = ("_alpha", "n", "value")

    def __init__(self, period: int) -> None:
        self._alpha = 2.0 / (period + 1)
        self.n = 0
        self.value = math.nan

    def update(self, x: float) -> None:
        self.value = x if self.n == 0 else self.value + self._alpha * (x - self.value)
        self.n += 1


class Macd:
    """Moving average convergence/divergence: ``macd`` = Ema(fast) − Ema(slow) of the values,
    ``signal`` = Ema(signal) of ``macd``, ``histogram`` = ``macd − signal``, in price units."""

    __slots__ = ("_fast", "_signal", "_slow", "fast", "signal_period", "slow")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        for period in (fast, slow, signal):
            _check_period(period)
        if fast >= slow:
            raise InvariantError(f"MACD needs fast < slow, got {fast} and {slow}")
        self.fast, self.slow, self.signal_period = fast, slow, signal
        self._fast = _FloatEma(fast)
        self._slow = _FloatEma(slow)
        self._signal = _FloatEma(signal)

    def update(self, value: int) -> None:
        x = value / FIXED_SCALE
        self._fast.update(x)
        self._slow.update(x)
        self._signal.update(self._fast.value - self._slow.value)

    @property
    def ready(self) -> bool:
        return self._slow.n >= self.slow + self.signal_period - 1

    @property
    def macd(self) -> float:
        return self._fast.value - self._slow.value

    @property
    def signal(self) -> float:
        return self._signal.value

    @property
    def histogram(self) -> float:
        return self.macd - self._signal.value

    @property
    def value(self) -> float:
        """Same as :attr:`macd`."""
        return self.macd


class _Wilder:
    """Wilder's smoothing of floats: the mean of the first ``period`` values, then
    ``avg = (avg·(period − 1) + x) / period``."""

    __slots__ = ("n", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = period
        self.n = 0
        self.value = 0.0

    def update(self, x: float) -> None:
        p = self.period
        self.n += 1
        if self.n <= p:
            self.value += x / p
        else:
            self.value = (self.value * (p - 1) + x) / p


class _Extreme:
    """The highest (or lowest) of the last ``period`` values: a monotonic deque, O(1)
    amortised per update."""

    __slots__ = ("_i", "_q", "highest", "period")

    def __init__(self, period: int, *, highest: bool) -> None:
        self.period = period
        self.highest = highest
        self._q: deque[tuple[int, int]] = deque()
        self._i = 0

    def update(self, value: int) -> int:
        q, i = self._q, self._i
        if self.highest:
            while q and q[-1][1] <= value:
                q.pop()
        else:
            while q and q[-1][1] >= value:
                q.pop()
        q.append((i, value))
        if q[0][0] <= i - self.period:
            q.popleft()
        self._i = i + 1
        return q[0][1]


class Stochastic:
    """The stochastic oscillator: where the close sits in the range of the last ``k_period``
    bars, 0..100 (``k``), smoothed over ``smooth`` bars, and ``d`` its mean over ``d_period``."""

    __slots__ = ("_d", "_high", "_k", "_low", "_n", "d_period", "k_period", "smooth")

    def __init__(self, k_period: int = 14, d_period: int = 3, smooth: int = 1) -> None:
        for period in (k_period, d_period, smooth):
            _check_period(period)
        self.k_period, self.d_period, self.smooth = k_period, d_period, smooth
        self._high = _Extreme(k_period, highest=True)
        self._low = _Extreme(k_period, highest=False)
        self._k: deque[float] = deque(maxlen=smooth)
        self._d: deque[float] = deque(maxlen=d_period)
        self._n = 0

    def update(self, high: int, low: int, close: int) -> None:
        hh, ll = self._high.update(high), self._low.update(low)
        self._n += 1
        if self._n < self.k_period:
            return
        raw = 50.0 if hh == ll else 100.0 * (close - ll) / (hh - ll)
        self._k.append(raw)
        if len(self._k) == self.smooth:
            self._d.append(sum(self._k) / self.smooth)

    @property
    def ready(self) -> bool:
        return len(self._d) == self.d_period

    @property
    def k(self) -> float:
        """%K (smoothed over ``smooth`` bars); ``nan`` before ``k_period + smooth − 1`` bars."""
        return self._d[-1] if self._d else math.nan

    @property
    def d(self) -> float:
        """%D: the mean of the last ``d_period`` values of :attr:`k`."""
        return sum(self._d) / self.d_period if self.ready else math.nan

    @property
    def value(self) -> float:
        return self.k


class Adx:
    """Wilder's average directional index (trend strength, 0..100, not direction) with its
    directional indicators ``plus_di`` and ``minus_di``; ``update(high, low, close)``."""

    __slots__ = ("_adx", "_dm_minus", "_dm_plus", "_prev", "_tr", "period")

    def __init__(self, period: int = 14) -> None:
        _check_period(period)
        self.period = period
        self._prev: tuple[int, int, int] | None = None
        self._tr, self._dm_plus, self._dm_minus = _Wilder(period), _Wilder(period), _Wilder(period)
        self._adx = _Wilder(period)

    def update(self, high: int, low: int, close: int) -> None:
        prev, self._prev = self._prev, (high, low, close)
        if prev is None:
            return
        prev_high, prev_low, prev_close = prev
        up, down = high - prev_high, prev_low - low
        plus = up if up > down and up > 0 else 0
        minus = down if down > up and down > 0 else 0
        true_range = max(high - low, abs(high - prev_close), abs(low - prev_close))
        self._tr.update(true_range / FIXED_SCALE)
        self._dm_plus.update(plus / FIXED_SCALE)
        self._dm_minus.update(minus / FIXED_SCALE)
        if self._tr.n >= self.period:
            self._adx.update(self._dx())

    def _dx(self) -> float:
        plus, minus = self.plus_di, self.minus_di
        total = plus + minus
        return 0.0 if total == 0 else 100.0 * abs(plus - minus) / total

    def _di(self, dm: _Wilder) -> float:
        if self._tr.n < self.period:
            return math.nan
        tr = self._tr.value
        return 0.0 if tr == 0 else 100.0 * dm.value / tr

    @property
    def plus_di(self) -> float:
        return self._di(self._dm_plus)

    @property
    def minus_di(self) -> float:
        return self._di(self._dm_minus)

    @property
    def ready(self) -> bool:
        return self._adx.n >= self.period

    @property
    def value(self) -> float:
        return self._adx.value if self.ready else math.nan


class ZScore:
    """How many standard deviations the latest value is from the mean of the last ``period``
    values (itself included); exact int sums, as :class:`RollingStd`."""

    __slots__ = ("_last", "_mean", "_std")

    def __init__(self, period: int, *, ddof: int = 0) -> None:
        self._mean = Sma(period)
        self._std = RollingStd(period, ddof=ddof)
        self._last = 0

    def update(self, value: int) -> None:
        self._mean.update(value)
        self._std.update(value)
        self._last = value

    @property
    def ready(self) -> bool:
        return self._mean.ready

    @property
    def value(self) -> float:
        if not self.ready:
            return math.nan
        std = self._std.value
        if std == 0:
            return 0.0
        return (self._last / FIXED_SCALE - self._mean.value) / std
