"""``tradewind demo``: the main job on embedded defaults, no server, account or network.

Sample data into the embedded store (only if absent), the example backtests, their reports,
and a one-screen summary. Later stages (paper trading, sweeps) extend it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from backtest.api import run_backtest
from backtest.data import SampleSpec, generate_sample
from backtest.metrics import metrics_to_json
from backtest.store import open_store
from cli.backtest import summary_lines
from cli.progress import ProgressLine
from runtime.errors import ConfigError

__all__ = ["DEMO_CONFIGS", "register"]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEMO_CONFIGS = ("demo.yaml", "imbalance_taker.yaml")
SAMPLE_INSTRUMENTS = ("SIM-A", "SIM-B")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="sample data, example backtests and reports")
    parser.add_argument("--store", help="store DSN (default: $TRADEWIND_STORE_DSN or "
                                        "chdb://var/clickhouse)")
    parser.add_argument("--days", type=int, default=3, help="days of sample data if absent")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-paper", action="store_true",
                        help="skip the short lockstep paper session after the backtests")
    parser.set_defaults(func=_demo)


def _paper_step(store: Any, say: Any) -> dict[str, Any]:
    """A short lockstep paper session (configs/paper.yaml) through the supervised actors."""
    import ray

    from actors.config import load_paper_config
    from actors.logs import init_ray
    from actors.session import run_session

    say("")
    say("paper trading: the same SMA strategy through the supervised actor tree (lockstep) ...")
    started = not ray.is_initialized()
    if started:
        init_ray()  # JSON worker logs, none of Ray's notices
    try:
        result = run_session(load_paper_config(CONFIG_DIR / "paper.yaml"), lockstep=True,
                             store=store)
    finally:
        if started:
            ray.shutdown()
    say(f"paper session {result['session_id']}: {result['orders']} orders, "
        f"{result['fills']} fills, PnL {result['pnl']:,.2f}, restarts {result['restarts']}, "
        f"trading {result['trading_state']}")
    say(f"  files: {os.path.relpath(result['output_dir'])}/{result['session_id']}/ "
        "(session.md, fills.csv, orders.csv, positions.csv, account.csv)")
    return {k: result[k] for k in ("session_id", "orders", "fills", "pnl", "restarts",
                                   "state_hash")}


def _ensure_sample(store: Any, days: int, say: Any) -> bool:
    have = {(d.kind, d.instrument_id) for d in store.list_datasets()}
    wanted = {(k, i) for k in ("bars", "quotes", "trades") for i in SAMPLE_INSTRUMENTS}
    if wanted <= have:
        return False
    say(f"writing {days} days of sample data for {', '.join(SAMPLE_INSTRUMENTS)} "
        f"into {store.dsn.describe()} ...")
    tables = generate_sample(np.random.default_rng(7),
                             SampleSpec(instruments=SAMPLE_INSTRUMENTS, days=days))
    for kind, table in tables.items():
        store.write_market(kind, table)
    return True


def _demo(args: argparse.Namespace) -> int:
    if args.days < 1:
        raise ConfigError(f"must be at least 1, got {args.days}", field="--days")
    say = (lambda _msg: None) if args.json else print
    results = []
    with open_store(args.store) as store:
        sampled = _ensure_sample(store, args.days, say)
        for name in DEMO_CONFIGS:
            path = CONFIG_DIR / name
            if not path.exists():
                raise ConfigError("demo config missing (run the demo from a source checkout)",
                                  path=str(path))
            progress = ProgressLine(f"backtest {name}")
            result = run_backtest(path, store=store, progress=progress)
            progress.done()
            results.append(result)
            say("")
            say("\n".join(summary_lines(result)))
        paper = None if args.no_paper else _paper_step(store, say)
    if args.json:
        print(json.dumps({"sampled": sampled, "paper": paper, "runs": [{
            "run_id": r.run_id, "n_fills": r.n_fills, "state_hash": r.state_hash,
            "report": str(r.report_path),
            "metrics": json.loads(metrics_to_json(r.metrics["strategy"])),
        } for r in results]}))
    else:
        say("")
        say("Open a report in a browser; run `tradewind backtest --config configs/sma.yaml`"
            " for another backtest, `tradewind paper --config configs/paper.yaml` for paper"
            " trading, `tradewind data list` to see the store.")
    return 0
