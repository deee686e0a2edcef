"""Multiple-testing statistics of a study: the Deflated Sharpe Ratio and PBO by CSCV.

* :func:`deflated_sharpe_ratio` — Bailey & López de Prado (2014), "The Deflated Sharpe Ratio:
  Correcting for Selection Bias, Backtest Overfitting and Non-Normality", JPM 40(5). The
  probability that the selected trial's true Sharpe exceeds the Sharpe expected from the best of
  ``n_trials`` skill-less trials, given the variance of the trials' Sharpe ratios, the selected
  trial's skewness and (non-excess) kurtosis and its number of returns.
* :func:`pbo_cscv` — Bailey, Borwein, López de Prado & Zhu (2015), "The Probability of Backtest
  Overfitting", J. Computational Finance: combinatorially symmetric cross-validation. The returns
  are cut into ``S`` blocks; for every half of the blocks taken as in-sample, the in-sample best
  trial's out-of-sample rank gives a logit; PBO is the share of non-positive logits.

All Sharpe ratios here are per period (not annualised), as in the papers. Trials carry per-block
sufficient statistics (count, sum, sum of squares of their returns), so a Sharpe ratio over any
union of blocks is exact without shipping whole return series around a cluster.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "EULER_GAMMA",
    "BlockStats",
    "PboResult",
    "ReturnMoments",
    "block_stats",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "norm_cdf",
    "norm_ppf",
    "pbo_cscv",
    "probabilistic_sharpe_ratio",
    "return_moments",
]

FloatArray = npt.NDArray[np.float64]
EULER_GAMMA = 0.5772156649015329
DSR_THRESHOLD = 0.95
PBO_THRESHOLD = 0.5


def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def norm_ppf(p: float) -> float:
    """Inverse of the standard normal CDF (Acklam's rational start + two Newton steps)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must be in (0, 1), not {p}")
    a = (
        -39.69683028665376,
        220.9460984245205,
        -275.9285104469687,
        138.357751867269,
        -30.66479806614716,
        2.506628277459239,
    )
    b = (
        -54.47609879822406,
        161.5858368580409,
        -155.6989798598866,
        66.80131188771972,
        -13.28068155288572,
    )
    c = (
        -0.007784894002430293,
        -0.3223964580411365,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    )
    d = (0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416)
    q = min(p, 1.0 - p)
    if q < 0.02425:
        r = math.sqrt(-2.0 * math.log(q))
        x = (((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) / (
            (((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1.0
        )
        x = x if p < 0.5 else -x
    else:
        r = (p - 0.5) ** 2
        x = (
            (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
            * (p - 0.5)
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
        )
    for _ in range(2):  # Newton on Φ(x) - p
        x -= (norm_cdf(x) - p) / (math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi))
    return x  # fmt: skip


# --------------------------------------------------------------------------- return moments


@dataclass(frozen=True)
class ReturnMoments:
    n_obs: int
    sharpe: float  # mean / std (ddof=1), per period; NaN when std is 0 or n < 2
    skew: float
    kurtosis: float  # Pearson (non-excess): 3 for a normal distribution


def return_moments(returns: FloatArray) -> ReturnMoments:
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    n = int(r.size)
    if n < 2:
        return ReturnMoments(n, math.nan, math.nan, math.nan)
    mean, std = float(r.mean()), float(r.std(ddof=1))
    centred = r - mean
    squared = centred * centred  # products, not ``**3``/``**4`` (a pow per element: ~10× slower)
    m2 = float(np.mean(squared))
    if std <= 1e-15 * max(1.0, float(np.max(np.abs(r)))) or m2 <= 0:
        return ReturnMoments(n, math.nan, math.nan, math.nan)
    skew = float(np.mean(squared * centred)) / m2**1.5
    kurt = float(np.mean(squared * squared)) / m2**2
    return ReturnMoments(n, mean / std, skew, kurt)


@dataclass(frozen=True)
class BlockStats:
    """Count, sum and sum of squares of a trial's returns in each of ``S`` contiguous blocks."""

    n: FloatArray
    total: FloatArray
    sumsq: FloatArray


def block_stats(returns: FloatArray, n_blocks: int) -> BlockStats:
    """Split ``returns`` (NaN counted as 0) into ``n_blocks`` near-equal contiguous blocks."""
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    edges = np.linspace(0, r.size, n_blocks + 1).round().astype(np.int64)
    n = np.diff(edges).astype(np.float64)
    csum = np.concatenate(([0.0], np.cumsum(r)))
    csq = np.concatenate(([0.0], np.cumsum(r * r)))
    return BlockStats(n, np.diff(csum[edges]), np.diff(csq[edges]))


# --------------------------------------------------------------------------- DSR


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """E[max of ``n_trials`` skill-less Sharpe ratios] (the DSR paper's SR₀, eq. in §3)."""
    if n_trials <= 1 or not sharpe_variance > 0:
        return 0.0
    z = (1.0 - EULER_GAMMA) * norm_ppf(1.0 - 1.0 / n_trials) + EULER_GAMMA * norm_ppf(
        1.0 - 1.0 / (n_trials * math.e)
    )
    return math.sqrt(sharpe_variance) * z


def probabilistic_sharpe_ratio(
    sharpe: float, benchmark: float, *, n_obs: int, skew: float, kurtosis: float
) -> float:
    """P[true SR > ``benchmark``] given an observed per-period ``sharpe`` over ``n_obs`` returns."""
    if n_obs < 2 or not math.isfinite(sharpe):
        return math.nan
    skew = skew if math.isfinite(skew) else 0.0
    kurtosis = kurtosis if math.isfinite(kurtosis) else 3.0
    var = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if var <= 0:
        return math.nan
    return norm_cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var))


def deflated_sharpe_ratio(
    sharpe: float,
    *,
    n_obs: int,
    n_trials: int,
    sharpe_variance: float,
    skew: float,
    kurtosis: float,
) -> float:
    """DSR: the PSR of the selected trial against :func:`expected_max_sharpe` (per period)."""
    benchmark = expected_max_sharpe(n_trials, sharpe_variance)
    return probabilistic_sharpe_ratio(sharpe, benchmark, n_obs=n_obs, skew=skew, kurtosis=kurtosis)


# --------------------------------------------------------------------------- PBO


@dataclass(frozen=True)
class PboResult:
    pbo: float
    logits: FloatArray  # one per combination; ≤ 0: the in-sample best was below the OOS median
    n_combinations: int
    degradation: tuple[float, float]  # slope, intercept of OOS Sharpe on IS Sharpe of the best


def _combo_sharpe(n: FloatArray, total: FloatArray, sumsq: FloatArray) -> FloatArray:
    """Per-period Sharpe per (combination, trial) from summed block statistics."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        var = (sumsq - n * mean * mean) / (n - 1.0)
        sr = mean / np.sqrt(var)
    return np.where(np.isfinite(sr) & (var > 1e-30), sr, 0.0)


def pbo_cscv(n: FloatArray, total: FloatArray, sumsq: FloatArray) -> PboResult:
    """PBO of a study from per-trial block statistics, arrays of shape (trials, S), S even.

    For every choice of S/2 blocks as in-sample (the rest out-of-sample): the trial with the best
    in-sample Sharpe, its out-of-sample relative rank ω = rank / (N + 1) and logit ln(ω / (1 − ω)).
    PBO = share of logits ≤ 0. Ties in ranks are averaged.
    """
    n, total, sumsq = (np.asarray(a, dtype=np.float64) for a in (n, total, sumsq))
    trials, blocks = n.shape
    if trials < 2 or blocks < 2 or blocks % 2:
        return PboResult(math.nan, np.zeros(0), 0, (math.nan, math.nan))
    combos = np.array(list(itertools.combinations(range(blocks), blocks // 2)))
    member = np.zeros((len(combos), blocks))
    member[np.arange(len(combos))[:, None], combos] = 1.0
    other = 1.0 - member
    is_sr = _combo_sharpe(member @ n.T, member @ total.T, member @ sumsq.T)
    oos_sr = _combo_sharpe(other @ n.T, other @ total.T, other @ sumsq.T)
    best = np.argmax(is_sr, axis=1)
    rows = np.arange(len(combos))
    picked = oos_sr[rows, best][:, None]
    below = (oos_sr < picked).sum(axis=1)
    equal = (oos_sr == picked).sum(axis=1)
    rank = below + (equal + 1) / 2.0  # 1..N, ties averaged
    omega = rank / (trials + 1.0)
    logits = np.log(omega / (1.0 - omega))
    x, y = is_sr[rows, best], oos_sr[rows, best]
    slope, intercept = np.polyfit(x, y, 1) if np.ptp(x) > 0 else (math.nan, math.nan)
    return PboResult(
        float(np.mean(logits <= 0)), logits, len(combos), (float(slope), float(intercept))
    )
