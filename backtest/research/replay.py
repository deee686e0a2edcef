"""A feed whose messages are made once and replayed by every trial a worker runs.

``tradewind backtest`` makes its messages lazily, one Arrow batch at a time, so a million bars
never sit in memory as a million objects. A study runs the same feed many times in one worker
process: making the messages again for every trial would cost a tenth or more of each backtest.
Messages are frozen (msgspec ``frozen=True``), so one list of them can be replayed by any number
of runs. :func:`replay_feed` makes that list once per feed (up to :data:`MAX_REPLAY_EVENTS`, a
bound on the memory it holds; a larger feed is replayed the lazy way), and a time window of a
replayed feed (walk-forward) is a slice of the same list.

No Ray here: :mod:`backtest.research.fanout` keeps one of these per feed in each worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from backtest.feed import BATCH_ROWS, Feed
from runtime.messages import AuxData, MarketData

__all__ = ["MAX_REPLAY_EVENTS", "ReplayFeed", "replay_feed"]

MAX_REPLAY_EVENTS = 1_000_000  # ~250 MB of bars per worker at most


@dataclass
class ReplayFeed(Feed):
    """A :class:`Feed` with its messages made once; windows are slices of them."""

    replay: list[MarketData | AuxData] = field(default_factory=list, repr=False)
    stamps: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64), repr=False)

    def iter_messages(self, batch_rows: int = BATCH_ROWS) -> Iterator[MarketData | AuxData]:
        return iter(self.replay)

    def window(self, start_ns: int | None, end_ns: int | None) -> Feed:
        """The feed where ``start_ns <= ts_event < end_ns``: sliced tables, sliced messages."""
        if start_ns is None and end_ns is None:
            return self
        part = Feed.window(self, start_ns, end_ns)
        lo = 0 if start_ns is None else int(np.searchsorted(self.stamps, start_ns, "left"))
        hi = len(self.stamps) if end_ns is None else int(np.searchsorted(self.stamps, end_ns,
                                                                          "left"))  # fmt: skip
        if hi - lo != part.n_events:  # cannot happen on sorted stamps; be lazy rather than wrong
            return part
        return ReplayFeed(
            tables=part.tables,
            dataset_hash=part.dataset_hash,
            order=part.order,
            n_events=part.n_events,
            start_ns=part.start_ns,
            end_ns=part.end_ns,
            replay=self.replay[lo:hi],
            stamps=self.stamps[lo:hi],
        )


def replay_feed(feed: Feed, *, max_events: int = MAX_REPLAY_EVENTS) -> Feed:
    """``feed`` with its messages made once, or ``feed`` itself when it is too large to hold
    (or its replay order is not sorted by time, so windows could not be slices)."""
    if isinstance(feed, ReplayFeed) or feed.n_events > max_events:
        return feed
    stamps = feed.timestamps()
    if stamps.size > 1 and bool((np.diff(stamps) < 0).any()):
        return feed
    return ReplayFeed(
        tables=feed.tables,
        dataset_hash=feed.dataset_hash,
        order=feed.order,
        n_events=feed.n_events,
        start_ns=feed.start_ns,
        end_ns=feed.end_ns,
        replay=list(feed.iter_messages()),
        stamps=stamps,
    )
