"""The risk kernel's retired orders, archived: ``risk.orders`` beside ``risk.journal``.

A kernel retires closed orders (``runtime.retirement``): they leave its state and its
snapshots. The risk actor's kernel keeps the orders it retires (``Kernel.retired_orders``, as
a backtest's does) until :meth:`OrderArchive.settle` appends their final states to the
archive (``runtime.archive``: one synced frame per settle, a zlib-compressed JSON list of
``Order.state()``; JSON, as an order's cost can pass 64 bits) and empties that list. The risk
actor settles after each commit of its journal and before any snapshot, so:

* a crash before the settle: the committed inputs retire the same orders again in the replay
  (the state and its retirements are deterministic), and the next settle archives them;
* a crash after the settle, before the next snapshot: the replay retires them again, and
  :meth:`OrderArchive.restored` finds them in the archive's last frames (each frame written
  since the snapshot holds only orders the replay retired again; the frame before it, none of
  them) and drops them from the list: none is archived twice;
* a settle that fails (:class:`~runtime.errors.DiskWriteError`, the disk is full) leaves the
  list as it was: the orders stay in memory (and in a snapshot, should one be taken), and the
  next settle tries again.

A restart never reads the archive beyond its last frames; the session's files do
(:meth:`OrderArchive.orders`: every order of the session, however long it ran, each once).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runtime.archive import Archive
from runtime.orders import Order

__all__ = ["OrderArchive"]

log = logging.getLogger("tradewind.risk.archive")


def _decode(payload: bytes) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = json.loads(zlib.decompress(payload))
    return orders


class OrderArchive:
    """The retired orders of one risk kernel (the module docstring)."""

    def __init__(self, journal_path: Path) -> None:
        self.archive = Archive(journal_path.with_suffix(".orders"))
        cut = self.archive.cut_torn_tail()
        if cut:
            log.warning("%s: a torn tail of %d bytes cut off (an append cut short; the journal "
                        "still holds those orders)", self.archive.path, cut)

    @property
    def path(self) -> Path:
        return self.archive.path

    def restored(self, retired: list[Order]) -> None:
        """After a restore, drop from ``retired`` (what the replay retired again and is not
        archived since) the orders the archive's last frames hold already."""
        if not retired:
            return
        ids = {o.client_order_id for o in retired}
        done: set[str] = set()
        for span in reversed(self.archive.spans()):
            frame = {o["id"] for o in _decode(self.archive.read(span))}
            if not frame or not frame <= ids:
                break
            done |= frame
        if done:
            retired[:] = [o for o in retired if o.client_order_id not in done]

    def settle(self, retired: list[Order]) -> None:
        """Archive ``retired`` (the kernel's retired orders not archived yet), synced, then
        empty it; a :class:`~runtime.errors.DiskWriteError` leaves it as it was."""
        if not retired:
            return
        payload = zlib.compress(json.dumps([o.state() for o in retired],
                                           separators=(",", ":")).encode())
        self.archive.append(payload, what=f"{len(retired)} retired orders not archived "
                                          f"(first {retired[0].client_order_id}; kept in "
                                          "memory, archived at the next commit)")
        retired.clear()

    def orders(self, held: Iterable[Order]) -> list[dict[str, Any]]:
        """The final state of every archived order and the state of every order in ``held``
        (the kernel's: ``Kernel.all_orders``), each once (``held``'s copy first), by creation
        time (archived first among those made at one time, in the order they retired)."""
        current = [o.state() for o in held]
        seen = {s["id"] for s in current}
        archived: list[dict[str, Any]] = []
        for frame in self.archive.frames():
            for state in _decode(frame):
                if state["id"] not in seen:
                    seen.add(state["id"])
                    archived.append(state)
        return sorted([*archived, *current], key=lambda s: int(s["ts_init"]))
