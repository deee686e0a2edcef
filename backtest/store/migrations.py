"""Versioned schema migrations: an ordered list in code, applied once each, idempotently.

``schema_migrations(version, name, applied_ns)`` records what a store holds. Every statement is
written to be safe to re-run (``IF NOT EXISTS``), so a migration interrupted half-way is simply
applied again. A store whose version is newer than this code is refused: old code must not write
into a schema it does not know.

Keys: every table is a ``ReplacingMergeTree`` ordered by its natural key, and reads use ``FINAL``,
so a replayed insert (a re-import, a retried write) never shows a row twice. Tables are not
partitioned, so a whole insert can be attached atomically from a staging table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from runtime.errors import StoreError

__all__ = ["MIGRATIONS", "Migration", "apply_migrations", "schema_version"]

_FIX = "Decimal64(9)"  # exact fixed point; travels as int64 raw values (value × 10**9)
_ENGINE = "ENGINE = ReplacingMergeTree"
_MARKET = "ts_event Int64, ts_init Int64, seq Int64, instrument_id LowCardinality(String)"
_MARKET_KEY = "ORDER BY (instrument_id, ts_event, seq)"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def _table(name: str, columns: str, key: str) -> str:
    return f"CREATE TABLE IF NOT EXISTS {name} ({columns}) {_ENGINE} {key}"


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "market data",
        (
            _table(
                "quotes",
                f"{_MARKET}, bid_price {_FIX}, bid_size {_FIX}, ask_price {_FIX}, ask_size {_FIX}",
                _MARKET_KEY,
            ),
            _table(
                "trades",
                f"{_MARKET}, price {_FIX}, size {_FIX}, aggressor Int8, trade_id String",
                _MARKET_KEY,
            ),
            _table(
                "bars",
                f"{_MARKET}, open {_FIX}, high {_FIX}, low {_FIX}, close {_FIX}, "
                f"volume {_FIX}, interval_ns Int64",
                "ORDER BY (instrument_id, interval_ns, ts_event, seq)",
            ),
            _table(
                "book_deltas",
                f"{_MARKET}, side Int8, price {_FIX}, size {_FIX}, "
                "first_update_id Int64, last_update_id Int64, prev_update_id Int64, "
                "is_snapshot Bool",
                _MARKET_KEY,
            ),
        ),
    ),
    Migration(
        2,
        "orders, fills, risk events, positions",
        (
            _table(
                "orders",
                "session_id String, ts_event Int64, ts_init Int64, seq Int64, "
                "event LowCardinality(String), client_order_id String, strategy_id String, "
                "instrument_id LowCardinality(String), venue_order_id String, side Int8, "
                f"order_type LowCardinality(String), time_in_force LowCardinality(String), "
                f"quantity Nullable({_FIX}), price Nullable({_FIX}), "
                f"trigger_price Nullable({_FIX}), reason String",
                "ORDER BY (session_id, client_order_id, seq)",
            ),
            _table(
                "fills",
                "session_id String, ts_event Int64, ts_init Int64, seq Int64, "
                "fill_id String, client_order_id String, strategy_id String, "
                "instrument_id LowCardinality(String), venue_order_id String, side Int8, "
                f"last_qty {_FIX}, last_price {_FIX}, cum_qty {_FIX}, leaves_qty {_FIX}, "
                f"fee {_FIX}, currency LowCardinality(String), liquidity LowCardinality(String)",
                "ORDER BY (session_id, instrument_id, fill_id)",
            ),
            _table(
                "risk_events",
                "session_id String, ts_event Int64, ts_init Int64, seq Int64, "
                "event LowCardinality(String), client_order_id String, strategy_id String, "
                "instrument_id LowCardinality(String), reason_code LowCardinality(String), "
                "reason String, trading_state LowCardinality(String)",
                "ORDER BY (session_id, seq)",
            ),
            _table(
                "positions",
                "session_id String, ts_event Int64, ts_init Int64, seq Int64, "
                f"instrument_id LowCardinality(String), quantity {_FIX}, avg_price {_FIX}, "
                f"realized_pnl {_FIX}",
                "ORDER BY (session_id, instrument_id, seq)",
            ),
        ),
    ),
    Migration(
        3,
        "backtest results",
        (
            _table(
                "backtest_runs",
                "run_id String, created_ns Int64, config_hash String, "
                "dataset_hash String, code_version String, seed Int64, strategy String, "
                "metrics_json String, n_fills UInt64, state_hash String",
                "ORDER BY run_id",
            ),
            _table(
                "backtest_timeseries",
                f"run_id String, ts Int64, equity {_FIX}, cash {_FIX}, "
                "position_value Decimal64(9), drawdown Float64",
                "ORDER BY (run_id, ts)",
            ),
            _table(
                "backtest_fills",
                "run_id String, fill_id String, client_order_id String, "
                "instrument_id LowCardinality(String), ts_event Int64, side Int8, "
                f"qty {_FIX}, price {_FIX}, fee {_FIX}, liquidity LowCardinality(String)",
                "ORDER BY (run_id, fill_id)",
            ),
        ),
    ),
    Migration(
        4,
        "sweep results",
        (
            # One row per study (sweep or walk-forward); a later row (larger updated_ns) replaces
            # an earlier one, so a study's status and summary are updated in place.
            "CREATE TABLE IF NOT EXISTS sweep_runs (sweep_id String, kind LowCardinality(String), "
            "name String, updated_ns Int64, config_hash String, dataset_hash String, "
            "code_version String, strategy String, n_params UInt64, objective String, "
            "status LowCardinality(String), summary_json String, config_json String) "
            "ENGINE = ReplacingMergeTree(updated_ns) ORDER BY sweep_id",
            # One row per (study, parameter set): deterministic columns only, so a rerun or a
            # resumed study writes identical rows. Block statistics feed CSCV (PBO).
            _table(
                "sweep_results",
                "sweep_id String, param_hash String, params_json String, "
                "status LowCardinality(String), error String, metrics_json String, "
                "objective Float64, sharpe_pp Float64, n_obs UInt64, skew Float64, "
                "kurtosis Float64, block_n Array(Float64), block_sum Array(Float64), "
                "block_sumsq Array(Float64), n_fills UInt64, state_hash String, "
                "curve_ts Array(Int64), curve Array(Float64)",
                "ORDER BY (sweep_id, param_hash)",
            ),
        ),
    ),
    Migration(
        5,
        "control audit",
        (
            # One row per operator action through the control API (serve/): who, what, when.
            _table(
                "control_audit",
                "session_id String, audit_id String, ts_ns Int64, who String, "
                "scope LowCardinality(String), action LowCardinality(String), "
                "target String, args_json String, outcome String, correlation_id String",
                "ORDER BY (session_id, ts_ns, audit_id)",
            ),
        ),
    ),
    Migration(
        6,
        "auxiliary data",
        (
            # rates are fixed-point fractions (a funding rate per period, a borrow rate per year)
            _table("funding_rates", f"{_MARKET}, rate {_FIX}, funding_ts Int64, mark_price {_FIX}",
                   _MARKET_KEY),
            _table("open_interest", f"{_MARKET}, open_interest {_FIX}", _MARKET_KEY),
            _table("mark_prices", f"{_MARKET}, mark_price {_FIX}, index_price {_FIX}",
                   _MARKET_KEY),
            _table("borrow_rates", f"{_MARKET}, rate {_FIX}", _MARKET_KEY),
        ),
    ),
    Migration(
        7,
        "fees in kind",
        (
            # the part of a fill's quantity the venue took as its fee (OrderFilled.fee_qty)
            f"ALTER TABLE fills ADD COLUMN IF NOT EXISTS fee_qty {_FIX} DEFAULT 0",
        ),
    ),
)

_CREATE_LEDGER = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, applied_ns Int64)"
    " ENGINE = ReplacingMergeTree ORDER BY version"
)


def schema_version(query_int: Callable[[str], int]) -> int:
    """The highest applied migration version (0 for a fresh store)."""
    return query_int("SELECT toInt64(max(version)) FROM schema_migrations FINAL")


def apply_migrations(
    command: Callable[[str], object],
    query_int: Callable[[str], int],
    migrations: tuple[Migration, ...] = MIGRATIONS,
) -> int:
    """Apply the pending migrations in order; return the resulting version.

    A store newer than the code is a StoreError. Safe to call on every open.
    """
    command(_CREATE_LEDGER)
    current = schema_version(query_int)
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise StoreError(
            f"the store's schema is at version {current}, newer than this code knows "
            f"({latest}): upgrade tradewind, or use another store"
        )
    for migration in migrations:
        if migration.version <= current:
            continue
        for statement in migration.statements:
            command(statement)
        command(
            "INSERT INTO schema_migrations (version, name, applied_ns) VALUES "
            f"({migration.version}, '{_quote(migration.name)}', {time.time_ns()})"
        )
    return latest


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")
