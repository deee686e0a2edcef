"""``tradewind live --config CONFIG --confirm-live [--duration 60s] [--json] ...``: a session
against a broker's real-money account.

Live trading is an explicit opt-in, twice: ``live: true`` in the config's broker block *and*
``--confirm-live`` on the command line. Either one missing is a one-line refusal naming what is
missing (exit 2); so is a paper account (IB ``paper: true``, Shioaji ``simulation: true``: run
``tradewind paper``) and the paper broker. Everything else is ``tradewind paper``: the same
supervised actor tree, journals and files. Credentials come from the environment only
(docs/brokers.md).
"""

from __future__ import annotations

import argparse
from typing import Any

from cli.paper import add_session_arguments, run_command

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "live", help="live trading against a broker (needs live: true and --confirm-live)")
    add_session_arguments(parser)
    parser.add_argument("--confirm-live", action="store_true",
                        help="confirm that this session trades real money")
    parser.set_defaults(func=_live)


def _live(args: argparse.Namespace) -> int:
    return run_command(args, command="live")
