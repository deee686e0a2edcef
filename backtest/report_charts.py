"""Inline SVG time charts and number formatting for the HTML report (:mod:`backtest.report`).

Long series are cut to about 2000 points keeping each bucket's minimum and maximum, so spikes and
the worst drawdown survive. All text placed in the SVG is HTML-escaped.

The time axis runs in market time (:class:`MarketAxis`): a gap between points longer than
:data:`GAP_FACTOR` times the usual step (a night, a weekend, a holiday of an intraday series) is
drawn as one step with a dotted line where trading resumed, not as a flat line across the closed
hours. A series without such gaps (24/7 data, daily bars) keeps a calendar axis.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from backtest.metrics import GAP_FACTOR, index_to_ns, market_steps

__all__ = [
    "GAP_FACTOR",
    "MarketAxis",
    "downsample_minmax",
    "fmt_duration",
    "fmt_int",
    "fmt_number",
    "fmt_pct",
    "fmt_ts",
    "svg_time_chart",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Formatter = Callable[[Any], str]

SERIES_COLOURS = ("#2563eb", "#9aa5b1", "#f59e0b", "#10b981")
_DASH = "—"

# --------------------------------------------------------------------------- number formatting


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fmt_number(value: Any, decimals: int = 2, suffix: str = "") -> str:
    number = _finite(value)
    if number is None:
        return "∞" if _is_inf(value) else _DASH
    return f"{number:,.{decimals}f}{suffix}"


def _is_inf(value: Any) -> bool:
    try:
        return math.isinf(float(value))
    except (TypeError, ValueError):
        return False


def fmt_pct(value: Any) -> str:
    number = _finite(value)
    return fmt_number(number * 100.0 if number is not None else value, 2, "%")


def fmt_int(value: Any) -> str:
    number = _finite(value)
    return f"{round(number):,}" if number is not None else _DASH


def fmt_duration(seconds: Any) -> str:
    number = _finite(seconds)
    if number is None:
        return _DASH
    days, rest = divmod(round(number), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days:,}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def fmt_ts(ts_ns: Any) -> str:
    if ts_ns is None or (isinstance(ts_ns, float) and math.isnan(ts_ns)):
        return _DASH
    stamp = pd.Timestamp(int(ts_ns), unit="ns", tz="UTC")
    text = stamp.strftime("%Y-%m-%d %H:%M:%S")
    return text[:-9] if text.endswith(" 00:00:00") else text


# --------------------------------------------------------------------------- downsampling


def downsample_minmax(
    ts_ns: IntArray, values: FloatArray, max_points: int = 2000
) -> tuple[IntArray, FloatArray]:
    """At most about ``max_points`` points: each of ``max_points / 2`` equal buckets keeps its
    minimum and maximum (in time order), and the first and last points are always kept."""
    n = values.size
    if n <= max_points:
        return ts_ns, values
    buckets = max(1, max_points // 2)
    width = math.ceil(n / buckets)
    padded = np.concatenate((values, np.full(buckets * width - n, values[-1])))
    grid = padded.reshape(buckets, width)
    base = np.arange(buckets) * width
    picks = np.concatenate((base + grid.argmin(axis=1), base + grid.argmax(axis=1), [0, n - 1]))
    keep = np.unique(np.clip(picks, 0, n - 1))
    return ts_ns[keep], values[keep]


# --------------------------------------------------------------------------- SVG charts


class MarketAxis:
    """Time → position in market time over the sorted timestamps ``ts_ns`` of a chart.

    Intervals between the distinct timestamps are measured by
    :func:`backtest.metrics.market_steps` (the exposure metric's market time): one longer than
    ``GAP_FACTOR`` usual steps counts as one usual step (the market was closed). ``breaks`` are
    the timestamps where trading resumed after such a gap.
    """

    def __init__(self, ts_ns: IntArray) -> None:
        u = np.unique(np.asarray(ts_ns, dtype=np.int64))
        self.times = u
        widths, closed = market_steps(u)
        self.positions = np.concatenate(([0.0], np.cumsum(widths)))
        self.breaks: IntArray = u[1:][closed]
        self.compressed = bool(closed.any())

    @property
    def span(self) -> float:
        return float(self.positions[-1]) if self.positions.size else 0.0

    def __call__(self, ts_ns: npt.NDArray[Any]) -> FloatArray:
        if self.times.size < 2:
            return np.zeros(np.shape(ts_ns), dtype=np.float64)
        return np.interp(np.asarray(ts_ns, dtype=np.float64), self.times.astype(np.float64),
                         self.positions)  # fmt: skip

    def ticks(self, max_ticks: int = 7) -> list[tuple[int, str]]:
        """Tick times and labels: calendar ticks on an uncompressed axis; else times of points
        evenly spaced in market time."""
        t0, t1 = int(self.times[0]), int(self.times[-1])
        if not self.compressed:
            return _time_ticks(t0, t1, max_ticks)
        fmt = "%Y-%m-%d" if (t1 - t0) > 90 * 86_400 * 10**9 else "%m-%d %H:%M"
        targets = np.linspace(0.0, self.span, max_ticks)
        idx = np.unique(np.clip(np.searchsorted(self.positions, targets), 0, self.times.size - 1))
        stamps = [int(self.times[i]) for i in idx]
        return [(t, pd.Timestamp(t, unit="ns", tz="UTC").strftime(fmt)) for t in stamps]


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0]
    if high - low <= 0:
        pad = abs(high) * 0.05 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = [first + i * step for i in range(math.ceil((high - first) / step) + 1)]
    return [round(t, 12) for t in ticks]


_TIME_STEPS = (
    ("1min", 60, "%H:%M"), ("5min", 300, "%H:%M"), ("15min", 900, "%H:%M"),
    ("30min", 1800, "%H:%M"), ("1h", 3600, "%H:%M"), ("3h", 10_800, "%m-%d %H:%M"),
    ("6h", 21_600, "%m-%d %H:%M"), ("12h", 43_200, "%m-%d %H:%M"), ("1D", 86_400, "%Y-%m-%d"),
    ("2D", 172_800, "%Y-%m-%d"), ("W-MON", 604_800, "%Y-%m-%d"),
    ("2W-MON", 1_209_600, "%Y-%m-%d"), ("MS", 2_629_800, "%Y-%m"), ("QS", 7_889_400, "%Y-%m"),
    ("6MS", 15_778_800, "%Y-%m"), ("YS", 31_557_600, "%Y"), ("2YS", 63_115_200, "%Y"),
    ("5YS", 157_788_000, "%Y"), ("10YS", 315_576_000, "%Y"),
)  # fmt: skip


def _time_ticks(t0: int, t1: int, max_ticks: int = 7) -> list[tuple[int, str]]:
    span_s = (t1 - t0) / 1e9
    start, end = pd.Timestamp(t0, unit="ns", tz="UTC"), pd.Timestamp(t1, unit="ns", tz="UTC")
    for freq, approx_s, fmt in _TIME_STEPS:
        if span_s / approx_s >= max_ticks:
            continue
        if approx_s < 86_400 and span_s > 86_400 and "%m" not in fmt:
            fmt = "%m-%d %H:%M"
        offset = pd.tseries.frequencies.to_offset(freq)
        first = start.ceil(freq) if approx_s <= 172_800 else start
        stamps = pd.date_range(first, end, freq=offset)
        if len(stamps) >= 2:
            return [(int(s.as_unit("ns").value), s.strftime(fmt)) for s in stamps]
    return [(t0, fmt_ts(t0)), (t1, fmt_ts(t1))] if t1 > t0 else [(t0, fmt_ts(t0))]


def _path(xs: FloatArray, ys: FloatArray) -> str:
    points = " L".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs.tolist(), ys.tolist(), strict=True))
    return f"M{points}"


def _legend(names: Sequence[str], dashed: Sequence[bool], left: float) -> list[str]:
    parts, x = [], left + 8
    for i, (name, dash) in enumerate(zip(names, dashed, strict=True)):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        style = ' stroke-dasharray="6 4"' if dash else ""
        parts.append(
            f'<line x1="{x:.0f}" y1="14" x2="{x + 18:.0f}" y2="14" stroke="{colour}" '
            f'stroke-width="2"{style}/><text x="{x + 24:.0f}" y="18">{html.escape(name)}</text>'
        )
        x += 34 + 7 * len(name)
    return parts


def svg_time_chart(
    series: Mapping[str, pd.Series],
    *,
    y_title: str,
    y_percent: bool = False,
    area: bool = False,
    width: int = 1100,
    height: int = 300,
    max_points: int = 2000,
    markers: pd.DataFrame | None = None,
) -> str:
    """An inline SVG line chart (or underwater area chart) of time series sharing a time axis.

    The first series is drawn solid and on top; others dashed. Each is min/max downsampled.
    Tick labels get as many decimals as the tick step needs (``y_percent``: value × 100, "%").
    The time axis is in market time (:class:`MarketAxis` over every series' timestamps).
    ``markers`` (columns ``ts_event``, ``price``, ``side`` +1/−1): a green ▲ per buy and a red ▼
    per sell at its price.
    """
    left, right, top, bottom = 84.0, 16.0, 28.0, 42.0
    plot_w, plot_h = width - left - right, height - top - bottom
    drawn = [(name, *_series_arrays(s, max_points)) for name, s in series.items() if len(s)]
    if not drawn:
        return '<p class="note">No data.</p>'
    axis = MarketAxis(np.concatenate([index_to_ns(s.index) for s in series.values() if len(s)]))
    t0, t1 = int(axis.times[0]), int(axis.times[-1])
    marks = markers if markers is not None and len(markers) else None
    lows = [float(np.min(v)) for _, _, v in drawn] + ([0.0] if area else [])
    highs = [float(np.max(v)) for _, _, v in drawn] + ([0.0] if area else [])
    if marks is not None:
        lows.append(float(marks["price"].min()))
        highs.append(float(marks["price"].max()))
    y_ticks = _nice_ticks(min(lows), max(highs))
    y_lo, y_hi = y_ticks[0], y_ticks[-1]

    def sx(ts: npt.NDArray[Any]) -> FloatArray:
        return left + axis(ts) / max(axis.span, 1.0) * plot_w

    def sy(v: npt.NDArray[Any]) -> FloatArray:
        return top + (y_hi - v) / (y_hi - y_lo) * plot_h

    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
        f'role="img" aria-label="{html.escape(y_title)} over time">'
    ]
    out += _y_axis(y_ticks, _tick_formatter(y_ticks, y_percent), sy, left, width - right)
    out += _x_axis(axis.ticks(), sx, top + plot_h, t0, t1)
    out += [
        f'<line class="break" x1="{x:.1f}" y1="{top:.0f}" x2="{x:.1f}" y2="{top + plot_h:.0f}"/>'
        for x in sx(axis.breaks).tolist()
    ]
    x_title = "Market time (UTC): closed hours left out" if axis.compressed else "Date (UTC)"
    out.append(_axis_titles(y_title, x_title, left + plot_w / 2, top + plot_h / 2, height - 6))
    for i, (_, ts, values) in reversed(list(enumerate(drawn))):
        out.append(_series_path(sx(ts), sy(values), i, area, float(sy(np.array(0.0)))))
    if marks is not None:
        out.append(_markers(marks, sx, sy))
    if len(drawn) > 1 or not area:
        out += _legend([name for name, _, _ in drawn], [i > 0 for i in range(len(drawn))], left)
    out.append("</svg>")
    return "\n".join(out)


def _axis_titles(y_title: str, x_title: str, x_mid: float, y_mid: float, x_title_y: float) -> str:
    return (
        f'<text class="axis-title" transform="translate(16,{y_mid:.0f}) rotate(-90)" '
        f'text-anchor="middle">{html.escape(y_title)}</text>'
        f'<text class="axis-title" x="{x_mid:.0f}" y="{x_title_y:.0f}" '
        f'text-anchor="middle">{html.escape(x_title)}</text>'
    )


def _markers(marks: pd.DataFrame, sx: Callable[[Any], Any], sy: Callable[[Any], Any]) -> str:
    """A ▲ (buy, green) or ▼ (sell, red) per row of ``marks``, its tip at the fill price."""
    xs = sx(marks["ts_event"].to_numpy(dtype=np.int64)).tolist()
    ys = sy(marks["price"].to_numpy(dtype=np.float64)).tolist()
    shapes = []
    for x, y, side in zip(xs, ys, marks["side"].tolist(), strict=True):
        if int(side) > 0:
            shapes.append(f'<path class="buy" d="M{x:.1f},{y:.1f} l-4,8 h8 Z"/>')
        else:
            shapes.append(f'<path class="sell" d="M{x:.1f},{y:.1f} l-4,-8 h8 Z"/>')
    return f'<g class="fills">{"".join(shapes)}</g>'


def _series_arrays(series: pd.Series, max_points: int) -> tuple[IntArray, FloatArray]:
    ts = index_to_ns(series.index)
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(values)
    return downsample_minmax(ts[ok], values[ok], max_points)


def _series_path(xs: FloatArray, ys: FloatArray, i: int, area: bool, y_zero: float) -> str:
    colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
    line = _path(xs, ys)
    dash = ' stroke-dasharray="6 4"' if i > 0 else ""
    if not area:
        return f'<path d="{line}" fill="none" stroke="{colour}" stroke-width="1.6"{dash}/>'
    colour = "#dc2626" if i == 0 else colour
    fill = f"{line} L{xs[-1]:.1f},{y_zero:.1f} L{xs[0]:.1f},{y_zero:.1f} Z"
    return (
        f'<path d="{fill}" fill="{colour}" fill-opacity="0.18" stroke="none"/>'
        f'<path d="{line}" fill="none" stroke="{colour}" stroke-width="1.3"{dash}/>'
    )


def _tick_formatter(ticks: list[float], percent: bool) -> Formatter:
    scale, suffix = (100.0, "%") if percent else (1.0, "")
    step = abs(ticks[1] - ticks[0]) * scale if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    if step > 0 and not math.isclose(round(step, decimals), step, rel_tol=1e-6):
        decimals += 1  # a step of 2.5 × 10^k
    return lambda v: fmt_number(round(float(v) * scale, decimals) + 0.0, decimals, suffix)


def _y_axis(
    ticks: list[float], fmt: Formatter, sy: Callable[[Any], Any], x0: float, x1: float
) -> list[str]:
    out = []
    for tick in ticks:
        y = float(sy(np.array(tick)))
        label = html.escape(fmt(tick))
        out.append(
            f'<line class="grid" x1="{x0:.0f}" y1="{y:.1f}" x2="{x1:.0f}" y2="{y:.1f}"/>'
            f'<text x="{x0 - 8:.0f}" y="{y + 4:.1f}" text-anchor="end">{label}</text>'
        )
    return out


def _x_axis(
    ticks: list[tuple[int, str]], sx: Callable[[Any], Any], y: float, t0: int, t1: int
) -> list[str]:
    out = [f'<line class="axis" x1="{sx(np.array(t0)):.1f}" y1="{y:.1f}" '
           f'x2="{sx(np.array(t1)):.1f}" y2="{y:.1f}"/>']  # fmt: skip
    for ts, label in ticks:
        x = float(sx(np.array(ts)))
        out.append(
            f'<line class="axis" x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y + 5:.1f}"/>'
            f'<text x="{x:.1f}" y="{y + 18:.1f}" text-anchor="middle">{html.escape(label)}</text>'
        )
    return out
