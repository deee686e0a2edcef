"""Parent orders (worked by execution algorithms) in a run's results: their rows in orders.csv,
each child's ``parent_id`` in orders.csv and fills.csv, each fill's slippage against its
parent's arrival price, and the run's slippage metrics.

Runs without parent orders keep their frames exactly as they were (no extra columns).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from runtime.execution import ExecutionAlgorithms, slippage_bps
from runtime.values import FIXED_SCALE

__all__ = ["algo_metrics", "parents_frame", "with_parents"]

_F = FIXED_SCALE


def parents_frame(algos: ExecutionAlgorithms) -> pd.DataFrame:
    """One row per parent order, in the units of orders.csv."""
    rows = [
        {
            "parent_id": p.parent_id,
            "strategy_id": p.strategy_id,
            "instrument_id": p.instrument_id,
            "algorithm": p.algorithm,
            "side": int(p.side),
            "qty": p.quantity / _F,
            "filled_qty": p.filled_qty / _F,
            "arrival_price": None if p.arrival_price is None else p.arrival_price / _F,
            "avg_price": None if p.avg_price is None else p.avg_price / _F,
            "slippage_bps": p.slippage_bps,
            "status": str(p.status),
            "ts_init": p.start_ns,
            "reason": p.reason,
        }
        for p in algos.summaries()
    ]
    return pd.DataFrame(rows)


def with_parents(
    fills: pd.DataFrame, orders: pd.DataFrame, algos: ExecutionAlgorithms
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``fills`` and ``orders`` with ``parent_id`` (children) and ``slippage_bps`` columns, and
    a row per parent in ``orders`` (its ``type`` is its algorithm); unchanged without parents."""
    parents = parents_frame(algos)
    if parents.empty:
        return fills, orders
    arrival = dict(zip(parents["parent_id"], parents["arrival_price"], strict=True))
    fills = fills.copy()
    fills["parent_id"] = [algos.parent_of(c) or "" for c in fills["client_order_id"]]
    fills["slippage_bps"] = [
        _bps(side, arrival.get(pid), price) if pid else None
        for side, pid, price in zip(fills["side"], fills["parent_id"], fills["price"], strict=True)
    ]
    orders = orders.copy()
    orders["parent_id"] = [algos.parent_of(c) or "" for c in orders["client_order_id"]]
    orders["arrival_price"] = [arrival.get(pid) if pid else None for pid in orders["parent_id"]]
    orders["slippage_bps"] = [
        _bps(side, arrival.get(pid), price) if pid and not pd.isna(price) else None
        for side, pid, price in zip(
            orders["side"], orders["parent_id"], orders["avg_price"], strict=True
        )
    ]
    rows = parents.rename(columns={"parent_id": "client_order_id", "algorithm": "type"})
    rows = rows.assign(parent_id="", ts_last=rows["ts_init"])
    return fills, pd.concat([orders, rows], ignore_index=True)


def _bps(side: int, arrival: Any, price: float) -> float | None:
    if arrival is None or pd.isna(arrival):
        return None
    return slippage_bps(side, round(arrival * _F), round(price * _F))


def algo_metrics(algos: ExecutionAlgorithms) -> dict[str, float]:
    """``algo_parents`` and, over the filled ones, ``algo_slippage_bps``: the quantity-weighted
    mean slippage against arrival (positive: paid). Empty without parents."""
    summaries = algos.summaries()
    if not summaries:
        return {}
    weighted = [(p.slippage_bps, p.filled_qty) for p in summaries if p.slippage_bps is not None]
    total = sum(q for _, q in weighted)
    out = {"algo_parents": float(len(summaries))}
    out["algo_slippage_bps"] = (
        sum(s * q for s, q in weighted) / total if total else float("nan")
    )
    return out
