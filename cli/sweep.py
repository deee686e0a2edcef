"""``tradewind sweep --config PATH [--address auto|HOST:PORT] [--store DSN] [--no-dashboard]
[--json]``.

Runs (or resumes) a parameter sweep as Ray tasks, prints the ranked table (or one JSON object)
and writes ``runs/<sweep_id>/report.html``. See ``docs/research.md``.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from backtest.report_charts import fmt_number, fmt_pct
from backtest.research.report import trust_note
from backtest.research.sweep import SweepOutcome, run_sweep
from cli.dashboard import add_dashboard_argument, dashboard_notice
from cli.progress import ProgressLine

__all__ = ["add_study_arguments", "register", "table_lines"]


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="path of the study's YAML config")
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join: 'auto' (this machine's running cluster) or HOST:PORT; "
        "default: $RAY_ADDRESS if set, else a private local Ray session for this command",
    )
    parser.add_argument(
        "--store",
        default=None,
        help="results store DSN (default: the config's store.dsn, TRADEWIND_STORE_DSN, "
        "chdb://var/clickhouse); a multi-machine cluster needs a ClickHouse server",
    )
    add_dashboard_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--top", type=int, default=20, help="rows of the ranked table (20)")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sweep", help="run a parameter sweep on Ray")
    add_study_arguments(parser)
    parser.set_defaults(func=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    progress = ProgressLine("sweep")
    outcome = run_sweep(args.config, address=args.address, store_dsn=args.store,
                        progress=progress, dashboard=dashboard_notice(args))  # fmt: skip
    progress.done()
    if args.json:
        print(json.dumps(outcome.to_json(), allow_nan=False, default=_none))
    else:
        print("\n".join(table_lines(outcome, top=args.top)))
    return 0


def _none(value: Any) -> Any:
    return None


def table_lines(outcome: SweepOutcome, *, top: int = 20) -> list[str]:
    """The ranked table: parameters, objective, headline metrics; the DSR/PBO verdict."""
    names = sorted({k for t in outcome.ranked for k in t.params})
    metric = outcome.config.objective.metric
    note, ok = trust_note(outcome.stats)
    header = ["#", *names, f"{metric} (objective)", "sharpe", "return", "max dd", "fills", "note"]
    rows: list[list[str]] = []
    for i, t in enumerate(outcome.ranked[:top], 1):
        m = t.metrics
        flag = ("" if ok else "untrustworthy") if i == 1 and t.status == "ok" else ""
        flag = t.error[:40] if t.status != "ok" else flag
        rows.append([str(i), *(str(t.params.get(n)) for n in names),
                     fmt_number(t.objective if math.isfinite(t.objective) else None, 4),
                     fmt_number(m.get("sharpe"), 3), fmt_pct(m.get("total_return")),
                     fmt_pct(m.get("max_drawdown")), str(t.n_fills), flag])  # fmt: skip
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    lines = [f"sweep {outcome.sweep_id}: {len(outcome.ranked)} parameter sets "
             f"({outcome.n_run} run now, {len(outcome.ranked) - outcome.n_run} from the store); "
             f"{outcome.config.objective.goal} {metric}"]  # fmt: skip
    lines += ["  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))
              for r in [header, *rows]]  # fmt: skip
    if len(outcome.ranked) > top:
        lines.append(f"  … {len(outcome.ranked) - top} more")
    lines.append(f"  DSR {fmt_number(outcome.stats.dsr, 3)}  PBO {fmt_number(outcome.stats.pbo, 3)}"
                 f"  → {note}")  # fmt: skip
    if outcome.report_path:
        lines.append(f"  report: {outcome.report_path}")
    return lines
