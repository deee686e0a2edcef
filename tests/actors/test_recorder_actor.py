"""The recorder actor through a real store actor: outages and crashes lose and duplicate nothing.

Ray may run an async actor's calls out of order, so the tests wait for ``record`` calls to be
accepted before asking for ``flush``/``stats`` (a producer does not need to: every event is keyed).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.recorder import RecorderActor
from actors.recording import encode_batch
from actors.store import StoreActor
from runtime.messages import (
    Liquidity,
    Message,
    OrderAccepted,
    OrderFilled,
    OrderSide,
    OrderType,
    PositionChanged,
    QuoteTick,
    SubmitOrder,
)

pytestmark = pytest.mark.ray


@pytest.fixture
def store(ray_local: Any, tmp_path: Path) -> Iterator[Any]:
    actor = StoreActor.remote(f"chdb://{tmp_path / 'ch'}")
    yield actor
    ray_local.get(actor.close.remote())
    ray_local.kill(actor)


def events(k: int) -> list[Message]:
    """Batch ``k``: an order's life (submit, ack, fill, position) and three quotes."""
    ids = {"client_order_id": f"S-{k}", "strategy_id": "demo", "instrument_id": "SIM-A"}
    ts = {"ts_event": 1_000 + k, "ts_init": 2_000 + k}
    return [
        SubmitOrder(seq=0, **ts, **ids, side=OrderSide.BUY, order_type=OrderType.MARKET,
                    quantity=10**9),
        OrderAccepted(seq=k, **ts, **ids, venue_order_id=f"V-{k}"),
        OrderFilled(seq=k, **ts, **ids, venue_order_id=f"V-{k}", fill_id=f"F-{k}",
                    side=OrderSide.BUY, last_qty=10**9, last_price=100 * 10**9 + k,
                    cum_qty=10**9, leaves_qty=0, fee=1, currency="USD",
                    liquidity=Liquidity.TAKER),
        PositionChanged(seq=0, **ts, instrument_id="SIM-A", quantity=(k + 1) * 10**9,
                        avg_price=100 * 10**9, realized_pnl=0),
        *[QuoteTick(seq=i, ts_event=10 * k, ts_init=10 * k, instrument_id=f"Q-{k % 3}",
                    bid_price=k, bid_size=1, ask_price=k + 1, ask_size=1) for i in range(3)],
    ]


def counts(ray: Any, store: Any, session: str) -> dict[str, int]:
    out = {}
    for table in ("orders", "fills", "positions"):
        out[table] = ray.get(store.command.remote(
            f"SELECT count() FROM {table} FINAL WHERE session_id = '{session}'"))
    out["quotes"] = ray.get(store.command.remote(
        "SELECT count() FROM quotes FINAL WHERE startsWith(instrument_id, 'Q-')"))
    return {k: int(v) for k, v in out.items()}


def expected(n_batches: int) -> dict[str, int]:
    return {"orders": 2 * n_batches, "fills": n_batches, "positions": n_batches,
            "quotes": 3 * n_batches}


def fill_ids(ray: Any, store: Any, session: str) -> list[str]:
    table = ray.get(store.query_arrow.remote(
        "SELECT fill_id FROM fills FINAL WHERE session_id = {s:String} ORDER BY ts_event",
        {"s": session}))
    return list(table.column("fill_id").to_pylist())


def test_store_outage_mid_session_every_event_lands_once(
    ray_local: Any, store: Any, tmp_path: Path
) -> None:
    session = "S-outage"
    recorder = RecorderActor.remote(session, store, str(tmp_path / "spill.journal"),
                                    batch_rows=40, flush_interval_s=0.05, retry_max_s=0.2)
    n = 60
    ray_local.get([recorder.record.remote(encode_batch(events(k)), "test") for k in range(20)])
    ray_local.get(recorder.flush.remote())
    ray_local.get(store.set_available.remote(False))
    ray_local.get([recorder.record.remote(encode_batch(events(k)), "test")
                   for k in range(20, 40)])
    during = wait_for(lambda: spilled(ray_local.get(recorder.stats.remote())))
    assert during["mode"] == "draining" and during["store_errors"] >= 1
    assert during["events_spilled"] >= 20 * 7 and during["pending_events"] >= 20 * 7
    assert during["outages"] == 1 and during["spill_bytes"] > 0
    ray_local.get(store.set_available.remote(True))
    ray_local.get([recorder.record.remote(encode_batch(events(k)), "test")
                   for k in range(40, n)])
    stats = ray_local.get(recorder.flush.remote())
    assert stats["pending_events"] == 0 and stats["mode"] == "healthy"
    assert stats["events_written"] == stats["events_accepted"] == 7 * n
    assert counts(ray_local, store, session) == expected(n)
    assert fill_ids(ray_local, store, session) == [f"F-{k}" for k in range(n)]
    ray_local.kill(recorder)


def wait_for(fn: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return fn()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def spilled(stats: dict[str, Any]) -> dict[str, Any]:
    if stats["mode"] != "draining":
        raise AssertionError("the recorder has not tried the store yet")
    return stats


def test_sigkill_with_spilled_rows_pending_everything_lands_once(
    ray_local: Any, store: Any, tmp_path: Path
) -> None:
    session = "S-sigkill"

    def batch(k: int) -> bytes:
        return encode_batch(events(k))

    recorder = RecorderActor.options(max_restarts=-1, max_task_retries=-1).remote(
        session, store, str(tmp_path / "spill.journal"), batch_rows=40, flush_interval_s=0.05)
    ray_local.get([recorder.record.remote(batch(k), "test") for k in range(10)])
    ray_local.get(recorder.flush.remote())
    ray_local.get(store.set_available.remote(False))
    ray_local.get([recorder.record.remote(batch(k), "test") for k in range(10, 30)])
    before = wait_for(lambda: spilled(ray_local.get(recorder.stats.remote())))
    assert before["pending_events"] == 20 * 7 and before["store_errors"] >= 1
    pid = ray_local.get(recorder.pid.remote())
    os.kill(pid, signal.SIGKILL)
    ray_local.get(store.set_available.remote(True))
    after = wait_for(lambda: ray_local.get(recorder.flush.remote(), timeout=10))
    assert after["pid"] != pid and after["events_restored"] == 20 * 7
    ray_local.get([recorder.record.remote(batch(k), "test") for k in range(30, 40)])
    final = ray_local.get(recorder.flush.remote())
    assert final["pending_events"] == 0
    assert counts(ray_local, store, session) == expected(40)
    assert fill_ids(ray_local, store, session) == [f"F-{k}" for k in range(40)]
    ray_local.kill(recorder)
