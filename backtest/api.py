"""The backtest as one call, for notebooks and the command line.

::

    from backtest import run_backtest
    result = run_backtest("configs/sma.yaml")
    result.metrics["sharpe"], result.fills.head(), result.equity.tail()

A run gets an id, a manifest (config hash, dataset hash, code version, seed), fills, orders, an
equity curve, metrics with buy-and-hold and no-trade baselines, ``runs/<run_id>/`` files and rows
in the store (``backtest_runs``, ``backtest_timeseries``, ``backtest_fills``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.config import (
    BacktestConfig,
    build_strategy,
    check_writable_dir,
    config_hash,
    load_config,
    retire_after_ns,
)
from backtest.engine import EventLog, run_loop
from backtest.equity import MarkSeries, equity_curve
from backtest.feed import Feed, load_feed
from backtest.metrics import buy_and_hold_equity, compare_baselines, index_to_ns
from backtest.parents import algo_metrics, parents_frame, with_parents
from backtest.results import open_config_store, record_run, write_run_files
from backtest.venue import SimulatedVenue
from runtime.instruments import InstrumentRegistry
from runtime.kernel import Kernel
from runtime.portfolio import Account
from runtime.values import FIXED_SCALE, fixed

__all__ = [
    "BacktestResult",
    "build_run",
    "carry_frame",
    "code_version",
    "fills_frame",
    "run_backtest",
    "run_equity",
    "run_namespace",
    "simulate",
]


@dataclass
class BacktestResult:
    run_id: str
    manifest: dict[str, Any]
    metrics: dict[str, Any]  # {"strategy": {...}, "buy_and_hold": {...}, "no_trade": {...}}
    fills: pd.DataFrame
    orders: pd.DataFrame
    equity: pd.DataFrame
    state_hash: str
    run_dir: Path | None = None
    report_path: Path | None = None
    events: int = 0
    denials: list[dict[str, Any]] = field(default_factory=list)
    #: parent orders worked by execution algorithms (one row each; empty without)
    parents: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: marks per instrument (bar close, quote mid or trade price) in price units, for the report
    prices: dict[str, pd.Series] = field(default_factory=dict)
    #: baseline equity curves on the run's clock, e.g. ``{"Buy & hold SIM-A": series}``
    baseline_equity: dict[str, pd.Series] = field(default_factory=dict)
    #: funding and borrow charged on held positions (:func:`carry_frame`)
    carry: pd.DataFrame = field(default_factory=lambda: carry_frame(EventLog()))
    #: the kernel's account at the end (exact: cash, equity, PnL, fees, funding, borrow)
    account: Account | None = None

    @property
    def n_fills(self) -> int:
        return len(self.fills)


def code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        base = version("tradewind")
    except PackageNotFoundError:
        base = "0+unknown"
    head = Path(__file__).resolve().parent.parent / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref = (head.parent / ref[5:]).read_text().strip()
        return f"{base}+g{ref[:10]}"
    except OSError:
        return base


def build_run(config: BacktestConfig, feed: Feed) -> tuple[Kernel, SimulatedVenue, str]:
    """The kernel and venue of a run; the namespace of its client order ids."""
    registry = InstrumentRegistry(i.build() for i in config.instruments)
    strategies = [build_strategy(config, spec) for spec in config.strategies]
    namespace = run_namespace(config, feed)
    kernel = Kernel(
        registry=registry,
        strategies=strategies,
        risk_limits=config.risk,
        initial_cash=fixed(config.initial_cash),
        currency=config.currency,
        namespace=namespace,
        seed=config.seed,
        day_orders_only=tuple(registry.as_mapping()) if config.venue.day_orders_only else (),
        retire_after_ns=retire_after_ns(config),
        keep_retired=True,  # the results list every order (orders.csv, round trips' exits)
    )
    venue = SimulatedVenue.from_models(
        registry, config.venue, rng=np.random.default_rng(config.seed)
    )
    return kernel, venue, namespace


def run_namespace(config: BacktestConfig, feed: Feed) -> str:
    """The namespace of a run's client order ids (and so part of its state hash): from the
    config without where its data came from or where results go, plus the data itself. The
    same bars from a file or from the store, under the same strategy, models and seed, give the
    same ids and the same state hash."""
    payload = config.model_dump(
        mode="json", by_alias=True, exclude={"base_dir", "data", "store", "output_dir"}
    )
    payload["dataset_hash"] = feed.dataset_hash
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return "bt" + digest[:10]


def simulate(
    config: BacktestConfig, feed: Feed, *, progress: Callable[[int, int], None] | None = None
) -> tuple[Kernel, EventLog]:
    """Run ``config`` over an already-loaded ``feed`` (no store, no files): kernel and log.

    What :func:`run_backtest` does between loading the data and building the result; sweeps call
    it in Ray tasks on a feed put once in the object store.
    """
    kernel, venue, _ = build_run(config, feed)
    total = feed.n_events
    log = run_loop(
        kernel,
        venue,
        feed.iter_messages(),
        start_ns=feed.start_ns,
        progress=None if progress is None else (lambda n: progress(n, total)),
    )
    return kernel, log


def run_equity(config: BacktestConfig, feed: Feed, kernel: Kernel, log: EventLog) -> pd.DataFrame:
    """The run's equity curve (``equity, cash, position_value, drawdown``), marked on the feed."""
    return equity_curve(
        fills=log.fills,
        carry=log.carry,
        marks=_marks(feed),
        registry=kernel.registry,
        initial_cash=fixed(config.initial_cash),
    )


def _marks(feed: Feed) -> dict[str, MarkSeries]:
    marks: dict[str, MarkSeries] = {}
    preference = {"bars": 0, "quotes": 1, "trades": 2}
    chosen: dict[str, str] = {}
    for (kind, instrument), _ in feed.tables.items():
        if kind in preference and preference[kind] < preference.get(chosen.get(instrument, ""), 9):
            chosen[instrument] = kind
    for instrument, kind in chosen.items():
        table = feed.tables[(kind, instrument)]
        ts = table.column("ts_event").to_numpy()
        if kind == "bars":
            px = table.column("close").to_numpy()
        elif kind == "quotes":
            px = (table.column("bid_price").to_numpy() + table.column("ask_price").to_numpy()) // 2
        else:
            px = table.column("price").to_numpy()
        marks[instrument] = (ts, px)
    return marks


def _frames(kernel: Kernel, log: EventLog) -> tuple[pd.DataFrame, pd.DataFrame]:
    return with_parents(fills_frame(log), _orders_frame(kernel), kernel.algos)


_FILL_FRAME_COLUMNS = (
    "ts_event", "ts_init", "fill_id", "client_order_id", "strategy_id", "instrument_id", "side",
    "qty", "price", "fee", "liquidity", "venue_order_id",
)  # fmt: skip


def fills_frame(log: EventLog) -> pd.DataFrame:
    """The run's fills in human units (the columns metrics and reports read).

    Built column by column (a study makes one per trial: a row dict per fill took a tenth of a
    short backtest's time outside its loop)."""
    f = FIXED_SCALE
    fills = log.fills
    if not fills:  # the columns, untyped (as pandas makes them from no rows)
        return pd.DataFrame(columns=list(_FILL_FRAME_COLUMNS))
    return pd.DataFrame(
        {
            "ts_event": [x.ts_event for x in fills],
            "ts_init": [x.ts_init for x in fills],
            "fill_id": [x.fill_id for x in fills],
            "client_order_id": [x.client_order_id for x in fills],
            "strategy_id": [x.strategy_id for x in fills],
            "instrument_id": [x.instrument_id for x in fills],
            "side": [int(x.side) for x in fills],
            "qty": [x.last_qty / f for x in fills],
            "price": [x.last_price / f for x in fills],
            "fee": [x.fee / f for x in fills],
            "liquidity": [str(x.liquidity) for x in fills],
            "venue_order_id": [x.venue_order_id for x in fills],
        }
    )


_CARRY_COLUMNS = ("ts_event", "instrument_id", "kind", "quantity", "price", "rate", "amount",
                  "currency")


def carry_frame(log: EventLog) -> pd.DataFrame:
    """Funding and borrow charged on held positions, in human units: ``amount`` is the cash
    moved (received > 0, paid < 0), ``rate`` per funding period or per year (borrow)."""
    f = FIXED_SCALE
    rows = log.carry
    return pd.DataFrame(
        {
            "ts_event": pd.Series([c.ts_event for c in rows], dtype="int64"),
            "instrument_id": pd.Series([c.instrument_id for c in rows], dtype=object),
            "kind": pd.Series([c.kind for c in rows], dtype=object),
            "quantity": pd.Series([c.quantity / f for c in rows], dtype="float64"),
            "price": pd.Series([c.price / f for c in rows], dtype="float64"),
            "rate": pd.Series([c.rate / f for c in rows], dtype="float64"),
            "amount": pd.Series([c.amount / f for c in rows], dtype="float64"),
            "currency": pd.Series([c.currency for c in rows], dtype=object),
        },
        columns=list(_CARRY_COLUMNS),
    )


def _orders_frame(kernel: Kernel) -> pd.DataFrame:
    f = FIXED_SCALE
    return pd.DataFrame(
        [
            {
                "client_order_id": o.client_order_id,
                "strategy_id": o.strategy_id,
                "instrument_id": o.instrument_id,
                "side": int(o.side),
                "type": str(o.order_type),
                "qty": o.quantity / f,
                "price": None if o.price is None else o.price / f,
                "trigger_price": None if o.trigger_price is None else o.trigger_price / f,
                "status": str(o.status),
                "filled_qty": o.filled_qty / f,
                "avg_price": (o.filled_cost / o.filled_qty / f) if o.filled_qty else None,
                "fees": o.fees / f,
                "ts_init": o.ts_init,
                "ts_last": o.ts_last,
                "reason": o.reason,
            }
            for o in kernel.all_orders()
        ]
    )


def _run_id(config: BacktestConfig, chash: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")[:-3]
    return f"{config.name}-{stamp}-{chash[:6]}"


def run_backtest(
    source: str | Path | dict[str, Any] | BacktestConfig,
    *,
    write: bool = True,
    store: Any = None,
    run_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """Run one backtest. ``write``: files under ``output_dir`` and rows in the store.

    ``progress(done, total)`` is called every 100k events.
    """
    config = load_config(source)
    if write:
        name = str(source) if isinstance(source, str | Path) else None
        check_writable_dir(Path(config.output_dir), field="output_dir", source=name)
    own_store = store is None and ((config.store.record and write) or _needs_store(config))
    if own_store:
        store = open_config_store(config)
    try:
        feed = load_feed(config, store)
        kernel, log = simulate(config, feed, progress=progress)
        result = _result(config, feed, kernel, log, run_id)
        if write:
            write_run_files(result, Path(config.output_dir))
            if store is not None and config.store.record:
                record_run(store, result)
        return result
    finally:
        if own_store and store is not None:
            store.close()


def _needs_store(config: BacktestConfig) -> bool:
    return any(d.from_store for d in config.data)


def _result(
    config: BacktestConfig, feed: Feed, kernel: Kernel, log: EventLog, run_id: str | None
) -> BacktestResult:
    chash = config_hash(config)
    fills, orders = _frames(kernel, log)
    equity = run_equity(config, feed, kernel, log)
    marks = {
        name: pd.Series(px / FIXED_SCALE, index=pd.to_datetime(ts, unit="ns", utc=True), name=name)
        for name, (ts, px) in sorted(_marks(feed).items())
    }
    prices = next(iter(marks.values())) if marks else pd.Series(dtype=float)
    metrics = compare_baselines(
        equity["equity"],
        fills,
        prices,
        initial_cash=float(config.initial_cash),
        position_values=equity["position_value"],
    )
    metrics["strategy"].update(algo_metrics(kernel.algos))
    account = kernel.account()
    metrics["strategy"]["funding"] = account.funding / FIXED_SCALE
    metrics["strategy"]["borrow_paid"] = account.borrow / FIXED_SCALE
    manifest = {
        "run_id": run_id or _run_id(config, chash),
        "name": config.name,
        "config_hash": chash,
        "dataset_hash": feed.dataset_hash,
        "code_version": code_version(),
        "seed": config.seed,
        "strategies": [s.class_ for s in config.strategies],
        "strategy_params": _strategy_params(config, kernel),
        "instruments": [i.id for i in config.instruments],
        "data": [d.model_dump(exclude_none=True) for d in config.data],
        "models": json.loads(config.venue.model_dump_json()),
        "start_ns": feed.start_ns,
        "end_ns": feed.end_ns,
        "events": log.events,
        "state_hash": kernel.state_hash(),
    }
    return BacktestResult(
        run_id=manifest["run_id"],
        manifest=manifest,
        metrics=metrics,
        fills=fills,
        orders=orders,
        equity=equity,
        state_hash=manifest["state_hash"],
        events=log.events,
        carry=carry_frame(log),
        account=account,
        denials=[
            {"client_order_id": d.client_order_id, "reason_code": d.reason_code, "reason": d.reason}
            for d in log.denials
        ],
        parents=parents_frame(kernel.algos),
        prices=marks,
        baseline_equity=_buy_and_hold(prices, equity["equity"], float(config.initial_cash)),
    )


def _buy_and_hold(prices: pd.Series, equity: pd.Series, cash: float) -> dict[str, pd.Series]:
    """Buy-and-hold of the benchmark on the equity's clock (last known price), as
    :func:`backtest.metrics.compare_baselines` measures it."""
    if len(prices) == 0 or len(equity) == 0:
        return {}
    p_ns, e_ns = index_to_ns(prices.index), index_to_ns(equity.index)
    pos = np.clip(np.searchsorted(p_ns, e_ns, side="right") - 1, 0, None)
    at = pd.Series(prices.to_numpy(dtype=np.float64)[pos], index=equity.index)
    return {f"Buy & hold {prices.name}": buy_and_hold_equity(at, cash)}


def _strategy_params(config: BacktestConfig, kernel: Kernel) -> dict[str, dict[str, Any]]:
    """Each strategy's class and params as run: the config's values, in the units written there,
    and the class's defaults for the params the config leaves out."""
    out: dict[str, dict[str, Any]] = {}
    built = {s.strategy_id: s for s in kernel.strategies}
    for spec in config.strategies:
        fields = built[spec.id].params_type.model_fields
        params = {
            name: spec.params[name]
            if name in spec.params
            else field.get_default(call_default_factory=True)
            for name, field in fields.items()
        }
        out[spec.id] = {"class": spec.class_, "params": json.loads(json.dumps(params, default=str))}
    return out
