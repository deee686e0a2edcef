"""The Store: one clickhouse-connect client over an embedded (chDB) or server ClickHouse.

Arrow in, Arrow out. Columns of type ``Decimal64(9)`` travel as int64 fixed-point raw values
(value × 10**9) in both directions, so callers never see floats or Decimals for prices. Errors
from clickhouse-connect or chDB are translated here, once, into :class:`StoreError`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.exceptions import ClickHouseError

from backtest.data.fixed import decimal_to_raw, is_fixed_decimal, raw_to_decimal
from backtest.store.dsn import StoreDsn, parse_dsn
from backtest.store.lock import StoreLock
from backtest.store.market import MarketTables
from backtest.store.migrations import apply_migrations
from backtest.store.ttl import apply_ttl
from runtime.errors import StoreError

__all__ = ["Store", "open_store"]

_STAGING_PREFIX = "_staging_"
_staging_ids = itertools.count()


class Store(MarketTables):
    """An open store. Use :func:`open_store`; close it (or use ``with``) to release it."""

    def __init__(self, client: Any, dsn: StoreDsn, lock: StoreLock | None) -> None:
        self._client = client
        self.dsn = dsn
        self._lock = lock
        self._decimal_columns: dict[str, frozenset[str]] = {}

    # --- generic access ------------------------------------------------------------------------
    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        with self._translate("command"):
            return self._client.command(sql, parameters=dict(parameters or {}))

    def query_arrow(self, sql: str, parameters: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a query; Decimal(…, 9) result columns come back as int64 raw values."""
        with self._translate("query"):
            table = self._client.query_arrow(sql, parameters=dict(parameters or {}))
        return _decimals_to_raw(table)

    def query_batches(
        self, sql: str, parameters: Mapping[str, Any] | None = None, *, batch_rows: int = 65_536
    ) -> Iterator[pa.RecordBatch]:
        """Stream a query as Arrow record batches (decimals as int64 raw values)."""
        settings = {"max_block_size": batch_rows}
        with self._translate("query"):
            stream = self._client.query_arrow_stream(
                sql, parameters=dict(parameters or {}), settings=settings
            )
            with stream:
                for batch in stream:
                    yield _decimals_to_raw(batch)

    def insert_arrow(self, table_name: str, table: pa.Table) -> int:
        """Insert ``table`` all-or-nothing: into a staging copy first, then attached atomically.

        int64 columns whose target column is a Decimal(…, 9) are taken as fixed-point raw values.
        Returns the number of rows inserted.
        """
        if table.num_rows == 0:
            return 0
        with self.staging(table_name) as staging:
            self.insert_staged(table_name, staging, table)
            self.command(f"ALTER TABLE {table_name} ATTACH PARTITION tuple() FROM {staging}")
        return int(table.num_rows)

    @contextlib.contextmanager
    def staging(self, table_name: str) -> Iterator[str]:
        """An empty staging copy of ``table_name``, dropped on exit (a crashed writer's copy is
        dropped at the next open): fill it, check it, then attach it in one statement.

        Dropped ``SYNC``: an Atomic database (chDB's and a server's default) otherwise keeps a
        dropped table, its parts and their in-memory metadata for
        ``database_atomic_delay_before_drop_table_sec`` (480 s) in ``system.dropped_tables``;
        one staging table per insert made a recording session's store process grow ~80 kB an
        insert (bench/README.md, "Soak")."""
        staging = f"{_STAGING_PREFIX}{table_name}_{os.getpid()}_{next(_staging_ids)}"
        self.command(f"CREATE TABLE {staging} AS {table_name}")
        try:
            yield staging
        finally:
            if self._client is not None:
                self.command(f"DROP TABLE IF EXISTS {staging} SYNC")

    def insert_staged(self, table_name: str, staging: str, table: pa.Table) -> None:
        """Insert rows for ``table_name`` into its ``staging`` copy (int64 raw → decimals)."""
        if table.num_rows == 0:
            return
        prepared = self._raw_to_decimals(table_name, table)
        with self._translate(f"insert into {table_name}"):
            self._client.insert_arrow(staging, prepared)

    def engine_full(self, table_name: str) -> str:
        """The table's engine clause (its key, TTL and settings): ``system.tables``."""
        return str(self.command(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
            "AND name = {t:String}", {"t": table_name}))

    def close(self) -> None:
        """Close the client and release the single-opener lock; safe to call twice."""
        client, self._client = self._client, None
        try:
            if client is not None:
                client.close()
        except ClickHouseError as exc:
            raise StoreError(f"close failed on {self.dsn.describe()}: {_first_line(exc)}") from exc
        finally:
            if self._lock is not None:
                self._lock.release()

    @property
    def closed(self) -> bool:
        return self._client is None

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.dsn.describe()!r}{', closed' if self.closed else ''})"

    # --- internals -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        if self._client is None:
            raise StoreError(f"the store {self.dsn.describe()} is closed")
        try:
            yield
        except ClickHouseError as exc:
            raise StoreError(
                f"{action} failed on {self.dsn.describe()}: {_first_line(exc)}"
            ) from exc

    def _raw_to_decimals(self, table_name: str, table: pa.Table) -> pa.Table:
        if table_name not in self._decimal_columns:
            described = self.query_arrow(
                "SELECT name FROM system.columns WHERE database = currentDatabase() "
                "AND table = {t:String} AND match(type, '^(Nullable\\\\()?Decimal')",
                {"t": table_name},
            )
            self._decimal_columns[table_name] = frozenset(described.column("name").to_pylist())
        decimal_columns = self._decimal_columns[table_name]
        for index, name in enumerate(table.column_names):
            if name in decimal_columns and pa.types.is_integer(table.schema.field(name).type):
                column = raw_to_decimal(table.column(index).cast(pa.int64()))
                table = table.set_column(index, name, column)
        return table


def _decimals_to_raw(table: pa.Table | pa.RecordBatch) -> Any:
    for index, field in enumerate(table.schema):
        if is_fixed_decimal(field.type):
            raw, _overflow = decimal_to_raw(table.column(index))
            table = table.set_column(index, pa.field(field.name, pa.int64(), field.nullable), raw)
    return table


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def open_store(dsn: str | None = None, *, ttl: Mapping[str, int] | None = None) -> Store:
    """Open (creating and migrating if needed) the store at ``dsn``; ``ttl`` (opt-in: days
    per market-data table) sets or removes the tables' TTL (``backtest.store.ttl``).

    ``dsn`` defaults to ``$TRADEWIND_STORE_DSN``, else ``chdb://var/clickhouse``. An embedded
    store admits one process at a time: a second opener gets a StoreError naming the holder.
    """
    parsed = parse_dsn(dsn)
    lock = StoreLock(parsed.path) if parsed.path is not None else None
    if lock is not None:
        lock.acquire()
    try:
        client = _connect(parsed)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    store = Store(client, parsed, lock)
    try:
        apply_migrations(store.command, lambda sql: int(store.command(sql)))
        apply_ttl(store.command, store.engine_full, ttl)
        if parsed.embedded:
            _drop_leftover_staging(store)
    except BaseException:
        store.close()
        raise
    return store


def _connect(parsed: StoreDsn) -> Any:
    try:
        return clickhouse_connect.get_client(dsn=parsed.dsn)
    except ClickHouseError as exc:
        hint = (
            " (chDB hosts one embedded store per process: close any other store first)"
            if parsed.embedded
            else ""
        )
        raise StoreError(
            f"cannot open the store at {parsed.describe()}: {_first_line(exc)}{hint}"
        ) from exc


def _drop_leftover_staging(store: Store) -> None:
    """Staging tables left by a crashed writer (we hold the lock: nobody else uses them)."""
    names = (
        store.query_arrow(
            "SELECT name FROM system.tables WHERE database = currentDatabase() "
            "AND startsWith(name, {p:String})",
            {"p": _STAGING_PREFIX},
        )
        .column("name")
        .to_pylist()
    )
    for name in names:
        store.command(f"DROP TABLE IF EXISTS {name} SYNC")
