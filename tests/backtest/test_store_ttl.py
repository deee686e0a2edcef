"""ClickHouse retention by TTL (backtest/store/ttl): opt-in per market-data table, applied to
the table (SHOW CREATE TABLE), expiring old rows at a merge; without the option nothing
expires; kept tables (orders, fills, audit) refuse a TTL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from backtest.config import StoreConfig
from backtest.store import Store, open_store
from backtest.store.ttl import check_ttl, has_ttl
from runtime.errors import ConfigError
from tests.backtest.test_store import quotes

DAY_NS = 86_400 * 10**9


def _rows(store: Store) -> list[int]:
    store.command("OPTIMIZE TABLE quotes FINAL")  # a merge: where ClickHouse applies a TTL
    table = store.query_arrow("SELECT ts_event FROM quotes FINAL ORDER BY ts_event")
    return [int(t) for t in table.column("ts_event").to_pylist()]


def _show(store: Store, table: str) -> str:
    return str(store.command(f"SHOW CREATE TABLE {table}"))


def _expires(store: Store, table: str) -> bool:
    return has_ttl(store.engine_full(table))


def test_ttl_is_opt_in_applied_to_the_table_and_removable(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'store'}"
    recent = time.time_ns() - DAY_NS
    old = time.time_ns() - 400 * DAY_NS
    with open_store(dsn) as store:  # no ttl: nothing expires, however old
        store.write_market("quotes", quotes("X", [100], start_ns=old))
        store.write_market("quotes", quotes("X", [101], start_ns=recent))
        store.write_market("quotes", quotes("X", [99], start_ns=1_000))  # 1970
        assert not _expires(store, "quotes")
        assert _rows(store) == [1_000, old, recent]
    with open_store(dsn) as store:  # opened again without the option: still nothing
        assert _rows(store) == [1_000, old, recent]
    with open_store(dsn, ttl={"quotes": 30}) as store:
        shown = _show(store, "quotes")
        assert _expires(store, "quotes")
        assert "TTL toDateTime(intDiv(ts_event, 1000000000)) + toIntervalDay(30)" in shown
        assert not _expires(store, "trades") and not _expires(store, "fills")
        assert _rows(store) == [recent]  # older than 30 days: gone at the merge
    with open_store(dsn, ttl={}) as store:  # an empty policy removes every market TTL
        assert not _expires(store, "quotes") and "TTL" not in _show(store, "quotes")
        store.write_market("quotes", quotes("X", [98], start_ns=2_000))
        assert _rows(store) == [2_000, recent]


def test_a_kept_table_or_a_bad_number_of_days_is_refused() -> None:
    with pytest.raises(ConfigError, match="'fills' is not market data and is kept"):
        check_ttl({"fills": 30})
    with pytest.raises(ConfigError, match=r"store\.ttl\.quotes must be a whole number"):
        check_ttl({"quotes": 0})
    with pytest.raises(ValidationError, match="'control_audit' is not market data"):
        StoreConfig.model_validate({"ttl": {"control_audit": 7}})
    assert StoreConfig().ttl is None  # the default: no TTL
