"""One trial of a study: one parameter set through the in-process backtester, on a loaded feed.

No Ray and no store here: a Ray task calls :func:`run_trial` and returns its :class:`Trial` to
the driver, which alone writes to the store. The backtest is the one of ``tradewind backtest``
(:func:`backtest.api.simulate`, the equity curve and :func:`backtest.metrics.compute_metrics`);
a trial adds what the multiple-testing statistics need: per-period Sharpe, skewness, kurtosis and
per-block sums of its returns.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtest.api import fills_frame, run_equity, simulate
from backtest.config import BacktestConfig
from backtest.feed import Feed
from backtest.metrics import compute_metrics, index_to_ns, metrics_to_json
from backtest.research.grid import ParamSet, apply_params, param_hash
from backtest.research.stats import block_stats, return_moments
from runtime.errors import ConfigError, DataError

__all__ = ["Trial", "TrialSpec", "run_trial"]


@dataclass(frozen=True)
class TrialSpec:
    """What to run: a parameter set, optionally on a time window of the feed."""

    params: ParamSet
    start_ns: int | None = None  # the run sees data from here (inclusive)
    score_ns: int | None = None  # metrics from here on (after the warm-up); default start_ns
    end_ns: int | None = None  # exclusive
    keep_curve: bool = False  # return the equity curve (walk-forward OOS)

    @property
    def key(self) -> str:
        return param_hash(self.params)


@dataclass
class Trial:
    """A trial's result row (and where it ran, which is not stored)."""

    param_hash: str
    params: ParamSet
    status: str  # "ok" or "error"
    error: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    objective: float = math.nan
    sharpe_pp: float = math.nan
    n_obs: int = 0
    skew: float = math.nan
    kurtosis: float = math.nan
    block_n: list[float] = field(default_factory=list)
    block_sum: list[float] = field(default_factory=list)
    block_sumsq: list[float] = field(default_factory=list)
    n_fills: int = 0
    state_hash: str = ""
    curve_ts: list[int] = field(default_factory=list)
    curve: list[float] = field(default_factory=list)
    node_id: str = ""
    pid: int = 0
    rss_mb: float = 0.0
    cpu_s: float = 0.0  # the worker's CPU time for this trial (benchmarks read it)


def run_trial(
    backtest: BacktestConfig,
    feed: Feed,
    spec: TrialSpec,
    *,
    strategy: str,
    objective: str,
    n_blocks: int,
) -> Trial:
    """Run one parameter set; a bad set (the strategy refuses its params) is an error row."""
    trial = Trial(param_hash=spec.key, params=dict(spec.params), status="ok")
    config = apply_params(backtest, strategy, spec.params)
    window = feed.window(spec.start_ns, spec.end_ns)
    try:
        if not window.n_events:
            raise DataError("no data in the window")
        kernel, log = simulate(config, window)
    except (ConfigError, DataError) as exc:
        trial.status, trial.error = "error", str(exc)
        return trial
    equity = run_equity(config, window, kernel, log)
    fills = fills_frame(log)
    score_ns = spec.score_ns if spec.score_ns is not None else spec.start_ns
    if score_ns is not None:
        equity = equity[equity.index >= pd.Timestamp(score_ns, unit="ns", tz="UTC")]
        fills = fills[fills["ts_event"] >= score_ns]
    _score(trial, equity, fills, objective=objective, n_blocks=n_blocks)
    trial.n_fills, trial.state_hash = len(log.fills), kernel.state_hash()
    if spec.keep_curve:
        trial.curve_ts = index_to_ns(equity.index).tolist()
        trial.curve = equity["equity"].to_numpy(dtype=np.float64).tolist()
    return trial


def _score(
    trial: Trial, equity: pd.DataFrame, fills: pd.DataFrame, *, objective: str, n_blocks: int
) -> None:
    if len(equity) < 2:
        trial.status, trial.error = "error", "fewer than two equity points"
        return
    metrics = compute_metrics(equity["equity"], fills, position_values=equity["position_value"])
    trial.metrics = json.loads(metrics_to_json(metrics))  # strict JSON: NaN/inf as null
    value = metrics.get(objective)
    if value is None:
        trial.status, trial.error = "error", f"no metric {objective!r}"
        return
    trial.objective = float(value)
    values = equity["equity"].to_numpy(dtype=np.float64)
    returns = np.diff(values) / values[:-1]
    moments = return_moments(returns)
    trial.sharpe_pp, trial.n_obs = moments.sharpe, moments.n_obs
    trial.skew, trial.kurtosis = moments.skew, moments.kurtosis
    blocks = block_stats(returns, n_blocks)
    trial.block_n, trial.block_sum = blocks.n.tolist(), blocks.total.tolist()
    trial.block_sumsq = blocks.sumsq.tolist()
