"""Research at scale: parameter sweeps and walk-forward studies as Ray tasks, with the deflated
Sharpe ratio and the probability of backtest overfitting in every result (``docs/research.md``).
"""

from __future__ import annotations

from backtest.research.analysis import StudyStats, analyse, rank_trials
from backtest.research.config import SweepConfig, WalkForwardConfig, load_study
from backtest.research.stats import deflated_sharpe_ratio, pbo_cscv
from backtest.research.sweep import SweepOutcome, run_sweep
from backtest.research.trial import Trial, TrialSpec, run_trial
from backtest.research.walkforward import WalkForwardOutcome, run_walkforward

__all__ = [
    "StudyStats",
    "SweepConfig",
    "SweepOutcome",
    "Trial",
    "TrialSpec",
    "WalkForwardConfig",
    "WalkForwardOutcome",
    "analyse",
    "deflated_sharpe_ratio",
    "load_study",
    "pbo_cscv",
    "rank_trials",
    "run_sweep",
    "run_trial",
    "run_walkforward",
]
