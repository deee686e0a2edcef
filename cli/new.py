"""``tradewind new strategy NAME [--kind bars|quotes|book] [--dir DIR]``: a strategy to start from.

Writes ``NAME.py`` (the strategy and its params), ``NAME.yaml`` (a backtest config on the sample
data) and ``test_NAME.py`` (a test that runs it) into ``DIR`` (the current folder by default).
``tradewind backtest --config NAME.yaml`` then finds ``NAME.py`` beside its config, without
``PYTHONPATH``. Existing files are never overwritten; NAME must be a Python identifier that no
installed module already uses.
"""

from __future__ import annotations

import argparse
import importlib.util
import keyword
from pathlib import Path
from typing import Any

from cli.strategy_templates import TEMPLATES
from runtime.errors import ConfigError

__all__ = ["new_strategy", "register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("new", help="start a new strategy from a template")
    things = parser.add_subparsers(dest="thing", metavar="THING", required=True)
    strategy = things.add_parser(
        "strategy", help="write NAME.py, NAME.yaml and test_NAME.py to start a strategy"
    )
    strategy.add_argument("name", metavar="NAME", help="module name and strategy id (snake_case)")
    strategy.add_argument("--kind", choices=sorted(TEMPLATES), default="bars",
                          help="the market data it reacts to (default: bars)")  # fmt: skip
    strategy.add_argument("--dir", default=".", help="folder to write into (default: here)")
    strategy.set_defaults(func=_new_strategy)


def _new_strategy(args: argparse.Namespace) -> int:
    written = new_strategy(args.name, kind=args.kind, folder=Path(args.dir))
    print(f"wrote {', '.join(str(p) for p in written)}")
    config, test = written[1], written[2]
    print(f"next: tradewind data sample --days 3 && tradewind backtest --config {config}")
    print(f"      python -m pytest -q {test}")
    return 0


_TEMPLATE_NAMES = frozenset({
    "Atr", "Bar", "BookDeltas", "BookSnapshot", "Ema", "Field", "Message", "OrderFilled",
    "OrderSide", "OrderType", "Qty", "QuoteTick", "Rounding", "Rsi", "Strategy", "StrategyParams",
})  # fmt: skip


def class_name(name: str) -> str:
    """``rsi_revert`` → ``RsiRevert`` (``rsi`` → ``RsiStrategy``: not the indicator's name)."""
    cls = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or name
    return f"{cls}Strategy" if cls in _TEMPLATE_NAMES else cls


def _check_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ConfigError(
            f"strategy name {name!r} is not a Python identifier: use letters, digits and _, "
            "not starting with a digit (e.g. rsi_revert)"
        )
    if name.startswith("test"):
        raise ConfigError(f"strategy name {name!r} starts with 'test': pytest would collect it")
    try:
        taken = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        taken = True
    if taken:
        raise ConfigError(
            f"strategy name {name!r} is already an importable module (it would be imported "
            "instead of yours): choose another name"
        )


def new_strategy(name: str, *, kind: str = "bars", folder: Path = Path(".")) -> list[Path]:
    """Write the three files; returns their paths. Refuses a bad name or an existing file."""
    _check_name(name)
    if kind not in TEMPLATES:
        raise ConfigError(f"unknown kind {kind!r}: one of {', '.join(sorted(TEMPLATES))}")
    if not folder.is_dir():
        raise ConfigError(f"no such folder: {folder}")
    paths = [folder / f"{name}.py", folder / f"{name}.yaml", folder / f"test_{name}.py"]
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise ConfigError(f"{', '.join(existing)} already exist(s): nothing written "
                          "(move them away or choose another name)")  # fmt: skip
    cls = class_name(name)
    for path, template in zip(paths, TEMPLATES[kind], strict=True):
        text = template.replace("__NAME__", name).replace("__CLASS__", cls)
        path.write_text(text.replace("__KIND__", kind))
    return paths
