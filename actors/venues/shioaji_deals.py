"""Shioaji deals that arrive by two paths, counted once.

A deal reaches the adapter by the deal callback, numbered by ``exchange_seq`` (the exchange's
sequence number), and by ``update_status`` + ``list_trades`` as ``trade.status.deals``, numbered by
``Deal.seq`` (the order's own deal counter: ``000001``, ``000002``, …). The two numberings differ,
so neither id can tell that a deal of the other path was seen. What both paths share is the order,
the price and the quantity. The rule:

* within a path, an id seen before is a duplicate;
* a deal new to its path is the same deal as an *unpaired* deal of the other path on the same
  order with the same price and quantity; it pairs with it and is not reported again;
* otherwise it is a new deal and is reported, with a fill id that names its path
  (``SJ-<ordno>-<exchange_seq>`` from a callback, ``SJ-<ordno>-D<Deal.seq>`` from the status).

Pairing is by count: if one order has two deals of the same price and quantity, which pairs with
which does not matter (quantities, prices, fees and positions are the same). After a restart the
ledger is rebuilt from the journaled fills: their ids say which path reported them, and the other
path pairs with them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DealLedger", "Path", "fill_id"]

Path = Literal["callback", "status"]
_STATUS_MARK = "D"  # exchange_seq is digits: a "D" after the last dash marks a status deal


@dataclass
class _Deal:
    qty: int  # fixed point
    price: int  # fixed point
    ids: dict[str, str]  # path -> the id on that path


def fill_id(*, ordno: str, path: Path, deal_id: str) -> str:
    mark = _STATUS_MARK if path == "status" else ""
    return f"SJ-{ordno}-{mark}{deal_id}"


def _parse(fill: str) -> tuple[Path, str]:
    tail = fill.rsplit("-", 1)[-1]
    if tail.startswith(_STATUS_MARK):
        return "status", tail[len(_STATUS_MARK) :]
    return "callback", tail


class DealLedger:
    """The deals of each order, by path (see the module docstring)."""

    def __init__(self) -> None:
        self._orders: dict[str, list[_Deal]] = {}

    def restore(self, client_order_id: str, *, fill: str, qty: int, price: int) -> None:
        """A fill reported before a restart (its id names its path)."""
        path, deal_id = _parse(fill)
        self._orders.setdefault(client_order_id, []).append(_Deal(qty, price, {path: deal_id}))

    def admit(
        self, client_order_id: str, *, path: Path, deal_id: str, qty: int, price: int
    ) -> bool:
        """``True`` for a deal not seen on either path (report it); ``False`` otherwise."""
        deals = self._orders.setdefault(client_order_id, [])
        if any(d.ids.get(path) == deal_id for d in deals):
            return False  # a duplicate on this path
        for deal in deals:
            if path not in deal.ids and (deal.qty, deal.price) == (qty, price):
                deal.ids[path] = deal_id  # the other path's deal: the same one
                return False
        deals.append(_Deal(qty, price, {path: deal_id}))
        return True

    def forget(self, client_order_id: str, *, path: Path, deal_id: str) -> None:
        """Undo :meth:`admit` of a deal that was not reported after all (refused by the book)."""
        deals = self._orders.get(client_order_id, [])
        for deal in deals:
            if deal.ids.get(path) == deal_id and len(deal.ids) == 1:
                deals.remove(deal)
                return
