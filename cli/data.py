"""``tradewind data``: ``sample``, ``import`` and ``list`` market data in the store."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from backtest.data import (
    AUX_KINDS,
    KINDS,
    SCHEMAS,
    FileOptions,
    SampleSpec,
    TableHasher,
    generate_sample,
    stream_file,
    table_hash,
)
from backtest.data.parse import format_interval
from backtest.data.sample import DEFAULT_INSTRUMENTS
from backtest.store import open_store
from runtime.errors import ConfigError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("data", help="sample, import and list market data")
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    store_help = "store DSN (default: $TRADEWIND_STORE_DSN or chdb://var/clickhouse)"
    replace_help = ("replace stored rows in the new rows' time range that differ from them "
                    "(without it, such an overlap is refused and nothing is written)")

    sample = commands.add_parser("sample", help="write deterministic synthetic market data")
    sample.add_argument("--seed", type=int, default=7)
    sample.add_argument("--instruments", default=",".join(DEFAULT_INSTRUMENTS))
    sample.add_argument("--days", type=int, default=1)
    sample.add_argument("--perpetuals", default="",
                        help="instruments that get a <id>-PERP twin with a funding history "
                             "(comma-separated, e.g. SIM-A)")
    sample.add_argument("--store", help=store_help)
    sample.add_argument("--replace", action="store_true", help=replace_help)
    sample.add_argument("--json", action="store_true", help="print one JSON object")
    sample.set_defaults(func=_sample)

    imp = commands.add_parser("import", help="check and import a CSV or Parquet file")
    imp.add_argument("path")
    imp.add_argument("--instrument", required=True, help="instrument id of the rows")
    imp.add_argument("--kind", required=True, choices=KINDS)
    imp.add_argument("--timezone", help="IANA zone of naive times, e.g. America/New_York")
    imp.add_argument("--interval", help="bar length, e.g. 1m, 1h, 1d (plain dates: 1d)")
    imp.add_argument("--time-column", metavar="NAME",
                     help="the file's time column, when its name is not a common one")
    imp.add_argument("--bar-stamp", choices=("open", "close"), default="open",
                     help="whether a bar's time in the file is its open (default) or close")
    imp.add_argument("--store", help=store_help)
    imp.add_argument("--replace", action="store_true", help=replace_help)
    imp.add_argument("--json", action="store_true", help="print one JSON object")
    imp.set_defaults(func=_import)

    lst = commands.add_parser("list", help="show what the store holds")
    lst.add_argument("--store", help=store_help)
    lst.add_argument("--json", action="store_true", help="print one JSON object")
    lst.set_defaults(func=_list)


def _sample(args: argparse.Namespace) -> int:
    instruments = tuple(i.strip() for i in args.instruments.split(",") if i.strip())
    if not instruments:
        raise ConfigError("give at least one instrument", field="--instruments")
    if args.days < 1:
        raise ConfigError(f"must be at least 1, got {args.days}", field="--days")
    perpetuals = tuple(i.strip() for i in args.perpetuals.split(",") if i.strip())
    unknown = sorted(set(perpetuals) - set(instruments))
    if unknown:
        raise ConfigError(f"{', '.join(unknown)} not among --instruments", field="--perpetuals")
    tables = generate_sample(np.random.default_rng(args.seed),
                             SampleSpec(instruments=instruments, days=args.days,
                                        perpetuals=perpetuals))
    with open_store(args.store) as store:
        for kind, table in tables.items():
            store.write_market(kind, table, replace=args.replace)
        dsn = store.dsn.describe()
    summary = {"store": dsn, "seed": args.seed, "instruments": list(instruments),
               "rows": {k: t.num_rows for k, t in tables.items()},
               "hash": {k: table_hash(k, t) for k, t in tables.items()}}
    if args.json:
        print(json.dumps(summary))
    else:
        rows = ", ".join(f"{n} {k}" for k, n in summary["rows"].items())
        print(f"wrote sample data (seed {args.seed}) for {', '.join(instruments)} "
              f"to {dsn}: {rows}")
    return 0


def _import(args: argparse.Namespace) -> int:
    options = FileOptions(timezone=args.timezone, interval=args.interval,
                          bar_stamp=args.bar_stamp, time_column=args.time_column)
    stream = stream_file(args.path, args.kind, args.instrument, options)
    seen = _Seen(args.kind)
    with open_store(args.store) as store:
        written = store.import_market(args.kind, seen.watch(stream), replace=args.replace)
        dsn = store.dsn.describe()
    summary = {
        "file": stream.source, "kind": args.kind, "instrument_id": args.instrument,
        "store": dsn, "accepted": stream.rows, "refused": 0, "replaced": written.replaced,
        "first_ts": seen.first_ts, "last_ts": seen.last_ts,
        "price_decimals": stream.price_decimals,
        "ignored_columns": list(stream.ignored_columns), "warnings": list(stream.warnings),
        "dataset_hash": seen.hasher.hexdigest(),
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    prices = ("" if args.kind in AUX_KINDS else  # auxiliary data holds no order prices
              f"; prices have up to {stream.price_decimals} "
              f"decimal{'' if stream.price_decimals == 1 else 's'}")
    print(f"imported {stream.rows} {args.kind} rows of {args.instrument} from {stream.source} "
          f"into {dsn} ({_span(seen.first_ts, seen.last_ts)}){prices}")
    if written.replaced:
        print(f"replaced {written.replaced} stored rows in that range (--replace)")
    if stream.ignored_columns:
        print(f"ignored columns: {', '.join(stream.ignored_columns)}")
    for warning in stream.warnings:
        print(f"warning: {warning}")
    return 0


class _Seen:
    """What passed through an import: content hash and time span, batch by batch."""

    def __init__(self, kind: str) -> None:
        self.hasher = TableHasher(SCHEMAS[kind])
        self.first_ts: int | None = None
        self.last_ts: int | None = None

    def watch(self, tables: Iterable[pa.Table]) -> Iterator[pa.Table]:
        for table in tables:
            self.hasher.update(table)
            if table.num_rows:
                ts = table.column("ts_event")
                self.first_ts = ts[0].as_py() if self.first_ts is None else self.first_ts
                self.last_ts = ts[-1].as_py()
            yield table


def _list(args: argparse.Namespace) -> int:
    with open_store(args.store) as store:
        datasets = store.list_datasets()
        dsn = store.dsn.describe()
    if args.json:
        print(json.dumps({"store": dsn, "datasets": [d._asdict() for d in datasets]}))
        return 0
    if not datasets:
        print(f"{dsn} holds no market data (try: tradewind data sample)")
        return 0
    print(f"{'kind':<7} {'instrument':<24} {'interval':<8} {'rows':>10}  span (UTC)")
    for d in datasets:
        interval = format_interval(d.interval_ns) if d.interval_ns is not None else "-"
        print(f"{d.kind:<7} {d.instrument_id:<24} {interval:<8} {d.rows:>10}  "
              f"{_span(d.first_ts, d.last_ts)}")
    return 0


def _span(first_ns: int | None, last_ns: int | None) -> str:
    if first_ns is None or last_ns is None:
        return "empty"
    first = np.datetime64(first_ns, "ns").astype("datetime64[s]")
    last = np.datetime64(last_ns, "ns").astype("datetime64[s]")
    return f"{first} → {last}"
