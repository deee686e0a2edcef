"""``tradewind walkforward --config PATH [--address auto|HOST:PORT] [--store DSN] [--json]``.

Per window: the grid optimised in-sample, the best set run out-of-sample; prints the windows,
the walk-forward efficiency and the stitched out-of-sample figures, and writes
``runs/<wf_id>/report.html`` and ``oos_equity.parquet``. See ``docs/research.md``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from backtest.report_charts import fmt_number, fmt_pct
from backtest.research.report import trust_note
from backtest.research.walkforward import WalkForwardOutcome, run_walkforward
from cli.dashboard import dashboard_notice
from cli.progress import ProgressLine
from cli.sweep import add_study_arguments

__all__ = ["register", "summary_lines"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("walkforward", help="run a walk-forward study on Ray")
    add_study_arguments(parser)
    parser.set_defaults(func=_walkforward)


def _walkforward(args: argparse.Namespace) -> int:
    progress = ProgressLine("walkforward")
    outcome = run_walkforward(args.config, address=args.address, store_dsn=args.store,
                              progress=progress, dashboard=dashboard_notice(args))
    progress.done()
    if args.json:
        print(json.dumps(outcome.to_json(), allow_nan=False))
    else:
        print("\n".join(summary_lines(outcome)))
    return 0


def summary_lines(outcome: WalkForwardOutcome) -> list[str]:
    metric = outcome.config.objective.metric
    lines = [f"walk-forward {outcome.wf_id}: {len(outcome.windows)} {outcome.config.windows.mode} "
             f"windows ({outcome.n_run} trials run now); {outcome.config.objective.goal} {metric}",
             f"  {'#':>3}  {'test window':50}  {'chosen':28}  {'IS':>8}  {'OOS':>8}  "
             f"{'DSR':>6}  {'PBO':>6}"]
    for w in outcome.windows:
        lines.append(f"  {w.index:>3}  {w.test_label:50}  {json.dumps(w.params):28}  "
                     f"{fmt_number(w.is_objective, 3):>8}  {fmt_number(w.oos_objective, 3):>8}  "
                     f"{fmt_number(w.stats.dsr, 2):>6}  {fmt_number(w.stats.pbo, 2):>6}")
    note, _ = trust_note(outcome.oos_stats)
    lines += [f"  walk-forward efficiency {fmt_number(outcome.efficiency, 3)}; stitched OOS "
              f"{metric} {fmt_number(outcome.oos_metrics.get(metric), 3)}, return "
              f"{fmt_pct(outcome.oos_metrics.get('total_return'))}",
              f"  OOS PSR {fmt_number(outcome.oos_stats.dsr, 3)}, mean IS PBO "
              f"{fmt_number(outcome.oos_stats.pbo, 3)} → {note}"]
    if outcome.report_path:
        lines.append(f"  report: {outcome.report_path}")
    return lines
