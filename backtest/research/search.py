"""Bayesian search: Optuna's TPE sampler proposing a sweep's parameter sets (``tpe:``).

The sampler runs on the driver (ask/tell, an in-memory Optuna study); the backtests run through
the sweep's own fan-out (:func:`backtest.research.study.run_specs`: Ray tasks, results into the
store in batches). Each round asks ``batch`` proposals, runs the new ones in parallel, then tells
every proposal its objective **in the order asked**, so the sequence of proposals depends on the
seed, the batch size and the results only: not on the number of CPUs or on which task finished
first.

Resume: the store is the search's memory. Re-running the same study replays it from the start
with the same seed; a proposal whose parameter set is already stored is told its stored
objective instead of being run again, so the replay asks exactly what the first run asked and
picks up where it stopped. A proposal the constraints reject is told as failed and never run;
a proposal of a set already tried in this search is told that set's result (no new backtest).

What the statistics count: every distinct parameter set that was backtested, which is every set
the search looked at, the ones TPE steered away from included (``analyse`` over all of them), so
a smarter search cannot make its best look less selected than it is.
"""

from __future__ import annotations

import math
from typing import Any

from backtest.research.config import RangeSpec, Scalar, SweepConfig
from backtest.research.grid import ParamSet, constraint_check, param_hash
from backtest.research.study import Progress, Session, run_specs, stored_trials
from backtest.research.trial import Trial, TrialSpec

__all__ = ["MAX_ASKS_PER_SET", "tpe_search"]

MAX_ASKS_PER_SET = 50  # proposals per wanted set before the search gives up on finding new ones


def _distribution(spec: RangeSpec | list[Scalar]) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if isinstance(spec, list):
        return CategoricalDistribution(spec)
    if spec.integer:
        return IntDistribution(int(spec.low), int(spec.high), log=spec.log)
    return FloatDistribution(spec.low, spec.high, log=spec.log)


def tpe_search(
    session: Session, config: SweepConfig, *, progress: Progress | None = None
) -> tuple[list[Trial], int]:
    """Run (or resume) the TPE search of ``config``; (distinct trials in first-asked order,
    number of backtests run now)."""
    import optuna

    tpe = config.tpe
    assert tpe is not None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=tpe.seed, n_startup_trials=tpe.startup)
    study = optuna.create_study(direction=config.objective.goal, sampler=sampler)
    distributions = {name: _distribution(spec) for name, spec in tpe.space.items()}
    keep = constraint_check(config.constraints)
    sweep_id = session.study_id
    stored = stored_trials(session, [sweep_id])
    found: dict[str, Trial] = {}  # distinct sets of this search, in first-asked order
    n_run, asks = 0, 0
    max_asks = tpe.n * MAX_ASKS_PER_SET

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(len(found) + done, tpe.n)

    while len(found) < tpe.n and asks < max_asks:
        want = min(tpe.batch, tpe.n - len(found))
        batch: list[tuple[Any, ParamSet]] = []
        while len(batch) < want and asks < max_asks:
            asked = study.ask(distributions)
            asks += 1
            params = dict(asked.params)
            if keep(params):
                batch.append((asked, params))
            else:
                study.tell(asked, state=optuna.trial.TrialState.FAIL)
        new = {param_hash(p): p for _, p in batch if param_hash(p) not in found}
        jobs = [(sweep_id, TrialSpec(params=p)) for p in new.values()]
        done, ran = run_specs(session, jobs, progress=report, stored=stored)
        n_run += ran
        for key in new:
            found[key] = done[(sweep_id, key)]
        for asked, params in batch:
            _tell(study, asked, found[param_hash(params)], optuna)
        if progress is not None:
            progress(len(found), tpe.n)
    return list(found.values()), n_run


def _tell(study: Any, asked: Any, trial: Trial, optuna: Any) -> None:
    if trial.status == "ok" and math.isfinite(trial.objective):
        study.tell(asked, trial.objective)
    else:
        study.tell(asked, state=optuna.trial.TrialState.FAIL)
