"""Retention by ClickHouse ``TTL``, opt-in per market-data table (``store.ttl`` in a config).

ClickHouse deletes a row once its TTL expression has passed, during a merge (``OPTIMIZE …
FINAL`` forces one). A store has no TTL unless a config asks for one:

* ``ttl`` absent (``None``, the default): the store's tables are left as they are;
* ``ttl: {quotes: 30, trades: 30, book_deltas: 7}``: those tables keep rows whose ``ts_event``
  is younger than so many days; every other market-data table has its TTL removed (the config
  says the whole policy);
* ``ttl: {}``: every market-data table's TTL removed.

Only market data may expire: orders, fills, risk events, positions, results and the control
audit are kept, and naming one is a :class:`~runtime.errors.ConfigError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

from backtest.store.market import MARKET_TABLES
from runtime.errors import ConfigError

__all__ = ["EXPIRING", "apply_ttl", "check_ttl", "has_ttl", "ttl_clause"]

#: the tables that may expire (market and auxiliary data, keyed by ``ts_event`` in ns)
EXPIRING: Final = tuple(MARKET_TABLES.values())


def check_ttl(ttl: Mapping[str, int] | None) -> None:
    """Refuse a table that may not expire or a non-positive number of days."""
    for table, days in (ttl or {}).items():
        if table not in EXPIRING:
            raise ConfigError(f"store.ttl: {table!r} is not market data and is kept "
                              f"(tables that may expire: {', '.join(EXPIRING)})",
                              field=f"store.ttl.{table}")
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise ConfigError(f"store.ttl.{table} must be a whole number of days >= 1, "
                              f"got {days!r}", field=f"store.ttl.{table}")


def has_ttl(engine_full: str) -> bool:
    """Does a table's engine clause (``system.tables.engine_full``) carry a TTL?"""
    return re.search(r"\sTTL\s", engine_full) is not None


def ttl_clause(days: int) -> str:
    """The TTL expression: ``ts_event`` (ns since the epoch) plus ``days``."""
    return f"toDateTime(intDiv(ts_event, 1000000000)) + INTERVAL {int(days)} DAY"


def apply_ttl(command: Callable[[str], object], engine_full: Callable[[str], str],
              ttl: Mapping[str, int] | None) -> None:
    """Set (``ALTER TABLE … MODIFY TTL``) or remove (``REMOVE TTL``) each market table's TTL
    as ``ttl`` says (see the module docstring); ``None`` changes nothing."""
    if ttl is None:
        return
    check_ttl(ttl)
    for table in EXPIRING:
        if table in ttl:
            command(f"ALTER TABLE {table} MODIFY TTL {ttl_clause(ttl[table])}")
        elif has_ttl(engine_full(table)):
            command(f"ALTER TABLE {table} REMOVE TTL")
