"""What a set of trials says: the ranking, the best set, and its multiple-testing figures.

DSR and PBO are Sharpe-based (as in their papers) whatever the objective: DSR is evaluated for
the trial the objective selects, against the per-period Sharpe ratios of every valid trial; PBO
ranks trials by Sharpe on the CSCV halves. A study is flagged untrustworthy when DSR < 0.95 or
PBO > 0.5 (or either cannot be computed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backtest.research.stats import (
    DSR_THRESHOLD,
    PBO_THRESHOLD,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    pbo_cscv,
)
from backtest.research.trial import Trial

__all__ = ["StudyStats", "analyse", "rank_trials"]


@dataclass
class StudyStats:
    n_trials: int
    n_valid: int
    best: Trial | None
    dsr: float
    pbo: float
    sr0: float  # expected maximum per-period Sharpe of n_trials skill-less trials
    sharpe_variance: float
    pbo_logits: list[float] = field(default_factory=list)
    degradation: tuple[float, float] = (math.nan, math.nan)

    @property
    def trustworthy(self) -> bool:
        return (
            math.isfinite(self.dsr)
            and math.isfinite(self.pbo)
            and self.dsr >= DSR_THRESHOLD
            and self.pbo <= PBO_THRESHOLD
        )

    def summary(self) -> dict[str, Any]:
        def num(value: float) -> float | None:
            return value if math.isfinite(value) else None

        return {
            "n_trials": self.n_trials,
            "n_valid": self.n_valid,
            "best": None if self.best is None else self.best.param_hash,
            "dsr": num(self.dsr),
            "pbo": num(self.pbo),
            "sr0": num(self.sr0),
            "sharpe_variance": num(self.sharpe_variance),
            "trustworthy": self.trustworthy,
        }


def rank_trials(trials: Sequence[Trial], goal: str) -> list[Trial]:
    """Valid trials best first (ties broken by parameter hash), then the rest."""
    sign = -1.0 if goal == "maximize" else 1.0

    def key(t: Trial) -> tuple[int, float, str]:
        valid = t.status == "ok" and math.isfinite(t.objective)
        return (0 if valid else 1, sign * t.objective if valid else 0.0, t.param_hash)

    return sorted(trials, key=key)


def analyse(trials: Sequence[Trial], goal: str) -> StudyStats:
    ranked = rank_trials(trials, goal)
    valid = [t for t in ranked if t.status == "ok" and math.isfinite(t.objective)]
    best = valid[0] if valid else None
    sharpes = np.array([t.sharpe_pp if math.isfinite(t.sharpe_pp) else 0.0 for t in valid])
    variance = float(np.var(sharpes, ddof=1)) if sharpes.size > 1 else math.nan
    n = len(valid)
    dsr = math.nan
    if best is not None and math.isfinite(variance):
        dsr = deflated_sharpe_ratio(
            best.sharpe_pp, n_obs=best.n_obs, n_trials=n, sharpe_variance=variance,
            skew=best.skew, kurtosis=best.kurtosis,
        )  # fmt: skip
    stats = StudyStats(
        n_trials=len(trials), n_valid=n, best=best, dsr=dsr, pbo=math.nan,
        sr0=expected_max_sharpe(n, variance) if math.isfinite(variance) else math.nan,
        sharpe_variance=variance,
    )  # fmt: skip
    blocks = [t for t in valid if t.block_n]
    if len(blocks) >= 2 and len({len(t.block_n) for t in blocks}) == 1:
        result = pbo_cscv(
            np.array([t.block_n for t in blocks]),
            np.array([t.block_sum for t in blocks]),
            np.array([t.block_sumsq for t in blocks]),
        )
        stats.pbo, stats.pbo_logits = result.pbo, result.logits.tolist()
        stats.degradation = result.degradation
    return stats
