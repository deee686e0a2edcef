"""Shared helpers of the paper-trading tests: sample data files, configs, fills to compare."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from backtest.data import SampleSpec, generate_sample

__all__ = ["FakeHandle", "backtest_fills", "paper_fills", "write_paper_config", "write_sample"]

_FIXED = {"open", "high", "low", "close", "volume", "bid_price", "bid_size", "ask_price",
          "ask_size", "price", "size"}

SMA = {"id": "sma", "class": "backtest.strategies.sma_cross:SmaCross", "instruments": ["SIM-A"],
       "params": {"fast": 5, "slow": 20, "size": 100}}
MM = {"id": "mm", "class": "backtest.strategies.market_maker:MarketMaker",
      "instruments": ["SIM-A"],
      "params": {"size": 10, "levels": 2, "half_spread_ticks": 1, "vol_mult": 0.5,
                 "skew_ticks": 2, "max_inventory": 100, "requote_ms": 500}}
TAKER = {"id": "taker", "class": "backtest.strategies.imbalance_taker:ImbalanceTaker",
         "instruments": ["SIM-A"],
         "params": {"size": 50, "entry_spreads": 0.45, "exit_spreads": 0.1,
                    "imbalance_filter": 0.3, "max_hold_ms": 30000}}
BAR_VENUE = {"latency": {"kind": "constant", "entry_ns": 5_000_000, "response_ns": 5_000_000},
             "fills": {"kind": "bars", "price": "next_open", "path": "auto",
                       "max_participation": 0.1},
             "slippage": {"kind": "ticks", "ticks": 1},
             "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 1, "minimum": 1}}
L1_VENUE = {"latency": {"kind": "sampled",
                        "entry": {"kind": "lognormal", "median_ns": 3_000_000, "sigma": 0.5},
                        "response": {"kind": "lognormal", "median_ns": 3_000_000, "sigma": 0.5}},
            "fills": {"kind": "l1", "queue_shrink": "behind_first"},
            "slippage": {"kind": "none"}, "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 2}}


def write_sample(folder: Path, *, days: int = 1) -> Path:
    """``days`` of SIM-A bars, quotes, trades and L2 book updates as Parquet files (human
    units)."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = generate_sample(np.random.default_rng(7),
                             SampleSpec(instruments=("SIM-A",), days=days))
    for kind in ("bars", "quotes", "trades", "book"):
        table = tables[kind]
        cols = {name: (pa.array(table.column(name).to_numpy() / 1e9) if name in _FIXED
                       else table.column(name))
                for name in table.schema.names if name != "ts_init"}
        pq.write_table(pa.table(cols), folder / f"{kind}.parquet")
    return folder


def trading_config(kind: str, data_dir: Path, *, minutes: int = 10) -> dict[str, Any]:
    """A trading config: ``sma`` (bars), ``mm`` (market maker on L1), ``mm_book`` (the same
    with the L2 book too: its prices and features from the book) or ``taker``."""
    end = f"2024-01-02T{14 + (30 + minutes) // 60:02d}:{(30 + minutes) % 60:02d}:00"
    if kind == "sma":
        data = [{"kind": "bars", "instrument": "SIM-A", "path": str(data_dir / "bars.parquet")}]
        strategies, venue, risk = [SMA], BAR_VENUE, {"max_position": 1000}
    else:
        data = [{"kind": k, "instrument": "SIM-A", "path": str(data_dir / f"{k}.parquet"),
                 "end": end} for k in ("quotes", "trades")]
        if kind == "mm_book":
            data.append({"kind": "book", "instrument": "SIM-A",
                         "path": str(data_dir / "book.parquet"), "end": end})
        strategies = [MM if kind.startswith("mm") else TAKER]
        venue = L1_VENUE
        risk = {"max_position": 150, "max_orders_per_window": 50, "order_window_s": 1}
    return {"name": f"t_{kind}", "seed": 11, "initial_cash": 100000,
            "instruments": [{"id": "SIM-A", "price_precision": 2, "lot_size": 1,
                             "min_quantity": 1}],
            "data": data, "strategies": strategies, "venue": venue, "risk": risk,
            "store": {"record": False}}


def write_paper_config(folder: Path, kind: str, data_dir: Path, **paper: Any) -> Path:
    """``trading.yaml`` and ``paper.yaml`` in ``folder``; ``paper`` overrides the paper keys."""
    folder.mkdir(parents=True, exist_ok=True)
    minutes = paper.pop("minutes", 10)
    (folder / "trading.yaml").write_text(yaml.safe_dump(trading_config(kind, data_dir,
                                                                       minutes=minutes)))
    config = {"name": f"p_{kind}", "trading": "trading.yaml", "journal_dir": str(folder / "var"),
              "output_dir": str(folder / "runs"), "kill_file": str(folder / "var" / "KILL"),
              "cancel_on_stop": False,
              "reconcile_every_s": 1,
              # hang_timeout_s: a heartbeat unanswered for a minute is a hang; under load (the
              # suite beside two CPU burners) Ray's niced workers can take 10 s to answer
              "supervisor": {"intensity": 20, "period_s": 30, "hang_timeout_s": 60},
              # every actor snapshots and compacts often, so a killed actor restores from a
              # snapshot plus a tail (market data re-read from the feed's log) in every
              # session test
              "snapshot_every": 50}
    config.update(paper)
    (folder / "paper.yaml").write_text(yaml.safe_dump(config))
    return folder / "paper.yaml"


def _strip(client_order_id: str) -> str:
    return client_order_id.split("-", 1)[1]  # the namespace (run or session id) differs


def paper_fills(fills: list[Any]) -> list[tuple[Any, ...]]:
    return [(f.ts_event, f.fill_id, f.last_qty, f.last_price, f.fee, _strip(f.client_order_id))
            for f in fills]


def backtest_fills(result: Any) -> list[tuple[Any, ...]]:
    return [(int(r.ts_event), r.fill_id, round(r.qty * 1e9), round(r.price * 1e9),
             round(r.fee * 1e9), _strip(r.client_order_id)) for r in result.fills.itertuples()]


class _Method:
    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        result = self.fn(*args, **kwargs)
        if inspect.isawaitable(result):
            return result
        future = asyncio.get_running_loop().create_future()
        future.set_result(result)
        return future


class FakeHandle:
    """An actor object in this process behind ``handle.method.remote(...)`` (no Ray)."""

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def __getattr__(self, name: str) -> _Method:
        return _Method(getattr(self._obj, name))
