"""Helpers of the broker-session tests: the fake IB gateway on its own thread (so it outlives
the gateway actor's worker and answers while the test waits), sample bars for any instrument,
and paper configs with a broker block."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from backtest.data import SampleSpec, generate_sample
from tests.venues.fake_ib import FakeIbGateway

__all__ = ["FakeAlpacaThread", "FakeBinanceThread", "FakeIbThread", "FakeThread", "write_bars",
           "write_broker_config"]

_FIXED = {"open", "high", "low", "close", "volume"}


class FakeThread:
    """A loopback fake (``start()``/``stop()`` coroutines), served by a loop on a background
    thread: it outlives a gateway actor's worker and answers while the test waits."""

    def __init__(self, fake: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fake = fake
        self.port = self.run(self.fake.start())

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def call(self, fn: Any, *args: Any) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except Exception as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(30)

    def close(self) -> None:
        self.run(self.fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class FakeIbThread(FakeThread):
    """A :class:`FakeIbGateway` on its thread."""

    def __init__(self, **fake: Any) -> None:
        super().__init__(FakeIbGateway(**fake))

    def snapshot(self) -> dict[str, Any]:
        """What the broker holds: every orderRef placed, every execution id, positions."""
        def read() -> dict[str, Any]:
            f = self.fake
            return {"placed": list(f.placed), "executions": [e.exec_id for e in f.executions],
                    "positions": dict(f.positions), "connected": f.connected}
        return self.call(read)  # type: ignore[no-any-return]


class FakeBinanceThread(FakeThread):
    """A :class:`~tests.venues.fake_binance.FakeBinanceFutures` on its thread."""

    def __init__(self, **fake: Any) -> None:
        from tests.venues.fake_binance import FakeBinanceFutures

        super().__init__(FakeBinanceFutures(**fake))

    def snapshot(self) -> dict[str, Any]:
        """Every order request that reached matching, every accepted client order id, every
        trade id, positions."""
        def read() -> dict[str, Any]:
            f = self.fake
            return {"attempts": list(f.attempts), "placed": list(f.placed),
                    "trades": [t["id"] for t in f.trades],
                    "positions": {k: float(v) for k, v in f.positions.items()}}
        return self.call(read)  # type: ignore[no-any-return]


def write_bars(folder: Path, instrument: str, *, seed: int = 7) -> Path:
    """One day of one-minute bars for ``instrument`` (human units) as Parquet."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = generate_sample(np.random.default_rng(seed),
                             SampleSpec(instruments=(instrument,), days=1))
    table = tables["bars"]
    cols = {name: (pa.array(table.column(name).to_numpy() / 1e9) if name in _FIXED
                   else table.column(name))
            for name in table.schema.names if name != "ts_init"}
    path = folder / f"bars.{instrument}.parquet"
    pq.write_table(pa.table(cols), path)
    return path


def write_broker_config(folder: Path, bars: Path, broker: dict[str, Any], *,
                        instrument: dict[str, Any], size: int, speed: float = 1500,
                        **paper: Any) -> Path:
    """``trading.yaml`` (SMA 2/5 on the bars: it trades often) and ``paper.yaml`` with the
    broker block; ``paper`` overrides paper keys."""
    folder.mkdir(parents=True, exist_ok=True)
    iid = instrument["id"]
    trading = {
        "name": "t_broker", "seed": 11, "initial_cash": 10_000_000,
        "currency": instrument.get("currency", "USD"),
        "instruments": [instrument],
        "data": [{"kind": "bars", "instrument": iid, "path": str(bars)}],
        "strategies": [{"id": "sma", "class": "backtest.strategies.sma_cross:SmaCross",
                        "instruments": [iid], "params": {"fast": 2, "slow": 5, "size": size}}],
        "venue": {"latency": {"kind": "constant", "entry_ns": 1_000_000,
                              "response_ns": 1_000_000},
                  "fills": {"kind": "bars", "price": "next_open", "path": "auto",
                            "max_participation": 1.0},
                  "slippage": {"kind": "none"}, "fees": {"kind": "bps", "maker_bps": 0,
                                                         "taker_bps": 0}},
        "risk": {"max_position": size * 10},
        "store": {"record": False},
    }
    (folder / "trading.yaml").write_text(yaml.safe_dump(trading))
    config = {"name": "p_broker", "trading": "trading.yaml", "journal_dir": str(folder / "var"),
              "output_dir": str(folder / "runs"), "kill_file": str(folder / "var" / "KILL"),
              "cancel_on_stop": True, "reconcile_every_s": 1,
              "supervisor": {"intensity": 20, "period_s": 30},
              "feed": {"lockstep": False, "speed": speed},
              "control": {"enabled": False}, "broker": broker}
    config.update(paper)
    (folder / "paper.yaml").write_text(yaml.safe_dump(config))
    return folder / "paper.yaml"


class FakeAlpacaThread(FakeThread):
    """A :class:`~tests.venues.fake_alpaca.FakeAlpaca` on its thread."""

    def __init__(self, **fake: Any) -> None:
        from tests.venues.fake_alpaca import FakeAlpaca

        super().__init__(FakeAlpaca(**fake))

    def broker_block(self, **extra: Any) -> dict[str, Any]:
        """The ``broker:`` block that points alpaca-py here."""
        return {"kind": "alpaca", "url_override": f"http://127.0.0.1:{self.port}",
                "stream_url_override": f"ws://127.0.0.1:{self.port}/stream",
                "api_key_env": "TW_TEST_ALPACA_KEY", "secret_env": "TW_TEST_ALPACA_SECRET",
                "poll_every_s": 0.3, "backoff_min_s": 0.2, "backoff_max_s": 2.0} | extra

    def snapshot(self) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            f = self.fake
            return {"attempts": list(f.attempts), "placed": list(f.placed),
                    "executions": list(f.executions),
                    "positions": {k: float(v) for k, v in f.positions.items()}}
        return self.call(read)  # type: ignore[no-any-return]
