"""The Ray dashboard flag the long-running commands share (``paper``, ``live``, ``sweep``,
``walkforward``): by default a private Ray session serves the dashboard on 127.0.0.1 and its
address is printed on stderr, one line; ``--no-dashboard`` starts none (a faster start-up)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["add_dashboard_argument", "dashboard_notice"]


def add_dashboard_argument(parser: Any) -> None:
    parser.add_argument(
        "--no-dashboard",
        dest="dashboard",
        action="store_false",
        help="do not start the Ray dashboard (by default a private session serves it on "
        "127.0.0.1 and its address is printed on stderr)",
    )


def dashboard_notice(args: argparse.Namespace) -> Callable[[str], None] | None:
    """What prints the Ray dashboard's address (stderr, one line), or None for --no-dashboard."""
    if not args.dashboard:
        return None

    def notice(url: str) -> None:
        print(f"Ray dashboard: {url}", file=sys.stderr, flush=True)

    return notice
