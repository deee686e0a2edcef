"""Study results in the store: ``sweep_runs`` (one row per study) and ``sweep_results`` (one row
per parameter set), keyed by (sweep id, parameter hash). Only the driver calls these.

``sweep_results`` holds deterministic columns only, so a rerun or a resumed study writes rows
identical to the first run's; ReplacingMergeTree plus ``FINAL`` reads make a re-inserted row
appear once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from backtest.research.trial import Trial
from backtest.store import Store

__all__ = ["RESULT_COLUMNS", "load_trials", "record_study", "write_trials"]

RESULT_COLUMNS = (
    "sweep_id", "param_hash", "params_json", "status", "error", "metrics_json", "objective",
    "sharpe_pp", "n_obs", "skew", "kurtosis", "block_n", "block_sum", "block_sumsq", "n_fills",
    "state_hash", "curve_ts", "curve",
)  # fmt: skip

_TYPES: dict[str, pa.DataType] = {
    "objective": pa.float64(), "sharpe_pp": pa.float64(), "skew": pa.float64(),
    "kurtosis": pa.float64(), "n_obs": pa.uint64(), "n_fills": pa.uint64(),
    "block_n": pa.list_(pa.float64()), "block_sum": pa.list_(pa.float64()),
    "block_sumsq": pa.list_(pa.float64()), "curve_ts": pa.list_(pa.int64()),
    "curve": pa.list_(pa.float64()),
}  # fmt: skip


def _row(sweep_id: str, trial: Trial) -> dict[str, Any]:
    return {
        "sweep_id": sweep_id,
        "param_hash": trial.param_hash,
        "params_json": json.dumps(trial.params, sort_keys=True),
        "status": trial.status,
        "error": trial.error,
        "metrics_json": json.dumps(trial.metrics, sort_keys=True),
        "objective": trial.objective,
        "sharpe_pp": trial.sharpe_pp,
        "n_obs": trial.n_obs,
        "skew": trial.skew,
        "kurtosis": trial.kurtosis,
        "block_n": trial.block_n,
        "block_sum": trial.block_sum,
        "block_sumsq": trial.block_sumsq,
        "n_fills": trial.n_fills,
        "state_hash": trial.state_hash,
        "curve_ts": trial.curve_ts,
        "curve": trial.curve,
    }


def write_trials(store: Store, sweep_id: str, trials: Iterable[Trial]) -> int:
    """Insert trials (all-or-nothing per call); returns the number of rows."""
    rows = [_row(sweep_id, t) for t in trials]
    if not rows:
        return 0
    columns = {
        name: pa.array([r[name] for r in rows], _TYPES.get(name, pa.string()))
        for name in RESULT_COLUMNS
    }
    return store.insert_arrow("sweep_results", pa.table(columns))


def _trial(row: Mapping[str, Any]) -> Trial:
    return Trial(
        param_hash=row["param_hash"],
        params=json.loads(row["params_json"]),
        status=row["status"],
        error=row["error"],
        metrics=json.loads(row["metrics_json"]),
        objective=row["objective"],
        sharpe_pp=row["sharpe_pp"],
        n_obs=int(row["n_obs"]),
        skew=row["skew"],
        kurtosis=row["kurtosis"],
        block_n=list(row["block_n"]),
        block_sum=list(row["block_sum"]),
        block_sumsq=list(row["block_sumsq"]),
        n_fills=int(row["n_fills"]),
        state_hash=row["state_hash"],
        curve_ts=list(row["curve_ts"]),
        curve=list(row["curve"]),
    )


def load_trials(store: Store, sweep_id: str) -> dict[str, Trial]:
    """The stored trials of a study by parameter hash (each once)."""
    table = store.query_arrow(
        f"SELECT {', '.join(RESULT_COLUMNS)} FROM sweep_results FINAL "
        "WHERE sweep_id = {s:String} ORDER BY param_hash",
        {"s": sweep_id},
    )
    return {row["param_hash"]: _trial(row) for row in table.to_pylist()}


def record_study(
    store: Store,
    *,
    sweep_id: str,
    kind: str,
    name: str,
    manifest: Mapping[str, Any],
    status: str,
    summary: Mapping[str, Any],
) -> None:
    """Upsert the study's ``sweep_runs`` row (a later row replaces an earlier one)."""
    row = {
        "sweep_id": [sweep_id],
        "kind": [kind],
        "name": [name],
        "updated_ns": pa.array([time.time_ns()], pa.int64()),
        "config_hash": [manifest["config_hash"]],
        "dataset_hash": [manifest["dataset_hash"]],
        "code_version": [manifest["code_version"]],
        "strategy": [manifest["strategy"]],
        "n_params": pa.array([manifest["n_params"]], pa.uint64()),
        "objective": [manifest["objective"]],
        "status": [status],
        "summary_json": [json.dumps(summary, sort_keys=True, allow_nan=False)],
        "config_json": [json.dumps(manifest["config"], sort_keys=True)],
    }
    store.insert_arrow("sweep_runs", pa.table(row))
