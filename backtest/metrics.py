"""Performance metrics of a backtest run, its round trips, and the baselines it is judged against.

Every metric is defined in ``docs/metrics.md``. In short:

* returns are simple period returns of the equity series; annualised figures use
  ``periods_per_year`` (given, or inferred by :func:`infer_periods_per_year`);
* time spans (CAGR, annual turnover) use calendar time: 365.25 days per year;
* a ratio whose denominator is zero is NaN ("undefined"), except ``profit_factor``, which is
  ``inf`` when there are winning round trips and no losing ones;
* :func:`metrics_to_json` turns NaN and ±inf into ``null``.

Everything over equity points is vectorised numpy; only round-trip matching loops, over fills.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from backtest.round_trips import (
    FILL_COLUMNS,
    ROUND_TRIP_COLUMNS,
    check_fills,
    round_trips,
    walk_fills,
)
from runtime.errors import DataError

__all__ = [
    "FILL_COLUMNS",
    "ROUND_TRIP_COLUMNS",
    "FeeFn",
    "buy_and_hold_equity",
    "compare_baselines",
    "compute_metrics",
    "drawdown_series",
    "index_to_ns",
    "infer_periods_per_year",
    "market_steps",
    "metrics_to_json",
    "no_trade_equity",
    "round_trips",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
FeeFn = Callable[[float, float], float]
"""``fee_fn(qty, price) -> fee`` in account currency, for the baselines."""


NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
NS_PER_YEAR = 365.25 * NS_PER_DAY
TRADING_DAYS_PER_YEAR = 252.0
SESSION_GAP_NS = 4 * 3600 * NS_PER_S
_CALENDAR_SPACINGS = ((6.0, 8.0, 52.0), (27.0, 32.0, 12.0), (88.0, 93.0, 4.0), (360.0, 367.0, 1.0))


# --------------------------------------------------------------------------- time and returns

GAP_FACTOR = 4.0
"""A gap between equity points longer than this many usual steps is closed market time."""


def market_steps(ts_ns: IntArray) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """The length in market time of each interval of sorted ``ts_ns``, and which were closed.

    The usual step is the median interval; one longer than :data:`GAP_FACTOR` usual steps (a
    night, a weekend of an intraday series) counts as one usual step. A series without such gaps
    (24/7 data, daily bars over weekends) keeps its calendar intervals.
    """
    gaps = np.diff(np.asarray(ts_ns, dtype=np.int64)).astype(np.float64)
    if gaps.size == 0:
        return gaps, np.zeros(0, dtype=bool)
    step = float(np.median(gaps))
    closed = gaps > GAP_FACTOR * step
    return np.where(closed, step, gaps), closed



def index_to_ns(index: pd.Index) -> IntArray:
    """Integer nanoseconds since the epoch of a datetime index (naive = UTC) or an int-ns index."""
    if isinstance(index, pd.DatetimeIndex):
        return np.asarray(index.as_unit("ns").asi8, dtype=np.int64)
    if pd.api.types.is_integer_dtype(index.dtype):
        return np.asarray(index, dtype=np.int64)
    raise DataError(f"equity index must be datetimes or integer nanoseconds, not {index.dtype}")


def infer_periods_per_year(ts_ns: IntArray) -> float:
    """Periods per year implied by the spacing of ``ts_ns`` (rule in ``docs/metrics.md``).

    Daily or coarser (median spacing ≥ 20 h): ``252 / round(days)`` up to 3.5 days; weekly 52,
    monthly 12, quarterly 4, yearly 1; ``365.25 / days`` otherwise.
    Intraday: points split into sessions at gaps > max(4 h, 2 × median spacing). Sessions shorter
    than 20 h (exchange hours): ``(round(median session span / median spacing) + 1) × 252``.
    Round-the-clock data: ``1 day / median spacing`` per day, × 252 days when the data has
    session gaps (weekends), × 365.25 when it has none. NaN with fewer than two distinct times.
    """
    if ts_ns.size < 2:
        return math.nan
    dt = np.diff(ts_ns)
    dt = dt[dt > 0]
    if dt.size == 0:
        return math.nan
    median = float(np.median(dt))
    if median >= 20 * 3600 * NS_PER_S:
        days = median / NS_PER_DAY
        if days <= 3.5:
            return TRADING_DAYS_PER_YEAR / max(1.0, round(days))
        for low, high, per_year in _CALENDAR_SPACINGS:
            if low <= days <= high:
                return per_year
        return 365.25 / days
    breaks = np.flatnonzero(np.diff(ts_ns) > max(SESSION_GAP_NS, 2 * median))
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [ts_ns.size - 1]))
    session_span = float(np.median(ts_ns[ends] - ts_ns[starts]))
    if session_span < 20 * 3600 * NS_PER_S:
        return (round(session_span / median) + 1) * TRADING_DAYS_PER_YEAR
    days_per_year = TRADING_DAYS_PER_YEAR if breaks.size else 365.25
    return NS_PER_DAY / median * days_per_year


def _returns(values: FloatArray) -> FloatArray:
    """Simple period returns; NaN where the previous equity is not positive."""
    prev, cur = values[:-1], values[1:]
    out = np.full(prev.shape, np.nan)
    np.divide(cur - prev, prev, out=out, where=prev > 0)
    return out


def _safe_ratio(num: float, den: float) -> float:
    return num / den if den > 0 and math.isfinite(den) and math.isfinite(num) else math.nan


def drawdown_series(equity: pd.Series) -> pd.Series:
    """Drawdown at each point as a non-positive fraction of the running peak (0 at a new high)."""
    values = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(values) if values.size else values
    dd = np.zeros_like(values)
    np.divide(values, peak, out=dd, where=peak > 0)
    dd = np.where(peak > 0, dd - 1.0, 0.0)
    return pd.Series(dd, index=equity.index, name="drawdown")


# --------------------------------------------------------------------------- return metrics


def _return_metrics(
    values: FloatArray, ts_ns: IntArray, ppy: float, risk_free: float
) -> dict[str, float]:
    n = values.size
    first, last = (values[0], values[-1]) if n else (math.nan, math.nan)
    total = last / first - 1.0 if first > 0 else math.nan
    years = (ts_ns[-1] - ts_ns[0]) / NS_PER_YEAR if n else 0.0
    growth = last / first if first > 0 else math.nan
    if years <= 0 or not math.isfinite(growth):
        cagr = math.nan
    elif growth <= 0:
        cagr = -1.0
    else:
        with np.errstate(over="ignore"):
            cagr = float(np.exp(np.log(growth) / years) - 1.0)
    rets = _returns(values)
    rets = rets[np.isfinite(rets)]
    rf = (1.0 + risk_free) ** (1.0 / ppy) - 1.0 if ppy > 0 else 0.0
    excess = rets - rf
    std = float(np.std(rets, ddof=1)) if rets.size >= 2 else math.nan
    if std < 1e-15 * max(1.0, float(np.max(np.abs(rets), initial=0.0))):
        std = 0.0
    downside = float(np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2))) if rets.size else math.nan
    mean_excess = float(np.mean(excess)) if rets.size >= 2 else math.nan
    root = math.sqrt(ppy) if ppy > 0 else math.nan
    return {
        "initial_equity": float(first),
        "final_equity": float(last),
        "total_return": float(total),
        "cagr": cagr,
        "volatility": std * root,
        "sharpe": _safe_ratio(mean_excess, std) * root,
        "sortino": _safe_ratio(mean_excess, downside) * root,
        "periods": float(max(n - 1, 0)),
        "periods_per_year": ppy,
        "years": float(years),
    }


def _drawdown_metrics(values: FloatArray, ts_ns: IntArray) -> dict[str, float]:
    if values.size == 0:
        return {
            "max_drawdown": math.nan,
            "max_drawdown_duration_s": math.nan,
            "max_drawdown_duration_periods": math.nan,
        }
    peak = np.maximum.accumulate(values)
    dd = np.zeros_like(values)
    np.divide(peak - values, peak, out=dd, where=peak > 0)
    at_peak = np.flatnonzero(values >= peak)
    # An episode runs from a peak to the next point back at the peak (or to the end).
    bounds = np.concatenate((at_peak, [values.size - 1]))
    lengths = np.diff(bounds)
    spans = ts_ns[bounds[1:]] - ts_ns[bounds[:-1]]
    underwater = lengths > 1
    underwater[-1] = lengths[-1] > 0
    return {
        "max_drawdown": float(np.max(dd)),
        "max_drawdown_duration_s": float(np.max(spans[underwater], initial=0)) / NS_PER_S,
        "max_drawdown_duration_periods": float(np.max(lengths[underwater], initial=0)),
    }


def _exposure_from_fills(fill_ts: IntArray, open_after: IntArray, t0: int, t1: int) -> float:
    if fill_ts.size == 0:
        return 0.0
    last = np.concatenate((fill_ts[1:] != fill_ts[:-1], [True]))  # state after a timestamp
    times, exposed = fill_ts[last], open_after[last] > 0
    if t1 <= t0:
        before = np.flatnonzero(times <= t1)
        return float(exposed[before[-1]]) if before.size else 0.0
    starts = np.clip(times, t0, t1)
    ends = np.clip(np.concatenate((times[1:], [t1])), t0, t1)
    return float(np.sum((ends - starts) * exposed)) / float(t1 - t0)


def _exposure_from_values(
    values: FloatArray, ts_ns: IntArray, pv: pd.Series, index: pd.Index
) -> dict[str, float]:
    aligned = pv.reindex(index).ffill().fillna(0.0).to_numpy(dtype=np.float64)
    weights, _ = market_steps(ts_ns)
    if weights.size == 0 or weights.sum() <= 0:
        weights, aligned = np.ones(1), aligned[-1:]
        values = values[-1:]
    else:
        aligned, values = aligned[:-1], values[:-1]
    held = np.abs(aligned) > 0
    gross = np.zeros_like(aligned)
    np.divide(np.abs(aligned), values, out=gross, where=values > 0)
    total = float(weights.sum())
    return {
        "exposure": float(np.sum(weights * held)) / total,
        "avg_gross_exposure": float(np.sum(weights * gross)) / total,
    }


def _trade_metrics(trips: list[tuple[Any, ...]], fills: pd.DataFrame) -> dict[str, float]:
    k = ROUND_TRIP_COLUMNS.index("net_pnl")
    net = np.array([t[k] for t in trips], dtype=np.float64)
    profit, loss = float(net[net > 0].sum()), abs(float(net[net < 0].sum()))
    if net.size == 0 or (profit == 0 and loss == 0):
        factor = math.nan
    else:
        factor = profit / loss if loss > 0 else math.inf
    return {
        "fills": len(fills),
        "trades": len(trips),
        "hit_rate": float(np.mean(net > 0)) if net.size else math.nan,
        "profit_factor": factor,
        "gross_profit": profit,
        "gross_loss": loss,
        "avg_trade_pnl": float(np.mean(net)) if net.size else math.nan,
        "fees_paid": float(fills["fee"].to_numpy(dtype=np.float64).sum()),
        "traded_notional": float(
            np.sum(
                fills["qty"].to_numpy(dtype=np.float64) * fills["price"].to_numpy(dtype=np.float64)
            )
        ),
    }


# --------------------------------------------------------------------------- the entry point


def _check_equity(equity: pd.Series) -> tuple[FloatArray, IntArray]:
    values = np.asarray(equity.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataError(f"equity has {int((~np.isfinite(values)).sum())} NaN or infinite value(s)")
    ts_ns = index_to_ns(equity.index)
    if ts_ns.size > 1 and (np.diff(ts_ns) < 0).any():
        raise DataError("equity index must be sorted by time")
    return values, ts_ns


def compute_metrics(
    equity: pd.Series,
    fills: pd.DataFrame | None,
    *,
    periods_per_year: float | None = None,
    risk_free: float = 0.0,
    position_values: pd.Series | None = None,
) -> dict[str, float]:
    """All metrics of one run; definitions in ``docs/metrics.md``.

    ``equity``: account equity indexed by UTC timestamps (or int ns), sorted. ``fills``: columns
    :data:`FILL_COLUMNS`. ``risk_free``: annual rate. ``position_values``: market value of open
    positions on the equity's index; when given, exposure is read from it instead of from fills.
    """
    values, ts_ns = _check_equity(equity)
    checked = check_fills(fills)
    ppy = float(periods_per_year) if periods_per_year else infer_periods_per_year(ts_ns)
    out = _return_metrics(values, ts_ns, ppy, risk_free)
    out.update(_drawdown_metrics(values, ts_ns))
    out["calmar"] = _safe_ratio(out["cagr"], out["max_drawdown"])
    trips, open_after = walk_fills(checked)
    out.update(_trade_metrics(trips, checked))
    avg_equity = float(values.mean()) if values.size else math.nan
    out["turnover_total"] = _safe_ratio(out["traded_notional"], avg_equity)
    out["turnover_annual"] = _safe_ratio(out["turnover_total"], out["years"])
    t0, t1 = (int(ts_ns[0]), int(ts_ns[-1])) if ts_ns.size else (0, 0)
    if position_values is not None and values.size:
        out.update(_exposure_from_values(values, ts_ns, position_values, equity.index))
    else:
        fill_ts = checked["ts_event"].to_numpy(dtype=np.int64)
        out["exposure"] = (
            _exposure_from_fills(fill_ts, open_after, t0, t1) if values.size else math.nan
        )
    out["open_positions"] = int(open_after[-1]) if open_after.size else 0
    return out


# --------------------------------------------------------------------------- baselines


def _fee(fee_fn: FeeFn | None, qty: float, price: float) -> float:
    return float(fee_fn(qty, price)) if fee_fn is not None and qty > 0 else 0.0


def _buy_and_hold(
    prices: pd.Series, initial_cash: float, fee_fn: FeeFn | None
) -> tuple[FloatArray, float, float]:
    px = prices.to_numpy(dtype=np.float64)
    if px.size == 0:
        return np.zeros(0), 0.0, 0.0
    if not (np.isfinite(px).all() and (px > 0).all()):
        raise DataError("baseline prices must be positive and finite")
    qty = initial_cash / px[0]
    fee = _fee(fee_fn, qty, px[0])
    qty = max(0.0, (initial_cash - fee) / px[0])
    fee = _fee(fee_fn, qty, px[0])
    cash = initial_cash - qty * px[0] - fee
    return cash + qty * px, qty, fee


def buy_and_hold_equity(
    prices: pd.Series, initial_cash: float, fee_fn: FeeFn | None = None
) -> pd.Series:
    """Equity of buying ``initial_cash`` worth at the first price and holding to the end.

    Fractional quantity; the entry fee ``fee_fn(qty, price)`` is paid from the cash, no exit fee
    (the position is marked to market like the strategy's).
    """
    values, _, _ = _buy_and_hold(prices, float(initial_cash), fee_fn)
    return pd.Series(values, index=prices.index, name="buy_and_hold")


def no_trade_equity(index: pd.Index, initial_cash: float) -> pd.Series:
    """Equity of never trading: ``initial_cash`` at every timestamp of ``index``."""
    return pd.Series(np.full(len(index), float(initial_cash)), index=index, name="no_trade")


def _prices_at(prices: pd.Series, ts_ns: IntArray) -> pd.Series:
    """Last known price at each time of ``ts_ns`` (the first price before it has one)."""
    if len(prices) == 0:
        raise DataError("baseline prices are empty")
    p_ns = index_to_ns(prices.index)
    order = np.argsort(p_ns, kind="stable")
    pos = np.searchsorted(p_ns[order], ts_ns, side="right") - 1
    picked = prices.to_numpy(dtype=np.float64)[order][np.clip(pos, 0, None)]
    return pd.Series(picked, index=pd.RangeIndex(ts_ns.size))


def compare_baselines(
    equity: pd.Series,
    fills: pd.DataFrame | None,
    prices: pd.Series,
    *,
    initial_cash: float | None = None,
    fee_fn: FeeFn | None = None,
    periods_per_year: float | None = None,
    risk_free: float = 0.0,
    position_values: pd.Series | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics of the strategy, buy-and-hold of ``prices`` and no-trade, on the same clock.

    The baselines start with ``initial_cash`` (default: the first equity value) and are sampled at
    the strategy's equity timestamps (last known price); all three use one ``periods_per_year``.
    Returns ``{"strategy": {...}, "buy_and_hold": {...}, "no_trade": {...}}``.
    """
    values, ts_ns = _check_equity(equity)
    cash = float(values[0]) if initial_cash is None and values.size else float(initial_cash or 0.0)
    ppy = periods_per_year or infer_periods_per_year(ts_ns)
    strategy = compute_metrics(
        equity, fills, periods_per_year=ppy, risk_free=risk_free, position_values=position_values
    )
    if values.size == 0:
        empty = compute_metrics(equity, None, periods_per_year=ppy, risk_free=risk_free)
        return {"strategy": strategy, "buy_and_hold": empty, "no_trade": dict(empty)}
    px = _prices_at(prices, ts_ns)
    bh_values, qty, fee = _buy_and_hold(px, cash, fee_fn)
    bh_fills = pd.DataFrame(
        {
            "ts_event": [int(ts_ns[0])],
            "instrument_id": [str(prices.name or "benchmark")],
            "side": [1],
            "qty": [qty],
            "price": [float(px.iloc[0])],
            "fee": [fee],
        }
    )
    bh = pd.Series(bh_values, index=equity.index)
    return {
        "strategy": strategy,
        "buy_and_hold": compute_metrics(
            bh, bh_fills if qty > 0 else None, periods_per_year=ppy, risk_free=risk_free
        ),
        "no_trade": compute_metrics(
            no_trade_equity(equity.index, cash), None, periods_per_year=ppy, risk_free=risk_free
        ),
    }


# --------------------------------------------------------------------------- JSON


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_to_json(metrics: Mapping[str, Any], *, indent: int | None = None) -> str:
    """Strict JSON of (nested) metrics: NaN and ±inf become ``null``, numpy scalars numbers."""
    return json.dumps(_json_safe(metrics), indent=indent, allow_nan=False, sort_keys=True)
