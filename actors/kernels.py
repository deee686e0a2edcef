"""The kernels the actors hold, and their journals.

In a backtest one :class:`runtime.kernel.Kernel` runs the strategies and the risk check together.
In paper trading they live in different actors: the same kernel, composed differently
(:mod:`runtime.approval`), without changing what either computes:

* a strategy actor's kernel (``SessionSetup.strategy_host``, ``risk_elsewhere=True``) runs
  unchanged strategies; their intents leave as messages for risk and an order stays
  ``initialized`` (pending, not open) until the risk actor's answer comes back through
  ``handle``: the approved command or an ``OrderDenied``;
* the risk actor's kernel (``SessionSetup.risk_kernel``) has no strategies: intents come in
  through ``handle`` and go through the same risk engine, orders and portfolio; a repeated
  intent gets the answer it got the first time.

Neither keeps a book: both read the book actors' views of the market data
(``SessionSetup`` builds them with ``books_elsewhere=True``; :class:`Views` gives a step's views
to the kernel and journals those it read, as its own input).

Both move their clock to a report's delivery time (``ts_init``), as the backtest loop does, so
a replay of their journal reproduces the same state (and hash). An operator's commands
(``runtime.messages.OperatorCommand``) are journaled and handled like any input.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actors.journals import open_journal
from actors.step import REPLY, Replies, decode_views, encode_views, views_of
from runtime.errors import InvariantError
from runtime.journal import Blob
from runtime.kernel import Kernel
from runtime.messages import (
    Bar,
    BookDeltas,
    BookSnapshot,
    CancelOrder,
    MarketData,
    ModifyOrder,
    QuoteTick,
    SubmitOrder,
    TradeTick,
)
from runtime.recovery import FeedLog, JournaledKernel
from runtime.timers import idle_timer
from runtime.views import BookView, ViewedBooks

__all__ = [
    "INTENT_TYPES",
    "MARKET_TYPES",
    "VIEWS",
    "Views",
    "idle_timer",
    "open_journaled",
]

INTENT_TYPES = (SubmitOrder, CancelOrder, ModifyOrder)
MARKET_TYPES = (QuoteTick, TradeTick, Bar, BookDeltas, BookSnapshot)
VIEWS = "book.views"  # a journal record: the views a kernel read its market data with


def viewed(kernel: Kernel) -> ViewedBooks:
    books = kernel.books
    if not isinstance(books, ViewedBooks):
        raise InvariantError("an actor's kernel reads the book actors' views: build it with "
                             "books_elsewhere=True")
    return books


def _give(kernel: Kernel, payload: bytes) -> None:
    viewed(kernel).give(decode_views(payload))


class Views:
    """A step's views (the book actors' answers, ``books``) for the messages a kernel may take
    from ``msgs[skip:]`` (feed ``index`` on), but those the feed conflated (``dropped``:
    positions in ``msgs``): given to the kernel now, journaled as they are read (:meth:`note`),
    with the conflated messages passed over (:meth:`take`)."""

    def __init__(self, jk: JournaledKernel, index: int, msgs: Sequence[MarketData],
                 books: bytes, skip: int = 0, dropped: Sequence[int] = ()) -> None:
        reader = viewed(jk.kernel)
        self.dropped = [index + k for k in dropped if skip <= k < len(msgs)]  # ascending
        gone = set(self.dropped)
        given: list[BookView] = []
        for view in views_of(books):
            k = view.index - index
            if skip <= k < len(msgs) and view.index not in gone and reader.needs(msgs[k]):
                given.append(reader.trim(view))
        reader.give(given)
        self.jk, self.given, self.gone, self.noted, self.dropped_noted = jk, given, gone, 0, 0

    def take(self, index: int, msg: MarketData) -> bool:
        """Whether the kernel takes ``msg`` (feed ``index``); a conflated one is passed over
        (its position moves on)."""
        if index in self.gone:
            self.jk.skip(msg)
            return False
        return True

    def note(self, upto: int) -> None:
        """The views of the messages taken before feed index ``upto`` (and which of them were
        passed over), journaled (those not journaled yet): before the marker that covers those
        messages, so a replay gives them to the kernel first (``JournaledKernel.note``) and
        skips the same ones (``FeedJournal.drop``)."""
        given, k = self.given, self.noted
        while k < len(given) and given[k].index < upto:
            k += 1
        if k > self.noted:
            self.jk.note(Blob(VIEWS, encode_views(given[self.noted:k])))
            self.noted = k
        dropped, k = self.dropped, self.dropped_noted
        while k < len(dropped) and dropped[k] < upto:
            k += 1
        if k > self.dropped_noted:
            self.jk.journal.drop(dropped[self.dropped_noted:k])
            self.dropped_noted = k


def open_journaled(kernel_factory: Any, path: Path, feed: FeedLog, *, snapshot_every: int,
                   replies: Replies) -> tuple[JournaledKernel, int, bool]:
    """A journaled kernel restored from ``path`` (its latest snapshot, then its tail with the
    market data re-read from ``feed``, the feed's log); its market cursor; whether it had
    started. ``snapshot_every``: a snapshot (the whole kernel) every this many inputs,
    compacting what it covers (``runtime.recovery``). ``replies``: where the journal's latest
    step reply (``actors.step.REPLY``) goes back. A snapshot happens inside a step's
    ``handle``, before the step's reply is journaled, so the latest reply is always in the
    tail."""
    path.parent.mkdir(parents=True, exist_ok=True)
    journal = open_journal(path)
    started = journal.last_seq > 0
    jk = JournaledKernel.restore(kernel_factory, journal, feed, snapshot_every=snapshot_every,
                                 blobs={VIEWS: _give,
                                        REPLY: lambda _, payload: replies.load(payload)},
                                 latest=(REPLY,))
    return jk, jk.position, started
