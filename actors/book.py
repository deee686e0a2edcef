"""The book actor: one instrument's L2 book and features, the first stage of every step.

Each step (``actors.step``) reaches the book actors first: each takes its part of the step
(``actors.step.route``: its instrument's messages, with their feed indices, and the step's
extent), applies those messages to its :class:`runtime.views.InstrumentBook` (once: a message
it applied before is not applied again) and answers their views
(:class:`runtime.views.BookView`: the top of book and the features after each message), which
the strategy actors and the risk actor read instead of keeping books of their own. So the book
and features of an instrument are computed once, in its book actor, in lockstep as in real
time.

A lockstep step may carry messages the strategies do not take yet (a strategy stops at the
first message it acts on): the actor keeps the views of the messages it applied from the
step's ``index`` on (everything before it every reader has taken) and answers them again when
a step carries them again. Its market data lives in the feed's log: its journal holds only the
feed position it reached (one small record per step) and, every ``snapshot_every`` feed
positions, a snapshot (the book, its features and the views it keeps, pickled), behind which
the journal is compacted; a restart reads the snapshot and re-applies the rest from the feed's
log (``runtime.recovery``), keeping the views again, so a restored book actor answers what it
would have answered. Its state is the feed's log's alone, so a snapshot it cannot use (of
another :data:`SNAPSHOT_VERSION`, unversioned, or one that does not load with this code: an
upgrade) is set aside with a one-line warning and the book rebuilt from the feed's log.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import math
import pickle
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from actors.base import ACTOR_OPTIONS, WATCH_GROUPS, Child, actor, serialized
from actors.journals import open_journal
from actors.step import decode_book, encode_views
from runtime.errors import InvariantError
from runtime.journal import JournalRecord
from runtime.messages import MarketData
from runtime.recovery import FeedJournal
from runtime.views import BookView, InstrumentBook

if TYPE_CHECKING:
    from actors.setup import SessionSetup

__all__ = ["SNAPSHOT_VERSION", "BookActor", "BookStage", "commit", "open_book"]

log = logging.getLogger(__name__)

#: the version of the pickled :class:`BookStage` (and the classes it holds) its snapshots are
#: written as: bump it when their shape changes, and old snapshots are rebuilt from the feed
SNAPSHOT_VERSION = 1


class BookStage:
    """An instrument's book and the views not every reader has taken yet (no Ray here)."""

    def __init__(self, instrument_id: str) -> None:
        self.book = InstrumentBook(instrument_id)
        self.kept: deque[BookView] = deque()  # views from `taken` on, in feed order
        self.taken = 0  # every reader took the feed's messages before this index

    @property
    def instrument_id(self) -> str:
        return self.book.instrument_id

    def step(self, index: int, count: int, at: Sequence[int], msgs: Sequence[MarketData],
             journal: FeedJournal | None = None) -> list[BookView]:
        """A step of ``count`` messages from feed ``index`` on, of which ``msgs`` (at feed
        indices ``at``) are this instrument's: those not applied before applied, and the views
        of the step's messages (every reader took the messages before ``index``)."""
        if index > self.taken:
            self.taken = index
            kept = self.kept
            while kept and kept[0].index < index:
                kept.popleft()
        self.apply(at, msgs, journal)
        end = index + count
        return [v for v in self.kept if index <= v.index < end]

    def apply(self, at: Sequence[int], msgs: Sequence[MarketData],
              journal: FeedJournal | None = None) -> int:
        """Apply this instrument's ``msgs`` (at feed indices ``at``, ascending) but those
        applied before; how many."""
        book, kept = self.book, self.kept
        first = bisect.bisect_right(at, book.last_index)  # those before: applied already
        for k in range(first, len(msgs)):
            view = book.apply(at[k], msgs[k])
            if view is not None:
                kept.append(view)
        if first < len(msgs) and journal is not None:
            journal.reach(at[-1], msgs[-1])
        return len(msgs) - first

    def replay(self, start: int, msgs: Sequence[MarketData]) -> int:
        """Apply this instrument's messages among the feed's ``msgs`` (feed ``start`` on)."""
        mine = self.instrument_id
        own = [k for k, msg in enumerate(msgs) if msg.instrument_id == mine]
        return self.apply([start + k for k in own], [msgs[k] for k in own])

    def view(self) -> dict[str, Any]:
        """The book's top five levels and its features now (``None`` for unknown values)."""
        book = self.book
        features = {k: (None if math.isnan(v) else v)
                    for k, v in book.features.snapshot().items()}
        return {"instrument_id": self.instrument_id, "index": book.last_index,
                "ts_event": book.ts_event, "bids": book.book.bids(5), "asks": book.book.asks(5),
                "features": features}

    def state_hash(self) -> str:
        """The book (every level), its features and what it applied."""
        state = self.view() | {"applied": self.book.applied, "all_bids": self.book.book.bids(),
                               "all_asks": self.book.book.asks()}
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def open_book(instrument_id: str, setup: SessionSetup) -> tuple[BookStage, FeedJournal]:
    """An instrument's book stage restored from its journal (``book.<instrument>``) and the
    feed's log; the journal, for what comes next."""
    stage = BookStage(instrument_id)

    def load(payload: bytes) -> None:
        nonlocal stage
        stage = pickle.loads(payload)  # the book's own journal

    def market(start: int, msgs: Sequence[MarketData]) -> None:
        stage.replay(start, msgs)

    def record(entry: JournalRecord) -> None:
        raise InvariantError(f"book journal: unexpected {type(entry).__name__}")

    path = setup.path(f"book.{instrument_id}")

    def rebuild(why: str) -> None:
        log.warning("book %s: %s: %s; rebuilding it from the feed's log", instrument_id, path,
                    why)

    path.parent.mkdir(parents=True, exist_ok=True)
    journal = FeedJournal.restore(open_journal(path), setup.feed_log(),
                                  snapshot_every=setup.snapshot_every, load=load,
                                  market=market, record=record, version=SNAPSHOT_VERSION,
                                  rebuild=rebuild)
    return stage, journal


def commit(stage: BookStage, journal: FeedJournal) -> None:
    """The position reached committed, then a snapshot (of :data:`SNAPSHOT_VERSION`) when one
    is due."""
    journal.flush()
    if journal.due():
        journal.snapshot(pickle.dumps(stage, protocol=pickle.HIGHEST_PROTOCOL))


@actor(concurrency_groups=WATCH_GROUPS, **ACTOR_OPTIONS)
@serialized
class BookActor(Child):
    """Book and features of one instrument: the step's first stage (see the module
    docstring)."""

    def __init__(self, instrument_id: str, setup: SessionSetup | None) -> None:
        """``setup``: the session's (its journal and the feed's log); None: no journal."""
        self.stage = BookStage(instrument_id)
        self.journal: FeedJournal | None = None
        if setup is not None:
            self.stage, self.journal = open_book(instrument_id, setup)

    def hot_step(self, data: bytes) -> bytes:
        """This instrument's part of a step (``actors.step.route``): the views of its messages
        in the step (every message applied; no view of those the feed conflated)."""
        inp = decode_book(data)
        if inp.index < 0:  # a carrier's warm-up: nothing to take
            return encode_views([])
        journal = self.journal
        views = self.stage.step(inp.index, inp.count, inp.at, inp.msgs,  # type: ignore[arg-type]
                                journal)
        if inp.dropped:  # conflated: applied to the book, read by no one
            gone = set(inp.dropped)
            views = [v for v in views if v.index not in gone]
        if journal is not None:
            commit(self.stage, journal)
        return encode_views(views)

    def snapshot(self) -> dict[str, Any]:
        return self.stage.view()

    def stats(self) -> dict[str, int]:
        return {"applied": self.stage.book.applied, "last_index": self.stage.book.last_index,
                "kept": len(self.stage.kept)}

    def state_hash(self) -> str:
        return self.stage.state_hash()
