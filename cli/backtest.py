"""``tradewind backtest --config PATH [--json]``: one backtest, its files, report and store rows.

``tradewind backtest --from-sweep runs/<sweep_id> --trial N``: trial N of a sweep (1 = best, as
the sweep's table numbers them) as an ordinary backtest, with its files and report; its state
hash is checked against the sweep's (a difference says the data or the code changed since).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from backtest.api import BacktestResult, run_backtest
from backtest.metrics import metrics_to_json
from backtest.report import annualised_caveat, strategy_text
from cli.progress import ProgressLine
from runtime.errors import ConfigError

__all__ = ["register", "summary_lines"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("backtest", help="run a backtest from a YAML config")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="path of the backtest's YAML config")
    source.add_argument(
        "--from-sweep",
        metavar="RUN",
        help="a sweep's folder (runs/<sweep_id>) or id: run one of its trials (--trial)",
    )
    parser.add_argument(
        "--trial",
        type=int,
        default=1,
        metavar="N",
        help="with --from-sweep: the trial's rank in the sweep's table (default 1, the best)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: run_id, metrics, n_fills, state_hash, report",
    )
    parser.add_argument(
        "--no-write",
        action="store_true",
        help="run only: no files under runs/, no rows in the store",
    )
    parser.set_defaults(func=_backtest)


def _backtest(args: argparse.Namespace) -> int:
    source: Any = args.config
    trial: dict[str, Any] | None = None
    if args.from_sweep is not None:
        from backtest.research.sweep import trial_backtest

        source, trial = trial_backtest(args.from_sweep, args.trial)
    elif args.trial != 1:
        raise ConfigError("--trial picks a trial of --from-sweep", field="--trial")
    progress = ProgressLine("backtest")
    result = run_backtest(source, write=not args.no_write, progress=progress)
    progress.done()
    if trial is not None and trial.get("state_hash") != result.state_hash:
        print(f"note: the state hash differs from trial {args.trial}'s in the sweep "
              f"({trial.get('state_hash')}): the data or the code changed since",
              file=sys.stderr)  # fmt: skip
    if args.json:
        print(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "metrics": json.loads(metrics_to_json(result.metrics)),
                    "n_fills": result.n_fills,
                    "state_hash": result.state_hash,
                    "report": str(result.report_path) if result.report_path else None,
                }
            )
        )
    else:
        if trial is not None:
            print(f"trial {args.trial} of sweep {args.from_sweep}: "
                  + ", ".join(f"{k}={v}" for k, v in trial["params"].items()))  # fmt: skip
        print("\n".join(summary_lines(result)))
    return 0


def _fmt(value: Any, kind: str) -> str:
    if not isinstance(value, int | float) or value != value:  # NaN
        return "—"
    if kind == "pct":
        return f"{100 * value:+.2f}%"
    if kind == "share":
        return f"{100 * value:.2f}%"
    if kind == "int":
        return f"{int(value):,}"
    return f"{value:,.2f}"


_ROWS = [
    ("total return", "total_return", "pct"),
    ("CAGR", "cagr", "pct"),
    ("Sharpe", "sharpe", "num"),
    ("Sortino", "sortino", "num"),
    ("max drawdown", "max_drawdown", "share"),
    ("exposure", "exposure", "share"),
    ("fills", "fills", "int"),
    ("round trips", "trades", "int"),
    ("hit rate", "hit_rate", "share"),
    ("fees paid", "fees_paid", "num"),
    ("final equity", "final_equity", "num"),
]


def summary_lines(result: BacktestResult) -> list[str]:
    """A one-screen summary: the run, strategy vs buy-and-hold vs no-trade, where files are."""
    m = result.metrics
    lines = [
        f"run {result.run_id}  ({result.events:,} events, {result.n_fills} fills, "
        f"state {result.state_hash[:12]})",
    ]
    named = strategy_text(result.manifest)
    if named:
        lines.append(f"  {named}")
    lines.append(f"  {'':14} {'strategy':>14} {'buy&hold':>14} {'no trade':>14}")
    for label, key, kind in _ROWS:
        cells = [
            _fmt(m.get(col, {}).get(key), kind) for col in ("strategy", "buy_and_hold", "no_trade")
        ]
        lines.append(f"  {label:14} {cells[0]:>14} {cells[1]:>14} {cells[2]:>14}")
    strategy = m.get("strategy", {})
    if strategy.get("funding") or strategy.get("borrow_paid"):  # carried positions
        lines.append(f"  {'funding':14} {_fmt(strategy.get('funding'), 'num'):>14}")
        lines.append(f"  {'borrow paid':14} {_fmt(strategy.get('borrow_paid'), 'num'):>14}")
    if result.denials:
        codes: dict[str, int] = {}
        for d in result.denials:
            codes[d["reason_code"]] = codes.get(d["reason_code"], 0) + 1
        lines.append("  risk denials: " + ", ".join(f"{k} ×{v}" for k, v in sorted(codes.items())))
    caveat = annualised_caveat(m.get("strategy", {}))
    if caveat:
        lines.append(f"  note: {caveat}")
    if result.report_path:
        lines.append(f"  report: {result.report_path}")
        lines.append(
            f"  files:  {result.run_dir}/ (manifest.json, fills.csv, orders.csv, carry.csv,"
            " round_trips.csv, equity.parquet)"
        )
    return lines
