"""Where a backtest's results go: ``runs/<run_id>/`` files and the store's backtest tables."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from backtest.config import BacktestConfig
from backtest.metrics import metrics_to_json
from backtest.report import write_report
from backtest.round_trips import closed_by, round_trips
from backtest.store import open_store

if TYPE_CHECKING:
    from backtest.api import BacktestResult
    from backtest.store import Store

__all__ = ["open_config_store", "readable", "record_run", "write_run_files"]

_F = 10**9
_SIDES = {1: "BUY", -1: "SELL"}
_DIRECTIONS = {1: "LONG", -1: "SHORT"}


def open_config_store(config: BacktestConfig) -> Store:
    return open_store(config.store.dsn, ttl=config.store.ttl)


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as a person reads it in a CSV: sides ``BUY``/``SELL``, directions
    ``LONG``/``SHORT``, and beside each integer-ns time column (``ts_*``, ``*_ts``) the same
    time as ISO 8601 UTC (``<column>_utc``, nanosecond precision)."""
    out = frame.copy()
    if "side" in out.columns:
        out["side"] = out["side"].map(_SIDES)
    if "direction" in out.columns:
        out["direction"] = out["direction"].map(_DIRECTIONS)
    names = [str(c) for c in frame.columns]
    for column in [c for c in names if c.startswith("ts_") or c.endswith("_ts")]:
        ns = out[column].to_numpy(dtype=np.int64)
        iso = np.char.add(np.datetime_as_string(ns.astype("datetime64[ns]"), unit="ns"), "Z")
        out.insert(list(out.columns).index(column) + 1, f"{column}_utc", iso)
    return out


def write_run_files(result: BacktestResult, output_dir: Path) -> Path:
    """``manifest.json``, ``fills.csv``, ``orders.csv``, ``carry.csv`` (funding and borrow),
    ``round_trips.csv``, ``equity.parquet``, ``report.html``."""
    run_dir = output_dir / result.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = dict(result.manifest, metrics=json.loads(metrics_to_json(result.metrics)))
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    readable(result.fills).to_csv(run_dir / "fills.csv", index=False)
    readable(result.orders).to_csv(run_dir / "orders.csv", index=False)
    readable(result.carry).to_csv(run_dir / "carry.csv", index=False)
    trips = round_trips(result.fills)
    trips["closed_by"] = closed_by(trips, result.orders)
    readable(trips).to_csv(run_dir / "round_trips.csv", index=False)
    result.equity.rename_axis("ts").reset_index().to_parquet(
        run_dir / "equity.parquet", index=False
    )
    report = write_report(
        run_dir / "report.html",
        run_id=result.run_id,
        manifest=result.manifest,
        metrics=result.metrics,
        equity=result.equity["equity"],
        drawdown=result.equity["drawdown"],
        fills=result.fills,
        carry=result.carry,
        orders=result.orders.assign(side=result.orders["side"].map(_SIDES))
        if len(result.orders) else result.orders,
        parents=readable(result.parents) if len(result.parents) else None,
        baseline_equity=result.baseline_equity,
        prices=result.prices,
    )
    result.run_dir, result.report_path = run_dir, report
    return run_dir


def _raw(values: Any) -> pa.Array:
    return pa.array(np.round(np.asarray(values, dtype=float) * _F).astype(np.int64))


def _index_ns(index: pd.Index) -> npt.NDArray[np.int64]:
    """Integer ns of a (tz-aware) time index, read directly: numpy has no tz-aware datetime64."""
    return np.asarray(pd.DatetimeIndex(index).as_unit("ns").asi8, dtype=np.int64)


def record_run(store: Store, result: BacktestResult) -> None:
    """Rows in ``backtest_runs``, ``backtest_timeseries`` and ``backtest_fills`` (idempotent)."""
    m = result.manifest
    created = int(dt.datetime.now(dt.UTC).timestamp() * 1e9)
    store.insert_arrow(
        "backtest_runs",
        pa.table(
            {
                "run_id": [result.run_id],
                "created_ns": pa.array([created], pa.int64()),
                "config_hash": [m["config_hash"]],
                "dataset_hash": [m["dataset_hash"]],
                "code_version": [m["code_version"]],
                "seed": pa.array([m["seed"]], pa.int64()),
                "strategy": [",".join(m["strategies"])],
                "metrics_json": [metrics_to_json(result.metrics)],
                "n_fills": pa.array([result.n_fills], pa.uint64()),
                "state_hash": [result.state_hash],
            }
        ),
    )
    eq = result.equity
    n = len(eq)
    store.insert_arrow(
        "backtest_timeseries",
        pa.table(
            {
                "run_id": [result.run_id] * n,
                "ts": pa.array(_index_ns(eq.index), pa.int64()),
                "equity": _raw(eq["equity"]),
                "cash": _raw(eq["cash"]),
                "position_value": _raw(eq["position_value"]),
                "drawdown": pa.array(eq["drawdown"].to_numpy(), pa.float64()),
            }
        ),
    )
    f = result.fills
    if len(f):
        store.insert_arrow(
            "backtest_fills",
            pa.table(
                {
                    "run_id": [result.run_id] * len(f),
                    "fill_id": f["fill_id"].astype(str).tolist(),
                    "client_order_id": f["client_order_id"].astype(str).tolist(),
                    "instrument_id": f["instrument_id"].astype(str).tolist(),
                    "ts_event": pa.array(f["ts_event"].to_numpy(), pa.int64()),
                    "side": pa.array(f["side"].to_numpy(), pa.int8()),
                    "qty": _raw(f["qty"]),
                    "price": _raw(f["price"]),
                    "fee": _raw(f["fee"]),
                    "liquidity": f["liquidity"].astype(str).tolist(),
                }
            ),
        )
