"""Alpaca (US equities) behind the venue port, through alpaca-py's ``TradingClient`` (REST) and
``TradingStream`` (``trade_updates``).

The REST client is synchronous: port calls only journal and queue; :meth:`AlpacaVenue.tick`, on
the link's ticker thread, sends (one request at a time, below the request budget), reconciles
and polls. Stream events arrive on the stream's own loop thread. One lock guards the state;
broker calls run outside it.

Rules (see docs/brokers.md):

* journal before send; the client order id travels as Alpaca's ``client_order_id``; the order
  id is journaled the moment ``submit_order`` returns;
* fills are keyed by the order's *cumulative* filled quantity (``AP-<order id>-<filled qty>``):
  a ``partial_fill``/``fill`` event and an order read over REST (``filled_qty``,
  ``filled_avg_price``) after a gap name the same fill the same way, so nothing is counted twice;
  fills missed during a gap come back as one fill at the average price Alpaca reports;
* a 429 ⇒ the order waits and goes again after a backoff; a 5xx or a lost connection ⇒
  ``OrderStatusUnknown``, never resent, reconciled by client order id;
* a modify is Alpaca's replace (a new order id, journaled under the same client order id) and
  only of an order without fills; post-only is refused by name (reduce-only is the core's:
  risk shrinks or denies the order before it comes here); fees come from
  the instrument's fee schedule (Alpaca charges no commission; regulatory fees go there).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from actors.venues.alpaca_support import (
    AlpacaConfig,
    build_request,
    classify,
    client_id,
    error_code,
    error_message,
)
from actors.venues.common import CircuitBreaker, CommandQueue, SendLog, TokenBucket, to_fixed
from actors.venues.reports import BookViews, ReportBook
from runtime.errors import ConfigError
from runtime.instruments import Instrument
from runtime.messages import (
    CancelOrder,
    Command,
    ModifyOrder,
    SubmitOrder,
)
from runtime.values import FIXED_SCALE, from_fixed

__all__ = ["AlpacaVenue"]

log = logging.getLogger("tradewind.venues.alpaca")
_WORKING = ("new", "accepted", "partially_filled", "pending_new", "accepted_for_bidding",
            "pending_cancel", "pending_replace", "held", "calculated")
_ENDED = {"canceled": "canceled", "expired": "expired", "done_for_day": "done for day",
          "stopped": "stopped"}


class AlpacaVenue(BookViews):
    """The Alpaca adapter (implements :class:`runtime.venue.VenuePort`)."""

    pump_on_drain = False  # the ticker thread sends

    def __init__(self, rest: Any, *, config: AlpacaConfig, send_log: SendLog,
                 instruments: dict[str, Instrument], clock_ns: Callable[[], int] = time.time_ns,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rest, self.config, self.send_log = rest, config, send_log
        self.instruments = instruments
        self.clock_ns, self.monotonic = clock_ns, monotonic
        self.lock = threading.RLock()
        self.book = ReportBook(currency="USD", clock_ns=clock_ns,
                               on_report=send_log.report, on_terminal=send_log.closed)
        for order in send_log.orders.values():
            self.book.restore(order.command, venue_order_id=order.broker_ids.get("order_id", ""),
                              closed=order.closed, fills=order.fills)
        self.book.set_baseline(send_log.baseline or {})  # the account's journaled start
        self.breaker = CircuitBreaker(threshold=config.breaker_threshold)
        self.bucket = TokenBucket.per_window(config.orders_per_min, 60, clock=monotonic)
        self.queue = CommandQueue()
        self.account: dict[str, Any] = {}
        self.connected = False
        self.stream_down = True  # until the trade_updates stream is up: poll
        self.reconcile_requested = False
        self.paused_until = 0.0
        self.backoff_s = config.backoff_min_s
        self.inflight: set[str] = set()
        self._cancel_requested: set[str] = set()
        self.last_drifts: list[str] = []

    # --- session -------------------------------------------------------------------------

    def connect(self) -> None:
        """The account (the credentials' check), then a reconciliation."""
        account = self.call(self.rest.get_account)
        self.account = {k: str(v) for k, v in account.model_dump().items()
                        if k in ("account_number", "status", "currency", "cash", "equity",
                                 "buying_power", "pattern_day_trader", "trading_blocked")}
        self.connected = True
        self.reconcile()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """One REST request within the request budget (waits for a token)."""
        while not self.bucket.try_take():
            time.sleep(min(self.bucket.wait_s(), 1.0))
        return fn(*args)

    def reconcile(self) -> bool:
        from actors.venues.alpaca_reconcile import reconcile

        self.reconcile_requested = False
        clean = reconcile(self)
        with self.lock:
            self.breaker.reconciled(clean=clean)
        return clean

    def pause(self, delay_s: float | None = None) -> None:
        wait = self.backoff_s if delay_s is None else delay_s
        self.paused_until = max(self.paused_until, self.monotonic() + wait)
        self.backoff_s = min(self.backoff_s * 2, self.config.backoff_max_s)

    # --- the venue port ------------------------------------------------------------------

    def submit(self, command: SubmitOrder, ts_ns: int) -> None:
        with self.lock:
            blocked = ("dry_run" if self.config.dry_run
                       else "breaker_open" if not self.breaker.allows_new_orders
                       else "disconnected" if not self.connected else "")
            if blocked:
                self.book.track(command)
                reason = ("dry run: orders are never sent (broker.dry_run: true)"
                          if blocked == "dry_run" else f"new orders blocked: {blocked}")
                self.book.rejected(command.client_order_id, code=f"gateway.{blocked}",
                                   reason=reason, ts_event=ts_ns)
                return
            self.queue.push(command)

    def cancel(self, command: CancelOrder, ts_ns: int) -> None:
        self._amend(command, ts_ns)

    def modify(self, command: ModifyOrder, ts_ns: int) -> None:
        self._amend(command, ts_ns)

    def _amend(self, command: CancelOrder | ModifyOrder, ts_ns: int) -> None:
        with self.lock:
            order = self.book.get(command.client_order_id)
            what = "cancel" if isinstance(command, CancelOrder) else "modify"
            if order is None or not order.is_open:
                self._cancel_reject(command, f"{what}: unknown or closed order")
                return
            if what == "modify" and order.cum_qty:
                self._cancel_reject(command, "modify: Alpaca replaces the order; a partly "
                                    "filled order is modified by cancel and submit")
                return
            self.queue.push(command)

    def _cancel_reject(self, command: Command, reason: str) -> None:
        self.book.cancel_rejected(command.client_order_id, strategy_id=command.strategy_id,
                                  instrument_id=command.instrument_id, reason=reason,
                                  ts_event=self.clock_ns())

    # --- sending (the ticker thread) -----------------------------------------------------

    def pump(self) -> None:
        """Send queued commands, one request at a time, unless a backoff is on."""
        while self.connected and self.monotonic() >= self.paused_until:
            with self.lock:
                command = self.queue.pop()
            if command is None:
                return
            if isinstance(command, SubmitOrder):
                self._send_submit(command)
            elif isinstance(command, CancelOrder):
                self._send_cancel(command)
            elif isinstance(command, ModifyOrder):
                self._send_modify(command)

    def _send_submit(self, command: SubmitOrder) -> None:
        cid, now = command.client_order_id, self.clock_ns()
        with self.lock:
            if not self.send_log.before_send(command):
                self.reconcile_requested = True
                return
            self.book.track(command)
            try:
                request = build_request(
                    command, symbol=self.config.symbol_for(command.instrument_id),
                    instrument=self.instruments[command.instrument_id])
            except ConfigError as exc:
                self.book.rejected(cid, code="gateway.order", reason=str(exc), ts_event=now)
                return
            self.send_log.broker_ids(cid, tag=client_id(cid), sent_ms=str(now // 1_000_000))
            self.inflight.add(cid)
        try:
            order = self.call(self.rest.submit_order, request)
        except Exception as exc:  # alpaca-py raises APIError or requests' errors: classified
            with self.lock:
                self.inflight.discard(cid)
                self._submit_failed(command, exc)
            return
        with self.lock:
            self.inflight.discard(cid)
            self.backoff_s = self.config.backoff_min_s
            self.breaker.success()
            self.send_log.broker_ids(cid, order_id=str(order.id))
            self.send_log.sent(cid)
            self.apply_order(order)

    def _submit_failed(self, command: SubmitOrder, exc: BaseException) -> None:
        cid, now, outcome = command.client_order_id, self.clock_ns(), classify(exc)
        if outcome == "rate_limited":
            log.warning("Alpaca rate limit: order %s waits", cid)
            self.send_log.unsent(cid)
            self.book.untrack(cid)
            self.pause()
            self.queue.push_front(command)
        elif outcome == "unknown":
            self.send_log.mark_unknown(cid)
            self.breaker.failure(type(exc).__name__)
            self.reconcile_requested = True
            self.pause()
            self.book.unknown(cid, command="submit", reason=type(exc).__name__, ts_event=now)
        else:
            self.send_log.sent(cid)
            self.breaker.failure(error_code(exc))
            self.book.rejected(cid, code=error_code(exc), reason=error_message(exc),
                               ts_event=now)

    def order_id(self, cid: str) -> str | None:
        ids = self.send_log.orders.get(cid)
        return ids.broker_ids.get("order_id") if ids else None

    def _send_cancel(self, command: CancelOrder) -> None:
        cid = command.client_order_id
        with self.lock:
            order_id = self.order_id(cid)
            if order_id is None:  # its submit's outcome is unknown: reconcile, then retry
                self.reconcile_requested = True
                self._cancel_reject(command, "cancel: the order's id is not known yet")
                return
            self.send_log.before_send(command)
            self._cancel_requested.add(cid)
        try:
            self.call(self.rest.cancel_order_by_id, order_id)
        except Exception as exc:  # classified: APIError or requests' errors
            self._amend_failed(command, "cancel", exc)

    def _send_modify(self, command: ModifyOrder) -> None:
        from alpaca.trading.requests import ReplaceOrderRequest

        cid = command.client_order_id
        with self.lock:
            tracked, order_id = self.book.get(cid), self.order_id(cid)
            if tracked is None or order_id is None or not tracked.is_open or tracked.cum_qty:
                self._cancel_reject(command, "modify: the order is not open as it was")
                return
            self.send_log.before_send(command)
            amends = sum(1 for k in self.send_log.amends if k[1] == cid)
            new_tag = client_id(f"{cid}.r{amends}")
            self.send_log.broker_ids(cid, tag=new_tag)
        request = ReplaceOrderRequest(
            qty=None if command.quantity is None else int(from_fixed(command.quantity)),
            limit_price=None if command.price is None else float(from_fixed(command.price)),
            client_order_id=new_tag)
        try:
            order = self.call(self.rest.replace_order_by_id, order_id, request)
        except Exception as exc:  # classified: APIError or requests' errors
            self._amend_failed(command, "modify", exc)
            return
        with self.lock:
            self.send_log.broker_ids(cid, order_id=str(order.id))
            self.book.updated(cid, quantity=to_fixed(order.qty),
                              price=None if order.limit_price is None
                              else to_fixed(order.limit_price), ts_event=self.clock_ns())

    def _amend_failed(self, command: CancelOrder | ModifyOrder, what: str,
                      exc: BaseException) -> None:
        outcome = classify(exc)
        with self.lock:
            self._cancel_requested.discard(command.client_order_id)
            if outcome == "rate_limited":
                self.pause()
                self.queue.push_front(command)
                return
            self.reconcile_requested = True
            if outcome == "unknown":
                self.pause()
                self.book.unknown(command.client_order_id, command=what,
                                  reason=type(exc).__name__, ts_event=self.clock_ns())
                return
            self._cancel_reject(command, f"{what}: Alpaca {error_code(exc)}: "
                                f"{error_message(exc)}")

    # --- events (stream and REST) ----------------------------------------------------------

    def cid_of(self, order: Any) -> str | None:
        find = self.send_log.find
        return find("tag", str(order.client_order_id)) or find("order_id", str(order.id))

    def on_trade_update(self, update: Any) -> None:
        """One ``trade_updates`` event (alpaca-py's ``TradeUpdate``)."""
        event = str(getattr(update.event, "value", update.event))
        with self.lock:
            self.stream_down = False
            if event == "replaced":
                return  # the old order of a replace: the new one carries on under its cid
            cid = self.cid_of(update.order)
            if cid is None:  # an order this session never sent: the storm watchdog counts it
                self.book.note_foreign()
                return
            if event in ("order_cancel_rejected", "order_replace_rejected"):
                tracked = self.book.get(cid)
                if tracked is not None:
                    self._cancel_reject(tracked.command, f"Alpaca {event}")
                return
            price = None if update.price is None else to_fixed(update.price)
            last_qty = None if update.qty is None else to_fixed(update.qty)
            self.apply_order(update.order, price=price, last_qty=last_qty,
                             ts=_ns(update.timestamp))

    def apply_order(self, order: Any, *, price: int | None = None, last_qty: int | None = None,
                    ts: int | None = None) -> None:
        """An order's state (an event's, or REST's) as reports: the ack, the fill up to its
        cumulative quantity, the end. Call with the lock held."""
        cid = self.cid_of(order)
        tracked = self.book.get(cid) if cid else None
        if cid is None or tracked is None:
            return
        now = ts or self.clock_ns()
        status = str(getattr(order.status, "value", order.status))
        if status in _WORKING or status == "filled":
            self.book.accepted(cid, venue_order_id=str(order.id), ts_event=now)
        cum = to_fixed(order.filled_qty or 0)
        if cum > tracked.cum_qty:
            exact = price is not None and last_qty == cum - tracked.cum_qty
            self._fill(cid, order, cum, price if exact else None, now)
        if status in _ENDED:
            asked = cid in self._cancel_requested
            reason = "canceled" if status == "canceled" and asked else _ENDED[status]
            self.book.canceled(cid, reason=reason, ts_event=now)
        elif status == "rejected":
            self.book.rejected(cid, code="rejected", reason="rejected by Alpaca", ts_event=now)

    def _fill(self, cid: str, order: Any, cum: int, price: int | None, ts: int) -> None:
        tracked = self.book.get(cid)
        assert tracked is not None
        qty = cum - tracked.cum_qty
        if price is None:  # over REST (or a gap): what the average says the missing part cost
            price = self._price_of_rest(cid, cum, qty, order)
        instrument = self.instruments[tracked.command.instrument_id]
        notional = instrument.notional(price, qty)
        fee = instrument.fees.fee(notional=notional, quantity=qty, is_maker=False,
                                  is_sell=tracked.command.side.sign < 0)
        self.book.filled(cid, fill_id=f"AP-{order.id}-{from_fixed(cum)}", qty=qty, price=price,
                         fee=fee, ts_event=ts, venue_order_id=str(order.id))

    def _price_of_rest(self, cid: str, cum: int, qty: int, order: Any) -> int:
        known = self.send_log.orders[cid].fills
        paid = sum(Decimal(f.last_qty) * Decimal(f.last_price) for f in known)
        avg = Decimal(str(order.filled_avg_price or 0))
        total = avg * Decimal(cum) * FIXED_SCALE
        price = (total - paid) / Decimal(qty)
        if price != price.to_integral_value():
            log.warning("fill of %s: average %s leaves a price off the fixed-point grid",
                        cid, avg)
        return int(price.to_integral_value())


def _ns(moment: Any) -> int | None:
    if isinstance(moment, dt.datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return int(moment.timestamp() * 1_000_000) * 1_000
    return None
