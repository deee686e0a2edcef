"""Independent reference: exact fills of the SMA long/flat crossover on bars, fills at next open.

A few lines of numpy and no Tradewind code, so an engine test can compare against it.

Conventions (the engine test should state the same ones):

* Inputs are parallel arrays over bars ``0..n-1`` in time order: ``ts_ns`` (int64, the bar's
  timestamp, for Tradewind the bar CLOSE time), ``open_raw`` and ``close_raw`` (integers in any
  one fixed-point scale, e.g. price x 1e9 as in ``runtime.values``). Quantities are integers in
  the caller's own scale (``qty_raw > 0``).
* ``fast_sum[i]`` / ``slow_sum[i]`` are the sums of the last ``fast`` / ``slow`` closes up to and
  including bar ``i``. A decision is made at every bar ``i >= slow - 1`` (once the slow SMA has
  ``slow`` values; no decision, and no position, before that).
* The comparison is exact and strict: long iff ``fast_sum * slow > slow_sum * fast`` (i.e.
  fast SMA > slow SMA without division). Equal SMAs mean flat. Target position is ``qty_raw`` when
  long, 0 when flat.
* Position starts at 0. When the decision at bar ``i`` differs from the position, one market order
  for the difference is sent and fills in full at bar ``i + 1``'s OPEN, stamped with ``ts_ns[i+1]``
  (the time the engine learns that open price):
  ``(ts_ns[i+1], "BUY"|"SELL", qty_raw, open_raw[i+1])``.
  The position then equals the target before the decision at bar ``i + 1``.
* A decision at the last bar cannot fill (there is no next open): it produces no fill.
* Zero fees, zero slippage, unlimited cash, no partial fills; every order fills.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["Fill", "sma_cross_fills", "sma_long_mask"]

Fill = tuple[int, str, int, int]  # (fill_ts_ns, side, qty_raw, price_raw)


def sma_long_mask(close_raw: np.ndarray, *, fast: int, slow: int) -> np.ndarray:
    """``long[i]`` for bars ``i >= slow - 1``: exact ``fast SMA > slow SMA`` on integer sums."""
    if not 0 < fast < slow:
        raise ValueError(f"need 0 < fast < slow, got fast={fast}, slow={slow}")
    close = np.asarray(close_raw, dtype=np.int64)
    # window sums (not a running cumsum) keep every product far below 2**63 for real prices
    if int(np.abs(close).max(initial=0)) * slow * slow >= 2**62:
        raise OverflowError("prices too large for exact int64 window sums; rescale them")
    fast_sum = sliding_window_view(close, fast).sum(axis=1)[slow - fast :]
    slow_sum = sliding_window_view(close, slow).sum(axis=1)
    long: np.ndarray = fast_sum * slow > slow_sum * fast
    return long


def sma_cross_fills(
    ts_ns: np.ndarray,
    open_raw: np.ndarray,
    close_raw: np.ndarray,
    *,
    fast: int = 10,
    slow: int = 50,
    qty_raw: int = 1,
) -> list[Fill]:
    """All fills of the long/flat SMA crossover; see the module docstring for the conventions."""
    n = len(close_raw)
    if not len(ts_ns) == len(open_raw) == n:
        raise ValueError("ts_ns, open_raw and close_raw must have the same length")
    if n < slow:
        return []  # never warmed up
    target = np.zeros(n + 1, dtype=np.int64)  # target[i + 1] = decision at bar i
    target[slow:] = np.where(sma_long_mask(close_raw, fast=fast, slow=slow), qty_raw, 0)
    change = np.diff(target)[:-1]  # decisions at bars 0..n-2 (the last bar cannot fill)
    fills: list[Fill] = []
    for i in np.flatnonzero(change).tolist():
        delta = int(change[i])
        fills.append(
            (int(ts_ns[i + 1]), "BUY" if delta > 0 else "SELL", abs(delta), int(open_raw[i + 1]))
        )
    return fills
