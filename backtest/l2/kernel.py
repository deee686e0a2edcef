"""The compiled core of the L2 replay: two books, the simulated venue's resting orders, fills.

Everything here works on flat int64 numpy arrays so it compiles with numba (``cache=True``: the
machine code is kept in ``__pycache__`` and later processes load it instead of compiling). Without
numba the same functions run as plain Python, only slower.

Price levels are indices into ``uprices`` (every distinct depth price of the data, ascending), so a
book side is a dense array of sizes and "next level" is the next index whatever the tick spacing.

- **exchange book** (rows 0/1 of ``book``): events in exchange time; drives fills.
- **local book** (rows 2/3): the same events in local (receive) time: what the strategy sees.
- ``best`` holds ``[ex_bid, ex_ask, lo_bid, lo_ask]`` level indices (-1 / len(uprices) = empty).

Queue model (``risk_averse``: *cancels from the back*): an order's queue ahead is the displayed
size at its price when it reaches the venue; a trade at its price reduces it by the trade size; a
size decrease at the level can only cut it to the new size (``queue = min(queue, size)``): the
canceled size is assumed to sit behind us. Size arriving later queues behind us. A trade at the
order's price fills ``min(leaves, trade size - queue ahead)`` once the queue ahead is used up
(fill model ``partial``; ``no_partial`` fills the whole order then, as hftbacktest's
NoPartialFillExchange does); a
trade *through* the price (a sell below our bid, a buy above our ask) and an opposite best at or
through the price fill the order fully. Fills are maker fills at the order price.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

try:  # numba is optional: the kernel runs as plain Python without it
    from numba import njit as _njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is absent
    HAVE_NUMBA = False

__all__ = [
    "CMD_CANCEL",
    "CMD_NEW",
    "HAVE_NUMBA",
    "MAX_ORDERS",
    "RESP_ACK",
    "RESP_CANCELED",
    "RESP_CANCEL_REJECTED",
    "RESP_EXPIRED",
    "RESP_FILL",
    "STATE_SIZE",
    "advance",
]


def _jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    return _njit(cache=True, nogil=True)(fn) if HAVE_NUMBA else fn


BID, ASK, BID_CLEAR, ASK_CLEAR, TRADE_BUY, TRADE_SELL = 1, 2, 3, 4, 5, 6
CMD_NEW, CMD_CANCEL = 1, 2
RESP_ACK, RESP_FILL, RESP_CANCELED, RESP_EXPIRED, RESP_CANCEL_REJECTED = 1, 2, 3, 4, 5
MAX_ORDERS = 256
_NEVER = np.iinfo(np.int64).max
# order columns: id, side (1 buy / -1 sell), price, leaves, queue ahead
O_ID, O_SIDE, O_PRICE, O_LEAVES, O_QUEUE = 0, 1, 2, 3, 4
# response columns: local_ts, exch_ts, kind, id, price, qty, leaves
# command columns: arrival ts, kind, id, side, price, qty
# state: [exch cursor, local cursor, n_orders, cmd head, cmd tail, n_resp, resp_latency_ns, error,
#         partial fills (1) or whole-order fills (0)]
S_EX, S_LO, S_NORD, S_CHEAD, S_CTAIL, S_NRESP, S_RESP_LAT, S_ERR, S_PARTIAL = range(9)
STATE_SIZE = 9


@_jit
def _scan_down(side: np.ndarray, start: int) -> int:
    i = start
    while i >= 0 and side[i] == 0:
        i -= 1
    return i


@_jit
def _scan_up(side: np.ndarray, start: int) -> int:
    n = side.shape[0]
    i = start
    while i < n and side[i] == 0:
        i += 1
    return i


@_jit
def _set_level(book: np.ndarray, best: np.ndarray, row: int, is_bid: bool, li: int, q: int) -> None:
    """Set one level and keep the side's best; a positive level removes crossed opposite levels."""
    bid_row, ask_row = (row, row + 1) if is_bid else (row - 1, row)
    bi, ai = bid_row, ask_row  # best[] uses the same offsets as book rows
    bids, asks = book[bid_row], book[ask_row]
    n = asks.shape[0]
    if is_bid:
        bids[li] = q
        if q > 0:
            if li > best[bi]:
                best[bi] = li
            if best[ai] <= li:
                for k in range(best[ai], li + 1):
                    asks[k] = 0
                best[ai] = _scan_up(asks, li + 1)
        elif li == best[bi]:
            best[bi] = _scan_down(bids, li - 1)
    else:
        asks[li] = q
        if q > 0:
            if li < best[ai]:
                best[ai] = li
            if best[bi] >= li:
                for k in range(li, best[bi] + 1):
                    bids[k] = 0
                best[bi] = _scan_down(bids, li - 1)
        elif li == best[ai]:
            best[ai] = _scan_up(asks, li + 1)
    if best[ai] > n:
        best[ai] = n


@_jit
def _clear_side(book: np.ndarray, best: np.ndarray, row: int, is_bid: bool, li: int) -> None:
    """Clear a side from its best level down to (bids) / up to (asks) level ``li`` inclusive."""
    side = book[row]
    if is_bid:
        for k in range(li, side.shape[0]):
            side[k] = 0
        best[row] = _scan_down(side, li - 1)
    else:
        for k in range(0, li + 1):
            side[k] = 0
        best[row] = _scan_up(side, li + 1)


@_jit
def _respond(
    resp: np.ndarray,
    st: np.ndarray,
    ts: int,
    kind: int,
    oid: int,
    price: int,
    qty: int,
    leaves: int,
) -> None:
    r = st[S_NRESP]
    if r >= resp.shape[0]:
        st[S_ERR] = 1  # response buffer full: the driver drains more often
        return
    resp[r, 0] = ts + st[S_RESP_LAT]
    resp[r, 1] = ts
    resp[r, 2] = kind
    resp[r, 3] = oid
    resp[r, 4] = price
    resp[r, 5] = qty
    resp[r, 6] = leaves
    st[S_NRESP] = r + 1


@_jit
def _remove_order(orders: np.ndarray, st: np.ndarray, j: int) -> None:
    last = st[S_NORD] - 1
    if j != last:
        orders[j, :] = orders[last, :]
    st[S_NORD] = last


@_jit
def _fill(orders: np.ndarray, st: np.ndarray, resp: np.ndarray, j: int, qty: int, ts: int) -> bool:
    """Fill order ``j`` by ``qty``; returns True when it left the book (caller must not advance)."""
    leaves = orders[j, O_LEAVES] - qty
    orders[j, O_LEAVES] = leaves
    _respond(resp, st, ts, RESP_FILL, orders[j, O_ID], orders[j, O_PRICE], qty, leaves)
    if leaves <= 0:
        _remove_order(orders, st, j)
        return True
    return False


@_jit
def _fill_crossed(
    orders: np.ndarray, st: np.ndarray, resp: np.ndarray, bb: int, ba: int, ts: int
) -> None:
    """Fully fill resting orders the opposite best has reached (bb/ba are prices, -1 = none)."""
    j = 0
    while j < st[S_NORD]:
        side, price = orders[j, O_SIDE], orders[j, O_PRICE]
        hit = (side == 1 and ba >= 0 and price >= ba) or (side == -1 and bb >= 0 and price <= bb)
        if hit and _fill(orders, st, resp, j, orders[j, O_LEAVES], ts):
            continue
        j += 1


@_jit
def _on_trade(
    orders: np.ndarray,
    st: np.ndarray,
    resp: np.ndarray,
    maker_side: int,
    price: int,
    qty: int,
    ts: int,
) -> None:
    """A trade that took liquidity from ``maker_side`` (1: bids were hit, -1: asks were lifted)."""
    j = 0
    while j < st[S_NORD]:
        if orders[j, O_SIDE] != maker_side:
            j += 1
            continue
        op = orders[j, O_PRICE]
        through = op > price if maker_side == 1 else op < price
        if through:
            if _fill(orders, st, resp, j, orders[j, O_LEAVES], ts):
                continue
        elif op == price:
            ahead = orders[j, O_QUEUE]
            if qty > ahead:
                orders[j, O_QUEUE] = 0
                take = orders[j, O_LEAVES]
                if st[S_PARTIAL]:
                    take = min(take, qty - max(ahead, 0))
                if _fill(orders, st, resp, j, take, ts):
                    continue
            else:
                orders[j, O_QUEUE] = ahead - qty
        j += 1


@_jit
def _on_level(orders: np.ndarray, st: np.ndarray, side: int, price: int, q: int) -> None:
    for j in range(st[S_NORD]):
        if orders[j, O_SIDE] == side and orders[j, O_PRICE] == price and orders[j, O_QUEUE] > q:
            orders[j, O_QUEUE] = q  # cancels come from the back: the queue ahead only shrinks


@_jit
def _exch_event(
    e: int,
    kind: np.ndarray,
    price: np.ndarray,
    qty: np.ndarray,
    lvl: np.ndarray,
    uprices: np.ndarray,
    book: np.ndarray,
    best: np.ndarray,
    orders: np.ndarray,
    st: np.ndarray,
    resp: np.ndarray,
    ts: int,
) -> None:
    k, p, q = kind[e], price[e], qty[e]
    if k == TRADE_BUY or k == TRADE_SELL:  # noqa: SIM109 (plain compares compile simplest)
        _on_trade(orders, st, resp, -1 if k == TRADE_BUY else 1, p, q, ts)
        return
    if k == BID or k == ASK:  # noqa: SIM109 (plain compares compile simplest)
        _set_level(book, best, 0 if k == BID else 1, k == BID, lvl[e], q)
        if st[S_NORD] > 0:
            _on_level(orders, st, 1 if k == BID else -1, p, q)
    else:
        _clear_side(book, best, 0 if k == BID_CLEAR else 1, k == BID_CLEAR, lvl[e])
    if st[S_NORD] > 0:
        n = uprices.shape[0]
        bb = uprices[best[0]] if best[0] >= 0 else -1
        ba = uprices[best[1]] if best[1] < n else -1
        _fill_crossed(orders, st, resp, bb, ba, ts)


@_jit
def _exch_command(
    c: int,
    cmd: np.ndarray,
    uprices: np.ndarray,
    book: np.ndarray,
    best: np.ndarray,
    orders: np.ndarray,
    st: np.ndarray,
    resp: np.ndarray,
) -> None:
    ts, kind, oid, side, price, qty = (
        cmd[c, 0],
        cmd[c, 1],
        cmd[c, 2],
        cmd[c, 3],
        cmd[c, 4],
        cmd[c, 5],
    )
    if kind == CMD_CANCEL:
        for j in range(st[S_NORD]):
            if orders[j, O_ID] == oid:
                _respond(
                    resp, st, ts, RESP_CANCELED, oid, orders[j, O_PRICE], 0, orders[j, O_LEAVES]
                )
                _remove_order(orders, st, j)
                return
        _respond(resp, st, ts, RESP_CANCEL_REJECTED, oid, 0, 0, 0)
        return
    n = uprices.shape[0]
    crosses = (side == 1 and best[1] < n and price >= uprices[best[1]]) or (
        side == -1 and best[0] >= 0 and price <= uprices[best[0]]
    )
    if crosses or st[S_NORD] >= orders.shape[0]:
        _respond(resp, st, ts, RESP_EXPIRED, oid, price, 0, 0)  # post-only would take
        return
    li = np.searchsorted(uprices, price)
    row = 0 if side == 1 else 1
    ahead = book[row, li] if li < n and uprices[li] == price else 0
    j = st[S_NORD]
    orders[j, O_ID] = oid
    orders[j, O_SIDE] = side
    orders[j, O_PRICE] = price
    orders[j, O_LEAVES] = qty
    orders[j, O_QUEUE] = ahead
    st[S_NORD] = j + 1
    _respond(resp, st, ts, RESP_ACK, oid, price, 0, qty)


@_jit
def advance(
    t_end: int,
    kind: np.ndarray,
    exch_ts: np.ndarray,
    local_ts: np.ndarray,
    price: np.ndarray,
    qty: np.ndarray,
    lvl: np.ndarray,
    local_order: np.ndarray,
    uprices: np.ndarray,
    book: np.ndarray,
    best: np.ndarray,
    orders: np.ndarray,
    cmd: np.ndarray,
    resp: np.ndarray,
    st: np.ndarray,
) -> int:
    """Run the venue up to ``t_end`` (exchange time) and the local book up to ``t_end`` (local
    time). Events win ties with commands. Returns the number of events processed."""
    n = kind.shape[0]
    done = 0
    while True:
        i, h = st[S_EX], st[S_CHEAD]
        te = exch_ts[i] if i < n else _NEVER
        tc = cmd[h, 0] if h < st[S_CTAIL] else _NEVER
        if te <= tc:
            if te > t_end:
                break
            _exch_event(i, kind, price, qty, lvl, uprices, book, best, orders, st, resp, te)
            st[S_EX] = i + 1
            done += 1
        else:
            if tc > t_end:
                break
            _exch_command(h, cmd, uprices, book, best, orders, st, resp)
            st[S_CHEAD] = h + 1
    j = st[S_LO]
    while j < n:
        e = local_order[j]
        if local_ts[e] > t_end:
            break
        k = kind[e]
        if k == BID or k == ASK:  # noqa: SIM109 (plain compares compile simplest)
            _set_level(book, best, 2 if k == BID else 3, k == BID, lvl[e], qty[e])
        elif k == BID_CLEAR or k == ASK_CLEAR:  # noqa: SIM109 (plain compares compile simplest)
            _clear_side(book, best, 2 if k == BID_CLEAR else 3, k == BID_CLEAR, lvl[e])
        j += 1
    st[S_LO] = j
    return done
