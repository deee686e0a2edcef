"""The ClickHouse store: market data, orders, fills and backtest results, as Arrow.

``open_store(dsn)`` with ``chdb://<dir>`` (embedded, default ``chdb://var/clickhouse``) or
``http(s)://host:port`` (a ClickHouse server): the same code either way. See ``docs/store.md``.
"""

from __future__ import annotations

from backtest.store.dsn import DEFAULT_DSN, DSN_ENV, StoreDsn, parse_dsn
from backtest.store.market import MARKET_TABLES, DatasetInfo
from backtest.store.migrations import MIGRATIONS, Migration
from backtest.store.store import Store, open_store

__all__ = [
    "DEFAULT_DSN",
    "DSN_ENV",
    "MARKET_TABLES",
    "MIGRATIONS",
    "DatasetInfo",
    "Migration",
    "Store",
    "StoreDsn",
    "open_store",
    "parse_dsn",
]
