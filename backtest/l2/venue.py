"""The compiled venue of the L2 replay, as one object both drivers share.

:class:`CompiledVenue` owns the arrays :mod:`backtest.l2.kernel` works on (the exchange and local
books over the distinct depth prices, the resting orders with their queue position, the command
queue and the response buffer) and gives the Python side four verbs: ``advance(t)`` (replay the
data up to ``t``, matching commands that reached the venue), ``send_new``/``send_cancel`` (a
command that reaches the venue at a given time), ``take_responses`` (what the venue answered:
acks, fills, cancels, cancel rejects, post-only expiries, each stamped with its exchange time and
its local arrival time) and ``local_view`` (the book as the strategy has received it).

Used by :class:`backtest.l2.engine.L2ReplayEngine` (the standalone path) and
:class:`backtest.l2.core.L2KernelReplay` (the path through the core kernel).
"""

from __future__ import annotations

import numpy as np

from backtest.l2 import kernel as k
from backtest.l2.data import ASK, ASK_CLEAR, BID, BID_CLEAR, L2Events
from backtest.l2.strategy import BookView
from runtime.errors import InvariantError

__all__ = ["CompiledVenue", "ResponseRow"]

#: (local_ts, exch_ts, kind, order id, price, qty, leaves) — ``kind`` is a ``kernel.RESP_*``
ResponseRow = tuple[int, int, int, int, int, int, int]


class CompiledVenue:
    """One instrument's exchange simulation over :class:`L2Events` (see :mod:`.kernel`)."""

    def __init__(
        self,
        events: L2Events,
        *,
        response_latency_ns: int,
        partial_fills: bool,
        response_capacity: int = 1 << 16,
    ) -> None:
        if len(events) == 0:
            raise InvariantError("no events to replay")
        self.events = events
        depth = np.isin(events.kind, (BID, ASK, BID_CLEAR, ASK_CLEAR))
        self.uprices = np.unique(events.price[depth])
        self.lvl = np.where(depth, np.searchsorted(self.uprices, events.price), 0).astype(np.int64)
        n = len(self.uprices)
        self.book = np.zeros((4, max(n, 1)), dtype=np.int64)
        self.best = np.array([-1, n, -1, n], dtype=np.int64)
        self.orders = np.zeros((k.MAX_ORDERS, 5), dtype=np.int64)
        self.cmd = np.zeros((1024, 6), dtype=np.int64)
        self.resp = np.zeros((response_capacity, 7), dtype=np.int64)
        self.st = np.zeros(k.STATE_SIZE, dtype=np.int64)
        self.st[k.S_RESP_LAT] = response_latency_ns
        self.st[k.S_PARTIAL] = int(partial_fills)

    @property
    def start_ns(self) -> int:
        """Local time of the first event the strategy could see."""
        ev = self.events
        return int(ev.local_ts[ev.local_order[0]])

    @property
    def end_ns(self) -> int:
        """The latest time stamp in the data (exchange or local)."""
        return max(int(self.events.local_ts.max()), int(self.events.exch_ts.max()))

    @property
    def local_cursor(self) -> int:
        """How many events the local book has applied (it moves when the strategy's book does)."""
        return int(self.st[k.S_LO])

    def last_local_ts(self) -> int:
        """Local time of the last event the local book applied (0 before any)."""
        j = int(self.st[k.S_LO])
        return int(self.events.local_ts[self.events.local_order[j - 1]]) if j else 0

    def advance(self, t_end: int) -> int:
        """Replay up to ``t_end`` (both clocks); returns the exchange events processed."""
        ev = self.events
        return int(
            k.advance(
                t_end,
                ev.kind,
                ev.exch_ts,
                ev.local_ts,
                ev.price,
                ev.qty,
                self.lvl,
                ev.local_order,
                self.uprices,
                self.book,
                self.best,
                self.orders,
                self.cmd,
                self.resp,
                self.st,
            )
        )

    def send_new(self, arrival_ns: int, *, order_id: int, side: int, price: int, qty: int) -> None:
        """A post-only limit order that reaches the venue at ``arrival_ns``."""
        self._push((arrival_ns, k.CMD_NEW, order_id, side, price, qty))

    def send_cancel(self, arrival_ns: int, *, order_id: int, side: int) -> None:
        """A cancel that reaches the venue at ``arrival_ns``."""
        self._push((arrival_ns, k.CMD_CANCEL, order_id, side, 0, 0))

    def take_responses(self) -> list[ResponseRow]:
        """The venue's responses since the last call, in the order it produced them."""
        st = self.st
        if st[k.S_ERR]:
            raise InvariantError("L2 kernel response buffer overflowed: raise response_capacity")
        n = int(st[k.S_NRESP])
        st[k.S_NRESP] = 0
        rows: list[ResponseRow] = [tuple(r) for r in self.resp[:n].tolist()]
        return rows

    def local_view(self, ts: int) -> BookView:
        """The local book now (valid until the next ``advance``)."""
        return BookView(
            self.uprices, self.book[2], self.book[3], int(self.best[2]), int(self.best[3]), ts
        )

    def _push(self, row: tuple[int, int, int, int, int, int]) -> None:
        st = self.st
        head, tail = int(st[k.S_CHEAD]), int(st[k.S_CTAIL])
        if tail == len(self.cmd):  # compact consumed rows, grow if still full
            live = self.cmd[head:tail].copy()
            size = len(self.cmd) * (2 if len(live) > len(self.cmd) // 2 else 1)
            self.cmd = np.zeros((size, 6), dtype=np.int64)
            self.cmd[: len(live)] = live
            tail = len(live)
            st[k.S_CHEAD] = 0
        self.cmd[tail] = row
        st[k.S_CTAIL] = tail + 1
