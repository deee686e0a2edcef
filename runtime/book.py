"""A per-instrument L2 order book: exact sizes, sequence-gap detection, never crossed.

Prices and sizes are fixed-point ints (:mod:`runtime.values`). Each side is a ``dict`` price →
size plus a :class:`sortedcontainers.SortedList` of its prices, so a size change is one dict
store, a new or removed level is ``O(log n)``, and the best level is an index lookup.

**Sequencing** (Binance-style update ids, see :class:`~runtime.messages.BookDeltas`):

- :meth:`L2Book.apply_snapshot` replaces both sides and makes the book *synced*; its
  ``last_update_id`` becomes the book's.
- The first diff after a snapshot *bridges* it: diffs wholly older than the snapshot
  (``last_update_id < snapshot id``) are skipped as stale; the bridging diff must have
  ``first_update_id <= snapshot id + 1 <= last_update_id + 1``.
- After that a diff chains when its ``prev_update_id`` equals the book's ``last_update_id``
  (when both are known), otherwise when its ``first_update_id`` is ``last_update_id + 1``. A diff
  without ids is applied as is.
- A diff that does not chain is a **gap**: :meth:`~L2Book.apply_deltas` returns ``False``, the diff
  is not applied, the book is cleared and marked unsynced, and ``gap_count`` grows.

**Starting from diffs** (a capture whose first depth messages are diffs, not a snapshot, or a book
cleared by a gap): the first diff on an empty book *seeds* it (its ids become the book's), later
diffs must chain as above, and the book reports ``synced`` once both sides hold at least one level.
Levels the venue never updates again stay unknown, so a seeded book is exact near the top and only
grows complete with time; ``seed_from_diffs=False`` instead keeps an empty or gapped book unsynced
until a snapshot arrives.

**Never crossed**: levels are applied in message order, and a level set to a positive size removes
the opposite-side levels at or through its price (``stale_removed`` counts them). Those levels are
stale — the venue could not hold both — and, in a consistent feed, the same message deletes them
anyway; when one message itself sets both sides through each other, the later level wins.

**Depth cap**: ``depth=N`` keeps only the best ``N`` levels per side. With a diff feed, a trimmed
level that later re-enters the top stays unknown until the venue updates it: use ``depth=None``
(the default) for diff feeds and a cap only for venues that send the top ``N`` levels.
"""

from __future__ import annotations

from collections.abc import Iterable

from sortedcontainers import SortedList

from runtime.errors import InvariantError
from runtime.messages import BookDeltas, BookSnapshot, Level

__all__ = ["L2Book"]

_BID = 1
_ASK = -1


class L2Book:
    """The L2 book of one instrument; mutate only through ``apply_*``."""

    __slots__ = (
        "_ask_keys",
        "_asks",
        "_bid_keys",
        "_bids",
        "_bridging",
        "depth",
        "gap_count",
        "instrument_id",
        "last_update_id",
        "seed_from_diffs",
        "stale_removed",
        "ts_event",
    )

    def __init__(
        self, instrument_id: str, depth: int | None = None, *, seed_from_diffs: bool = True
    ) -> None:
        if depth is not None and depth < 1:
            raise InvariantError(f"book depth must be >= 1, got {depth}")
        self.instrument_id = instrument_id
        self.depth = depth
        self.seed_from_diffs = seed_from_diffs
        self._bids: dict[int, int] = {}
        self._asks: dict[int, int] = {}
        self._bid_keys: SortedList = SortedList()  # ascending: best bid is the last
        self._ask_keys: SortedList = SortedList()  # ascending: best ask is the first
        self.last_update_id = -1  # -1: unknown (no message applied yet)
        self.ts_event = 0
        self.gap_count = 0
        self.stale_removed = 0
        self._bridging = False

    # --- state -----------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """True when the book follows the venue: after a snapshot or a seeded, gap-free chain
        of diffs with both sides non-empty."""
        return self.last_update_id != -1 and bool(self._bids) and bool(self._asks)

    def clear(self) -> None:
        """Forget every level and the update id (the book then waits for a seed or snapshot)."""
        self._bids.clear()
        self._asks.clear()
        self._bid_keys.clear()
        self._ask_keys.clear()
        self.last_update_id = -1
        self._bridging = False

    # --- updates ---------------------------------------------------------------------------

    def apply_snapshot(self, snapshot: BookSnapshot) -> None:
        """Replace both sides with the snapshot; the book is synced from its update id."""
        self.clear()
        self._apply_levels(snapshot.bids, snapshot.asks)
        self._trim()
        self.last_update_id = snapshot.last_update_id if snapshot.last_update_id >= 0 else 0
        self._bridging = snapshot.last_update_id >= 0
        self.ts_event = snapshot.ts_event

    def apply_deltas(self, deltas: BookDeltas) -> bool:
        """Apply one venue diff. Returns False when the diff was not applied: a sequence gap
        (book cleared, ``gap_count`` + 1) or, with ``seed_from_diffs=False``, no snapshot yet."""
        last = self.last_update_id
        if last == -1:
            if not self.seed_from_diffs:
                return False
        elif self._bridging:
            if 0 <= deltas.last_update_id < last:
                return True  # older than the snapshot: already in it
            if deltas.first_update_id > last + 1:
                return self._gap()
        elif not self._chains(deltas, last):
            return self._gap()
        self._bridging = False
        self._apply_levels(deltas.bids, deltas.asks)
        self._trim()
        if deltas.last_update_id >= 0:
            self.last_update_id = deltas.last_update_id
        elif last == -1:
            self.last_update_id = 0  # seeded by a diff that carries no ids
        self.ts_event = deltas.ts_event
        return True

    @staticmethod
    def _chains(deltas: BookDeltas, last: int) -> bool:
        if deltas.prev_update_id >= 0 and last > 0:
            return deltas.prev_update_id == last
        if deltas.first_update_id >= 0 and last > 0:
            return deltas.first_update_id == last + 1
        return True

    def _gap(self) -> bool:
        self.gap_count += 1
        self.clear()
        return False

    def _apply_levels(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        for price, size in bids:
            self._set(_BID, price, size)
        for price, size in asks:
            self._set(_ASK, price, size)

    def _set(self, side: int, price: int, size: int) -> None:
        if side == _BID:
            levels, keys, other, other_keys = self._bids, self._bid_keys, self._asks, self._ask_keys
        else:
            levels, keys, other, other_keys = self._asks, self._ask_keys, self._bids, self._bid_keys
        if size <= 0:
            if levels.pop(price, None) is not None:
                keys.remove(price)
            return
        if price not in levels:
            keys.add(price)
        levels[price] = size
        if side == _BID:
            while other_keys and other_keys[0] <= price:
                del other[other_keys.pop(0)]
                self.stale_removed += 1
        else:
            while other_keys and other_keys[-1] >= price:
                del other[other_keys.pop()]
                self.stale_removed += 1

    def _trim(self) -> None:
        depth = self.depth
        if depth is None:
            return
        while len(self._bid_keys) > depth:
            del self._bids[self._bid_keys.pop(0)]
        while len(self._ask_keys) > depth:
            del self._asks[self._ask_keys.pop()]

    # --- reads -----------------------------------------------------------------------------

    def best_bid(self) -> tuple[int, int] | None:
        """(price, size) of the best bid, or None when the side is empty."""
        if not self._bid_keys:
            return None
        price: int = self._bid_keys[-1]
        return price, self._bids[price]

    def best_ask(self) -> tuple[int, int] | None:
        """(price, size) of the best ask, or None when the side is empty."""
        if not self._ask_keys:
            return None
        price: int = self._ask_keys[0]
        return price, self._asks[price]

    def bids(self, n: int | None = None) -> list[tuple[int, int]]:
        """The best ``n`` bids (all when None), best first."""
        keys = self._bid_keys
        start = 0 if n is None else max(len(keys) - n, 0)
        levels = self._bids
        return [(p, levels[p]) for p in keys.islice(start, reverse=True)]

    def asks(self, n: int | None = None) -> list[tuple[int, int]]:
        """The best ``n`` asks (all when None), best first."""
        levels = self._asks
        return [(p, levels[p]) for p in self._ask_keys.islice(0, n)]

    def size_at(self, side: int, price: int) -> int:
        """Displayed size at a price on a side (``1``/BUY = bids, ``-1``/SELL = asks); 0 if none."""
        return (self._bids if side > 0 else self._asks).get(price, 0)

    def mid(self) -> int | None:
        """Mid price in fixed point, floored to the 1e-9 grid (exact unless a price uses all nine
        decimals); None when a side is empty."""
        if not self._bid_keys or not self._ask_keys:
            return None
        return (int(self._bid_keys[-1]) + int(self._ask_keys[0])) // 2

    def spread(self) -> int | None:
        """Best ask minus best bid (fixed point), None when a side is empty."""
        if not self._bid_keys or not self._ask_keys:
            return None
        return int(self._ask_keys[0]) - int(self._bid_keys[-1])

    def level_counts(self) -> tuple[int, int]:
        """(number of bid levels, number of ask levels)."""
        return len(self._bids), len(self._asks)

    def __repr__(self) -> str:
        return (
            f"L2Book({self.instrument_id!r}, synced={self.synced}, best_bid={self.best_bid()}, "
            f"best_ask={self.best_ask()}, last_update_id={self.last_update_id})"
        )
