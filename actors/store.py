"""The store actor: the one process of a Ray session that opens the embedded ClickHouse.

An embedded (chDB) store admits one opener at a time, so inside a session this actor owns it and
everyone else reads and writes through it, as Arrow (fixed-point columns as int64 raw values, as
:class:`backtest.store.Store` does). It is synchronous (one call at a time: chDB is one engine in
one process). On restart Ray re-runs ``__init__``, which reopens the store: the OS released the
single-opener lock when the old process died.

``set_available(False)`` simulates an outage for tests: every call but ``ping``/``pid``/
``set_available`` then raises :class:`~runtime.errors.StoreError`, exactly as a store that cannot
be reached would. Callers see it as a ``StoreError`` (Ray's task error subclasses it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from actors.base import actor
from backtest.store import Store, open_store
from runtime.errors import StoreError

__all__ = ["StoreActor"]


@actor(num_cpus=0)
class StoreActor:
    """Serves the session's store: ``StoreActor.options(name=…).remote(dsn)``."""

    def __init__(self, dsn: str | None = None, ttl: Mapping[str, int] | None = None) -> None:
        self._store: Store = open_store(dsn, ttl=ttl)  # the trading config's store.ttl
        self._available = True

    def insert_arrow(self, table_name: str, table: pa.Table) -> int:
        """Insert ``table`` atomically (all rows or none); returns the number of rows."""
        return self._open().insert_arrow(table_name, table)

    def insert_tables(self, tables: Mapping[str, pa.Table]) -> dict[str, int]:
        """Insert several tables in one call (each atomic on its own); rows per table."""
        store = self._open()
        return {name: store.insert_arrow(name, table) for name, table in tables.items()}

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        return self._open().query_arrow(sql, params)

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._open().command(sql, params)

    def describe(self) -> str:
        """The store's DSN without credentials."""
        return self._store.dsn.describe()

    def ping(self) -> bool:
        """True while the store is usable (answers even during a simulated outage)."""
        return self._available and not self._store.closed

    def pid(self) -> int:
        return os.getpid()

    def set_available(self, flag: bool) -> None:
        """Simulate an outage (``False``) and the recovery (``True``)."""
        self._available = bool(flag)

    def close(self) -> None:
        """Release the store (and its lock) before the actor is killed."""
        self._store.close()

    def _open(self) -> Store:
        if not self._available:
            raise StoreError(f"the store {self._store.dsn.describe()} is unavailable")
        return self._store
