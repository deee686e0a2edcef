"""Fill models: how the simulated venue matches orders against market data.

Three families, chosen by ``fills.kind``:

- ``bars`` (:class:`~backtest.models.fills_bars.BarFills`): next open or cheat-on-close, an explicit
  intrabar path, a volume participation cap.
- ``l1`` (:class:`~backtest.models.fills_book.L1Fills`): top-of-book quotes and trade prints, queue
  position for resting limits.
- ``l2`` (:class:`~backtest.models.fills_book.L2Fills`): book walking against a
  :class:`runtime.book.L2Book`, queue position from the level size.

A fill model owns the open orders of each instrument in priority order and calls back into a
:class:`~backtest.models.orders.FillSink` (the venue) for every fill and IOC/FOK cancel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from backtest.models.book_views import BookLike
from backtest.models.config import BarFillConfig, FillConfig, L1FillConfig, L2FillConfig
from backtest.models.fills_bars import BarFills
from backtest.models.fills_book import L1Fills, L2Fills
from backtest.models.orders import FillSink, SimOrder
from runtime.messages import MarketData

__all__ = ["BookFactory", "FillModel", "build_fill_model"]

BookFactory = Callable[[str], BookLike]


class FillModel(Protocol):
    def add(self, order: SimOrder, ts_ns: int) -> None:
        """A newly accepted order; it may fill at once (taker) or start resting."""
        ...

    def remove(self, order: SimOrder) -> None:
        """Forget an order that is filled, canceled or expired."""
        ...

    def requeue(self, order: SimOrder, ts_ns: int, *, keep_priority: bool) -> None:
        """An order was modified: keep its place (quantity decrease) or go to the back."""
        ...

    def would_take(self, order: SimOrder) -> bool:
        """Would this limit order take liquidity now (post-only check)?"""
        ...

    def on_market(self, msg: MarketData) -> None:
        """Apply one market data message (cheap when the instrument has no orders; a model with
        ``latest_only = True`` may be shown only the latest of each kind and instrument while
        the venue is quiet: see ``SimulatedVenue.market_may_wait``)."""
        ...


def _real_book(instrument_id: str) -> BookLike:
    from runtime.book import L2Book

    return L2Book(instrument_id)


def build_fill_model(
    config: FillConfig, sink: FillSink, *, book_factory: BookFactory | None = None
) -> FillModel:
    """The fill model a config names, reporting to ``sink``. ``book_factory`` makes the L2 book
    of an instrument for ``l2`` (default :class:`runtime.book.L2Book`)."""
    if isinstance(config, BarFillConfig):
        return BarFills(config, sink)
    if isinstance(config, L1FillConfig):
        return L1Fills(config, sink)
    if isinstance(config, L2FillConfig):
        return L2Fills(config, sink, book_factory or _real_book)
    raise TypeError(f"not a fill config: {config!r}")
