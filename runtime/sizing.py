"""Position sizing: how much to hold, from the account, volatility, edge and correlation.

Pure functions and small incremental estimators over floats in human units (a strategy turns
the result into a fixed-point quantity with ``Strategy.to_qty``, which rounds down to whole
lots: never more than the sizing asked for). Nothing here reads a clock or draws randomness.

- :func:`vol_target_notional`: the notional whose volatility is ``target_vol`` of the equity
  (``equity · target_vol / vol``), capped at ``max_leverage · equity``.
- :func:`kelly_fraction`: fractional Kelly for a continuous edge, ``fraction · mean / variance``,
  clipped to ``[-cap, cap]``; :func:`kelly_binary` for a bet won with probability ``p`` paying
  ``payoff`` times the stake (``p − (1 − p) / payoff``).
- :func:`correlated_exposure` and :func:`cap_correlated_exposure`: the exposure of a set of
  positions counted through their correlation, ``sqrt(eᵀ C e)`` (two fully correlated positions
  count as their sum, two uncorrelated ones as the root of their squares), and the same
  exposures scaled down together until it is under a cap.
- :class:`ReturnVol`: rolling standard deviation of log returns (ddof 1, as pandas), fed prices
  one at a time; :class:`RollingCorrelation`: the correlation matrix of several instruments'
  log returns over a rolling window, fed one price per instrument per step.

Per-strategy risk *budgets* (position, loss and exposure limits for one strategy) are enforced
by pre-trade risk, not here: see ``runtime.risk.StrategyBudget``.

::

    vol = ReturnVol(60)
    ...
    vol.update(bar.close)
    if vol.ready:
        annual = vol.value * math.sqrt(periods_per_year)
        notional = vol_target_notional(equity, annual, target_vol=0.10, max_leverage=2.0)
        qty = self.to_qty(inst, notional / self.to_float(bar.close))
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from runtime.errors import InvariantError
from runtime.values import FIXED_SCALE

__all__ = [
    "ReturnVol",
    "RollingCorrelation",
    "cap_correlated_exposure",
    "correlated_exposure",
    "kelly_binary",
    "kelly_fraction",
    "vol_target_notional",
]


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise InvariantError(f"{name} must be a finite number, got {value!r}")


def vol_target_notional(
    equity: float, vol: float, *, target_vol: float, max_leverage: float = 1.0
) -> float:
    """The (unsigned) notional whose volatility is ``target_vol`` of ``equity``.

    ``vol`` and ``target_vol`` are in the same units (both annualised, or both per bar).
    ``equity · target_vol / vol``, never more than ``max_leverage · equity``; 0 when the equity
    is not positive or the volatility is unknown (``nan``); a zero volatility gets the cap.
    """
    if target_vol <= 0 or not math.isfinite(target_vol):
        raise InvariantError(f"target_vol must be a positive number, got {target_vol!r}")
    if max_leverage <= 0 or not math.isfinite(max_leverage):
        raise InvariantError(f"max_leverage must be a positive number, got {max_leverage!r}")
    _finite("equity", equity)
    if vol < 0:
        raise InvariantError(f"vol must not be negative, got {vol!r}")
    if equity <= 0 or math.isnan(vol):
        return 0.0
    cap = max_leverage * equity
    if vol == 0:
        return cap
    return min(equity * target_vol / vol, cap)


def kelly_fraction(
    mean: float, variance: float, *, fraction: float = 0.5, cap: float = 1.0
) -> float:
    """Fractional Kelly for a continuous edge: ``fraction · mean / variance`` of the equity,
    clipped to ``[-cap, cap]`` (signed: a negative mean says short).

    ``mean`` is the expected excess return per period and ``variance`` its variance, in the same
    period. Full Kelly (``fraction`` 1) maximises log growth only when the edge is known
    exactly; half Kelly keeps three quarters of the growth at half the volatility. 0 when the
    variance is 0 or either estimate is unknown (``nan``).
    """
    if not 0 < fraction <= 1:
        raise InvariantError(f"fraction must be in (0, 1], got {fraction!r}")
    if cap <= 0 or not math.isfinite(cap):
        raise InvariantError(f"cap must be a positive number, got {cap!r}")
    if variance < 0:
        raise InvariantError(f"variance must not be negative, got {variance!r}")
    if math.isnan(mean) or math.isnan(variance) or variance == 0:
        return 0.0
    _finite("mean", mean)
    raw = fraction * mean / variance
    return max(-cap, min(cap, raw))


def kelly_binary(p: float, payoff: float, *, fraction: float = 0.5, cap: float = 1.0) -> float:
    """Fractional Kelly for a bet won with probability ``p`` that pays ``payoff`` times the stake
    and loses the stake otherwise: ``fraction · (p − (1 − p) / payoff)``, within ``[0, cap]``
    (no edge, no bet)."""
    if not 0 <= p <= 1:
        raise InvariantError(f"p must be a probability in [0, 1], got {p!r}")
    if payoff <= 0 or not math.isfinite(payoff):
        raise InvariantError(f"payoff must be a positive number, got {payoff!r}")
    if not 0 < fraction <= 1:
        raise InvariantError(f"fraction must be in (0, 1], got {fraction!r}")
    if cap <= 0 or not math.isfinite(cap):
        raise InvariantError(f"cap must be a positive number, got {cap!r}")
    return max(0.0, min(cap, fraction * (p - (1 - p) / payoff)))


def _corr_matrix(corr: Sequence[Sequence[float]] | np.ndarray, n: int) -> np.ndarray:
    matrix = np.asarray(corr, dtype=float)
    if matrix.shape != (n, n):
        raise InvariantError(f"correlation matrix is {matrix.shape}, expected ({n}, {n})")
    if not np.all(np.isfinite(matrix)):
        raise InvariantError("correlation matrix holds a non-finite value")
    if np.any(np.abs(matrix) > 1 + 1e-12) or not np.allclose(np.diag(matrix), 1.0):
        raise InvariantError("not a correlation matrix: entries must lie in [-1, 1], 1 on the "
                             "diagonal")
    if not np.allclose(matrix, matrix.T):
        raise InvariantError("correlation matrix is not symmetric")
    return matrix


def correlated_exposure(
    exposures: Sequence[float], corr: Sequence[Sequence[float]] | np.ndarray
) -> float:
    """``sqrt(eᵀ C e)``: signed exposures (notionals, or notionals times volatility for a risk
    measure) counted through their correlation. Equal to the gross exposure when all are fully
    correlated and on the same side, to the root of the squares when uncorrelated, and smaller
    for a hedge."""
    e = np.asarray(exposures, dtype=float)
    if not np.all(np.isfinite(e)):
        raise InvariantError("exposures must be finite numbers")
    matrix = _corr_matrix(corr, len(e))
    return math.sqrt(max(0.0, float(e @ matrix @ e)))


def cap_correlated_exposure(
    exposures: Sequence[float], corr: Sequence[Sequence[float]] | np.ndarray, cap: float
) -> tuple[float, ...]:
    """The exposures, scaled down together (signs and proportions kept) so that
    :func:`correlated_exposure` is at most ``cap``; unchanged when already under it."""
    if cap < 0 or not math.isfinite(cap):
        raise InvariantError(f"cap must be a non-negative number, got {cap!r}")
    current = correlated_exposure(exposures, corr)
    if current <= cap:
        return tuple(float(x) for x in exposures)
    scale = cap / current
    return tuple(float(x) * scale for x in exposures)


class ReturnVol:
    """Standard deviation (ddof 1) of the last ``period`` log returns of a fixed-point price
    series; ``ready`` after ``period + 1`` prices. Per bar; annualise with ``sqrt(bars per
    year)``. The running sums are recomputed from the window every ``period`` updates, so
    rounding never accumulates."""

    __slots__ = ("_last", "_n", "_returns", "_sum", "_sumsq", "period")

    def __init__(self, period: int) -> None:
        if period < 2:
            raise InvariantError(f"ReturnVol period must be >= 2, got {period}")
        self.period = period
        self._returns: deque[float] = deque(maxlen=period)
        self._last = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self._n = 0

    def update(self, price: int) -> None:
        if price <= 0:
            raise InvariantError(f"ReturnVol needs positive prices, got {price / FIXED_SCALE}")
        last, self._last = self._last, price
        if last == 0:
            return
        r = math.log(price / last)
        window = self._returns
        if len(window) == self.period:
            old = window[0]
            self._sum -= old
            self._sumsq -= old * old
        window.append(r)
        self._sum += r
        self._sumsq += r * r
        self._n += 1
        if self._n % self.period == 0:
            self._sum = math.fsum(window)
            self._sumsq = math.fsum(x * x for x in window)

    @property
    def ready(self) -> bool:
        return len(self._returns) == self.period

    @property
    def value(self) -> float:
        """The volatility per bar (a fraction: 0.01 is 1 %); ``nan`` before two returns."""
        n = len(self._returns)
        if n < 2:
            return math.nan
        mean = self._sum / n
        return math.sqrt(max(0.0, (self._sumsq - n * mean * mean) / (n - 1)))


class RollingCorrelation:
    """Correlation of several instruments' log returns over the last ``window`` steps.

    ``update(prices)`` takes one fixed-point price per instrument, in the order given at
    construction, for the same step (e.g. the closes of bars ending at the same time); the
    first call only records them. ``matrix()`` is the Pearson correlation matrix, ``ready``
    after ``window`` returns; a series that did not move has correlation 0 with the others.
    """

    def __init__(self, instruments: Sequence[str], window: int) -> None:
        if len(instruments) < 1 or len(set(instruments)) != len(instruments):
            raise InvariantError("RollingCorrelation needs distinct instruments")
        if window < 3:
            raise InvariantError(f"RollingCorrelation window must be >= 3, got {window}")
        self.instruments = tuple(instruments)
        self.window = window
        self._returns: deque[np.ndarray] = deque(maxlen=window)
        self._last: np.ndarray | None = None

    def update(self, prices: Sequence[int]) -> None:
        if len(prices) != len(self.instruments):
            raise InvariantError(
                f"expected {len(self.instruments)} prices ({', '.join(self.instruments)}), "
                f"got {len(prices)}"
            )
        now = np.asarray(prices, dtype=float)
        if np.any(now <= 0):
            raise InvariantError("RollingCorrelation needs positive prices")
        if self._last is not None:
            self._returns.append(np.log(now / self._last))
        self._last = now

    @property
    def ready(self) -> bool:
        return len(self._returns) == self.window

    def matrix(self) -> np.ndarray:
        """The correlation matrix (identity before two returns)."""
        k = len(self.instruments)
        if len(self._returns) < 2:
            return np.eye(k)
        r = np.array(self._returns)
        centred = r - r.mean(axis=0)
        cov = centred.T @ centred
        sd = np.sqrt(np.diag(cov))
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = cov / np.outer(sd, sd)
        corr = np.where(np.isfinite(corr), corr, 0.0)
        corr = np.clip(corr, -1.0, 1.0)
        np.fill_diagonal(corr, 1.0)
        return corr
