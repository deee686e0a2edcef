"""Walk-forward studies: optimise the grid in-sample per window, run the best out-of-sample.

Windows are cut on the feed's distinct timestamps, lengths in data points (int) or durations
(``"365D"``). Rolling: each training window has the same length and moves by ``step``;
anchored: every training window starts at the first point. ``purge`` drops points from the end of
each training window and ``embargo`` skips points before the test window (both keep information
near the boundary out of the fit). ``warmup`` lets the out-of-sample run see data before its
window (indicators warm up) without scoring it.

Every window's in-sample grid runs in one batch of Ray tasks (windows × grid points in
parallel), then every window's out-of-sample run in a second batch. Trials are stored like sweep
trials under ``<wf_id>.wNNN.is`` / ``<wf_id>.wNNN.oos``, so an interrupted study resumes.
Walk-forward efficiency = mean out-of-sample objective / mean in-sample (best) objective.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.config import check_writable_dir
from backtest.metrics import compute_metrics, metrics_to_json
from backtest.report_charts import fmt_ts
from backtest.research.analysis import StudyStats, analyse
from backtest.research.config import WalkForwardConfig, WindowConfig, load_study
from backtest.research.grid import expand
from backtest.research.results import record_study
from backtest.research.stats import probabilistic_sharpe_ratio, return_moments
from backtest.research.study import Session, open_session, run_specs
from backtest.research.trial import Trial, TrialSpec
from runtime.errors import ConfigError

__all__ = ["WalkForwardOutcome", "Window", "WindowResult", "make_windows", "run_walkforward"]


@dataclass(frozen=True)
class Window:
    """Point indices, half-open: fit [train_start, fit_end), test [test_start, test_end)."""

    index: int
    train_start: int
    fit_end: int
    test_start: int
    test_end: int
    warm_start: int


@dataclass
class WindowResult:
    index: int
    train_label: str
    test_label: str
    params: dict[str, Any]
    is_objective: float
    oos_objective: float
    stats: StudyStats
    oos: Trial


@dataclass
class WalkForwardOutcome:
    wf_id: str
    config: WalkForwardConfig
    windows: list[WindowResult]
    oos_equity: pd.Series
    oos_metrics: dict[str, Any]
    oos_stats: StudyStats
    efficiency: float
    n_run: int
    report_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def num(v: Any) -> Any:
            return v if isinstance(v, int | float) and math.isfinite(v) else None

        return {
            "wf_id": self.wf_id,
            "n_windows": len(self.windows),
            "windows": [{"index": w.index, "train": w.train_label, "test": w.test_label,
                         "params": w.params, "is": num(w.is_objective),
                         "oos": num(w.oos_objective), "dsr": num(w.stats.dsr),
                         "pbo": num(w.stats.pbo)} for w in self.windows],
            "efficiency": num(self.efficiency),
            "oos_metrics": self.oos_metrics,
            "dsr": num(self.oos_stats.dsr),
            "pbo": num(self.oos_stats.pbo),
            "trustworthy": self.oos_stats.trustworthy,
            "report": str(self.report_path) if self.report_path else None,
        }


def _shift(ts: np.ndarray, idx: int, length: int | str, direction: int) -> int:
    """The index ``length`` (points or a duration) after (+1) or before (-1) index ``idx``."""
    if isinstance(length, int):
        return idx + direction * length
    delta = pd.Timedelta(length).value
    edge = int(ts[idx]) if idx < len(ts) else int(ts[-1]) + 1
    return int(np.searchsorted(ts, edge + direction * delta, side="left"))


def make_windows(ts: np.ndarray, spec: WindowConfig) -> list[Window]:
    """The study's windows over sorted distinct timestamps ``ts``; the last test may be short."""
    for name in ("train", "test", "step", "purge", "embargo", "warmup"):
        value = getattr(spec, name)
        if isinstance(value, str):
            try:
                pd.Timedelta(value)
            except ValueError:
                raise ConfigError(f"not a length: {value!r} (an int or e.g. '30D')",
                                  field=f"windows.{name}") from None
    n, start = len(ts), 0
    out: list[Any] = []
    step = spec.step if spec.step is not None else spec.test
    while True:
        train_end = _shift(ts, start, spec.train, +1)
        test_start = _shift(ts, min(train_end, n), spec.embargo, +1)
        if test_start >= n - 1:
            break
        test_end = min(_shift(ts, test_start, spec.test, +1), n)
        train_start = 0 if spec.mode == "anchored" else start
        fit_end = max(_shift(ts, train_end, spec.purge, -1), train_start)
        warm = max(_shift(ts, test_start, spec.warmup, -1), 0)
        out.append(Window(len(out), train_start, fit_end, test_start, test_end, warm))
        nxt = _shift(ts, start, step, +1)
        if nxt <= start:
            raise ConfigError("step must move the window forward", field="windows.step")
        start = nxt
    if not out:
        raise ConfigError(f"the data ({n} points) is too short for one train + test window",
                          field="windows")
    return out


def _edge(ts: np.ndarray, idx: int) -> int:
    return int(ts[idx]) if idx < len(ts) else int(ts[-1]) + 1


def _label(ts: np.ndarray, lo: int, hi: int) -> str:
    return f"{fmt_ts(ts[lo])} → {fmt_ts(ts[hi - 1])} ({hi - lo})"


def _stitch(trials: list[Trial], initial: float) -> pd.Series:
    """OOS equity curves chained: each window's growth applied to the running equity."""
    values: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
    level = initial
    for t in trials:
        curve = np.asarray(t.curve, dtype=np.float64)
        if curve.size == 0 or curve[0] <= 0:
            continue
        values.append(level * curve / curve[0])
        stamps.append(np.asarray(t.curve_ts, dtype=np.int64))
        level = float(values[-1][-1])
    if not values:
        return pd.Series(dtype=float)
    return pd.Series(np.concatenate(values), index=pd.to_datetime(np.concatenate(stamps), utc=True))


def _oos_stats(equity: pd.Series, windows: list[WindowResult]) -> StudyStats:
    """PSR of the stitched OOS returns (SR₀ = 0: they were not selected on), mean window PBO."""
    values = equity.to_numpy(dtype=np.float64)
    m = return_moments(np.diff(values) / values[:-1]) if values.size > 2 else None
    psr = math.nan if m is None else probabilistic_sharpe_ratio(
        m.sharpe, 0.0, n_obs=m.n_obs, skew=m.skew, kurtosis=m.kurtosis)
    pbos = [w.stats.pbo for w in windows if math.isfinite(w.stats.pbo)]
    return StudyStats(n_trials=len(windows), n_valid=len(windows), best=None, dsr=psr,
                      pbo=float(np.mean(pbos)) if pbos else math.nan, sr0=0.0,
                      sharpe_variance=math.nan)


def _run(session: Session, config: WalkForwardConfig, progress: Callable[[int, int], None] | None
         ) -> WalkForwardOutcome:
    ts = np.unique(session.feed.timestamps())
    windows = make_windows(ts, config.windows)
    params = expand(config)
    wf_id, goal = session.study_id, config.objective.goal
    is_jobs = [(f"{wf_id}.w{w.index:03d}.is",
                TrialSpec(p, start_ns=_edge(ts, w.train_start), end_ns=_edge(ts, w.fit_end)))
               for w in windows for p in params]
    found, n_is = run_specs(session, is_jobs, progress=progress)
    chosen: list[tuple[Window, StudyStats]] = []
    for w in windows:
        sid = f"{wf_id}.w{w.index:03d}.is"
        stats = analyse([found[(sid, s.key)] for j, s in is_jobs if j == sid], goal)
        if stats.best is None:
            raise ConfigError(f"window {w.index}: no parameter set ran in-sample", field="grid")
        chosen.append((w, stats))
    oos_jobs = [(f"{wf_id}.w{w.index:03d}.oos",
                 TrialSpec(st.best.params, start_ns=_edge(ts, w.warm_start),  # type: ignore[union-attr]
                           score_ns=_edge(ts, w.test_start), end_ns=_edge(ts, w.test_end),
                           keep_curve=True)) for w, st in chosen]
    oos, n_oos = run_specs(session, oos_jobs)
    results = [WindowResult(w.index, _label(ts, w.train_start, w.fit_end),
                            _label(ts, w.test_start, w.test_end), st.best.params,  # type: ignore[union-attr]
                            st.best.objective, oos[job].objective, st, oos[job])  # type: ignore[union-attr]
               for (w, st), job in zip(chosen, [(j, s.key) for j, s in oos_jobs], strict=True)]
    equity = _stitch([r.oos for r in results], float(session.backtest.initial_cash))
    metrics = (json.loads(metrics_to_json(compute_metrics(equity, None)))
               if len(equity) > 1 else {})
    is_mean = float(np.nanmean([r.is_objective for r in results]))
    oos_mean = float(np.nanmean([r.oos_objective for r in results]))
    efficiency = oos_mean / is_mean if is_mean and math.isfinite(is_mean) else math.nan
    return WalkForwardOutcome(wf_id, config, results, equity, metrics,
                              _oos_stats(equity, results), efficiency, n_is + n_oos)


def run_walkforward(
    source: str | Path | dict[str, Any] | WalkForwardConfig,
    *,
    address: str | None = None,
    store_dsn: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    report: bool = True,
    dashboard: Callable[[str], None] | None = None,
) -> WalkForwardOutcome:
    """Run (or resume) a walk-forward study; rows in the store, report in ``runs/<wf_id>/``."""
    config = source if isinstance(source, WalkForwardConfig) else load_study(source, "walkforward")
    assert isinstance(config, WalkForwardConfig)
    if report:  # checked now, not after the study has run
        name = str(source) if isinstance(source, str | Path) else None
        check_writable_dir(Path(config.output_dir), field="output_dir", source=name)
    with open_session(config, address=address, store_dsn=store_dsn,
                      dashboard=dashboard) as session:  # fmt: skip
        manifest = session.manifest(len(expand(config)))
        record_study(session.store, sweep_id=session.study_id, kind="walkforward",
                     name=config.name, manifest=manifest, status="running", summary={})
        outcome = _run(session, config, progress)
        summary = {k: v for k, v in outcome.to_json().items() if k != "windows"}
        record_study(session.store, sweep_id=session.study_id, kind="walkforward",
                     name=config.name, manifest=manifest, status="done", summary=summary)
    if report:
        from backtest.research.report import write_walkforward_report

        outcome.report_path = write_walkforward_report(
            Path(config.output_dir) / outcome.wf_id / "report.html", outcome
        )
        outcome.oos_equity.rename("equity").to_frame().to_parquet(
            outcome.report_path.parent / "oos_equity.parquet"
        )
    return outcome
