"""Incremental market features per instrument, updated per book update, quote or trade.

Features are analytics, so they are floats in *price units* (a fixed-point price ``p`` becomes
``p / 1e9``); sums that can stay exact (VWAP numerators and volumes) stay ints until they are read.
Windows are in event time (``ts_event``, integer nanoseconds): an entry leaves a window once it is
``window_ns`` or more older than the newest update. Unknown values are ``nan``.

- ``mid``, ``spread``, ``microprice`` — from the best bid/ask; microprice is the size-weighted mid
  ``(bid * ask_size + ask * bid_size) / (bid_size + ask_size)``.
- ``imbalance`` — ``(B - A) / (B + A)`` over the top ``imbalance_levels`` levels (top of book for
  quotes), in [-1, 1].
- ``ofi`` — order-flow imbalance of Cont, Kukanov & Stoikov (2014), summed over ``ofi_window_ns``.
  Each best bid/ask change ``n`` contributes
  ``e_n = 1{Pb_n >= Pb_n-1} qb_n - 1{Pb_n <= Pb_n-1} qb_n-1 - 1{Pa_n <= Pa_n-1} qa_n
  + 1{Pa_n >= Pa_n-1} qa_n-1``, in size units (base currency, e.g. BTC).
- ``realized_vol`` — ``sqrt(sum r^2)`` of mid log returns ``r`` over ``vol_window_ns``: the
  standard deviation of the log return over that window (not annualised, not per second).
- ``vwap_session`` (since construction or :meth:`FeatureSet.reset_session`) and ``vwap_rolling``
  (over ``vwap_window_ns``), from trades.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from typing import Protocol

import numpy as np

from runtime.messages import QuoteTick, TradeTick
from runtime.values import FIXED_SCALE

__all__ = ["FEATURES", "BookLike", "FeatureSet"]

#: the features, in the order of :meth:`FeatureSet.values`
FEATURES = ("mid", "spread", "microprice", "imbalance", "ofi", "realized_vol", "vwap_session",
            "vwap_rolling", "last_trade_price")

_NAN = float("nan")
_NEVER = 2**63 - 1  # an int64 ns stamp no event reaches: the empty window's expiry
_SECOND_NS = 1_000_000_000
_COMPACT_AT = 4096  # evicted window entries cut off at once (and when most of them)


class BookLike(Protocol):
    """What :meth:`FeatureSet.on_book` reads: :class:`runtime.book.L2Book` satisfies it."""

    ts_event: int

    def best_bid(self) -> tuple[int, int] | None: ...

    def best_ask(self) -> tuple[int, int] | None: ...

    def bids(self, n: int | None = None) -> list[tuple[int, int]]: ...

    def asks(self, n: int | None = None) -> list[tuple[int, int]]: ...


class _WindowSum:
    """A running sum of (ts, value) over a trailing event-time window.

    The entries live in two flat arrays read from ``_head`` on (the evicted prefix is cut
    off once it is most of them): no object per entry, and a snapshot pickles the window as
    two byte buffers. ``total`` moves by the same float operations, in the same order, as a
    sum kept entry by entry. ``expires`` is when the oldest entry leaves (``_NEVER`` when
    empty): the owner calls :meth:`evict` only from then on."""

    __slots__ = ("_head", "_ts", "_values", "expires", "total", "window_ns")

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self._ts = array("q")
        self._values = array("d")
        self._head = 0
        self.total = 0.0
        self.expires = _NEVER

    def add(self, ts: int, value: float) -> None:
        """Add an entry; the owner evicts (``now >= expires``) before the total is read."""
        if self.expires == _NEVER:  # the window was empty
            self.expires = ts + self.window_ns
        self._ts.append(ts)
        self._values.append(value)
        self.total += value

    def evict(self, now: int) -> None:
        """Drop the entries ``window_ns`` or more older than ``now``."""
        ts, head, horizon = self._ts, self._head, now - self.window_ns
        n = len(ts)
        values, total = self._values, self.total
        while head < n and ts[head] <= horizon:
            total -= values[head]
            head += 1
        if head == n:
            total = 0.0  # drop float drift whenever the window empties
            self.expires = _NEVER
        else:
            self.expires = ts[head] + self.window_ns
        self.total = total
        if head >= _COMPACT_AT and 2 * head >= n:
            del ts[:head]
            del values[:head]
            head = 0
        self._head = head

    def __getstate__(self) -> tuple[int, bytes, array[float], float]:
        """The entries from ``_head`` on, the times as differences (small numbers: a
        snapshot's compression takes a fraction of the time it takes over the times)."""
        head = self._head
        ts = np.frombuffer(self._ts, dtype=np.int64)[head:]
        return self.window_ns, np.diff(ts, prepend=0).tobytes(), self._values[head:], self.total

    def __setstate__(self, state: tuple[int, bytes, array[float], float]) -> None:
        self.window_ns, deltas, self._values, self.total = state
        self._ts = array("q", np.cumsum(np.frombuffer(deltas, dtype=np.int64)).tobytes())
        self._head = 0
        self.expires = self._ts[0] + self.window_ns if self._ts else _NEVER


class FeatureSet:
    """The features of one instrument; feed it with ``on_book``/``on_quote``/``on_trade``."""

    __slots__ = ("_imbalance", "_last_trade", "_ofi", "_roll_pq", "_roll_q", "_session_pq",
                 "_session_q", "_top", "_trades", "_values", "_var", "_vwap_window_ns",
                 "_vwaps", "imbalance_levels", "instrument_id", "ts_event")

    def __init__(
        self,
        instrument_id: str,
        *,
        imbalance_levels: int = 5,
        ofi_window_ns: int = _SECOND_NS,
        vol_window_ns: int = 60 * _SECOND_NS,
        vwap_window_ns: int = 60 * _SECOND_NS,
    ) -> None:
        self.instrument_id = instrument_id
        self.imbalance_levels = imbalance_levels
        self._top: tuple[int, int, int, int] | None = None  # bid, bid size, ask, ask size
        self._imbalance = _NAN
        self._ofi = _WindowSum(ofi_window_ns)
        self._var = _WindowSum(vol_window_ns)
        self._vwap_window_ns = vwap_window_ns
        self._trades: deque[tuple[int, int, int]] = deque()  # ts, price*size, size
        self._roll_pq = 0
        self._roll_q = 0
        self._session_pq = 0
        self._session_q = 0
        self._vwaps = (_NAN, _NAN)  # session, rolling: they change with trades only
        self._last_trade = _NAN
        self._values: tuple[float, ...] | None = None  # values() until the next input
        self.ts_event = 0

    # --- inputs ----------------------------------------------------------------------------

    def on_book(self, book: BookLike) -> None:
        """Update from an L2 book (top of book, top-N imbalance, OFI, volatility)."""
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None:
            return
        n = self.imbalance_levels
        bid_depth = sum(size for _, size in book.bids(n))
        ask_depth = sum(size for _, size in book.asks(n))
        total = bid_depth + ask_depth
        self._imbalance = (bid_depth - ask_depth) / total if total else _NAN
        self._update_top(bid[0], bid[1], ask[0], ask[1], book.ts_event)

    def on_quote(self, quote: QuoteTick) -> None:
        """Update from a top-of-book quote (imbalance over the top level only)."""
        bid_size, ask_size = quote.bid_size, quote.ask_size
        total = bid_size + ask_size
        self._imbalance = (bid_size - ask_size) / total if total else _NAN
        self._update_top(quote.bid_price, bid_size, quote.ask_price, ask_size, quote.ts_event)

    def on_trade(self, trade: TradeTick) -> None:
        """Update the VWAPs from a trade."""
        ts, pq, q = trade.ts_event, trade.price * trade.size, trade.size
        self._session_pq += pq
        self._session_q += q
        self._trades.append((ts, pq, q))
        self._roll_pq += pq
        self._roll_q += q
        self._last_trade = trade.price / FIXED_SCALE
        self._advance(ts)
        self._vwaps = (_vwap(self._session_pq, self._session_q),
                       _vwap(self._roll_pq, self._roll_q))

    def reset_session(self) -> None:
        """Start a new VWAP session."""
        self._session_pq = 0
        self._session_q = 0
        self._vwaps = (_NAN, self._vwaps[1])
        self._values = None

    # --- internals -------------------------------------------------------------------------

    def _update_top(self, bid: int, bid_size: int, ask: int, ask_size: int, ts: int) -> None:
        prev = self._top
        self._top = (bid, bid_size, ask, ask_size)
        if prev is not None:
            pb, pqb, pa, pqa = prev
            e = 0
            if bid >= pb:
                e += bid_size
            if bid <= pb:
                e -= pqb
            if ask <= pa:
                e -= ask_size
            if ask >= pa:
                e += pqa
            self._ofi.add(ts, e / FIXED_SCALE)
            prev_mid, mid = pb + pa, bid + ask
            if prev_mid > 0 and mid > 0 and mid != prev_mid:
                r = math.log(mid / prev_mid)
                self._var.add(ts, r * r)
        self._advance(ts)

    def _advance(self, ts: int) -> None:
        """Every input ends here: the windows move to ``ts`` (never backwards)."""
        self._values = None
        if ts < self.ts_event:
            ts = self.ts_event
        self.ts_event = ts
        if ts >= self._ofi.expires:
            self._ofi.evict(ts)
        if ts >= self._var.expires:
            self._var.evict(ts)
        trades = self._trades
        if trades and trades[0][0] <= ts - self._vwap_window_ns:
            horizon = ts - self._vwap_window_ns
            while trades and trades[0][0] <= horizon:
                _, pq, q = trades.popleft()
                self._roll_pq -= pq
                self._roll_q -= q
            self._vwaps = (self._vwaps[0], _vwap(self._roll_pq, self._roll_q))

    # --- outputs ---------------------------------------------------------------------------

    def values(self) -> tuple[float, ...]:
        """All features now, in :data:`FEATURES` order (``nan`` when unknown)."""
        values = self._values
        if values is not None:
            return values
        mid = spread = micro = _NAN
        top = self._top
        if top is not None:
            bid, bid_size, ask, ask_size = top
            mid = (bid + ask) / (2 * FIXED_SCALE)
            spread = (ask - bid) / FIXED_SCALE
            size = bid_size + ask_size
            if size:
                micro = (bid * ask_size + ask * bid_size) / size / FIXED_SCALE
        var = self._var.total
        session, rolling = self._vwaps
        values = self._values = (mid, spread, micro, self._imbalance, self._ofi.total,
                                 math.sqrt(var if var >= 0.0 else 0.0), session, rolling,
                                 self._last_trade)
        return values

    def snapshot(self) -> dict[str, float]:
        """All features now, by name, as floats in price/size units (``nan`` when unknown)."""
        return dict(zip(FEATURES, self.values(), strict=True))


def _vwap(pq: int, q: int) -> float:
    # pq is price * size at scale 1e18; q is at scale 1e9: pq / q is a price at scale 1e9
    return pq / q / FIXED_SCALE if q else _NAN
