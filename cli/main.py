"""The ``tradewind`` command line: one sub-command per main job.

Each sub-command lives in its own module ``cli/<name>.py`` exposing
``register(subparsers) -> None``; the parser it adds sets ``func`` to a handler
``handler(args) -> int`` (the exit code). A :class:`~runtime.errors.TradewindError` ends in one
clear line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from runtime.errors import TradewindError

__all__ = ["build_parser", "main"]

SUBCOMMAND_MODULES = (
    "cli.data", "cli.backtest", "cli.demo", "cli.sweep", "cli.walkforward", "cli.paper",
    "cli.fetch", "cli.control", "cli.live", "cli.new", "cli.rehearse",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradewind",
        description="Tradewind: backtest, paper-trade and trade live with one deterministic core.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except TradewindError as exc:
        print(f"tradewind {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tradewind {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
