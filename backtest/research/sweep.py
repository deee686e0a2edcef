"""Parameter sweeps: every parameter set of a study (a grid, a random sample, or the sets a TPE
search proposes) as a Ray task over one feed.

::

    from backtest.research import run_sweep
    outcome = run_sweep("configs/sweep.yaml")           # local Ray, default store
    outcome.sweep_id, outcome.stats.dsr, outcome.stats.pbo, outcome.ranked[0].params

The sweep id is ``<name>-<hash>`` of the study config, the base backtest config and the dataset:
running the same sweep again finds its rows in ``sweep_results`` and runs only what is missing
(an interrupted sweep resumes; a finished one only re-reads and re-reports).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backtest.config import check_writable_dir
from backtest.research.analysis import StudyStats, analyse, rank_trials
from backtest.research.config import SweepConfig, load_study
from backtest.research.grid import expand
from backtest.research.results import record_study
from backtest.research.search import tpe_search
from backtest.research.study import open_session, run_specs
from backtest.research.trial import Trial, TrialSpec

__all__ = ["SweepOutcome", "run_sweep"]


@dataclass
class SweepOutcome:
    sweep_id: str
    config: SweepConfig
    ranked: list[Trial]  # valid trials best first, then failed ones
    stats: StudyStats
    n_run: int  # trials run now (the rest came from the store)
    report_path: Path | None = None
    asked: list[str] = field(default_factory=list)  # parameter hashes in the order proposed

    @property
    def best(self) -> Trial | None:
        return self.stats.best

    def to_json(self) -> dict[str, Any]:
        best = self.best
        summary = self.stats.summary()
        return {
            "sweep_id": self.sweep_id,
            "n_runs": len(self.ranked),
            "n_valid": self.stats.n_valid,
            "best": None if best is None else {
                "params": best.params, "param_hash": best.param_hash, "metrics": best.metrics,
            },
            "objective": {"metric": self.config.objective.metric,
                          "goal": self.config.objective.goal},
            "dsr": summary["dsr"],
            "pbo": summary["pbo"],
            "trustworthy": summary["trustworthy"],
            "report": str(self.report_path) if self.report_path else None,
        }  # fmt: skip


def run_sweep(
    source: str | Path | dict[str, Any] | SweepConfig,
    *,
    address: str | None = None,
    store_dsn: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    report: bool = True,
    dashboard: Callable[[str], None] | None = None,
) -> SweepOutcome:
    """Run (or resume) a sweep; results in the store, a report in ``runs/<sweep_id>/``.

    ``dashboard``: a private Ray session starts its dashboard on 127.0.0.1 and this is called
    with the URL as soon as Ray is up (no dashboard without it).
    """
    config = source if isinstance(source, SweepConfig) else load_study(source, "sweep")
    assert isinstance(config, SweepConfig)
    if report:  # checked now, not after the study has run
        name = str(source) if isinstance(source, str | Path) else None
        check_writable_dir(Path(config.output_dir), field="output_dir", source=name)
    params = expand(config) if config.tpe is None else []
    with open_session(config, address=address, store_dsn=store_dsn,
                      dashboard=dashboard) as session:  # fmt: skip
        sweep_id = session.study_id
        manifest = session.manifest(len(params) if config.tpe is None else config.tpe.n)
        record_study(session.store, sweep_id=sweep_id, kind="sweep", name=config.name,
                     manifest=manifest, status="running", summary={})  # fmt: skip
        if config.tpe is not None:
            trials, n_run = tpe_search(session, config, progress=progress)
        else:
            jobs = [(sweep_id, TrialSpec(params=p)) for p in params]
            found, n_run = run_specs(session, jobs, progress=progress)
            trials = [found[(sweep_id, s.key)] for _, s in jobs]
        stats = analyse(trials, config.objective.goal)
        record_study(session.store, sweep_id=sweep_id, kind="sweep", name=config.name,
                     manifest=manifest, status="done", summary=stats.summary())  # fmt: skip
    outcome = SweepOutcome(sweep_id, config, rank_trials(trials, config.objective.goal), stats,
                           n_run, asked=[t.param_hash for t in trials])  # fmt: skip
    if report:
        from backtest.research.report import write_sweep_report

        outcome.report_path = write_sweep_report(
            Path(config.output_dir) / sweep_id / "report.html", outcome
        )
    return outcome
