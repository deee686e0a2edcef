"""A broker session's stream under retention (``feed.retention``, actors/retention.py), end to
end through the IB fake on the shared Ray cluster: the stream's journal is compacted while the
session runs, and a strategy SIGKILLed after that restores from what was kept with the same
state hash, then takes the quotes that follow, up to the last (quotes the client had not handed
on yet merge into one: the latest book wins)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.journal import JournalReader
from runtime.values import FIXED_SCALE
from tests.venues.broker_helpers import FakeIbThread, write_bars, write_broker_config
from tests.venues.test_broker_session import SIM, _kill_worker, _until

pytestmark = pytest.mark.usefixtures("ray_local")
pytest.importorskip("ib_async")


@pytest.fixture
def fake_ib() -> Iterator[FakeIbThread]:
    fake = FakeIbThread(auto_fill_price=100.0, fill_delay_s=0.2)
    yield fake
    fake.close()


def test_a_retained_stream_stays_short_and_a_killed_strategy_restores_the_same(
        fake_ib: FakeIbThread, tmp_path: Path) -> None:
    import ray

    from actors.config import load_paper_config
    from actors.session import start_session

    broker = {"kind": "ib", "port": fake_ib.port, "client_id": 12,
              "reset_window": ["00:00", "00:00"],
              "contracts": {"SIM-A": {"symbol": "SIMA", "con_id": 4242}}}
    path = write_broker_config(
        tmp_path, write_bars(tmp_path / "data", "SIM-A"), broker, instrument=SIM, size=100,
        snapshot_every=10,
        feed={"mode": "broker", "lockstep": False, "speed": "max",
              "retention": {"max_age_s": None, "max_messages": 5, "check_every_s": 0.2}})
    session = start_session(load_paper_config(path), session_id="retain1")
    fake = fake_ib.fake
    strategy = session.children["strategy:sma"]
    stream = tmp_path / "var" / "retain1" / "feed.stream.journal"

    def settled(minimum: int) -> dict[str, Any] | None:
        status = ray.get(session.feed.status.remote())
        ok = status["total"] >= minimum and status["cursor"] == status["total"]
        return status if ok else None

    def kept() -> tuple[int, int]:  # (entries in the stream's journal, first seq kept)
        reader = JournalReader(stream)
        try:
            rows = reader.entries(0, reader.last_seq())
            return len(rows), rows[0][0] if rows else 0
        finally:
            reader.close()

    def last_bid() -> float | None:  # the newest quote's bid in the stream's journal
        reader = JournalReader(stream)
        try:
            last = reader.entries(reader.last_seq() - 1, reader.last_seq())
            return last[-1][1].bid_price / FIXED_SCALE if last else None  # type: ignore[union-attr]
        finally:
            reader.close()

    def quotes(n: int, base: float) -> None:
        for i in range(n):
            assert fake_ib.call(fake.quote, "SIMA", base + i / 100, 300, base + 0.05 + i / 100,
                                200)
            time.sleep(0.02)

    try:
        _until(lambda: fake_ib.call(lambda: bool(fake._live(fake.mkt_subs, "SIMA"))))
        quotes(80, 100.0)
        first = _until(lambda: settled(70))
        entries, _ = _until(lambda: (k := kept())[1] > 20 and k)  # the first seq kept
        before = strategy.get("summary")
        _kill_worker(strategy)
        after = _until(lambda: strategy.get("summary"))
        quotes(10, 101.0)  # quotes the client had not handed on yet merge (the latest book wins)
        status = _until(lambda: settled(first["total"] + 1) if last_bid() == 101.09 else None)
        final = strategy.get("summary")
    finally:
        session.stop(write=False)
    assert entries < first["total"] - 20  # the stream's oldest messages went
    assert after["state_hash"] == before["state_hash"] and after["cursor"] == before["cursor"]
    assert status["error"] is None and final["cursor"] == status["cursor"] == status["total"]
