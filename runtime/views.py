"""An instrument's book and features after each market message: computed once, read anywhere.

:class:`InstrumentBook` is the one computation: an :class:`~runtime.book.L2Book` and a
:class:`~runtime.features.FeatureSet` fed in feed order, answering for each quote, trade or
book update a :class:`BookView` (the top of book, when the book is synced, and every feature).
A kernel gets what it needs of it through one of two parts with the same three calls
(``quote``, ``trade``, ``book``, each returning the top of book of a book update or None, and
``features``):

* :class:`LocalBooks` computes in the kernel (a backtest: one process, nothing to share);
  features only for the instruments a strategy wants them for;
* :class:`ViewedBooks` takes the views computed elsewhere (a paper session: the instrument's
  book actor computes them once, and every strategy actor and the risk actor read them). Its
  owner gives it the views of the messages that come next (:meth:`ViewedBooks.give`, in feed
  order) and journals them as its own input, so a replay reads them back without a book.

A view matches its message by instrument, ``ts_event`` and ``seq``; a message that needs a
view (every book update; a quote or trade of an instrument whose features are wanted) and has
none is an :class:`~runtime.errors.InvariantError`, never a stale read.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import msgspec

from runtime.book import L2Book
from runtime.errors import InvariantError
from runtime.features import FEATURES, FeatureSet
from runtime.messages import BookDeltas, BookSnapshot, MarketData, QuoteTick, TradeTick

if TYPE_CHECKING:
    from runtime.features import BookLike

__all__ = ["FEATURES", "BookView", "InstrumentBook", "LocalBooks", "ViewedBooks", "as_features"]

_NAN_FEATURES = dict.fromkeys(FEATURES, math.nan)

Top = tuple[int, int]  # best bid, best ask (fixed point)


class BookView(msgspec.Struct, array_like=True, frozen=True):
    """An instrument after one message (the feed's ``index``): the best bid and ask when the
    message was a book update that left the book synced with both sides (else None), and the
    features (:data:`FEATURES` order; None when the reader does not want them)."""

    index: int
    instrument_id: str
    ts_event: int
    seq: int
    top: tuple[int, int] | None
    features: tuple[float, ...] | None

    def matches(self, msg: MarketData) -> bool:
        return (self.ts_event == msg.ts_event and self.seq == msg.seq
                and self.instrument_id == msg.instrument_id)


def as_features(values: Sequence[float] | None) -> dict[str, float]:
    """A view's features as ``Strategy.features`` returns them (all ``nan`` when unknown)."""
    if values is None:
        return dict(_NAN_FEATURES)
    return dict(zip(FEATURES, values, strict=True))


def _book_top(book: L2Book) -> Top | None:
    if not book.synced:
        return None
    bid, ask = book.best_bid(), book.best_ask()
    return (bid[0], ask[0]) if bid is not None and ask is not None else None


class InstrumentBook:
    """One instrument's book and features, fed in feed order (``index`` dedupes a repeat)."""

    __slots__ = ("applied", "book", "features", "instrument_id", "last_index", "ts_event")

    def __init__(self, instrument_id: str) -> None:
        self.instrument_id = instrument_id
        self.book = L2Book(instrument_id)
        self.features = FeatureSet(instrument_id)
        self.last_index = -1
        self.applied = 0
        self.ts_event = 0

    def apply(self, index: int, msg: MarketData) -> BookView | None:
        """``msg`` (the feed's message at ``index``, of this instrument) applied: its view, or
        None for a bar (no book, no features) or a repeat (``index`` already applied)."""
        if index <= self.last_index:
            return None
        self.last_index = index
        self.applied += 1
        ts_event = self.ts_event = msg.ts_event
        kind = type(msg)
        features = self.features
        top: Top | None = None
        if kind is QuoteTick:
            features.on_quote(msg)  # type: ignore[arg-type]
        elif kind is TradeTick:
            features.on_trade(msg)  # type: ignore[arg-type]
        elif kind is BookDeltas or kind is BookSnapshot:
            top = self._on_book(msg)  # type: ignore[arg-type]
        else:
            return None
        return BookView(index, self.instrument_id, ts_event, msg.seq, top, features.values())

    def _on_book(self, msg: BookDeltas | BookSnapshot) -> Top | None:
        book = self.book
        if isinstance(msg, BookSnapshot):
            book.apply_snapshot(msg)
        else:
            book.apply_deltas(msg)
        if book.synced:
            self.features.on_book(book)
        return _book_top(book)


class LocalBooks:
    """Books and features computed in the kernel (a backtest): a book per instrument that has
    book updates, features for the instruments :meth:`want` names."""

    def __init__(self) -> None:
        self._books: dict[str, L2Book] = {}
        self._features: dict[str, FeatureSet] = {}

    def want(self, instrument_id: str) -> None:
        """Keep this instrument's features from now on."""
        if instrument_id not in self._features:
            self._features[instrument_id] = FeatureSet(instrument_id)

    def quote(self, quote: QuoteTick) -> None:
        features = self._features.get(quote.instrument_id)
        if features is not None:
            features.on_quote(quote)

    def trade(self, trade: TradeTick) -> None:
        features = self._features.get(trade.instrument_id)
        if features is not None:
            features.on_trade(trade)

    def book(self, update: BookDeltas | BookSnapshot) -> Top | None:
        inst = update.instrument_id
        book = self._books.get(inst)
        if book is None:
            book = self._books[inst] = L2Book(inst)
        if isinstance(update, BookSnapshot):
            book.apply_snapshot(update)
        else:
            book.apply_deltas(update)
        if book.synced:
            features = self._features.get(inst)
            if features is not None:
                features.on_book(book)
        return _book_top(book)

    def book_view(self, instrument_id: str, book: BookLike) -> None:
        """A book kept outside (the L2 replay's compiled book) changed: features follow it."""
        features = self._features.get(instrument_id)
        if features is not None:
            features.on_book(book)

    def features(self, instrument_id: str) -> dict[str, float]:
        self.want(instrument_id)
        return self._features[instrument_id].snapshot()


class ViewedBooks:
    """Books and features computed elsewhere (an instrument's book actor): the views of the
    messages that come next, given in feed order (see the module docstring)."""

    def __init__(self) -> None:
        self._wanted: set[str] = set()
        self._pending: deque[BookView] = deque()
        self._latest: dict[str, tuple[float, ...]] = {}

    def want(self, instrument_id: str) -> None:
        self._wanted.add(instrument_id)

    def needs(self, msg: MarketData) -> bool:
        """Whether ``msg`` is read with a view."""
        kind = type(msg)
        if kind is BookDeltas or kind is BookSnapshot:
            return True
        return (kind is QuoteTick or kind is TradeTick) and msg.instrument_id in self._wanted

    def trim(self, view: BookView) -> BookView:
        """``view`` as this reader keeps it (features only of the instruments it wants)."""
        if view.features is None or view.instrument_id in self._wanted:
            return view
        return msgspec.structs.replace(view, features=None)

    def give(self, views: Iterable[BookView]) -> None:
        """The views of the messages that come next, in feed order: they replace what was
        given before and not taken."""
        self._pending = deque(views)

    def quote(self, quote: QuoteTick) -> None:
        if quote.instrument_id in self._wanted:
            self._take(quote)

    def trade(self, trade: TradeTick) -> None:
        if trade.instrument_id in self._wanted:
            self._take(trade)

    def book(self, update: BookDeltas | BookSnapshot) -> Top | None:
        return self._take(update).top

    def book_view(self, instrument_id: str, book: BookLike) -> None:
        raise InvariantError("a kernel that reads its books from elsewhere keeps none of its own")

    def features(self, instrument_id: str) -> dict[str, float]:
        return as_features(self._latest.get(instrument_id))

    def _take(self, msg: MarketData) -> BookView:
        pending = self._pending
        while pending:  # views of messages a snapshot already covers come first: skip them
            view = pending.popleft()
            if view.matches(msg):
                if view.features is not None:
                    self._latest[msg.instrument_id] = view.features
                return view
        raise InvariantError(
            f"no book view for {type(msg).__name__} {msg.instrument_id} at ts_event "
            f"{msg.ts_event} seq {msg.seq}: the book stage must run before this reader")
