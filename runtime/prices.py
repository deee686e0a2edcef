"""The latest market price per instrument, from every kind of market data.

One record per instrument, updated by the kernel on every market message, whatever its kind:

- a trade prints ``last`` (a bar's close counts as its last trade);
- a quote, or a book whose both sides are known, sets ``bid``, ``ask`` and their ``mid``;
- ``price`` is the latest of these, whichever came last (trade price, bar close or mid): what
  risk prices an order at and what positions are marked at.

``ts`` is when the instrument last had any market data (a book update with one side empty
counts as data, though it sets no price). Risk reads this object; it never reads marks from the
portfolio, which exist only once a position does.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LastPrices"]


class LastPrices:
    """Latest ``price``/``last``/``bid``/``ask`` and data time per instrument (fixed point)."""

    __slots__ = ("ask", "bid", "last", "price", "ts")

    def __init__(self) -> None:
        self.price: dict[str, int] = {}
        self.last: dict[str, int] = {}
        self.bid: dict[str, int] = {}
        self.ask: dict[str, int] = {}
        self.ts: dict[str, int] = {}

    def on_trade(self, instrument_id: str, ts_ns: int, price: int) -> int:
        """A trade (or a bar's close) at ``price``; returns the new reference price."""
        self.ts[instrument_id] = ts_ns
        self.last[instrument_id] = self.price[instrument_id] = price
        return price

    def on_quote(self, instrument_id: str, ts_ns: int, bid: int, ask: int) -> int:
        """Best bid and ask; returns their mid (rounded toward -inf), the new reference."""
        self.ts[instrument_id] = ts_ns
        self.bid[instrument_id] = bid
        self.ask[instrument_id] = ask
        mid = self.price[instrument_id] = (bid + ask) // 2
        return mid

    def on_data(self, instrument_id: str, ts_ns: int) -> None:
        """Market data that sets no price (a book with an empty side): only its time counts."""
        self.ts[instrument_id] = ts_ns

    def mid(self, instrument_id: str) -> int | None:
        bid, ask = self.bid.get(instrument_id), self.ask.get(instrument_id)
        return None if bid is None or ask is None else (bid + ask) // 2

    # --- state (part of the kernel's state: a restored kernel prices orders at once) ----------
    def state(self) -> dict[str, list[list[object]]]:
        return {
            name: [[k, v] for k, v in sorted(getattr(self, name).items())]
            for name in ("price", "last", "bid", "ask", "ts")
        }

    def load_state(self, state: dict[str, Any]) -> None:
        for name in ("price", "last", "bid", "ask", "ts"):
            table: dict[str, int] = getattr(self, name)
            table.clear()  # in place: the kernel and risk share these dicts
            table.update((str(k), int(v)) for k, v in state.get(name, ()))
