"""Parameter sweeps: every parameter set of a study (a grid, a random sample, or the sets a TPE
search proposes) as a Ray task over one feed.

::

    from backtest.research import run_sweep
    outcome = run_sweep("configs/sweep.yaml")           # local Ray, default store
    outcome.sweep_id, outcome.stats.dsr, outcome.stats.pbo, outcome.ranked[0].params

The sweep id is ``<name>-<hash>`` of the study config, the base backtest config and the dataset:
running the same sweep again finds its rows in ``sweep_results`` and runs only what is missing
(an interrupted sweep resumes; a finished one only re-reads and re-reports).

Beside its report a sweep writes ``runs/<sweep_id>/trials.json``: the study config and every
trial in rank order, so :func:`trial_backtest` (``tradewind backtest --from-sweep RUN --trial
N``) opens any trial as an ordinary backtest, with its files and report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backtest.config import BacktestConfig, check_writable_dir
from backtest.research.analysis import StudyStats, analyse, rank_trials
from backtest.research.config import SweepConfig, base_backtest, load_study
from backtest.research.grid import apply_params, expand, strategy_id
from backtest.research.results import record_study
from backtest.research.search import tpe_search
from backtest.research.study import open_session, run_specs
from backtest.research.trial import Trial, TrialSpec
from runtime.errors import ConfigError

__all__ = ["TRIALS_FILE", "SweepOutcome", "run_sweep", "trial_backtest", "write_trials"]

TRIALS_FILE = "trials.json"


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
        write_trials(Path(config.output_dir) / sweep_id / TRIALS_FILE, outcome)
    return outcome


def _finite(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def write_trials(path: Path, outcome: SweepOutcome) -> Path:
    """``trials.json``: the sweep id, its study config (paths absolute) and every trial in rank
    order (``rank`` 1 = best, as the sweep's table numbers them), with its params, objective,
    state hash and status."""
    config = outcome.config
    study = config.model_dump(mode="json", by_alias=True)
    study["base_dir"] = str(Path(config.base_dir).resolve())
    trials = [
        {"rank": rank, "param_hash": t.param_hash, "params": t.params, "status": t.status,
         "error": t.error, "objective": _finite(t.objective), "n_fills": t.n_fills,
         "state_hash": t.state_hash}
        for rank, t in enumerate(outcome.ranked, 1)
    ]  # fmt: skip
    body = {"sweep_id": outcome.sweep_id, "study": study, "trials": trials}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=1, allow_nan=False, default=str) + "\n")
    return path


def trial_backtest(run: str | Path, rank: int) -> tuple[BacktestConfig, dict[str, Any]]:
    """The backtest config of trial ``rank`` (1 = best) of a sweep, and the trial as the sweep
    recorded it. ``run``: the sweep's folder (``runs/<sweep_id>``), its ``trials.json``, or a
    sweep id under ``./runs``."""
    path = Path(run)
    if not path.exists() and not path.is_absolute() and len(path.parts) == 1:
        path = Path("runs") / path
    if path.is_dir():
        path = path / TRIALS_FILE
    if not path.is_file():
        raise ConfigError(f"no sweep there: {path} does not exist (give runs/<sweep_id>, as "
                          "`tradewind sweep` prints it)", field="--from-sweep")  # fmt: skip
    try:
        body = json.loads(path.read_text())
        trials, study_raw = body["trials"], body["study"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"not a sweep's {TRIALS_FILE}: {exc}", path=str(path)) from None
    if not 1 <= rank <= len(trials):
        raise ConfigError(f"sweep {body.get('sweep_id')} has trials 1..{len(trials)}, not {rank}",
                          field="--trial")  # fmt: skip
    trial = trials[rank - 1]
    if trial.get("status") != "ok":
        raise ConfigError(f"trial {rank} of sweep {body.get('sweep_id')} failed in the sweep: "
                          f"{trial.get('error') or 'no result'}", field="--trial")  # fmt: skip
    study = load_study(study_raw, "sweep")
    base = base_backtest(study, str(path))
    return apply_params(base, strategy_id(study, base), trial["params"]), trial
