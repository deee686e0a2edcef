"""Backtests: the simulated venue, the in-process loop, metrics, reports and the store.

``from backtest import run_backtest`` is the notebook entry point (imported lazily so that
``import backtest.data`` stays light).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BacktestResult", "run_backtest"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from backtest import api

        return getattr(api, name)
    raise AttributeError(f"module 'backtest' has no attribute {name!r}")
