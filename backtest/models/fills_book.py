"""Book fills: ``l1`` (top of book from quotes) and ``l2`` (an L2 book), sharing one matcher.

Taking. A market order (or a triggered stop) takes the opposite side level by level at the
displayed prices and sizes; a marketable limit likewise up to its limit. Liquidity the venue has
taken at a level is remembered until that level is updated by the feed (l1: the next quote; l2: a
delta touching the level, or a snapshot), so two orders cannot take the same displayed size. What
a market order cannot take waits for the next update (partial fills); what a limit cannot take
rests. A limit still crossed by the displayed book after taking (because the venue already took
that liquidity) keeps taking as the feed refreshes and only rests once the book no longer reaches
it. Taker fills are in whole lots.

Resting. A resting limit's queue position (``queue_ahead``) is the size displayed at its price
when it starts resting: 0 when it improves the price. In ``l1`` a price behind the touch is not
displayed: its queue is unknown until the price becomes the touch, and is then the displayed
size (conservative: it counts orders that came later). A resting order fills:

- on a trade print at its price whose aggressor is the other side (or unknown): the print
  consumes the queue ahead first, the excess fills the order (shared among the venue's orders at
  that price in priority order); maker, at the order's price;
- fully, as maker at its price, when a trade prints through its price or the opposite side of the
  book reaches it (a buy's best ask <= its price).

Queue shrink. When the displayed size at the order's level falls by ``d`` for reasons other than
prints the venue has seen, ``queue_shrink`` says whose orders left: ``behind_first`` (the
conservative default: ``queue_ahead = min(queue_ahead, level size)``), ``proportional``
(``queue_ahead -= d x queue_ahead / level size before``) or ``ahead_first`` (``queue_ahead -= d``).
Prints at the level are subtracted from the expected level size first, so a print followed by the
delta that reports it is not counted twice.

Stops trigger on a print at or through the trigger, or when the book side the stop would take
reaches it (buy: best ask >= trigger; sell: best bid <= trigger).
"""

from __future__ import annotations

from collections.abc import Callable

from backtest.models.book_views import BookLike, DepthView, TopOfBookView, View
from backtest.models.config import L1FillConfig, L2FillConfig, QueueShrink
from backtest.models.orders import FillSink, SimOrder
from runtime.messages import (
    BookDeltas,
    BookSnapshot,
    MarketData,
    QuoteTick,
    Side,
    TimeInForce,
    TradeTick,
)

__all__ = ["BookMatcher", "L1Fills", "L2Fills"]


def _crosses(order: SimOrder, price: int, limit: int) -> bool:
    """Is ``price`` on the opposite side at or better than ``limit`` for this order?"""
    return price <= limit if order.is_buy else price >= limit


class BookMatcher:
    """The open orders of one instrument against one book view."""

    __slots__ = ("consumed", "orders", "shrink", "sink", "view")

    def __init__(self, view: View, sink: FillSink, shrink: QueueShrink) -> None:
        self.view = view
        self.sink = sink
        self.shrink = shrink
        self.orders: list[SimOrder] = []
        self.consumed: dict[int, int] = {}  # side x price -> size the venue took there

    # --- evaluation ------------------------------------------------------------------------

    def evaluate_all(self, ts_ns: int) -> None:
        for order in tuple(self.orders):
            if not order.closed:
                self.evaluate(order, ts_ns)

    def evaluate(self, order: SimOrder, ts_ns: int) -> None:
        view = self.view
        if not view.ready:
            self._end_immediate(order, ts_ns)
            return
        if not order.triggered:
            if not self._stop_hit_by_book(order):
                return
            order.triggered = True
        if order.resting:
            self._update_resting(order, ts_ns)
            return
        limit = None if order.market_like else order.price
        if (
            order.time_in_force is not TimeInForce.FOK
            or self._available(order, limit) >= order.leaves
        ):
            self._take(order, limit, ts_ns)
        if order.closed:
            return
        if order.immediate:
            self._end_immediate(order, ts_ns)
        elif limit is not None and not self._crossed(order, limit):
            order.resting = True
            size = view.queue_size(int(order.side), limit)
            order.queue_ahead = size
            order.level_seen = size or 0

    def _crossed(self, order: SimOrder, limit: int) -> bool:
        """Does the displayed opposite side still reach the limit (liquidity we took aside)?"""
        best = self.view.best(-int(order.side))
        return best is not None and _crosses(order, best[0], limit)

    def _end_immediate(self, order: SimOrder, ts_ns: int) -> None:
        if order.immediate and order.triggered and not order.closed:
            fok = order.time_in_force is TimeInForce.FOK
            reason = "fok: not filled in full" if fok else "ioc"
            self.sink.cancel_rest(order, reason=reason, ts_ns=ts_ns)

    def _stop_hit_by_book(self, order: SimOrder) -> bool:
        best = self.view.best(-int(order.side))
        trigger = order.trigger_price
        if best is None or trigger is None:
            return False
        return best[0] >= trigger if order.is_buy else best[0] <= trigger

    def _available(self, order: SimOrder, limit: int | None) -> int:
        opposite = -int(order.side)
        total = 0
        for price, size in self.view.levels(opposite):
            if limit is not None and not _crosses(order, price, limit):
                break
            total += max(size - self.consumed.get(opposite * price, 0), 0)
        return total

    def _take(self, order: SimOrder, limit: int | None, ts_ns: int) -> None:
        opposite = -int(order.side)
        lot = order.instrument.lot_size
        consumed = self.consumed
        for price, size in self.view.levels(opposite):
            if limit is not None and not _crosses(order, price, limit):
                break
            key = opposite * price
            taken = consumed.get(key, 0)
            available = size - taken
            available -= available % lot
            if available <= 0:
                continue
            qty = min(order.leaves, available)
            consumed[key] = taken + qty
            self.sink.fill(order, qty=qty, price=price, taker=True, ts_ns=ts_ns, volume=size)
            if order.closed:
                return

    def _update_resting(self, order: SimOrder, ts_ns: int) -> None:
        price = order.price
        assert price is not None
        best = self.view.best(-int(order.side))
        if best is not None and _crosses(order, best[0], price):
            self.sink.fill(
                order, qty=order.leaves, price=price, taker=False, ts_ns=ts_ns, volume=best[1]
            )
            return
        size = self.view.queue_size(int(order.side), price)
        if size is None:
            return
        if order.queue_ahead is None:
            order.queue_ahead = size
        else:
            self._shrink(order, size)
        order.level_seen = size

    def _shrink(self, order: SimOrder, size: int) -> None:
        seen, ahead = order.level_seen, order.queue_ahead
        if ahead is None or size >= seen:
            return
        if self.shrink == "behind_first":
            order.queue_ahead = min(ahead, size)
        elif self.shrink == "proportional":
            order.queue_ahead = ahead - (seen - size) * ahead // seen
        else:
            order.queue_ahead = max(ahead - (seen - size), 0)

    # --- prints ----------------------------------------------------------------------------

    def on_trade(self, trade: TradeTick) -> None:
        left = trade.size
        ts_ns = trade.ts_event
        for order in tuple(self.orders):
            if order.closed:
                continue
            if not order.triggered:
                trigger = order.trigger_price
                assert trigger is not None
                if trade.price >= trigger if order.is_buy else trade.price <= trigger:
                    order.triggered = True
                    self.evaluate(order, ts_ns)
            elif order.resting:
                left -= self._print_at_rest(order, trade, left)

    def _print_at_rest(self, order: SimOrder, trade: TradeTick, left: int) -> int:
        """Apply a print to a resting order; the quantity it filled."""
        price = order.price
        assert price is not None
        if trade.price != price:
            if _crosses(order, trade.price, price):  # printed through the order's price
                qty = order.leaves
                self.sink.fill(
                    order,
                    qty=qty,
                    price=price,
                    taker=False,
                    ts_ns=trade.ts_event,
                    volume=trade.size,
                )
                return 0
            return 0
        if trade.aggressor is not Side.NONE and int(trade.aggressor) == int(order.side):
            return 0
        ahead = order.queue_ahead
        if ahead is None or left <= 0:
            return 0
        excess = left - ahead
        order.queue_ahead = max(ahead - left, 0)
        order.level_seen = max(order.level_seen - left, 0)
        lot = order.instrument.lot_size
        qty = min(order.leaves, excess - excess % lot) if excess > 0 else 0
        if qty > 0:
            self.sink.fill(
                order, qty=qty, price=price, taker=False, ts_ns=trade.ts_event, volume=trade.size
            )
        return qty


class _BookFills:
    """Shared FillModel plumbing: one matcher per instrument."""

    def __init__(self, sink: FillSink, shrink: QueueShrink) -> None:
        self._sink = sink
        self._shrink = shrink
        self._matchers: dict[str, BookMatcher] = {}

    def _new_view(self, instrument_id: str) -> View:
        raise NotImplementedError

    def _matcher(self, instrument_id: str) -> BookMatcher:
        matcher = self._matchers.get(instrument_id)
        if matcher is None:
            view = self._new_view(instrument_id)
            matcher = self._matchers[instrument_id] = BookMatcher(view, self._sink, self._shrink)
        return matcher

    def add(self, order: SimOrder, ts_ns: int) -> None:
        matcher = self._matcher(order.instrument.instrument_id)
        matcher.orders.append(order)
        matcher.evaluate(order, ts_ns)

    def remove(self, order: SimOrder) -> None:
        orders = self._matcher(order.instrument.instrument_id).orders
        if order in orders:
            orders.remove(order)

    def requeue(self, order: SimOrder, ts_ns: int, *, keep_priority: bool) -> None:
        if keep_priority:
            return
        matcher = self._matcher(order.instrument.instrument_id)
        matcher.orders.remove(order)
        matcher.orders.append(order)
        order.resting = False
        order.queue_ahead = None
        order.level_seen = 0
        matcher.evaluate(order, ts_ns)

    def would_take(self, order: SimOrder) -> bool:
        matcher = self._matcher(order.instrument.instrument_id)
        best = matcher.view.best(-int(order.side))
        price = order.price
        return best is not None and price is not None and _crosses(order, best[0], price)

    def _on_trade(self, trade: TradeTick) -> None:
        matcher = self._matchers.get(trade.instrument_id)
        if matcher is not None and matcher.orders:
            matcher.on_trade(trade)


class L1Fills(_BookFills):
    latest_only = True  # with no orders, only the last quote of each instrument matters

    def __init__(self, config: L1FillConfig, sink: FillSink) -> None:
        super().__init__(sink, config.queue_shrink)

    def _new_view(self, instrument_id: str) -> View:
        return TopOfBookView()

    def on_market(self, msg: MarketData) -> None:
        kind = type(msg)
        if kind is QuoteTick:
            matcher = self._matchers.get(msg.instrument_id)
            if matcher is None:
                matcher = self._matcher(msg.instrument_id)
            view = matcher.view
            assert isinstance(view, TopOfBookView)
            view.quote = msg  # type: ignore[assignment]
            if matcher.consumed:
                matcher.consumed.clear()
            if matcher.orders:
                matcher.evaluate_all(msg.ts_event)
        elif kind is TradeTick:
            self._on_trade(msg)  # type: ignore[arg-type]


class L2Fills(_BookFills):
    def __init__(
        self, config: L2FillConfig, sink: FillSink, book_factory: Callable[[str], BookLike]
    ) -> None:
        super().__init__(sink, config.queue_shrink)
        self._book_factory = book_factory

    def _new_view(self, instrument_id: str) -> View:
        return DepthView(self._book_factory(instrument_id))

    def on_market(self, msg: MarketData) -> None:
        kind = type(msg)
        if kind is BookDeltas:
            matcher = self._matcher(msg.instrument_id)
            view = matcher.view
            assert isinstance(view, DepthView) and isinstance(msg, BookDeltas)
            view.book.apply_deltas(msg)
            consumed = matcher.consumed
            if consumed:
                for price, _ in msg.bids:
                    consumed.pop(price, None)
                for price, _ in msg.asks:
                    consumed.pop(-price, None)
        elif kind is BookSnapshot:
            matcher = self._matcher(msg.instrument_id)
            view = matcher.view
            assert isinstance(view, DepthView) and isinstance(msg, BookSnapshot)
            view.book.apply_snapshot(msg)
            matcher.consumed.clear()
        elif kind is TradeTick:
            self._on_trade(msg)  # type: ignore[arg-type]
            return
        else:
            return
        if matcher.orders:
            matcher.evaluate_all(msg.ts_event)
