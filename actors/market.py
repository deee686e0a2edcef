"""The market side: book actors (one per instrument) and the feed actor that drives a session.

A book actor keeps the instrument's L2 book and features from the market data the feed hands
it and pushes snapshots to its subscribers. Its market data lives in the feed's log: its
journal holds only the feed position it reached (one small record per batch) and, every
``snapshot_every`` feed positions, a snapshot of its state (pickled), behind which the journal
is compacted; a restart reads the snapshot and re-reads the rest from the feed's log
(``runtime.recovery``). Pushing conflates: each subscriber has one slot holding the newest
snapshot and at most one call in flight, so a slow consumer gets the latest state, never a
growing queue.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import pickle
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import msgspec
import ray

from actors.base import ACTOR_OPTIONS, actor, incarnate
from actors.journals import open_journal
from runtime.book import L2Book
from runtime.errors import InvariantError
from runtime.features import FeatureSet
from runtime.journal import JournalRecord
from runtime.messages import AnyMessage, BookDeltas, BookSnapshot, MarketData, QuoteTick, TradeTick
from runtime.recovery import FeedJournal

if TYPE_CHECKING:
    from actors.setup import SessionSetup

__all__ = ["BookActor", "BookState", "pack"]

_ENCODE = msgspec.msgpack.Encoder()
_DECODE = msgspec.msgpack.Decoder(tuple[list[int], list[AnyMessage]])


def pack(indices: list[int], msgs: Sequence[MarketData]) -> bytes:
    """A batch on the wire to :meth:`BookActor.on_packed` (msgpack: ~0.1 µs per event to
    encode, ~0.25 µs to decode, against ~2–4 µs for Ray's pickling of message objects)."""
    return _ENCODE.encode((indices, msgs))


def unpack(payload: bytes) -> tuple[list[int], list[MarketData]]:
    """Inverse of :func:`pack` (a book batch holds market data only)."""
    indices, msgs = _DECODE.decode(payload)
    return indices, cast("list[MarketData]", msgs)


def open_book(instrument_id: str, setup: SessionSetup) -> tuple[BookState, FeedJournal]:
    """An instrument's book state restored from its journal (``book.<instrument>``) and the
    feed's log; the journal, for what comes next."""
    state = BookState(instrument_id)

    def load(payload: bytes) -> None:
        nonlocal state
        state = pickle.loads(payload)  # the book's own journal

    def market(start: int, msgs: Sequence[MarketData]) -> None:
        mine = [(start + k, m) for k, m in enumerate(msgs) if m.instrument_id == instrument_id]
        state.apply([i for i, _ in mine], [m for _, m in mine])

    def record(entry: JournalRecord) -> None:
        raise InvariantError(f"book journal: unexpected {type(entry).__name__}")

    path = setup.path(f"book.{instrument_id}")
    path.parent.mkdir(parents=True, exist_ok=True)
    journal = FeedJournal.restore(open_journal(path), setup.feed_log(),
                                  snapshot_every=setup.snapshot_every, load=load,
                                  market=market, record=record)
    return state, journal


class BookState:
    """An instrument's book and features, fed in feed order (no Ray here)."""

    def __init__(self, instrument_id: str) -> None:
        self.instrument_id = instrument_id
        self.book = L2Book(instrument_id)
        self.features = FeatureSet(instrument_id)
        self.last_index = -1
        self.applied = 0
        self.ts_event = 0

    def apply(self, indices: Sequence[int], msgs: Sequence[MarketData]) -> int:
        n = 0
        for index, msg in zip(indices, msgs, strict=True):
            if index <= self.last_index:
                continue  # a repeated batch
            self.last_index = index
            self._apply(msg)
            n += 1
        self.applied += n
        return n

    def _apply(self, msg: MarketData) -> None:
        self.ts_event = msg.ts_event
        if type(msg) is QuoteTick:
            self.features.on_quote(msg)
        elif type(msg) is TradeTick:
            self.features.on_trade(msg)
        elif type(msg) is BookDeltas or type(msg) is BookSnapshot:
            if isinstance(msg, BookSnapshot):
                self.book.apply_snapshot(msg)
            else:
                self.book.apply_deltas(msg)
            if self.book.synced:
                self.features.on_book(self.book)

    def snapshot(self) -> dict[str, Any]:
        features = {k: (None if math.isnan(v) else v) for k, v in self.features.snapshot().items()}
        return {"instrument_id": self.instrument_id, "index": self.last_index,
                "ts_event": self.ts_event, "bids": self.book.bids(5), "asks": self.book.asks(5),
                "features": features}

    def state_hash(self) -> str:
        state = self.snapshot() | {"applied": self.applied, "all_bids": self.book.bids(),
                                   "all_asks": self.book.asks()}
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


@actor(**ACTOR_OPTIONS)
class BookActor:
    """Book and features of one instrument; conflated snapshots to subscribers."""

    def __init__(self, instrument_id: str, setup: SessionSetup | None,
                 subscribers: Sequence[str] = ()) -> None:
        """``setup``: the session's (its journal and the feed's log); None: no journal.
        ``subscribers``: names of strategy actors (looked up when first pushed to)."""
        import os

        self._pid = os.getpid()
        self._incarnation = 0
        self.state = BookState(instrument_id)
        self.journal: FeedJournal | None = None
        if setup is not None:
            self._incarnation = incarnate(setup.path(f"book.{instrument_id}.incarnation"))
            self.state, self.journal = open_book(instrument_id, setup)
        self._early: dict[int, tuple[list[int], list[MarketData], bytes | None]] = {}
        self.subscribers: list[Any] = list(subscribers)
        self.conflated = 0
        self._slots: list[dict[str, Any] | None] = [None] * len(self.subscribers)
        self._wake = [asyncio.Event() for _ in self.subscribers]
        self._pushers: list[asyncio.Task[None]] = []

    async def on_packed(self, prev_index: int | None, payload: bytes) -> int:
        """A batch in feed order, as :func:`pack` bytes. Async calls may arrive out of order:
        ``prev_index`` (the last index the feed sent this book before; None: unknown) puts
        them back in order."""
        indices, msgs = unpack(payload)
        return self._take(prev_index, indices, msgs, payload)

    def _take(self, prev_index: int | None, indices: list[int], msgs: list[MarketData],
              payload: bytes | None) -> int:
        if prev_index is not None and prev_index > self.state.last_index:
            # an earlier batch is still on its way
            self._early[prev_index] = (indices, msgs, payload)
            return 0
        n = self._apply(indices, msgs, payload)
        while self._early and (nxt := self._early.pop(self.state.last_index, None)):
            n += self._apply(*nxt)
        if n and self.subscribers:
            self._push(self.state.snapshot())
        return n

    def _apply(self, indices: list[int], msgs: list[MarketData], payload: bytes | None) -> int:
        n = self.state.apply(indices, msgs)
        journal = self.journal
        if n and journal is not None:
            journal.reach(indices[-1], msgs[-1])
            journal.flush()
            if journal.due():
                journal.snapshot(pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL))
        return n

    def _push(self, snapshot: dict[str, Any]) -> None:
        if not self._pushers:
            self._pushers = [asyncio.ensure_future(self._pusher(k))
                             for k in range(len(self.subscribers))]
        for k in range(len(self.subscribers)):
            if self._slots[k] is not None:
                self.conflated += 1  # the consumer is behind: the newer snapshot wins
            self._slots[k] = snapshot
            self._wake[k].set()

    async def _pusher(self, k: int) -> None:
        while True:
            await self._wake[k].wait()
            self._wake[k].clear()
            snapshot, self._slots[k] = self._slots[k], None
            if snapshot is not None:
                if isinstance(self.subscribers[k], str):
                    self.subscribers[k] = ray.get_actor(self.subscribers[k])
                try:
                    await self.subscribers[k].on_snapshot.remote(snapshot)
                except ray.exceptions.RayActorError:
                    await asyncio.sleep(0.1)  # restarting: the next snapshot will get there

    async def snapshot(self) -> dict[str, Any]:
        return self.state.snapshot()

    async def stats(self) -> dict[str, int]:
        return {"applied": self.state.applied, "last_index": self.state.last_index,
                "conflated": self.conflated}

    async def state_hash(self) -> str:
        return self.state.state_hash()

    async def pid(self) -> int:
        return self._pid

    async def incarnation(self) -> int:
        return self._incarnation

    async def ping(self) -> float:
        import time

        return time.time()

    async def watch(self) -> None:
        await asyncio.Event().wait()
