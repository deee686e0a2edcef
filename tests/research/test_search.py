"""Bayesian (TPE) sweeps: seeded determinism, resume from the store, every trial counted in DSR
and PBO, and the config's mistakes refused clearly."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backtest.research.config import load_study
from backtest.research.stats import deflated_sharpe_ratio, expected_max_sharpe, pbo_cscv
from backtest.research.sweep import SweepOutcome, run_sweep
from backtest.research.trial import Trial
from cli.main import main
from runtime.errors import ConfigError
from tests.research.conftest import write_study

TPE = {
    "n": 14,
    "seed": 11,
    "batch": 4,
    "startup": 5,
    "space": {"fast": {"low": 2, "high": 12}, "slow": {"low": 8, "high": 40}},
}


def _study(tmp: Path, **tpe: Any) -> Path:
    return write_study(tmp, name="rs_tpe", grid=None, tpe={**TPE, **tpe})


def _sequence(outcome: SweepOutcome) -> list[tuple[str, float]]:
    return [(t.param_hash, t.objective) for t in _asked_order(outcome)]


def _asked_order(outcome: SweepOutcome) -> list[Trial]:
    return sorted(outcome.ranked, key=lambda t: outcome.asked.index(t.param_hash))


@pytest.mark.ray
def test_a_seeded_search_proposes_the_same_sets_in_the_same_order(
    ray_local: Any, tmp_path: Path
) -> None:
    path = _study(tmp_path)
    first = run_sweep(path, store_dsn=f"chdb://{tmp_path / 'a'}", report=False)
    again = run_sweep(path, store_dsn=f"chdb://{tmp_path / 'b'}", report=False)
    assert first.n_run == again.n_run == len(first.ranked) == TPE["n"]
    assert first.asked == again.asked and _sequence(first) == _sequence(again)
    assert [t.state_hash for t in first.ranked] == [t.state_hash for t in again.ranked]
    for trial in first.ranked:  # the constraint and the space hold for every proposal
        fast, slow = trial.params["fast"], trial.params["slow"]
        assert isinstance(fast, int) and isinstance(slow, int)
        assert 2 <= fast <= 12 and 8 <= slow <= 40 and fast < slow
    (tmp_path / "other").mkdir()
    other = run_sweep(_study(tmp_path / "other", seed=12), store_dsn=f"chdb://{tmp_path / 'c'}",
                      report=False)  # fmt: skip
    assert other.sweep_id != first.sweep_id and other.asked != first.asked


@pytest.mark.ray
def test_an_interrupted_search_resumes_and_asks_what_the_first_run_would_have(
    ray_local: Any, tmp_path: Path
) -> None:
    path = _study(tmp_path)
    dsn = f"chdb://{tmp_path / 'store'}"

    def stop_after_six(done: int, total: int) -> None:
        assert total == TPE["n"]
        if done == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(path, store_dsn=dsn, progress=stop_after_six, report=False)
    resumed = run_sweep(path, store_dsn=dsn, report=False)
    assert resumed.n_run == TPE["n"] - 6  # the six finished ones came from the store
    reference = run_sweep(path, store_dsn=f"chdb://{tmp_path / 'ref'}", report=False)
    assert _sequence(resumed) == _sequence(reference)
    finished = run_sweep(path, store_dsn=dsn, report=False)
    assert finished.n_run == 0 and _sequence(finished) == _sequence(reference)


@pytest.mark.ray
def test_every_trial_of_the_search_counts_in_dsr_and_pbo(ray_local: Any, tmp_path: Path) -> None:
    outcome = run_sweep(_study(tmp_path, n=12), store_dsn=f"chdb://{tmp_path / 's'}")
    valid = [t for t in outcome.ranked if t.status == "ok" and math.isfinite(t.objective)]
    assert outcome.stats.n_trials == len(outcome.ranked) == 12
    assert outcome.stats.n_valid == len(valid) >= 10
    sharpes = np.array([t.sharpe_pp for t in valid])
    variance = float(np.var(sharpes, ddof=1))
    assert outcome.stats.sharpe_variance == pytest.approx(variance)
    assert outcome.stats.sr0 == pytest.approx(expected_max_sharpe(len(valid), variance))
    best = outcome.best
    assert best is not None
    assert outcome.stats.dsr == pytest.approx(deflated_sharpe_ratio(
        best.sharpe_pp, n_obs=best.n_obs, n_trials=len(valid), sharpe_variance=variance,
        skew=best.skew, kurtosis=best.kurtosis))  # fmt: skip
    pbo = pbo_cscv(np.array([t.block_n for t in valid]), np.array([t.block_sum for t in valid]),
                   np.array([t.block_sumsq for t in valid]))  # fmt: skip
    assert outcome.stats.pbo == pytest.approx(pbo.pbo)
    assert outcome.report_path is not None and "Deflated Sharpe Ratio" in (
        outcome.report_path.read_text()
    )


@pytest.mark.ray
def test_the_cli_runs_a_tpe_sweep(
    ray_local: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _study(tmp_path, n=6, batch=3)
    assert main(["sweep", "--config", str(path), "--store", f"chdb://{tmp_path / 's'}"]) == 0
    table = capsys.readouterr().out
    assert "6 parameter sets (6 run now" in table and "DSR" in table and "PBO" in table


@pytest.mark.parametrize(
    ("study", "field", "message"),
    [
        ({"grid": {"fast": [3], "slow": [13]}}, "grid", "exactly one of grid, sample or tpe"),
        ({"tpe": {**TPE, "space": {"fast": {"low": 12, "high": 2}}}}, "tpe.space.fast",
         "low (12.0) must be below high (2.0)"),
        ({"tpe": {**TPE, "space": {"fast": {"low": 0, "high": 9, "log": True}}}},
         "tpe.space.fast", "log range needs low > 0"),
        ({"tpe": {**TPE, "space": {"fast": {"low": 2.5, "high": 9}}}}, "tpe.space.fast",
         "whole bounds"),
        ({"tpe": {**TPE, "space": {"fast": []}}}, "tpe.space.fast", "at least one choice"),
        ({"tpe": {**TPE, "space": {"fast": {"low": 2, "high": 9}}}}, "constraints",
         "names 'slow', not a varied parameter"),
        ({"tpe": {**TPE, "batch": 0}}, "tpe.batch", "greater than or equal to 1"),
        ({"tpe": {**TPE, "n": 0}}, "tpe.n", "greater than 0"),
        ({"tpe": {**TPE, "sampler": "cmaes"}}, "tpe.sampler", "unknown field"),
    ],
)
def test_a_bad_tpe_config_names_its_field(
    tmp_path: Path, study: dict[str, Any], field: str, message: str
) -> None:
    path = write_study(tmp_path, name="rs_bad", **{"grid": None, "tpe": TPE, **study})
    with pytest.raises(ConfigError) as error:
        load_study(path, "sweep")
    text = str(error.value)
    assert field in text and message in text and str(path) in text


def test_a_walkforward_study_refuses_tpe(tmp_path: Path) -> None:
    path = write_study(tmp_path, grid=None, tpe=TPE,
                       windows={"train": 500, "test": 250})  # fmt: skip
    with pytest.raises(ConfigError, match=r"tpe is a sweep's search"):
        load_study(path, "walkforward")
