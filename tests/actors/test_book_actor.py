"""The book actor, the step's first stage: the views of its instrument's messages, each applied
once and answered again while a reader has not taken it; on the shared Ray cluster, the same
book and the same answers after a SIGKILL (a snapshot and the rest re-read from the feed's
log)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import msgspec
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


def _step(index: int, msgs: list[QuoteTick]) -> bytes:
    from actors.step import HotInput, encode

    return encode(HotInput(index, list(msgs), msgs[-1].ts_event, {}, [], 0, exact=True))


def _views(quotes: list[QuoteTick]) -> list[Any]:
    from runtime.views import InstrumentBook

    book = InstrumentBook("BK")
    return [book.apply(k, q) for k, q in enumerate(quotes)]


def _expected_hash(quotes: list[QuoteTick]) -> str:
    from actors.book import BookStage

    stage = BookStage("BK")
    stage.apply(0, quotes)
    return stage.state_hash()


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


def test_a_step_answers_the_views_and_keeps_those_not_taken_yet() -> None:
    """A lockstep step carries messages the strategies may not take yet: the book applies them
    once and answers their views again when a step carries them again; what every reader took
    (before the step's index) it forgets."""
    from actors.book import BookStage

    quotes = _quotes(30)
    other = QuoteTick(seq=99, ts_event=quotes[20].ts_event, ts_init=quotes[20].ts_event,
                      instrument_id="OTHER", bid_price=fixed(1), bid_size=fixed(1),
                      ask_price=fixed(2), ask_size=fixed(1))
    feed = [*quotes[:20], other, *quotes[20:]]  # another instrument's message at index 20
    expected = _views(quotes[:20])
    expected.append(None)
    expected += _views(quotes)[20:]
    expected[21:] = [msgspec.structs.replace(v, index=v.index + 1) for v in expected[21:]]
    stage = BookStage("BK")
    assert stage.step(0, feed[:10]) == expected[:10]
    assert stage.step(4, feed[4:20]) == expected[4:20]  # 4..9 again, not applied twice
    assert stage.book.applied == 20 and [v.index for v in stage.kept] == list(range(4, 20))
    # a feed resumed from an older cursor: what every reader took is not answered again
    assert stage.step(2, feed[2:5]) == expected[4:5]
    assert stage.step(20, feed[20:23]) == expected[21:23]  # its instrument's only
    assert stage.book.applied == 22 and stage.book.last_index == 22


@pytest.mark.parametrize("snapshot_every", [20_000, 120])
def test_steps_repeats_and_sigkill(tmp_path: Path, snapshot_every: int) -> None:
    """Without a snapshot the book replays every step's position from the feed's log; with one
    every 120 positions, the latest snapshot and the positions after it. Restored, it has the
    same book and answers a step carried again with the same views."""
    import ray

    from actors.book import BookActor
    from actors.step import encode_views
    from runtime.journal import Journal

    quotes = _quotes(400)
    expected = _views(quotes)
    setup = _setup(tmp_path / "s", quotes, snapshot_every)
    book = BookActor.remote("BK", setup)
    for k in range(0, 300, 50):
        # the views on the wire (bytes: a decoded nan is not equal to itself)
        assert ray.get(book.hot_step.remote(_step(k, quotes[k:k + 50]))) \
            == encode_views(expected[k:k + 50])
    # a lockstep step whose messages the strategies take only in part
    assert ray.get(book.hot_step.remote(_step(300, quotes[300:]))) \
        == encode_views(expected[300:])
    stats = ray.get(book.stats.remote())
    assert (stats["applied"], stats["last_index"]) == (400, 399)
    before = ray.get(book.state_hash.remote())
    assert before == _expected_hash(quotes)

    pid = ray.get(book.pid.remote())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the actor is known dead
        try:
            ray.get(book.pid.remote(), timeout=5)
        except ray.exceptions.ActorDiedError:
            break
        except (ray.exceptions.RayError, TimeoutError):
            pass
        time.sleep(0.05)
    ray.kill(book, no_restart=True)
    # started again with the same arguments, as its supervisor does
    book = BookActor.remote("BK", setup)
    assert ray.get(book.pid.remote()) != pid
    assert ray.get(book.state_hash.remote()) == before  # restored
    # the rest of that step, carried again: the same views, nothing applied twice
    assert ray.get(book.hot_step.remote(_step(350, quotes[350:]))) \
        == encode_views(expected[350:])
    assert ray.get(book.stats.remote())["applied"] == 400
    ray.kill(book, no_restart=True)
    with Journal(setup.path("book.BK")) as journal:  # positions only, no market data
        entries = list(journal.entries())
        assert {type(r).__name__ for _, r in entries} == {"Blob"}
        assert (journal.restore().snapshot is not None) == (snapshot_every == 120)
        assert len(entries) == (7 if snapshot_every == 20_000 else 1)
