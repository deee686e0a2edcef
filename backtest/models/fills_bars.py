"""Bar fills: market orders at the next open (or cheat-on-close), stops and limits on an explicit
intrabar path, a per-bar volume participation cap.

Timing. A bar message is stamped at its *close* (``ts_event``); it opened at
``ts_event - interval_ns``. An order takes part in the whole path of a bar only if it reached the
venue at or before the bar's open; an order that arrived during the bar sees only its close.

Path. The bar visits ``open -> p1 -> p2 -> close``: ``ohlc`` (high first), ``olhc`` (low first),
``auto`` (low first for an up bar, close >= open; high first otherwise). Prices in between are
continuous, so a limit or trigger between two visited prices is reached exactly.

Prices and liquidity.
- Market order (``next_open``): fills at the open of the first bar it takes part in; taker.
- Market order (``close``): fills on arrival at the close of the latest bar seen, or else at the
  close of the next bar; taker.
- Limit buy ``L``: fills at ``min(L, price)`` where the path first reaches ``<= L`` (so at the
  open when it gaps through, else at ``L``); maker. Sells mirror.
- Stop buy ``T``: triggers where the path first reaches ``>= T`` (at the open when it gaps
  through, else at ``T``); a stop then fills there (taker), a stop-limit continues as a limit from
  that point (taker if its limit is already reached there, maker if reached later).
- Within one segment orders fill in the order the path reaches them, ties by priority.
- ``max_participation``: all orders of an instrument together fill at most
  ``floor(volume x max_participation)`` (whole lots) per bar; the rest stays open and fills on
  later bars (partial fills). FOK fills only when the whole rest fits.
- IOC/FOK take part in one bar (or, with ``close`` and a bar already seen, only their arrival)
  and the rest is canceled at that bar's close.

Fill timestamps: the bar's open time for fills at the open, else the bar's close time.
"""

from __future__ import annotations

from backtest.models.config import BarFillConfig
from backtest.models.orders import FillSink, SimOrder
from runtime.messages import Bar, MarketData, OrderType, TimeInForce
from runtime.values import FIXED_SCALE, fixed

__all__ = ["BarFills"]

_Hit = tuple[int, int, bool]  # (distance along the path segment, price, taker)


class _BarState:
    __slots__ = ("last_bar", "orders", "used")

    def __init__(self) -> None:
        self.last_bar: Bar | None = None
        self.used = 0  # quantity filled by the venue during last_bar
        self.orders: list[SimOrder] = []


def _trigger_point(order: SimOrder, a: int, b: int) -> int | None:
    trigger = order.trigger_price
    assert trigger is not None
    if order.is_buy:
        return a if a >= trigger else (trigger if b >= trigger else None)
    return a if a <= trigger else (trigger if b <= trigger else None)


def _limit_hit(order: SimOrder, a: int, b: int, *, base: int, taker_at_a: bool) -> _Hit | None:
    limit = order.price
    assert limit is not None
    if order.is_buy:
        if a <= limit:
            return base, a, taker_at_a
        return (base + a - limit, limit, False) if b <= limit else None
    if a >= limit:
        return base, a, taker_at_a
    return (base + limit - a, limit, False) if b >= limit else None


class BarFills:
    latest_only = True  # with no orders, only the last bar of each instrument matters

    def __init__(self, config: BarFillConfig, sink: FillSink) -> None:
        self._sink = sink
        self._close_mode = config.price == "close"
        self._path = config.path
        cap = config.max_participation
        self._cap: int | None = None if cap is None else fixed(cap)
        self._states: dict[str, _BarState] = {}

    # --- FillModel -------------------------------------------------------------------------

    def on_market(self, msg: MarketData) -> None:
        if type(msg) is not Bar:
            return
        state = self._states.get(msg.instrument_id)
        if state is None:
            state = self._states[msg.instrument_id] = _BarState()
        state.last_bar = msg
        state.used = 0
        if state.orders:
            self._run_bar(state, msg)

    def add(self, order: SimOrder, ts_ns: int) -> None:
        state = self._state(order.instrument.instrument_id)
        state.orders.append(order)
        bar = state.last_bar
        if not (self._close_mode and order.market_like and bar is not None):
            return
        self._fill(state, order, price=bar.close, taker=True, ts_ns=ts_ns, bar=bar)
        if order.immediate and not order.closed:
            self._sink.cancel_rest(order, reason=self._tif_reason(order), ts_ns=ts_ns)

    def remove(self, order: SimOrder) -> None:
        state = self._states.get(order.instrument.instrument_id)
        if state is not None and order in state.orders:
            state.orders.remove(order)

    def requeue(self, order: SimOrder, ts_ns: int, *, keep_priority: bool) -> None:
        if keep_priority:
            return
        orders = self._state(order.instrument.instrument_id).orders
        orders.remove(order)
        orders.append(order)

    def would_take(self, order: SimOrder) -> bool:
        bar = self._state(order.instrument.instrument_id).last_bar
        if bar is None or order.price is None:
            return False
        return order.price > bar.close if order.is_buy else order.price < bar.close

    # --- one bar ---------------------------------------------------------------------------

    def _state(self, instrument_id: str) -> _BarState:
        state = self._states.get(instrument_id)
        if state is None:
            state = self._states[instrument_id] = _BarState()
        return state

    def _points(self, bar: Bar) -> tuple[int, int, int, int]:
        low_first = self._path == "olhc" or (self._path == "auto" and bar.close >= bar.open)
        if low_first:
            return bar.open, bar.low, bar.high, bar.close
        return bar.open, bar.high, bar.low, bar.close

    @staticmethod
    def _out_of_reach(orders: list[SimOrder], bar: Bar) -> bool:
        """True when the bar's range reaches no order's price or trigger (the common case)."""
        high, low = bar.high, bar.low
        for order in orders:
            if order.immediate or order.market_like:
                return False
            level = order.price if order.triggered else order.trigger_price
            assert level is not None
            waits_for_fall = order.is_buy if order.triggered else not order.is_buy
            if (low <= level) if waits_for_fall else (high >= level):
                return False
        return True

    def _run_bar(self, state: _BarState, bar: Bar) -> None:
        open_ts = bar.ts_event - bar.interval_ns
        if len(state.orders) == 1 and self._fill_lone_market(state, bar, open_ts):
            return
        if self._out_of_reach(state.orders, bar):
            return
        present = list(state.orders)
        early = [o for o in present if o.arrival_ts <= open_ts]
        points = self._points(bar)
        for index in range(3):
            early = [o for o in early if not o.closed]
            if not early:
                break  # all filled (a market order at the open, the common case)
            a, b = points[index], points[index + 1]
            hits: list[tuple[int, int, int, bool, SimOrder]] = []
            for order in early:
                hit = self._hit(order, a, b, at_open=index == 0)
                if hit is not None:
                    hits.append((hit[0], order.priority, hit[1], hit[2], order))
            if len(hits) > 1:
                hits.sort(key=lambda h: (h[0], h[1]))
            for distance, _, price, taker, order in hits:
                at_open = index == 0 and distance == 0
                ts_ns = open_ts if at_open else bar.ts_event
                self._fill(state, order, price=price, taker=taker, ts_ns=ts_ns, bar=bar)
        self._close_point(state, bar, present, open_ts)
        for order in present:
            if order.immediate and not order.closed:
                reason = self._tif_reason(order)
                self._sink.cancel_rest(order, reason=reason, ts_ns=bar.ts_event)

    def _fill_lone_market(self, state: _BarState, bar: Bar, open_ts: int) -> bool:
        """The common case, short: the bar's only order is a market order that was at the venue
        when the bar opened, with no participation cap (``next_open`` prices): it fills in full
        at the open, taker, as the path in :meth:`_run_bar` would fill it. False: not that case."""
        order = state.orders[0]
        if (
            order.order_type is not OrderType.MARKET
            or order.arrival_ts > open_ts
            or self._close_mode
            or self._cap is not None
        ):
            return False
        qty = order.quantity - order.filled
        state.used += qty
        self._sink.fill(
            order, qty=qty, price=bar.open, taker=True, ts_ns=open_ts, volume=bar.volume
        )
        return True

    def _close_point(
        self, state: _BarState, bar: Bar, present: list[SimOrder], open_ts: int
    ) -> None:
        close = bar.close
        for order in present:
            if order.closed:
                continue
            if self._close_mode and order.market_like:
                hit: _Hit | None = (0, close, True)
            elif order.arrival_ts > open_ts:
                hit = self._hit(order, close, close, at_open=False)
            else:
                continue
            if hit is not None:
                self._fill(state, order, price=hit[1], taker=hit[2], ts_ns=bar.ts_event, bar=bar)

    def _hit(self, order: SimOrder, a: int, b: int, *, at_open: bool) -> _Hit | None:
        if not order.triggered:
            point = _trigger_point(order, a, b)
            if point is None:
                return None
            order.triggered = True
            base = abs(point - a)
            if order.order_type is OrderType.STOP:
                return base, point, True
            return _limit_hit(order, point, b, base=base, taker_at_a=True)
        if order.market_like:
            return (0, a, True) if at_open and not self._close_mode else None
        return _limit_hit(order, a, b, base=0, taker_at_a=False)

    def _fill(
        self, state: _BarState, order: SimOrder, *, price: int, taker: bool, ts_ns: int, bar: Bar
    ) -> None:
        qty = order.leaves
        if self._cap is not None:
            lot = order.instrument.lot_size
            budget = bar.volume * self._cap // FIXED_SCALE - state.used
            qty = min(qty, budget - budget % lot) if budget > 0 else 0
        if qty <= 0 or (order.time_in_force is TimeInForce.FOK and qty < order.leaves):
            return
        state.used += qty
        self._sink.fill(order, qty=qty, price=price, taker=taker, ts_ns=ts_ns, volume=bar.volume)

    @staticmethod
    def _tif_reason(order: SimOrder) -> str:
        return "fok: not filled in full" if order.time_in_force is TimeInForce.FOK else "ioc"
