"""The equity curve of a run, computed after the loop from fills and marks (vectorised).

Positions are step functions that change only at fills, cash at fills and at carry charges
(funding, borrow: :mod:`runtime.carry`); marks come from the data
(bar close, quote mid, trade price). Equity at each sample time is
``cash + Σ qty × mark × multiplier`` in floats (analytics only: the exact accounting lives in
the kernel's portfolio, and the final equity here is checked against it in the tests).
Long tick series are sampled onto at most ``max_points`` times (the last value in each bucket),
plus the time of each carry charge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from runtime.instruments import InstrumentRegistry
from runtime.messages import CarryCharged, OrderFilled
from runtime.values import FIXED_SCALE

__all__ = ["MarkSeries", "equity_curve"]

MarkSeries = tuple[np.ndarray, np.ndarray]  # (ts_ns int64 sorted, mark price raw int64)


def _sample_times(marks: Mapping[str, MarkSeries], max_points: int) -> np.ndarray:
    times = np.sort(np.concatenate([ts for ts, _ in marks.values()]))  # sorted input: ~free
    if len(times) > 1:  # distinct values (np.unique hashes: ~100× slower on sorted stamps)
        times = times[np.concatenate(([True], times[1:] != times[:-1]))]
    if len(times) <= max_points:
        return times
    buckets = np.linspace(times[0], times[-1], max_points + 1)
    idx = np.searchsorted(times, buckets[1:], side="right") - 1
    return np.unique(times[idx])


def _cash(
    fills: Sequence[OrderFilled],
    carry: Sequence[CarryCharged],
    registry: InstrumentRegistry,
    initial_cash: int,
    times: np.ndarray,
) -> np.ndarray:
    """Cash at each of ``times``: every fill and carry charge stamped at or before it."""
    flow_ts = np.array([f.ts_event for f in fills] + [c.ts_event for c in carry], dtype=np.int64)
    delta = np.zeros(len(flow_ts))
    for i, f in enumerate(fills):
        held = f.position_change  # a fee in kind is not held; its value is in f.fee
        notional = registry.get(f.instrument_id).notional(f.last_price, abs(held))
        delta[i] = -((notional if held > 0 else -notional) + f.fee) / FIXED_SCALE
    for i, c in enumerate(carry, start=len(fills)):
        delta[i] = c.amount / FIXED_SCALE
    if not len(flow_ts):
        return np.full(len(times), initial_cash / FIXED_SCALE)
    order = np.argsort(flow_ts, kind="stable")
    steps = initial_cash / FIXED_SCALE + np.cumsum(delta[order])
    at = np.searchsorted(flow_ts[order], times, side="right")  # flows applied by each time
    return np.where(at > 0, steps[np.maximum(at - 1, 0)], initial_cash / FIXED_SCALE)


def equity_curve(
    *,
    fills: Sequence[OrderFilled],
    carry: Sequence[CarryCharged] = (),
    marks: Mapping[str, MarkSeries],
    registry: InstrumentRegistry,
    initial_cash: int,
    max_points: int = 200_000,
) -> pd.DataFrame:
    """Columns ``equity, cash, position_value, drawdown`` indexed by UTC timestamps."""
    times = _sample_times(marks, max_points) if marks else np.array([0], dtype=np.int64)
    if carry:  # a charge is a sample of its own (a funding after the last price included)
        times = np.unique(np.concatenate([times, [c.ts_event for c in carry]]))
    fill_ts = np.array([f.ts_event for f in fills], dtype=np.int64)
    order = np.argsort(fill_ts, kind="stable")
    cash = _cash(fills, carry, registry, initial_cash, times)
    value = np.zeros(len(times))
    for instrument_id, (mark_ts, mark_px) in marks.items():
        mine = np.array([i for i in order if fills[i].instrument_id == instrument_id], dtype=int)
        if not len(mine):
            continue
        qty_steps = np.cumsum([fills[i].position_change / FIXED_SCALE for i in mine])
        k = np.searchsorted(fill_ts[mine], times, side="right")
        qty = np.where(k > 0, qty_steps[np.maximum(k - 1, 0)], 0.0)
        j = np.searchsorted(mark_ts, times, side="right") - 1
        px = np.where(j >= 0, mark_px[np.maximum(j, 0)] / FIXED_SCALE, 0.0)
        multiplier = registry.get(instrument_id).multiplier / FIXED_SCALE
        value += qty * px * multiplier
    equity = cash + value
    peak = np.maximum.accumulate(equity)
    drawdown = np.where(peak > 0, equity / peak - 1.0, 0.0)
    index = pd.to_datetime(times, unit="ns", utc=True)
    return pd.DataFrame(
        {"equity": equity, "cash": cash, "position_value": value, "drawdown": drawdown}, index=index
    )
