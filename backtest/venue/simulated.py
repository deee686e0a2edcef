"""The simulated venue: an exchange for backtests and the paper broker, behind the venue port.

Time. Commands sent at ``t`` (``submit``/``cancel``/``modify`` with ``ts_ns=t``) reach the venue at
``t + entry latency``; reports the venue produces at ``e`` (their ``ts_event``) reach the trader at
``e + response latency`` (their ``ts_init``). Both channels are FIFO: a draw that would overtake an
earlier command or report is delayed to it, so the order of sending is the order of arrival.
Reports are never delivered before the venue's clock (the latest market data or venue event
processed), so a bar's open fill is delivered no earlier than the bar's close.

Ordering at equal timestamps. The venue's own events at time ``t`` (command arrivals, DAY
expiries) happen *after* all market data stamped ``<= t`` and before any data stamped ``> t``:
a command arriving at ``t`` sees the market as of ``t``. Among venue events at the same time,
expiries come first, then commands in arrival order. Reports are delivered in production order
(their ``seq``); a report due at ``t`` is delivered before venue events at ``t``.

Determinism. Randomness comes only from the ``numpy.random.Generator`` given to the venue (the
sampled latency draws); ids are counters: ``venue_order_id`` ``{venue}-{n}``, ``fill_id``
``{venue}-F{n}``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from backtest.models.config import FeeConfig, FillConfig, LatencyConfig, SlippageConfig, VenueModels
from backtest.models.fees import build_fees
from backtest.models.fills import BookFactory, build_fill_model
from backtest.models.latency import build_latency
from backtest.models.orders import SimOrder
from backtest.models.slippage import build_slippage
from backtest.venue.checks import Refusal, check_modify, check_submit
from backtest.venue.outbox import Outbox
from backtest.venue.sessions import day_end_ns
from backtest.venue.timeline import NEVER, Timeline
from runtime.auxdata import AUX_TYPES
from runtime.errors import InvariantError
from runtime.instruments import Instrument, InstrumentRegistry
from runtime.messages import (
    CancelOrder,
    Liquidity,
    MarketData,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderType,
    OrderUpdated,
    SubmitOrder,
    TimeInForce,
)
from runtime.retirement import DEFAULT_RETIRE_AFTER_NS, SWEEP_NS, next_sweep
from runtime.values import from_fixed
from runtime.venue import VenueOrder

__all__ = ["SimulatedVenue"]

_LIMIT_TYPES = (OrderType.LIMIT, OrderType.STOP_LIMIT)
_AUX = frozenset(AUX_TYPES)


class SimulatedVenue:
    """A simulated exchange implementing :class:`runtime.venue.VenuePort`."""

    def __init__(
        self,
        instruments: InstrumentRegistry | Iterable[Instrument],
        *,
        latency: LatencyConfig,
        fills: FillConfig,
        slippage: SlippageConfig,
        fees: FeeConfig,
        rng: np.random.Generator,
        venue_id: str = "SIM",
        book_factory: BookFactory | None = None,
        day_orders_only: bool = False,
    ) -> None:
        self.venue_id = venue_id
        self._day_orders_only = day_orders_only  # a GTC order that would rest is rejected
        self._instruments: dict[str, Instrument] = (
            dict(instruments.as_mapping())
            if isinstance(instruments, InstrumentRegistry)
            else {i.instrument_id: i for i in instruments}
        )
        latency_model = build_latency(latency, rng)
        self._slippage = build_slippage(slippage)
        self._fees = build_fees(fees)
        self._fill_model = build_fill_model(fills, self, book_factory=book_factory)
        self._fill_on_market = self._fill_model.on_market
        self._observe: Callable[[Any], None] | None = (
            self._slippage.observe if self._slippage.observes else None
        )
        self._timeline = Timeline(latency_model)
        self._outbox = Outbox(latency_model)
        self._orders: dict[str, SimOrder] = {}
        #: ids submitted (a second submit of one is refused as a duplicate) -> when; those
        #: of closed orders leave a day after (venue time, swept hourly on a submit)
        self._seen_ids: dict[str, int] = {}
        self._sweep_ns = 0
        self._positions: dict[str, int] = {}
        self._fill_log: list[OrderFilled] = []
        self._now = 0
        self._order_count = 0
        self._fill_count = 0

    @classmethod
    def from_models(
        cls,
        instruments: InstrumentRegistry | Iterable[Instrument],
        models: VenueModels,
        *,
        rng: np.random.Generator,
        venue_id: str = "SIM",
        book_factory: BookFactory | None = None,
    ) -> SimulatedVenue:
        return cls(
            instruments,
            latency=models.latency,
            fills=models.fills,
            slippage=models.slippage,
            fees=models.fees,
            rng=rng,
            venue_id=venue_id,
            book_factory=book_factory,
            day_orders_only=models.day_orders_only,
        )

    # --- market data -----------------------------------------------------------------------

    def on_market(self, msg: MarketData) -> None:
        """Apply one market data message, after the venue events stamped before it."""
        ts = msg.ts_event
        if self._timeline.next_ts < ts:
            self._advance(ts, inclusive=False)
        if ts > self._now:
            self._now = ts
        if type(msg) in _AUX:  # auxiliary data moves the clock and fills nothing
            return
        if self._observe is not None:
            self._observe(msg)
        self._fill_on_market(msg)

    # --- the venue port --------------------------------------------------------------------

    def submit(self, command: SubmitOrder, ts_ns: int) -> None:
        self._timeline.send(command, ts_ns)

    def cancel(self, command: CancelOrder, ts_ns: int) -> None:
        self._timeline.send(command, ts_ns)

    def modify(self, command: ModifyOrder, ts_ns: int) -> None:
        self._timeline.send(command, ts_ns)

    def open_orders(self) -> list[VenueOrder]:
        return [
            VenueOrder(
                client_order_id=o.client_order_id,
                venue_order_id=o.venue_order_id,
                instrument_id=o.instrument.instrument_id,
                side=o.side,
                order_type=o.order_type,
                quantity=o.quantity,
                filled_qty=o.filled,
                price=o.price,
                trigger_price=o.trigger_price,
            )
            for o in sorted(self._orders.values(), key=lambda o: o.priority)
        ]

    def positions(self) -> dict[str, int]:
        """Signed net quantity per instrument from the venue's own fills (zeros left out)."""
        return {k: v for k, v in sorted(self._positions.items()) if v}

    def fills_since(self, cursor: int) -> list[OrderFilled]:
        start = bisect.bisect_right(self._fill_log, cursor, key=lambda f: f.seq)
        return self._fill_log[start:]

    def release_fills(self, before_ns: int, keep: Callable[[list[OrderFilled]], None]) -> int:
        """The log's fills made before ``before_ns`` (its oldest), handed to ``keep`` (an owner
        that keeps them elsewhere: the paper broker's archive), then out of the log; should
        ``keep`` raise, they stay. How many left."""
        n = 0
        for fill in self._fill_log:
            if fill.ts_event >= before_ns:
                break
            n += 1
        if n:
            keep(self._fill_log[:n])
            del self._fill_log[:n]
        return n

    def drain_reports(self) -> list[OrderEvent]:
        """Reports deliverable by the venue's clock (the latest data or event it processed)."""
        return self.pop_reports(self._now)

    # --- report delivery -------------------------------------------------------------------

    def next_report_ts(self, before: int | None = None) -> int | None:
        """Delivery time of the next report, processing venue events as far as needed.

        ``before``: the timestamp of the next market data message the runner holds (venue events
        at or after it wait for that data); None at the end of the data. Returns None when no
        report is due before it.
        """
        limit = NEVER if before is None else before
        timeline, outbox = self._timeline, self._outbox
        while timeline.next_ts < limit and outbox.next_ts > timeline.next_ts:
            self._step()
        delivery = outbox.next_ts
        return delivery if delivery < limit else None

    def pop_reports(self, until_ts: int) -> list[OrderEvent]:
        """Reports delivered at or before ``until_ts``, in delivery order (ties by ``seq``).

        Venue events stamped ``<= until_ts`` are processed first: call it only once the market
        data stamped ``<= until_ts`` has been given to :meth:`on_market`.
        """
        if self._timeline.next_ts <= until_ts:
            self._advance(until_ts, inclusive=True)
        return self._outbox.pop(until_ts)

    def idle(self) -> bool:
        """Nothing pending at the venue: no command in flight, no expiry, no report to deliver.

        Resting orders change only with market data, so an idle venue stays idle until then.
        """
        return self._timeline.next_ts == NEVER and self._outbox.next_ts == NEVER

    def quiet(self) -> bool:
        """Idle and no open order: nothing can happen here until a command arrives."""
        return not self._orders and self._timeline.next_ts == self._outbox.next_ts == NEVER

    def market_may_wait(self) -> bool:
        """While :meth:`quiet`, does this venue need only the latest market data message of each
        kind and instrument? True for bar and L1 fills when no slippage model observes the data:
        a runner may then hold data back and show the venue the latest before it next uses it
        (``backtest.engine`` does; the fills are the same, see tests/backtest)."""
        return self._observe is None and getattr(self._fill_model, "latest_only", False)

    @property
    def now_ns(self) -> int:
        return self._now

    # --- venue events ----------------------------------------------------------------------

    def _advance(self, ts: int, *, inclusive: bool) -> None:
        timeline = self._timeline
        while timeline.next_ts < ts or (inclusive and timeline.next_ts == ts):
            self._step()

    def _step(self) -> None:
        """Process the earliest venue event."""
        t, event = self._timeline.pop()
        if t > self._now:
            self._now = t
        if isinstance(event, str):
            order = self._orders.get(event)
            if order is not None and order.expire_ts == t:
                self._emit_for(order, OrderExpired, t)
                self._close(order)
        elif type(event) is SubmitOrder:
            self._on_submit(event, t)
        elif type(event) is CancelOrder:
            self._on_cancel(event, t)
        else:
            self._on_modify(event, t)  # type: ignore[arg-type]

    def _on_submit(self, command: SubmitOrder, ts: int) -> None:
        instrument = self._instruments.get(command.instrument_id)
        refusal: Refusal | None
        if command.client_order_id in self._seen_ids:
            refusal = Refusal("duplicate", f"duplicate client order id {command.client_order_id}")
        elif instrument is None:
            refusal = Refusal("instrument", f"unknown instrument {command.instrument_id}")
        elif (self._day_orders_only and command.time_in_force is TimeInForce.GTC
              and command.order_type is not OrderType.MARKET):
            refusal = Refusal("time_in_force", "the venue takes day orders only (DAY, IOC, "
                              "FOK): a GTC order would end with the day")
        else:
            refusal = check_submit(command, instrument, ts)
        self._seen_ids[command.client_order_id] = ts
        if ts >= self._sweep_ns:
            self._forget_ids(ts)
        if refusal is not None or instrument is None:
            self._reject(command, refusal, ts)
            return
        self._order_count += 1
        order = SimOrder(
            command,
            instrument=instrument,
            arrival_ts=ts,
            priority=self._order_count,
            venue_order_id=f"{self.venue_id}-{self._order_count}",
        )
        if command.post_only and self._fill_model.would_take(order):
            self._reject(command, Refusal("post_only", "post-only order would take liquidity"), ts)
            return
        self._orders[order.client_order_id] = order
        seq, delivery = self._outbox.stamp(ts, self._now)
        self._outbox.push(  # built here, not through _emit_for: once per order
            OrderAccepted(
                seq=seq,
                ts_event=ts,
                ts_init=delivery,
                client_order_id=order.client_order_id,
                strategy_id=order.strategy_id,
                instrument_id=instrument.instrument_id,
                venue_order_id=order.venue_order_id,
            )
        )
        if order.time_in_force is TimeInForce.DAY:
            order.expire_ts = day_end_ns(instrument, ts)
            self._timeline.add_expiry(order.expire_ts, order.priority, order.client_order_id)
        self._fill_model.add(order, ts)

    def _reject(self, command: SubmitOrder, refusal: Refusal | None, ts: int) -> None:
        assert refusal is not None
        self._emit(
            OrderRejected,
            ts,
            client_order_id=command.client_order_id,
            strategy_id=command.strategy_id,
            instrument_id=command.instrument_id,
            reason=refusal.reason,
            venue_code=refusal.code,
        )

    def _on_cancel(self, command: CancelOrder, ts: int) -> None:
        order = self._orders.get(command.client_order_id)
        if order is None:
            self._cancel_reject(command, "cancel: unknown or closed order", ts)
            return
        self._emit_for(order, OrderCanceled, ts, reason="canceled")
        self._close(order)

    def _on_modify(self, command: ModifyOrder, ts: int) -> None:
        order = self._orders.get(command.client_order_id)
        if order is None:
            self._cancel_reject(command, "modify: unknown or closed order", ts)
            return
        quantity = order.quantity if command.quantity is None else command.quantity
        price = order.price if command.price is None else command.price
        trigger = order.trigger_price if command.trigger_price is None else command.trigger_price
        refusal = check_modify(
            order.instrument,
            ts,
            quantity=quantity,
            filled=order.filled,
            price=price if order.order_type in _LIMIT_TYPES else None,
            trigger=trigger if order.trigger_price is not None else None,
        )
        if refusal is None and order.post_only and price != order.price:
            old_price, order.price = order.price, price
            if self._fill_model.would_take(order):
                refusal = Refusal("post_only", "post-only order would take liquidity")
            order.price = old_price
        if refusal is not None:
            self._cancel_reject(command, f"modify: {refusal.reason}", ts)
            return
        keep = (
            price == order.price and trigger == order.trigger_price and quantity <= order.quantity
        )
        order.quantity, order.price, order.trigger_price = quantity, price, trigger
        self._emit_for(
            order, OrderUpdated, ts, quantity=quantity, price=price, trigger_price=trigger
        )
        if not keep:
            self._order_count += 1
            order.priority = self._order_count
            order.arrival_ts = ts
        self._fill_model.requeue(order, ts, keep_priority=keep)

    def _cancel_reject(self, command: CancelOrder | ModifyOrder, reason: str, ts: int) -> None:
        self._emit(
            OrderCancelRejected,
            ts,
            client_order_id=command.client_order_id,
            strategy_id=command.strategy_id,
            instrument_id=command.instrument_id,
            reason=reason,
        )

    def _forget_ids(self, ts: int) -> None:
        """Forget the ids of orders submitted a day before the hour ``ts`` is in and closed
        since: a retried submit comes within seconds, and ids are never reused."""
        self._sweep_ns = next_sweep(ts)
        cutoff = self._sweep_ns - SWEEP_NS - DEFAULT_RETIRE_AFTER_NS
        orders = self._orders
        self._seen_ids = {cid: at for cid, at in self._seen_ids.items()
                          if at > cutoff or cid in orders}

    def _close(self, order: SimOrder) -> None:
        order.closed = True
        del self._orders[order.client_order_id]
        self._fill_model.remove(order)

    # --- FillSink --------------------------------------------------------------------------

    def fill(
        self, order: SimOrder, *, qty: int, price: int, taker: bool, ts_ns: int, volume: int
    ) -> None:
        if qty <= 0 or qty > order.quantity - order.filled or order.closed:
            raise InvariantError(f"bad fill of {from_fixed(qty)} for {order!r}")
        instrument = order.instrument
        is_buy = order.is_buy
        if taker:
            price = self._slippage.adjust(
                instrument, is_buy=is_buy, price=price, qty=qty, volume=volume
            )
            limit = order.price if order.order_type in _LIMIT_TYPES else None
            if limit is not None:
                price = min(price, limit) if is_buy else max(price, limit)
        filled = order.filled = order.filled + qty
        leaves = order.quantity - filled
        fee = self._fees.fee(
            instrument, is_sell=not is_buy, price=price, qty=qty, is_maker=not taker, ts_ns=ts_ns
        )
        iid = instrument.instrument_id
        self._positions[iid] = self._positions.get(iid, 0) + (qty if is_buy else -qty)
        self._fill_count += 1
        seq, delivery = self._outbox.stamp(ts_ns, self._now)
        report = OrderFilled(  # built here, not through _emit_for: the hot path
            seq=seq,
            ts_event=ts_ns,
            ts_init=delivery,
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            instrument_id=iid,
            venue_order_id=order.venue_order_id,
            fill_id=f"{self.venue_id}-F{self._fill_count}",
            side=order.side,
            last_qty=qty,
            last_price=price,
            cum_qty=filled,
            leaves_qty=leaves,
            fee=fee,
            currency=instrument.currency,
            liquidity=Liquidity.TAKER if taker else Liquidity.MAKER,
        )
        self._outbox.push(report)
        self._fill_log.append(report)
        if leaves == 0:
            self._close(order)

    def cancel_rest(self, order: SimOrder, *, reason: str, ts_ns: int) -> None:
        if order.closed:
            return
        self._emit_for(order, OrderCanceled, ts_ns, reason=reason)
        self._close(order)

    # --- reports ---------------------------------------------------------------------------

    def _emit_for(self, order: SimOrder, kind: type[Any], ts: int, **fields: Any) -> OrderEvent:
        return self._outbox.emit(
            kind,
            ts,
            now=self._now,
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            instrument_id=order.instrument.instrument_id,
            **fields,
        )

    def _emit(self, kind: type[Any], ts: int, **fields: Any) -> OrderEvent:
        return self._outbox.emit(kind, ts, now=self._now, **fields)
