"""Self-contained HTML reports of sweeps and walk-forward studies (inline SVG, no scripts).

A sweep report: the headline (best set, objective, DSR, PBO and the untrustworthy flag), a
heatmap of the objective over two parameters (the best value over any other parameters), the
distribution of the objective, the distribution of the CSCV logits, and the ranked table. A
walk-forward report: per-window chosen parameters with in- and out-of-sample metrics, the
stitched out-of-sample equity (:func:`backtest.report_charts.svg_time_chart`) and the
walk-forward efficiency. All text from configs and results is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from backtest.report_charts import fmt_number, fmt_pct, svg_time_chart
from backtest.research.analysis import StudyStats
from backtest.research.stats import DSR_THRESHOLD, PBO_THRESHOLD
from backtest.research.trial import Trial

if TYPE_CHECKING:
    from backtest.research.sweep import SweepOutcome
    from backtest.research.walkforward import WalkForwardOutcome

__all__ = ["svg_heatmap", "svg_histogram", "trust_note", "write_sweep_report",
           "write_walkforward_report"]

_STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1160px;
color:#1f2933}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 9px;border-bottom:1px solid #e4e7eb;text-align:right}th{background:#f5f7fa}
td.l,th.l{text-align:left}.bad{color:#b91c1c;font-weight:600}.ok{color:#047857;font-weight:600}
svg text{font-size:11px;fill:#52606d}.grid{stroke:#e4e7eb}.axis{stroke:#9aa5b1}
.axis-title{font-size:12px}.note{color:#616e7c}"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def trust_note(stats: StudyStats) -> tuple[str, bool]:
    """A one-line verdict on the multiple-testing figures, and whether it is trustworthy."""
    reasons = []
    if not math.isfinite(stats.dsr) or stats.dsr < DSR_THRESHOLD:
        reasons.append(f"DSR {fmt_number(stats.dsr, 3)} < {DSR_THRESHOLD}")
    if not math.isfinite(stats.pbo) or stats.pbo > PBO_THRESHOLD:
        reasons.append(f"PBO {fmt_number(stats.pbo, 3)} > {PBO_THRESHOLD}")
    if reasons:
        return "UNTRUSTWORTHY: " + ", ".join(reasons), False
    return f"trustworthy: DSR {stats.dsr:.3f} ≥ 0.95, PBO {stats.pbo:.3f} ≤ 0.5", True


def _colour(t: float) -> str:
    """White → blue for t in [0, 1]."""
    t = min(max(t, 0.0), 1.0)
    r, g, b = (int(255 + (c - 255) * t) for c in (37, 99, 235))
    return f"#{r:02x}{g:02x}{b:02x}"


def svg_heatmap(trials: Sequence[Trial], x: str, y: str, *, label: str, goal: str) -> str:
    """Objective over parameters ``x`` and ``y`` (the best over other parameters per cell)."""
    rows = [(t.params.get(x), t.params.get(y), t.objective) for t in trials
            if t.status == "ok" and math.isfinite(t.objective)]
    if not rows:
        return '<p class="note">No valid trials.</p>'
    frame = pd.DataFrame(rows, columns=["x", "y", "v"])
    agg: Literal["max", "min"] = "max" if goal == "maximize" else "min"
    table = frame.pivot_table(index="y", columns="x", values="v", aggfunc=agg)
    xs, ys = list(table.columns), list(table.index)
    cell, left, top = 56, 70, 30
    width, height = left + cell * len(xs) + 20, top + cell * len(ys) + 50
    lo, hi = float(np.nanmin(table.values)), float(np.nanmax(table.values))
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
           f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="heatmap">']
    for j, yv in enumerate(ys):
        for i, xv in enumerate(xs):
            v = table.loc[yv, xv]
            px, py = left + i * cell, top + j * cell
            if not math.isfinite(v):
                out.append(
                    f'<rect x="{px}" y="{py}" width="{cell}" height="{cell}" fill="#f5f7fa"/>'
                )
                continue
            t = (v - lo) / (hi - lo) if hi > lo else 1.0
            t = t if goal == "maximize" else 1.0 - t
            ink = "#fff" if t > 0.6 else "#1f2933"
            out.append(
                f'<rect x="{px}" y="{py}" width="{cell}" height="{cell}" fill="{_colour(t)}">'
                f"<title>{_e(x)}={_e(xv)}, {_e(y)}={_e(yv)}: {v:.4g}</title></rect>"
                f'<text x="{px + cell / 2}" y="{py + cell / 2 + 4}" text-anchor="middle" '
                f'style="fill:{ink}">{v:.2f}</text>'
            )
    for i, xv in enumerate(xs):
        out.append(f'<text x="{left + i * cell + cell / 2}" y="{top + cell * len(ys) + 16}" '
                   f'text-anchor="middle">{_e(xv)}</text>')
    for j, yv in enumerate(ys):
        out.append(f'<text x="{left - 8}" y="{top + j * cell + cell / 2 + 4}" '
                   f'text-anchor="end">{_e(yv)}</text>')
    out.append(f'<text class="axis-title" x="{left + cell * len(xs) / 2}" y="{height - 8}" '
               f'text-anchor="middle">{_e(x)}</text><text class="axis-title" x="12" y="{top - 10}">'
               f"{_e(y)} ↓ ({_e(label)})</text></svg>")
    return "\n".join(out)


def svg_histogram(values: Sequence[float], *, label: str, marker: float | None = None,
                  bins: int = 30) -> str:
    """A histogram of ``values`` with an optional vertical marker (e.g. 0 for logits)."""
    data = np.array([v for v in values if math.isfinite(v)], dtype=np.float64)
    if data.size == 0:
        return '<p class="note">No data.</p>'
    lo, hi = float(data.min()), float(data.max())
    if marker is not None:
        lo, hi = min(lo, marker), max(hi, marker)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, _ = np.histogram(data, bins=bins, range=(lo, hi))
    width, height, left, top, bottom = 560, 220, 40, 12, 40
    plot_w, plot_h = width - left - 12, height - top - bottom
    peak = max(int(counts.max()), 1)
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
           f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{_e(label)}">']
    bar_w = plot_w / bins
    for k, c in enumerate(counts.tolist()):
        h = plot_h * c / peak
        out.append(f'<rect x="{left + k * bar_w:.1f}" y="{top + plot_h - h:.1f}" '
                   f'width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}" fill="#2563eb"/>')

    def sx(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    if marker is not None:
        out.append(f'<line x1="{sx(marker):.1f}" y1="{top}" x2="{sx(marker):.1f}" '
                   f'y2="{top + plot_h}" stroke="#dc2626" stroke-dasharray="4 3"/>')
    for v in (lo, (lo + hi) / 2, hi):
        out.append(f'<text x="{sx(v):.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                   f"{v:.3g}</text>")
    out.append(
        f'<text x="4" y="{top + 10}">{peak}</text><text class="axis-title" '
        f'x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">{_e(label)}</text>'
    )
    out.append("</svg>")
    return "\n".join(out)


def _stats_table(stats: StudyStats) -> str:
    note, ok = trust_note(stats)
    rows = [("Trials (valid)", f"{stats.n_trials} ({stats.n_valid})"),
            ("Deflated Sharpe Ratio", fmt_number(stats.dsr, 3)),
            ("Expected max per-period Sharpe of skill-less trials (SR₀)", fmt_number(stats.sr0, 4)),
            ("Variance of trial Sharpe ratios (per period)", f"{stats.sharpe_variance:.3g}"),
            ("Probability of backtest overfitting (CSCV)", fmt_number(stats.pbo, 3)),
            ("OOS Sharpe ≈ a × IS Sharpe + b (best IS trial)",
             f"a = {fmt_number(stats.degradation[0], 3)}, "
             f"b = {fmt_number(stats.degradation[1], 4)}")]
    body = "".join(f'<tr><td class="l">{_e(k)}</td><td>{_e(v)}</td></tr>' for k, v in rows)
    return (
        f'<p class="{"ok" if ok else "bad"}">{_e(note)}</p><table>{body}</table>'
        '<p class="note">DSR: Bailey &amp; López de Prado (2014); PBO: Bailey, Borwein, López '
        "de Prado &amp; Zhu (2015). Flagged when DSR &lt; 0.95 or PBO &gt; 0.5.</p>"
    )


def _ranked_table(trials: Sequence[Trial], names: Sequence[str], metric: str, limit: int) -> str:
    head = "".join(f'<th class="l">{_e(n)}</th>' for n in names)
    out = [f"<table><tr><th>#</th>{head}<th>{_e(metric)}</th><th>Sharpe</th><th>Return</th>"
           "<th>Max DD</th><th>Fills</th><th class='l'>status</th></tr>"]
    for i, t in enumerate(trials[:limit], 1):
        m = t.metrics
        cells = "".join(f'<td class="l">{_e(t.params.get(n))}</td>' for n in names)
        out.append(f"<tr><td>{i}</td>{cells}<td>{fmt_number(t.objective, 4)}</td>"
                   f"<td>{fmt_number(m.get('sharpe'), 3)}</td><td>{fmt_pct(m.get('total_return'))}"
                   f"</td><td>{fmt_pct(m.get('max_drawdown'))}</td><td>{t.n_fills}</td>"
                   f'<td class="l">{_e(t.status if not t.error else t.error)}</td></tr>')
    out.append("</table>")
    if len(trials) > limit:
        out.append(f'<p class="note">{len(trials) - limit} more not shown.</p>')
    return "".join(out)


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
            f"</title><style>{_STYLE}</style></head><body>{body}</body></html>\n")


def write_sweep_report(path: Path, outcome: SweepOutcome) -> Path:
    config, stats = outcome.config, outcome.stats
    names = sorted({k for t in outcome.ranked for k in t.params})
    metric = config.objective.metric
    best = stats.best
    parts = [f"<h1>Sweep {_e(outcome.sweep_id)}</h1>",
             f'<p class="note">{_e(config.objective.goal)} {_e(metric)} over {len(outcome.ranked)}'
             f" parameter sets; best: {_e(best.params if best else '—')} "
             f"({_e(metric)} = {fmt_number(best.objective if best else None, 4)})</p>",
             "<h2>Multiple testing</h2>", _stats_table(stats)]
    xy = config.heatmap or (tuple(names[:2]) if len(names) >= 2 else None)
    if xy is not None:
        parts += [
            f"<h2>{_e(metric)} over {_e(xy[0])} × {_e(xy[1])}</h2>",
            svg_heatmap(outcome.ranked, xy[0], xy[1], label=metric, goal=config.objective.goal),
        ]
    parts += [f"<h2>Distribution of {_e(metric)}</h2>",
              svg_histogram([t.objective for t in outcome.ranked], label=metric),
              "<h2>CSCV logits of the in-sample best (≤ 0: overfit)</h2>",
              svg_histogram(stats.pbo_logits, label="logit of OOS relative rank", marker=0.0),
              "<h2>Ranking</h2>", _ranked_table(outcome.ranked, names, metric, 100)]
    return _write(path, _page(f"Sweep {outcome.sweep_id}", "".join(parts)))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_walkforward_report(path: Path, outcome: WalkForwardOutcome) -> Path:
    config = outcome.config
    metric = config.objective.metric
    rows = ["<table><tr><th>#</th><th class='l'>train</th><th class='l'>test</th>"
            "<th class='l'>chosen</th><th>IS</th><th>OOS</th><th>DSR (IS)</th><th>PBO (IS)</th>"
            "</tr>"]
    for w in outcome.windows:
        rows.append(f"<tr><td>{w.index}</td><td class='l'>{_e(w.train_label)}</td>"
                    f"<td class='l'>{_e(w.test_label)}</td><td class='l'>{_e(w.params)}</td>"
                    f"<td>{fmt_number(w.is_objective, 3)}</td><td>{fmt_number(w.oos_objective, 3)}"
                    f"</td><td>{fmt_number(w.stats.dsr, 3)}</td><td>{fmt_number(w.stats.pbo, 3)}"
                    "</td></tr>")
    rows.append("</table>")
    equity = outcome.oos_equity
    chart = (
        svg_time_chart({"out-of-sample equity": equity}, y_title="Equity") if len(equity) else ""
    )
    parts = [f"<h1>Walk-forward {_e(outcome.wf_id)}</h1>",
             f'<p class="note">{_e(config.windows.mode)} windows; {_e(config.objective.goal)} '
             f"{_e(metric)} in-sample, the best set run out-of-sample.</p>",
             f"<p>Walk-forward efficiency (mean OOS / mean IS {_e(metric)}): "
             f"<b>{fmt_number(outcome.efficiency, 3)}</b>; stitched OOS {_e(metric)}: "
             f"<b>{fmt_number(outcome.oos_metrics.get(metric), 3)}</b>, return "
             f"{fmt_pct(outcome.oos_metrics.get('total_return'))}</p>",
             "<h2>Stitched out-of-sample multiple testing</h2>", _stats_table(outcome.oos_stats),
             "<h2>Windows</h2>", "".join(rows), "<h2>Stitched out-of-sample equity</h2>", chart]
    return _write(path, _page(f"Walk-forward {outcome.wf_id}", "".join(parts)))
