"""Book views for the ``l1``/``l2`` fill models: one small read API over a quote or an L2 book.

Sides are ints: ``1`` bids, ``-1`` asks. ``queue_size`` answers "what is displayed at this price
on this side": an int, or None when the view cannot know (a price behind the touch in L1).
"""

from __future__ import annotations

from typing import Protocol

from runtime.messages import BookDeltas, BookSnapshot, QuoteTick

__all__ = ["BookLike", "DepthView", "Level", "TopOfBookView", "View"]

Level = tuple[int, int]


class BookLike(Protocol):
    """What the ``l2`` model needs of :class:`runtime.book.L2Book`."""

    @property
    def synced(self) -> bool: ...

    def apply_deltas(self, deltas: BookDeltas) -> bool: ...

    def apply_snapshot(self, snapshot: BookSnapshot) -> None: ...

    def best_bid(self) -> Level | None: ...

    def best_ask(self) -> Level | None: ...

    def bids(self, n: int | None = None) -> list[Level]: ...

    def asks(self, n: int | None = None) -> list[Level]: ...

    def size_at(self, side: int, price: int) -> int: ...


class TopOfBookView:
    """The book as one quote shows it. Sides: ``1`` bids, ``-1`` asks."""

    __slots__ = ("quote",)

    def __init__(self) -> None:
        self.quote: QuoteTick | None = None

    @property
    def ready(self) -> bool:
        return self.quote is not None

    def best(self, side: int) -> Level | None:
        q = self.quote
        if q is None:
            return None
        if side > 0:
            return (q.bid_price, q.bid_size) if q.bid_size > 0 and q.bid_price > 0 else None
        return (q.ask_price, q.ask_size) if q.ask_size > 0 and q.ask_price > 0 else None

    def levels(self, side: int) -> list[Level]:
        best = self.best(side)
        return [best] if best is not None else []

    def queue_size(self, side: int, price: int) -> int | None:
        """Displayed size at ``price``: 0 if it improves the touch, None if behind it."""
        best = self.best(side)
        if best is None or (price > best[0] if side > 0 else price < best[0]):
            return 0
        return best[1] if best[0] == price else None


class DepthView:
    """An L2 book seen through the same three questions."""

    __slots__ = ("book",)

    def __init__(self, book: BookLike) -> None:
        self.book = book

    @property
    def ready(self) -> bool:
        return self.book.synced

    def best(self, side: int) -> Level | None:
        return self.book.best_bid() if side > 0 else self.book.best_ask()

    def levels(self, side: int) -> list[Level]:
        return self.book.bids() if side > 0 else self.book.asks()

    def queue_size(self, side: int, price: int) -> int | None:
        return self.book.size_at(side, price)


View = TopOfBookView | DepthView
