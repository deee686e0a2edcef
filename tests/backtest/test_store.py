"""The ClickHouse store on embedded chDB: migrations, exact values, idempotence, the lock."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.data import SCHEMAS, table_hash
from backtest.store import MIGRATIONS, Store, open_store, parse_dsn
from backtest.store.migrations import apply_migrations
from runtime.errors import StoreError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_ids = itertools.count()


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store") / "clickhouse"


@pytest.fixture(scope="module")
def store(store_dir: Path) -> Iterator[Store]:
    with open_store(f"chdb://{store_dir}") as opened:
        yield opened


def quotes(instrument_id: str, prices: list[int], *, start_ns: int = 1_000) -> pa.Table:
    n = len(prices)
    ts = [start_ns + i for i in range(n)]
    return pa.table({
        "ts_event": ts, "ts_init": ts, "seq": [0] * n, "instrument_id": [instrument_id] * n,
        "bid_price": prices, "bid_size": [1] * n, "ask_price": [p + 1 for p in prices],
        "ask_size": [2**63 - 1] * n,
    }, schema=SCHEMAS["quotes"])


def _version(store: Store) -> int:
    return int(store.command("SELECT toInt64(max(version)) FROM schema_migrations FINAL"))


def test_migrations_are_recorded_and_idempotent(store: Store) -> None:
    assert _version(store) == MIGRATIONS[-1].version
    again = apply_migrations(store.command, lambda sql: int(store.command(sql)))
    assert again == MIGRATIONS[-1].version
    rows = store.query_arrow("SELECT version FROM schema_migrations FINAL ORDER BY version")
    assert rows.column("version").to_pylist() == [m.version for m in MIGRATIONS]
    tables = set(store.query_arrow("SELECT name FROM system.tables WHERE database = "
                                   "currentDatabase()").column("name").to_pylist())
    assert {"quotes", "trades", "bars", "book_deltas", "orders", "fills", "risk_events",
            "positions", "backtest_runs", "backtest_timeseries", "backtest_fills"} <= tables


def test_migration_versions_are_ordered() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_a_store_newer_than_the_code_is_refused(store: Store) -> None:
    latest = MIGRATIONS[-1].version
    with pytest.raises(StoreError, match=rf"schema is at version {latest}, newer than this code "
                                         r"knows \(1\): upgrade tradewind"):
        apply_migrations(store.command, lambda sql: int(store.command(sql)), MIGRATIONS[:1])


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=1, max_value=2**63 - 2), min_size=1, max_size=20))
def test_prices_round_trip_exactly(store: Store, prices: list[int]) -> None:
    instrument_id = f"RT-{next(_ids)}"
    store.write_market("quotes", quotes(instrument_id, prices))
    back = store.read_market("quotes", instrument_id)
    assert back.schema == SCHEMAS["quotes"]
    assert back.column("bid_price").to_pylist() == prices
    assert back.column("ask_size").to_pylist() == [2**63 - 1] * len(prices)


def test_writing_the_same_rows_twice_keeps_them_once(store: Store) -> None:
    table = quotes("DUP", [100, 200, 300])
    store.write_market("quotes", table)
    store.write_market("quotes", table)
    assert store.read_market("quotes", "DUP").equals(table)
    info = {(d.kind, d.instrument_id): d for d in store.list_datasets()}
    assert info["quotes", "DUP"] == ("quotes", "DUP", 3, 1_000, 1_002, None)


def test_reads_are_sorted_and_bounded(store: Store) -> None:
    store.write_market("quotes", quotes("RANGE", [5, 6, 7, 8], start_ns=10).take([3, 1, 0, 2]))
    back = store.read_market("quotes", "RANGE", start_ns=11, end_ns=13)
    assert back.column("ts_event").to_pylist() == [11, 12]
    assert back.column("bid_price").to_pylist() == [6, 7]


def test_batches_and_hash_match_the_table(store: Store) -> None:
    table = quotes("HASH", list(range(1, 1001)))
    store.write_market("quotes", table)
    batches = list(store.iter_market_batches("quotes", "HASH", batch_rows=100))
    assert pa.Table.from_batches(batches).equals(table)
    assert store.dataset_hash("quotes", "HASH") == table_hash("quotes", table)
    assert store.dataset_hash("quotes", "HASH") != store.dataset_hash("quotes", "DUP")


def test_generic_insert_and_query_keep_money_exact(store: Store) -> None:
    fills = pa.table({
        "run_id": ["r1", "r1"], "fill_id": ["f1", "f2"], "client_order_id": ["o1", "o1"],
        "instrument_id": ["X", "X"], "ts_event": [1, 2], "side": pa.array([1, -1], pa.int8()),
        "qty": [10**9, 2 * 10**9], "price": [123_456_789_012, 1], "fee": [-1, 0],
        "liquidity": ["maker", "taker"],
    })
    assert store.insert_arrow("backtest_fills", fills) == 2
    store.insert_arrow("backtest_fills", fills)
    back = store.query_arrow("SELECT fill_id, price, fee FROM backtest_fills FINAL "
                             "WHERE run_id = {r:String} ORDER BY fill_id", {"r": "r1"})
    assert back.column("price").type == pa.int64()
    assert back.column("price").to_pylist() == [123_456_789_012, 1]
    assert back.column("fee").to_pylist() == [-1, 0]


def test_staging_tables_leave_nothing_behind(store: Store) -> None:
    """Each insert stages a table and drops it: none is left queued for a delayed drop (an
    Atomic database's ``system.dropped_tables`` holds a dropped table and its parts in memory
    for 8 minutes otherwise: the store grew with every insert of a recording session)."""
    fills = pa.table({
        "run_id": ["staged"], "fill_id": ["f1"], "client_order_id": ["o1"],
        "instrument_id": ["X"], "ts_event": [1], "side": pa.array([1], pa.int8()),
        "qty": [10**9], "price": [1], "fee": [0], "liquidity": ["maker"],
    })
    for _ in range(5):
        assert store.insert_arrow("backtest_fills", fills) == 1
    dropped = ("SELECT count() FROM system.dropped_tables WHERE database = currentDatabase() "
               "AND startsWith(table, '_staging_')")
    assert int(store.command(dropped)) == 0
    tables = ("SELECT count() FROM system.tables WHERE database = currentDatabase() "
              "AND startsWith(name, '_staging_')")
    assert int(store.command(tables)) == 0
    assert int(store.command("SELECT count() FROM backtest_fills FINAL "
                             "WHERE run_id = 'staged'")) == 1


def test_sql_errors_become_store_errors(store: Store) -> None:
    with pytest.raises(StoreError, match=r"^query failed on chdb://.*SYNTAX_ERROR|Syntax error"):
        store.query_arrow("SELEC 1")


def test_a_second_process_is_refused_with_the_holder_and_the_way_out(
        store: Store, store_dir: Path) -> None:
    code = ("import sys\nfrom backtest.store import open_store\nfrom runtime.errors import "
            "StoreError\ntry:\n    open_store(sys.argv[1])\nexcept StoreError as e:\n"
            "    print(e)\n    sys.exit(3)\n")
    done = subprocess.run([sys.executable, "-c", code, f"chdb://{store_dir}"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip() == (
        f"the store at {store_dir} is open by process {os.getpid()}; an embedded store has one "
        "opener at a time: stop that process (or close its store), or use a ClickHouse server "
        "DSN (--store http://host:8123 or TRADEWIND_STORE_DSN)")


def test_the_same_process_cannot_open_it_twice(store: Store, store_dir: Path) -> None:
    with pytest.raises(StoreError, match=rf"open by process {os.getpid()} \(this process\)"):
        open_store(f"chdb://{store_dir}")


def test_dsns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEWIND_STORE_DSN", raising=False)
    assert parse_dsn(None, cwd=tmp_path).path == tmp_path.resolve() / "var" / "clickhouse"
    assert parse_dsn("chdb://a/b", cwd=tmp_path).dsn == f"chdb://{tmp_path.resolve()}/a/b"
    assert parse_dsn("chdb:///srv/tw").path == Path("/srv/tw")
    server = parse_dsn("http://user:secret@db:8123/tw")
    assert server.path is None and server.describe() == "http://db:8123/tw"
    monkeypatch.setenv("TRADEWIND_STORE_DSN", "https://ch.example:8443")
    assert parse_dsn().dsn == "https://ch.example:8443"
    for bad, message in (("ftp://x", "unsupported store DSN"), ("chdb://", "in-memory"),
                         ("http://", "names no host")):
        with pytest.raises(StoreError, match=message):
            parse_dsn(bad)


def test_a_closed_store_says_so(tmp_path_factory: pytest.TempPathFactory) -> None:
    closed = Store(None, parse_dsn("chdb:///nowhere"), None)
    with pytest.raises(StoreError, match="is closed"):
        closed.query_arrow("SELECT 1")


def test_an_import_killed_half_way_leaves_nothing(tmp_path: Path) -> None:
    code = (
        "import os, sys\nimport pyarrow as pa\nfrom backtest.data import SCHEMAS\n"
        "from backtest.store import open_store\n"
        "def batches():\n"
        "    for k in range(5):\n"
        "        ts = list(range(k * 100, k * 100 + 100))\n"
        "        yield pa.table({'ts_event': ts, 'ts_init': ts, 'seq': [0] * 100,\n"
        "            'instrument_id': ['K'] * 100, 'bid_price': [1] * 100, 'bid_size': [1] * 100,\n"
        "            'ask_price': [2] * 100, 'ask_size': [1] * 100}, schema=SCHEMAS['quotes'])\n"
        "    os._exit(9)  # killed after staging every batch, before publishing any\n"
        "store = open_store(sys.argv[1])\n"
        "store.write_market('quotes', batches())\n"
    )
    dsn = f"chdb://{tmp_path / 'killed'}"
    done = subprocess.run([sys.executable, "-c", code, dsn], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    check = ("import sys\nfrom backtest.store import open_store\n"
             "with open_store(sys.argv[1]) as s:\n"
             "    print(s.read_market('quotes', 'K').num_rows, len(s.query_arrow(\n"
             "        \"SELECT name FROM system.tables WHERE startsWith(name, '_staging_')\")))\n")
    after = subprocess.run([sys.executable, "-c", check, dsn], cwd=PROJECT_ROOT,
                           capture_output=True, text=True, timeout=120)
    assert after.stdout.split() == ["0", "0"], after.stderr


def test_a_fill_with_a_fee_in_kind_keeps_it_in_the_store(store: Store) -> None:
    """Migration 7: ``fills.fee_qty`` (a spot buy's fee taken in the base asset), exact; a
    recorded fill without one reads 0."""
    from actors.recording import to_tables
    from runtime.messages import Liquidity, OrderFilled, OrderSide

    def fill(n: int, fee_qty: int) -> OrderFilled:
        return OrderFilled(seq=n, ts_event=n, ts_init=n, client_order_id=f"c{n}",
                           strategy_id="s", instrument_id="BTC-USDT", venue_order_id="v",
                           fill_id=f"FK-{n}", side=OrderSide.BUY, last_qty=10_000_000,
                           last_price=60_000 * 10**9, cum_qty=10_000_000, leaves_qty=0,
                           fee=600_000_000, currency="USDT", liquidity=Liquidity.TAKER,
                           fee_qty=fee_qty)

    store.insert_arrow("fills", to_tables("FK", [fill(1, 10_000), fill(2, 0)])["fills"])
    rows = store.query_arrow("SELECT fill_id, fee_qty FROM fills FINAL WHERE session_id = 'FK' "
                             "ORDER BY fill_id")
    assert rows.column("fill_id").to_pylist() == ["FK-1", "FK-2"]
    assert rows.column("fee_qty").to_pylist() == [10_000, 0]  # raw fixed point, exact
