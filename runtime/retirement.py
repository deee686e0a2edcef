"""Retirement of closed orders: what a kernel keeps of an order once nothing can change it.

A kernel that runs for weeks must not hold every order it ever made. An order *retires* from
the ledger (:meth:`runtime.ledger.OrderLedger.retire`) when all of these hold:

* it is closed (a terminal state of :data:`runtime.orders.TERMINAL`: denied, filled, canceled,
  rejected, expired);
* its last change (``ts_last``, event time) is at least ``retire_after_ns`` before the
  kernel's clock (:data:`DEFAULT_RETIRE_AFTER_NS`, a day: far longer than any cancel race,
  a broker's late duplicate or a reconciliation needs);
* no part of the kernel still follows it (a linked list or OCO group, a parent order worked
  by an algorithm, a held stop, a GTC order's day legs). A closed parent retires first, in
  the same sweep, once its children all closed by the cutoff
  (:meth:`runtime.execution.ExecutionAlgorithms.retire`): its children then retire too.

The kernel sweeps when its clock (event time, never a wall clock) crosses a multiple of
:data:`SWEEP_NS` (an hour), retiring what closed ``retire_after_ns`` before that hour began:
any sweep within one hour retires the same orders, so the same inputs retire the same orders
at the same points in a backtest, a lockstep paper session and a replay after
a restore, and the state hash stays equal across all three.

What a retired order leaves behind (:class:`RetiredOrders`, part of the kernel's state):

* its id's watermark: the highest order number retired per id prefix
  (``<namespace>-<strategy>``: ids of one prefix are made in order,
  :class:`runtime.orders.ClientOrderIdGenerator`), so a late or duplicate report, or a
  repeated submit, of a retired order is recognised as ours and ignored (:meth:`knows`) —
  counted apart from reports of orders never seen, never applied twice;
* its fill ids (:attr:`RetiredOrders.fill_ids`): reconciliation compares every fill id the
  broker's gateway knows with risk's, retired orders' included (the gateway keeps its own
  retired fills' ids alike, ``actors.venues.send_log``); kept compressed, in chunks of
  :data:`FILL_CHUNK` ids (ids of one session share long prefixes: ~20 bytes an id instead of
  ~100 as strings in a set), read back whole when the reconciler or the state asks;
* one count.

Its fills themselves were handed out when they happened: a backtest keeps them in its fills
list, a session in the gateway's send log and its fills archive. The order itself is kept in
:attr:`runtime.kernel.Kernel.retired_orders` when the kernel's owner asks (``keep_retired``):
a backtest for its results, the risk actor until it archives it (``actors.order_archive``).
"""

from __future__ import annotations

import zlib
from typing import Any, Final

import msgspec

__all__ = ["DEFAULT_RETIRE_AFTER_NS", "FILL_CHUNK", "SWEEP_NS", "RetiredOrders", "next_sweep"]

DEFAULT_RETIRE_AFTER_NS: Final = 24 * 3600 * 10**9  # closed for a day of event time
SWEEP_NS: Final = 3600 * 10**9  # the kernel sweeps once an hour of event time
FILL_CHUNK: Final = 1024  # retired fill ids compressed together


def next_sweep(now_ns: int) -> int:
    """The first sweep time after ``now_ns`` (a multiple of :data:`SWEEP_NS`)."""
    return (now_ns // SWEEP_NS + 1) * SWEEP_NS


def _split(client_order_id: str) -> tuple[str, int] | None:
    """``(prefix, n)`` of a ``<prefix>-<n>`` id; None for an id of another shape."""
    prefix, _, n = client_order_id.rpartition("-")
    if not prefix or not n.isdigit():
        return None
    return prefix, int(n)


class RetiredOrders:
    """What retired orders leave behind (the module docstring)."""

    __slots__ = ("_chunks", "_recent", "count", "others", "watermarks")

    def __init__(self) -> None:
        self.count = 0
        self.watermarks: dict[str, int] = {}  # id prefix -> highest order number retired
        self.others: set[str] = set()  # retired ids of another shape than <prefix>-<n>
        self._chunks: list[bytes] = []  # fill ids, FILL_CHUNK a chunk: msgpack, zlib
        self._recent: list[str] = []  # fill ids not in a chunk yet

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        """From a pickle (a kernel's snapshot): its slots; a snapshot written before the ids
        were compressed has them in a set (``fill_ids``)."""
        self.__init__()  # type: ignore[misc]
        for name, value in state[1].items():
            if name == "fill_ids":
                self._keep(sorted(value))
            else:
                setattr(self, name, value)

    @property
    def fill_ids(self) -> set[str]:
        """The retired orders' fill ids."""
        ids = set(self._recent)
        for chunk in self._chunks:
            ids.update(msgspec.msgpack.decode(zlib.decompress(chunk), type=list[str]))
        return ids

    def _keep(self, fill_ids: list[str]) -> None:
        self._recent += fill_ids
        while len(self._recent) >= FILL_CHUNK:
            chunk, self._recent = self._recent[:FILL_CHUNK], self._recent[FILL_CHUNK:]
            self._chunks.append(zlib.compress(msgspec.msgpack.encode(chunk)))

    def add(self, client_order_id: str, fill_ids: set[str]) -> None:
        self.count += 1
        self._keep(sorted(fill_ids))
        split = _split(client_order_id)
        if split is None:
            self.others.add(client_order_id)
            return
        prefix, n = split
        if n > self.watermarks.get(prefix, 0):
            self.watermarks[prefix] = n

    def knows(self, client_order_id: str) -> bool:
        """``client_order_id`` (not held: the caller looked first) is ours and retired: at or
        below its prefix's watermark. An id below it that this kernel never held was made by
        the same generator and is ours too (a host's order that never reached this kernel)."""
        split = _split(client_order_id)
        if split is None:
            return client_order_id in self.others
        return split[1] <= self.watermarks.get(split[0], 0)

    def state(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "watermarks": dict(sorted(self.watermarks.items())),
            "others": sorted(self.others),
            "fills": sorted(self.fill_ids),
        }

    def load_state(self, state: dict[str, Any] | None) -> None:
        state = state or {}
        self.count = int(state.get("count", 0))
        self.watermarks = {str(k): int(v) for k, v in state.get("watermarks", {}).items()}
        self.others = set(state.get("others", ()))
        self._chunks, self._recent = [], []
        self._keep(list(state.get("fills", ())))
