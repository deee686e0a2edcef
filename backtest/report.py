"""One self-contained HTML report of a backtest run: no network, no scripts, no build step.

The page holds a header (run id, strategy class and params, the data streams, config hash, seed),
headline figures, a price chart per traded instrument with its fills marked (▲ buy, ▼ sell), an
equity chart with buy-and-hold drawn under the strategy, an underwater chart (inline SVG in market
time, :mod:`backtest.report_charts`), the metrics of the
strategy against its buy-and-hold and no-trade baselines, the round trips, fills and orders
(first and last rows when long) and the manifest. Every piece of text that comes from a run is
HTML-escaped; the page carries no scripts.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import pandas as pd

from backtest.metrics import drawdown_series, index_to_ns, round_trips
from backtest.report_charts import (
    fmt_duration,
    fmt_int,
    fmt_number,
    fmt_pct,
    fmt_ts,
    svg_time_chart,
)
from backtest.round_trips import closed_by

__all__ = ["annualised_caveat", "data_text", "strategy_text", "write_report"]

TEMPLATE_PATH = Path(__file__).with_name("report_template.html")
COLUMNS = (("strategy", "Strategy"), ("buy_and_hold", "Buy & hold"), ("no_trade", "No trade"))
Metrics = Mapping[str, Any]
Cell = tuple[str, str]  # (escaped html, css class)


def _m(key: str, fmt: Callable[[Any], str]) -> Callable[[Metrics], str]:
    return lambda m: fmt(m.get(key))


def _dd_duration(m: Metrics) -> str:
    periods = m.get("max_drawdown_duration_periods")
    text = fmt_duration(m.get("max_drawdown_duration_s"))
    return f"{text} ({fmt_int(periods)} periods)" if text != "—" else text


METRIC_ROWS: tuple[tuple[str, Callable[[Metrics], str]], ...] = (
    ("Total return", _m("total_return", fmt_pct)),
    ("CAGR", _m("cagr", fmt_pct)),
    ("Volatility (annualised)", _m("volatility", fmt_pct)),
    ("Sharpe ratio", _m("sharpe", fmt_number)),
    ("Sortino ratio", _m("sortino", fmt_number)),
    ("Calmar ratio", _m("calmar", fmt_number)),
    ("Max drawdown", _m("max_drawdown", fmt_pct)),
    ("Max drawdown duration", _dd_duration),
    ("Exposure (time in market)", _m("exposure", fmt_pct)),
    ("Turnover (annualised)", _m("turnover_annual", lambda v: fmt_number(v, 2, "×"))),
    ("Turnover (total)", _m("turnover_total", lambda v: fmt_number(v, 2, "×"))),
    ("Fills", _m("fills", fmt_int)),
    ("Round trips", _m("trades", fmt_int)),
    ("Hit rate", _m("hit_rate", fmt_pct)),
    ("Profit factor", _m("profit_factor", fmt_number)),
    ("Average round-trip PnL", _m("avg_trade_pnl", fmt_number)),
    ("Fees paid", _m("fees_paid", fmt_number)),
    ("Funding (received − paid)", _m("funding", fmt_number)),
    ("Borrow paid", _m("borrow_paid", fmt_number)),
    ("Final equity", _m("final_equity", fmt_number)),
    ("Periods per year", _m("periods_per_year", lambda v: fmt_number(v, 0))),
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _columns(metrics: Metrics) -> list[tuple[str, Metrics]]:
    """``(label, metrics)`` per column: baselines when ``metrics`` nests them, else one column."""
    if isinstance(metrics.get("strategy"), Mapping):
        return [
            (label, metrics[key]) for key, label in COLUMNS if isinstance(metrics.get(key), Mapping)
        ]
    return [("Strategy", metrics)]


# --------------------------------------------------------------------------- header and figures


def _manifest_value(manifest: Metrics, *names: str) -> str:
    scopes = [manifest] + [v for v in manifest.values() if isinstance(v, Mapping)]
    for scope in scopes:
        for name in names:
            value = scope.get(name)
            if isinstance(value, Mapping):
                value = next(
                    (value[k] for k in ("name", "class", "path", "id") if k in value), None
                )
            if value is not None and value != "":
                return str(value)
    return "—"


def strategy_text(manifest: Metrics) -> str | None:
    """``id: Class(param=value, ...)`` per strategy of a run's manifest (``None`` if unnamed)."""
    runs = manifest.get("strategy_params")
    if not isinstance(runs, Mapping) or not runs:
        return None
    parts = []
    for sid, spec in runs.items():
        cls = str(spec.get("class", "")).rpartition(":")[2]
        params = ", ".join(f"{k}={v}" for k, v in dict(spec.get("params", {})).items())
        parts.append(f"{sid}: {cls}({params})")
    return "; ".join(parts)


def data_text(manifest: Metrics) -> str | None:
    """The run's data streams as a reader names them, one per line: ``bars SIM-A 1m from
    data/a.csv.gz, 2024-01-02 → 2024-02-01`` (``None`` when the manifest lists none)."""
    streams = manifest.get("data")
    if not isinstance(streams, Sequence) or isinstance(streams, str) or not streams:
        return None
    lines = []
    for spec in streams:
        if not isinstance(spec, Mapping):
            lines.append(str(spec))
            continue
        words = [str(spec.get("kind", "")), str(spec.get("instrument", ""))]
        if spec.get("interval"):
            words.append(str(spec["interval"]))
        if spec.get("path"):
            words.append(f"from {spec['path']}")
            if spec.get("bar_stamp"):
                words.append(f"(stamped at the {spec['bar_stamp']})")
        elif spec.get("sample_days"):
            words.append(f"sample data, {spec['sample_days']} days")
        else:
            words.append("from the store")
        text = " ".join(w for w in words if w)
        if spec.get("start") or spec.get("end"):
            text += f", {spec.get('start') or '…'} → {spec.get('end') or '…'}"
        lines.append(text)
    return "\n".join(lines)


def annualised_caveat(metrics: Metrics) -> str | None:
    """A warning when annualised figures stretch less than a year of data to a year."""
    years = metrics.get("years")
    if not isinstance(years, int | float) or not math.isfinite(years) or years >= 1:
        return None
    days = years * 365.25
    span = f"{days:.1f} days" if days < 60 else f"{days / 30.44:.1f} months"
    return (
        f"Annualised figures (CAGR, volatility, Sharpe, Sortino, Calmar, annual turnover) "
        f"stretch {span} of data to a year: they describe this sample, not what a year brings."
    )


def _header(run_id: str, manifest: Metrics, equity: pd.Series) -> str:
    named = strategy_text(manifest)
    fields = (
        ("Strategy", named or _manifest_value(manifest, "strategy", "strategy_class",
                                              "strategy_name")),
        ("Data", data_text(manifest) or _manifest_value(manifest, "dataset", "dataset_path")),
        ("Config hash", _manifest_value(manifest, "config_hash")),
        ("Dataset hash", _manifest_value(manifest, "dataset_hash")),
        ("Seed", _manifest_value(manifest, "seed")),
        ("Code version", _manifest_value(manifest, "code_version", "git_sha", "version")),
    )
    meta = "".join(
        f"<div><dt>{_e(k)}</dt><dd>{'<br>'.join(_e(line) for line in v.splitlines())}</dd></div>"
        for k, v in fields
    )
    period = ""
    if len(equity):
        ts = index_to_ns(equity.index)
        period = f"{fmt_ts(ts[0])} → {fmt_ts(ts[-1])} · {len(equity):,} points"
    return (
        f'<header class="top"><h1>Backtest report <span class="run">{_e(run_id)}</span></h1>'
        f'<div class="period">{_e(period)}</div></header><dl class="meta">{meta}</dl>'
    )


def _sign_class(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return "pos" if number > 0 else "neg" if number < 0 else ""


def _kpis(columns: list[tuple[str, Metrics]]) -> str:
    strategy = columns[0][1]
    bh = dict(columns).get("Buy & hold")
    ret = strategy.get("total_return")
    vs_bh = ""
    if bh is not None:
        diff = float(ret if ret is not None else math.nan) - float(bh.get("total_return", math.nan))
        plus = "+" if diff > 0 else ""
        vs_bh = f"{plus}{fmt_pct(diff)} vs buy & hold" if math.isfinite(diff) else ""
    s = strategy
    cards = (
        ("Total return", fmt_pct(ret), _sign_class(ret), vs_bh),
        ("Sharpe ratio", fmt_number(s.get("sharpe")), "",
         f"Sortino {fmt_number(s.get('sortino'))}"),
        ("Max drawdown", fmt_pct(s.get("max_drawdown")), "neg" if s.get("max_drawdown") else "",
         f"longest {fmt_duration(s.get('max_drawdown_duration_s'))}"),
        ("Round trips", fmt_int(s.get("trades")), "", f"hit rate {fmt_pct(s.get('hit_rate'))}"),
        ("Exposure", fmt_pct(s.get("exposure")), "", f"fees {fmt_number(s.get('fees_paid'))}"),
    )  # fmt: skip
    return (
        '<div class="kpis">'
        + "".join(
            f'<div class="kpi"><div class="label">{_e(label)}</div>'
            f'<div class="value {css}">{_e(value)}</div><div class="sub">{_e(sub)}</div></div>'
            for label, value, css, sub in cards
        )
        + "</div>"
    )


def _metrics_table(columns: list[tuple[str, Metrics]]) -> str:
    head = "".join(f'<th class="num">{_e(label)}</th>' for label, _ in columns)
    body = []
    for label, fmt in METRIC_ROWS:
        cells = "".join(
            f'<td class="num{" strategy" if i == 0 else ""}">{_e(fmt(m))}</td>'
            for i, (_, m) in enumerate(columns)
        )
        body.append(f"<tr><td>{_e(label)}</td>{cells}</tr>")
    caveat = annualised_caveat(columns[0][1]) if columns else None
    note = f'<p class="note caveat">{_e(caveat)}</p>' if caveat else ""
    return (
        f'<div class="scroll"><table class="metrics"><thead><tr><th>Metric</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{note}"
    )


# --------------------------------------------------------------------------- tables


def _plain(value: Any) -> str:
    """A number with thousands separators and at most 4 decimals; anything else as text."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        return (
            "—" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
        )
    number = float(value)
    if not math.isfinite(number):
        return "—" if math.isnan(number) else "∞"
    if number.is_integer():
        return f"{int(number):,}"
    return f"{number:,.4f}".rstrip("0").rstrip(".")


def _table(
    headers: Sequence[tuple[str, bool]], frame: pd.DataFrame, row: Callable[[Any], list[Cell]],
    *, max_rows: int, noun: str,
) -> str:  # fmt: skip
    """A table of ``frame`` (first and last ``max_rows`` rows when longer), ``row`` per record."""
    if len(frame) == 0:
        return f'<p class="note">No {_e(noun)}.</p>'
    n = len(frame)
    cut = n > 2 * max_rows
    parts = [frame.iloc[:max_rows], frame.iloc[n - max_rows :]] if cut else [frame]
    head = "".join(f'<th class="{"num" if num else ""}">{_e(h)}</th>' for h, num in headers)
    body: list[str] = []
    for k, part in enumerate(parts):
        if k == 1:
            body.append(
                f'<tr class="gap"><td colspan="{len(headers)}">… {n - 2 * max_rows:,} {_e(noun)} '
                "not shown …</td></tr>"
            )
        for rec in part.itertuples(index=False):
            cells = row(rec)
            body.append("<tr>" + "".join(f'<td class="{c}">{v}</td>' for v, c in cells) + "</tr>")
    note = f"Showing the first and last {max_rows:,} of {n:,} {noun}." if cut else f"{n:,} {noun}."
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
        f'</table></div><p class="note">{_e(note)}</p>'
    )


def _trip_row(t: Any) -> list[Cell]:
    held = (int(t.exit_ts) - int(t.entry_ts)) / 1e9
    return [
        (_e(fmt_int(t.number)), "num"), (_e(t.instrument_id), ""),
        ("Long" if t.direction > 0 else "Short", ""), (_e(fmt_ts(t.entry_ts)), ""),
        (_e(fmt_ts(t.exit_ts)), ""), (_e(fmt_duration(held)), "num"), (_e(_plain(t.qty)), "num"),
        (_e(_plain(t.entry_price)), "num"), (_e(_plain(t.exit_price)), "num"),
        (_e(fmt_number(t.fees)), "num"),
        (_e(fmt_number(t.net_pnl)), f"num {_sign_class(t.net_pnl)}"),
        (_e(t.closed_by or "—"), ""),
    ]  # fmt: skip


def _trades_table(fills: pd.DataFrame | None, orders: pd.DataFrame | None, max_rows: int) -> str:
    trips = round_trips(fills) if fills is not None else pd.DataFrame()
    if len(trips):
        trips.insert(0, "number", np.arange(1, len(trips) + 1))
        trips["closed_by"] = closed_by(trips, orders)
    headers = [("#", True), ("Instrument", False), ("Side", False), ("Entry (UTC)", False),
               ("Exit (UTC)", False), ("Held", True), ("Qty", True), ("Entry price", True),
               ("Exit price", True), ("Fees", True), ("Net PnL", True),
               ("Closed by", False)]  # fmt: skip
    return _table(headers, trips, _trip_row, max_rows=max_rows, noun="round trips")


def _fill_row(f: Any) -> list[Cell]:
    return [
        (_e(fmt_ts(f.ts_event)), ""), (_e(f.instrument_id), ""),
        ("Buy" if int(f.side) > 0 else "Sell", "pos" if int(f.side) > 0 else "neg"),
        (_e(_plain(f.qty)), "num"), (_e(_plain(f.price)), "num"),
        (_e(fmt_number(float(f.qty) * float(f.price))), "num"), (_e(fmt_number(f.fee)), "num"),
    ]  # fmt: skip


def _fills_table(fills: pd.DataFrame | None, max_rows: int) -> str:
    headers = [("Time (UTC)", False), ("Instrument", False), ("Side", False), ("Qty", True),
               ("Price", True), ("Notional", True), ("Fee", True)]  # fmt: skip
    frame = fills if fills is not None else pd.DataFrame()
    if len(frame):
        frame = frame.sort_values("ts_event", kind="stable")
    return _table(headers, frame, _fill_row, max_rows=max_rows, noun="fills")


def _carry_row(c: Any) -> list[Cell]:
    return [
        (_e(fmt_ts(c.ts_event)), ""), (_e(c.instrument_id), ""),
        ("Funding" if c.kind == "funding" else "Borrow", ""), (_e(_plain(c.quantity)), "num"),
        (_e(_plain(c.price)), "num"), (_e(_plain(c.rate)), "num"),
        (_e(fmt_number(c.amount)), f"num {_sign_class(c.amount)}"),
    ]  # fmt: skip


def _carry_section(carry: pd.DataFrame | None, max_rows: int) -> str:
    """Funding and borrow charged on held positions (nothing when none was)."""
    if carry is None or len(carry) == 0:
        return ""
    headers = [("Time (UTC)", False), ("Instrument", False), ("Kind", False),
               ("Position", True), ("Mark", True), ("Rate", True), ("Cash", True)]  # fmt: skip
    table = _table(headers, carry, _carry_row, max_rows=max_rows, noun="charges")
    return (f'<section class="card" id="carry"><h2>Funding and borrow</h2>{table}'
            '<p class="note">Cash moved by holding positions: funding at each funding time '
            '(rate per period), borrow on shorts each night (rate per year).</p></section>')


def _orders_section(orders: pd.DataFrame | None, max_rows: int) -> str:
    if orders is None:
        return ""
    names = [str(c) for c in orders.columns]
    numeric = [pd.api.types.is_numeric_dtype(orders[c]) for c in orders.columns]
    is_ts = [n.startswith("ts_") and num for n, num in zip(names, numeric, strict=True)]

    def row(rec: Any) -> list[Cell]:
        return [
            (_e(fmt_ts(v) if ts else _plain(v)), "num" if num and not ts else "")
            for v, ts, num in zip(rec, is_ts, numeric, strict=True)
        ]

    frame = orders.set_axis(range(len(names)), axis=1)
    table = _table(
        list(zip(names, numeric, strict=True)), frame, row, max_rows=max_rows, noun="orders"
    )
    return f'<section class="card" id="orders"><h2>Orders</h2>{table}</section>'


def _parents_section(parents: pd.DataFrame | None, metrics: Metrics, max_rows: int) -> str:
    """Parent orders and their slippage against the arrival price (nothing without any)."""
    if parents is None or not len(parents):
        return ""
    shown = ["parent_id", "algorithm", "instrument_id", "side", "qty", "filled_qty",
             "arrival_price", "avg_price", "slippage_bps", "status", "reason"]  # fmt: skip
    frame = parents[shown]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in shown]

    def row(rec: Any) -> list[Cell]:
        return [(_e(_plain(v)), "num" if num else "") for v, num in zip(rec, numeric, strict=True)]

    table = _table(
        list(zip(shown, numeric, strict=True)),
        frame.set_axis(range(len(shown)), axis=1),
        row,
        max_rows=max_rows,
        noun="parent orders",
    )
    strategy = metrics.get("strategy", metrics)
    mean = strategy.get("algo_slippage_bps") if isinstance(strategy, Mapping) else None
    note = "" if mean is None else (
        f'<p class="note">Quantity-weighted slippage against arrival: {_e(_plain(mean))} bps '
        "(positive: paid).</p>"
    )
    return (
        f'<section class="card" id="parents"><h2>Execution algorithms</h2>{note}{table}</section>'
    )


def _price_section(
    prices: Mapping[str, pd.Series] | None, fills: pd.DataFrame | None, max_charts: int = 4
) -> str:
    """A price chart per traded instrument (the first ``max_charts``), its fills marked."""
    if not prices:
        return ""
    traded = (
        list(dict.fromkeys(fills["instrument_id"].astype(str))) if fills is not None
        and len(fills) else []
    )  # fmt: skip
    names = [n for n in traded if n in prices] or list(prices)[:1]
    charts = []
    for name in names[:max_charts]:
        marks = None
        if fills is not None and len(fills):
            own = fills[fills["instrument_id"].astype(str) == name]
            marks = own[["ts_event", "price", "side"]] if len(own) else None
        chart = svg_time_chart({name: prices[name]}, y_title="Price", markers=marks, height=280)
        charts.append(f"<h3>{_e(name)}</h3>{chart}")
    more = len(names) - max_charts
    note = f'<p class="note">{more} more traded instrument(s) not drawn.</p>' if more > 0 else ""
    return (
        '<section class="card" id="prices"><h2>Prices and fills '
        '<span class="legend"><span class="buy">▲</span> buy '
        '<span class="sell">▼</span> sell</span></h2>'
        f"{''.join(charts)}{note}</section>"
    )


# --------------------------------------------------------------------------- the page


def write_report(
    path: str | Path,
    *,
    run_id: str,
    manifest: Mapping[str, Any],
    metrics: Mapping[str, Any],
    equity: pd.Series,
    drawdown: pd.Series | None = None,
    fills: pd.DataFrame | None,
    orders: pd.DataFrame | None = None,
    parents: pd.DataFrame | None = None,
    carry: pd.DataFrame | None = None,
    baseline_equity: Mapping[str, pd.Series] | None = None,
    prices: Mapping[str, pd.Series] | None = None,
    max_rows: int = 25,
) -> Path:
    """Write the run's report to ``path`` (one HTML file, nothing else) and return the path.

    ``metrics``: :func:`backtest.metrics.compare_baselines` output (or one flat metrics dict).
    ``drawdown`` defaults to :func:`backtest.metrics.drawdown_series` of ``equity``;
    ``parents``: parent orders worked by execution algorithms (their slippage against arrival);
    ``baseline_equity`` (e.g. ``{"Buy & hold": series}``) is drawn dashed under the strategy.
    ``prices`` (instrument id → price series): a price chart per traded instrument, fills marked.
    """
    columns = _columns(metrics)
    dd = drawdown if drawdown is not None else drawdown_series(equity)
    lines = {"Strategy": equity, **dict(baseline_equity or {})}
    page = Template(TEMPLATE_PATH.read_text(encoding="utf-8")).substitute(
        title=_e(f"Backtest {run_id}"),
        header=_header(run_id, manifest, equity),
        kpis=_kpis(columns),
        price_section=_price_section(prices, fills),
        equity_chart=svg_time_chart(lines, y_title="Equity"),
        drawdown_chart=svg_time_chart(
            {"Drawdown": dd},
            y_title="Drawdown",
            y_percent=True,
            area=True,
            height=220,
        ),
        metrics_table=_metrics_table(columns),
        trades_table=_trades_table(fills, orders, max_rows),
        fills_table=_fills_table(fills, max_rows),
        carry_section=_carry_section(carry, max_rows),
        orders_section=_parents_section(parents, metrics, max_rows)
        + _orders_section(orders, max_rows),
        manifest=_e(json.dumps(manifest, indent=2, sort_keys=True, default=str)),
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
