"""``tradewind fetch``: download historical bars or quotes from a broker into the store.

A top-level command rather than ``tradewind data fetch`` so that ``cli/data.py`` stays as it is.

    tradewind fetch --broker ib --instrument AAPL.NASDAQ --symbol AAPL --kind bars \\
        --bar-size "1 min" --duration "1 D" --end 2026-11-20T21:00:00Z
    tradewind fetch --broker ib --instrument AAPL.NASDAQ --symbol AAPL --kind quotes \\
        --start 2026-11-20T14:30:00Z --end 2026-11-20T15:00:00Z
    tradewind fetch --broker shioaji --instrument 2330.TWSE --kind bars \\
        --start 2026-11-20 --end 2026-11-20

IB connects read-only to a running TWS/IB Gateway (``--host``/``--port``/``--client-id``).
Shioaji logs in with ``SHIOAJI_API_KEY``/``SHIOAJI_SECRET_KEY`` from the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import time
from typing import Any

import pyarrow as pa

from actors.venues.common import TokenBucket, env_secret
from actors.venues.history import (
    IbHistory,
    bars_table,
    quotes_table,
    shioaji_bars,
    shioaji_quotes,
)
from actors.venues.ib_support import ContractSpec, import_ib
from actors.venues.shioaji_support import (
    ShioajiConfig,
    import_shioaji,
    make_client,
    resolve_contract,
)
from backtest.store import open_store
from runtime.errors import ConfigError, VenueUnavailable
from runtime.taiwan import taifex_future, twse_stock

__all__ = ["register"]

_BAR_NS = {"1 min": 60, "5 mins": 300, "15 mins": 900, "1 hour": 3600, "1 day": 86_400}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("fetch", help="download historical bars or quotes from a broker")
    p.add_argument("--broker", choices=("ib", "shioaji"), required=True)
    p.add_argument("--instrument", required=True, help="instrument id in the store")
    p.add_argument("--kind", choices=("bars", "quotes"), default="bars")
    p.add_argument("--start", help="ISO time (IB quotes) or YYYY-MM-DD (Shioaji)")
    p.add_argument("--end", help="ISO time (IB) or YYYY-MM-DD (Shioaji)")
    p.add_argument("--duration", default="1 D", help="IB duration, e.g. '1 D', '2 W'")
    p.add_argument("--bar-size", default="1 min", choices=sorted(_BAR_NS))
    p.add_argument("--what", default="TRADES", help="IB whatToShow for bars")
    p.add_argument("--symbol", help="IB symbol (default: the instrument id before the dot)")
    p.add_argument("--sec-type", default="STK")
    p.add_argument("--exchange", default="SMART")
    p.add_argument("--currency", default="USD")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4002, help="IB Gateway port (paper: 4002)")
    p.add_argument("--client-id", type=int, default=91)
    p.add_argument("--store", help="store DSN (default: $TRADEWIND_STORE_DSN)")
    p.add_argument("--replace", action="store_true",
                   help="replace stored rows in the fetched range that differ from them "
                        "(without it, such an overlap is refused and nothing is written)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_fetch)


def _fetch(args: argparse.Namespace) -> int:
    table = asyncio.run(_ib_table(args)) if args.broker == "ib" else _shioaji_table(args)
    with open_store(args.store) as store:
        written = store.write_market(args.kind, table, replace=args.replace)
        dsn = store.dsn.describe()
    ts = table.column("ts_event").to_pylist()
    summary = {
        "broker": args.broker,
        "instrument_id": args.instrument,
        "kind": args.kind,
        "rows": table.num_rows,
        "written": written,
        "store": dsn,
        "first_ts": ts[0] if ts else None,
        "last_ts": ts[-1] if ts else None,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"fetched {table.num_rows} {args.kind} of {args.instrument} from {args.broker} "
            f"into {dsn}"
        )
    return 0


def _when(value: str | None, field: str) -> dt.datetime:
    if not value:
        raise ConfigError("required", field=field)
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"not an ISO time: {value!r}", field=field) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


async def _ib_table(args: argparse.Namespace) -> pa.Table:
    lib = import_ib()
    logging.getLogger(lib.__name__).setLevel(logging.CRITICAL)  # errors reach the user once
    spec = ContractSpec(
        symbol=args.symbol or args.instrument.split(".")[0],
        sec_type=args.sec_type,
        exchange=args.exchange,
        currency=args.currency,
    )
    if args.kind == "bars":
        end = _when(args.end, "--end") if args.end else dt.datetime.now(dt.UTC)
    else:
        start, end = _when(args.start, "--start"), _when(args.end, "--end")
    ib = lib.IB()
    try:
        await ib.connectAsync(
            args.host, args.port, clientId=args.client_id, readonly=True, timeout=5
        )
    except (OSError, TimeoutError, ConnectionError) as exc:
        raise VenueUnavailable(f"IB gateway {args.host}:{args.port}: {exc!r}") from exc
    try:
        history, contract, now = IbHistory(ib), spec.build(lib), time.time_ns()
        if args.kind == "bars":
            rows = await history.bars(
                contract, end=end, duration=args.duration, bar_size=args.bar_size, what=args.what
            )
            interval_ns = _BAR_NS[args.bar_size] * 10**9
            return bars_table(args.instrument, rows, interval_ns=interval_ns, now_ns=now)
        quotes = await history.quotes(contract, start=start, end=end)
        return quotes_table(args.instrument, quotes, now_ns=now)
    finally:
        ib.disconnect()


def make_shioaji(config: ShioajiConfig) -> tuple[Any, Any]:
    """The shioaji module and a logged-in client (contacts SinoPac; replaced in tests)."""
    sj = import_shioaji()
    api = make_client(sj, config)
    key, secret = env_secret(config.api_key_env), env_secret(config.secret_key_env)
    try:
        api.login(api_key=key.reveal(), secret_key=secret.reveal())
    except sj.ShioajiError as exc:
        raise VenueUnavailable(f"Shioaji login failed: {type(exc).__name__}") from exc
    return sj, api


def _shioaji_table(args: argparse.Namespace) -> pa.Table:
    config = ShioajiConfig()
    _, api = make_shioaji(config)
    symbol, _, venue = args.instrument.partition(".")
    instrument = taifex_future(symbol[:3], symbol[3:]) if venue == "TAIFEX" else twse_stock(symbol)
    contract = resolve_contract(api, instrument)
    bucket = TokenBucket.per_window(config.data_queries_per_5s, 5)
    start = args.start or dt.date.today().isoformat()
    now = time.time_ns()
    if args.kind == "bars":
        rows = shioaji_bars(api, contract, start=start, end=args.end or start, bucket=bucket)
        return bars_table(args.instrument, rows, interval_ns=60 * 10**9, now_ns=now)
    quotes = shioaji_quotes(api, contract, date=start, bucket=bucket)
    return quotes_table(args.instrument, quotes, now_ns=now)
