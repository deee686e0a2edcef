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
    """The book's part of a lockstep step of ``msgs`` from feed ``index`` on."""
    from actors.step import HotInput, route

    return route(HotInput(index, list(msgs), msgs[-1].ts_event, {}, [], 0, exact=True),
                 ["BK"])[0]


def _take(stage: Any, index: int, msgs: list[QuoteTick]) -> list[Any]:
    """``stage``'s views of a step of ``msgs`` from feed ``index`` on, as its actor takes it."""
    from actors.step import decode_book

    part = decode_book(_step(index, msgs))
    views: list[Any] = stage.step(part.index, part.count, part.at, part.msgs)
    return views


def _views(quotes: list[QuoteTick]) -> list[Any]:
    from runtime.views import InstrumentBook

    book = InstrumentBook("BK")
    return [book.apply(k, q) for k, q in enumerate(quotes)]


def _expected_hash(quotes: list[QuoteTick]) -> str:
    from actors.book import BookStage

    stage = BookStage("BK")
    stage.replay(0, quotes)
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
    assert _take(stage, 0, feed[:10]) == expected[:10]
    assert _take(stage, 4, feed[4:20]) == expected[4:20]  # 4..9 again, not applied twice
    assert stage.book.applied == 20 and [v.index for v in stage.kept] == list(range(4, 20))
    # a feed resumed from an older cursor: what every reader took is not answered again
    assert _take(stage, 2, feed[2:5]) == expected[4:5]
    assert _take(stage, 20, feed[20:23]) == expected[21:23]  # its instrument's only
    assert stage.book.applied == 22 and stage.book.last_index == 22


def test_a_step_routes_each_book_its_instruments_messages_only() -> None:
    """Each book actor gets its instrument's messages of the step with their feed indices,
    the step's extent and which of them the feed conflated; a message of an instrument
    without a book goes to none; a carrier's no-op step stays a no-op for every book."""
    from actors.step import BOOK_PING, PING, HotInput, decode_book, decode_input, route

    quotes = _quotes(6)
    a, b = quotes[:3], [msgspec.structs.replace(q, instrument_id="B") for q in quotes[3:]]
    lone = msgspec.structs.replace(quotes[0], instrument_id="NO-BOOK")
    msgs = [a[0], b[0], lone, a[1], b[1], a[2], b[2]]
    inp = HotInput(40, msgs, msgs[-1].ts_event, {}, [], 0, dropped=[0, 1, 3])
    part_a, part_b, part_c = (decode_book(p) for p in route(inp, ["BK", "B", "C"]))
    assert (part_a.index, part_a.count, part_a.at, part_a.msgs, part_a.dropped) \
        == (40, 7, [40, 43, 45], a, [40, 43])
    assert (part_b.index, part_b.count, part_b.at, part_b.msgs, part_b.dropped) \
        == (40, 7, [41, 44, 46], b, [41])
    assert (part_c.at, part_c.msgs, part_c.dropped) == ([], [], [])
    assert route(decode_input(PING), ["BK", "B"]) == [BOOK_PING, BOOK_PING]
    assert decode_book(BOOK_PING).index == -1


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
