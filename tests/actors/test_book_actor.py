"""The book actor on the shared Ray cluster: packed batches put back in feed order, repeats not
applied twice, the same state after a SIGKILL (a snapshot and the rest re-read from the feed's
log), and conflated snapshots to a slow subscriber (the latest wins, never a queue)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.messages import QuoteTick
from runtime.values import fixed

pytestmark = pytest.mark.usefixtures("ray_local")


def _quotes(n: int) -> list[QuoteTick]:
    out = []
    for i in range(n):
        bid = fixed(100) + (i % 13) * fixed("0.01")
        out.append(QuoteTick(seq=i, ts_event=10**9 + i * 10**6, ts_init=10**9 + i * 10**6,
                             instrument_id="BK", bid_price=bid, bid_size=fixed(100 + i % 5),
                             ask_price=bid + fixed("0.02"), ask_size=fixed(200)))
    return out


def _batches(quotes: list[QuoteTick], size: int) -> list[tuple[int | None, bytes]]:
    from actors.market import pack

    out = []
    for k in range(0, len(quotes), size):
        part = quotes[k:k + size]
        out.append((k - 1 if k else None, pack(list(range(k, k + len(part))), part)))
    return out


def _expected_hash(quotes: list[QuoteTick]) -> str:
    from actors.market import BookState

    state = BookState("BK")
    state.apply(list(range(len(quotes))), quotes)
    return state.state_hash()


def _setup(folder: Path, quotes: list[QuoteTick], snapshot_every: int) -> Any:
    """A session's setup whose feed's log holds ``quotes``."""
    from actors.feed_log import CACHE, write_log
    from actors.setup import SessionSetup
    from backtest.config import load_config
    from tests.actors.paper_helpers import trading_config

    folder.mkdir(parents=True, exist_ok=True)
    write_log(folder / CACHE, quotes[0].ts_event, quotes)
    return SessionSetup("BK", str(folder), load_config(trading_config("sma", folder)),
                        snapshot_every=snapshot_every)


def _subscriber_class() -> Any:
    import ray

    @ray.remote(num_cpus=0)
    class FakeStrategy:
        def __init__(self) -> None:
            self.seen: list[int] = []

        def on_snapshot(self, snapshot: dict[str, Any]) -> None:
            time.sleep(0.05)  # slower than the book: snapshots must conflate
            self.seen.append(snapshot["index"])

        def received(self) -> list[int]:
            return self.seen

    return FakeStrategy


@pytest.mark.parametrize("snapshot_every", [20_000, 120])
def test_packed_batches_out_of_order_repeats_and_sigkill(tmp_path: Path,
                                                         snapshot_every: int) -> None:
    """Without a snapshot the book replays every batch's position from the feed's log; with
    one every 120 positions, the latest snapshot and the positions after it."""
    import ray

    from actors.market import BookActor
    from runtime.journal import Journal

    quotes = _quotes(400)
    batches = _batches(quotes, 50)
    setup = _setup(tmp_path / "s", quotes, snapshot_every)
    book = BookActor.remote("BK", setup)
    # the second half first: held until the batches before it arrive
    late = [book.on_packed.remote(prev, payload) for prev, payload in batches[4:]]
    assert sum(ray.get(late)) == 0
    assert sum(ray.get([book.on_packed.remote(p, b) for p, b in batches[:4]])) == 400
    assert ray.get(book.on_packed.remote(*batches[2])) == 0  # a repeat changes nothing
    stats = ray.get(book.stats.remote())
    assert (stats["applied"], stats["last_index"]) == (400, 399)
    before = ray.get(book.state_hash.remote())
    assert before == _expected_hash(quotes)

    pid = ray.get(book.pid.remote())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if ray.get(book.pid.remote(), timeout=5) != pid:
                break
        except (ray.exceptions.RayError, TimeoutError):
            time.sleep(0.05)
    assert ray.get(book.state_hash.remote()) == before  # restored
    assert ray.get(book.on_packed.remote(*batches[-1])) == 0  # a retried batch: deduped
    ray.kill(book, no_restart=True)
    with Journal(setup.path("book.BK")) as journal:  # positions only, no market data
        entries = list(journal.entries())
        assert {type(r).__name__ for _, r in entries} == {"Blob"}
        assert (journal.restore().snapshot is not None) == (snapshot_every == 120)
        assert len(entries) == (8 if snapshot_every == 20_000 else 2)


def test_slow_subscriber_gets_conflated_snapshots_the_latest_last(tmp_path: Path) -> None:
    import ray

    from actors.market import BookActor

    name = f"fake.strategy.{os.getpid()}"
    subscriber = _subscriber_class().options(name=name).remote()
    book = BookActor.remote("BK", None, [name])
    batches = _batches(_quotes(1000), 10)  # 100 batches, each pushes a snapshot
    ray.get([book.on_packed.remote(p, b) for p, b in batches])
    deadline = time.monotonic() + 30
    while ray.get(subscriber.received.remote())[-1:] != [999]:
        assert time.monotonic() < deadline, "the latest snapshot never arrived"
        time.sleep(0.05)
    seen = ray.get(subscriber.received.remote())
    stats = ray.get(book.stats.remote())
    assert seen == sorted(seen)  # in order, never an older one after a newer one
    # every push either reached the subscriber or was replaced by a newer one in its slot
    assert len(seen) < len(batches) and stats["conflated"] > 0
    assert stats["applied"] == 1000
    ray.kill(book, no_restart=True)
    ray.kill(subscriber)
