"""The store actor: Arrow in and out through the one process that opens the embedded store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from actors.store import StoreActor
from runtime.errors import StoreError

pytestmark = pytest.mark.ray


@pytest.fixture
def store_actor(ray_local: Any, tmp_path: Path) -> Iterator[Any]:
    actor = StoreActor.remote(f"chdb://{tmp_path / 'ch'}")
    yield actor
    ray_local.get(actor.close.remote())
    ray_local.kill(actor)


def quotes(n: int) -> pa.Table:
    return pa.table({
        "ts_event": list(range(n)), "ts_init": list(range(n)), "seq": [0] * n,
        "instrument_id": ["SIM-A"] * n, "bid_price": [10**9 + i for i in range(n)],
        "bid_size": [1] * n, "ask_price": [2 * 10**9] * n, "ask_size": [2**63 - 1] * n,
    })


def test_arrow_round_trip_with_exact_values(ray_local: Any, store_actor: Any) -> None:
    assert ray_local.get(store_actor.insert_arrow.remote("quotes", quotes(5))) == 5
    assert ray_local.get(store_actor.insert_tables.remote({"quotes": quotes(5)})) == {"quotes": 5}
    table = ray_local.get(store_actor.query_arrow.remote(
        "SELECT bid_price, ask_size FROM quotes FINAL WHERE instrument_id = {i:String} "
        "ORDER BY ts_event", {"i": "SIM-A"}))
    assert table.column("bid_price").to_pylist() == [10**9 + i for i in range(5)]  # once each
    assert table.column("ask_size").to_pylist() == [2**63 - 1] * 5
    assert ray_local.get(store_actor.ping.remote()) is True


def test_a_simulated_outage_raises_store_errors(ray_local: Any, store_actor: Any) -> None:
    ray_local.get(store_actor.set_available.remote(False))
    assert ray_local.get(store_actor.ping.remote()) is False
    with pytest.raises(StoreError, match="unavailable"):
        ray_local.get(store_actor.insert_arrow.remote("quotes", quotes(1)))
    with pytest.raises(StoreError):
        ray_local.get(store_actor.query_arrow.remote("SELECT 1"))
    ray_local.get(store_actor.set_available.remote(True))
    assert ray_local.get(store_actor.insert_arrow.remote("quotes", quotes(1))) == 1


def test_the_store_is_held_by_the_actor_process(
    ray_local: Any, store_actor: Any, tmp_path: Path
) -> None:
    from backtest.store import open_store

    pid = ray_local.get(store_actor.pid.remote())
    with pytest.raises(StoreError, match=f"open by process {pid}"):
        open_store(f"chdb://{tmp_path / 'ch'}")
