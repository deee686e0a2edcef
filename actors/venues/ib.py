"""Interactive Brokers behind the venue port, through an injected ``ib_async.IB`` client.

Port calls (``submit``/``cancel``/``modify`` and the read side) are synchronous and never block:
they send on the client's socket and read the adapter's own :class:`ReportBook`. The asynchronous
part — :meth:`IbVenue.connect`, :meth:`IbVenue.reconcile`, :meth:`IbVenue.run` (reconnect with
backoff, timed reconciliation, the send queue) — runs on the event loop of the gateway actor.

Rules (see docs/brokers.md):

* journal before send (:class:`SendLog`); the client order id travels as ``orderRef``; ids are
  saved as they come (``order_id`` per session, ``perm_id`` stable across sessions); reports are
  matched by ``orderRef``, then ``permId`` — never by ``orderId`` alone (gateways reuse them);
* fills come from execution details plus their commission report (``fill_id = IB-<execId>``),
  never from order status; a Cancelled status waits ``reject_grace_s`` for an error code that
  makes it a reject (``OrderRejected.venue_code`` = the code);
* new orders are refused (``OrderRejected``, venue_code ``gateway.*``) while the breaker is open,
  the link is down (1100) or the gateway's daily reset window is on; cancels always go out first;
* linked lists go out as IB links them: a child with ``parentId`` (its parent's IB order id,
  journaled when the parent went out; a child whose parent never reached IB is refused,
  venue_code ``gateway.parent``), ``transmit`` False on every leg a later leg of the same parent
  follows, and the OCA group. Commands handed in one call are queued before any is sent, so a
  list's legs are seen together. After a crash between legs the legs already sent are never
  sent again (the journal) and the rest go out after the restart's reconciliation, the last one
  transmitting what IB holds. IB holds a bracket's exits until the entry has filled and cancels
  them with an entry that ends partly filled (reported at once, "canceled with its parent"; the
  core then protects the fill: ``runtime.linked``);
* a stop the venue trails (``SubmitOrder.trail_amount``/``trail_bps``) is IB's ``TRAIL``
  (:func:`~actors.venues.ib_support.build_order`); an amendment of its trigger moves its
  ``trailStopPrice``, never its trail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from actors.venues.common import CircuitBreaker, CommandQueue, SendLog, TokenBucket
from actors.venues.ib_events import IbEvents
from actors.venues.ib_reconcile import IbReconciler
from actors.venues.ib_support import (
    IbConfig,
    build_order,
    import_ib,
    in_reset_window,
)
from actors.venues.reports import BookViews, ReportBook
from runtime.errors import ConfigError, VenueUnavailable
from runtime.messages import (
    CancelOrder,
    Command,
    ModifyOrder,
    SubmitOrder,
)
from runtime.values import from_fixed

__all__ = ["IbVenue"]

log = logging.getLogger("tradewind.venues.ib")
_CLOSED = frozenset({"Filled", "Cancelled", "ApiCancelled"})


class IbVenue(BookViews, IbEvents):
    """The IB adapter (implements :class:`runtime.venue.VenuePort`)."""

    def __init__(
        self,
        ib: Any,
        *,
        config: IbConfig,
        send_log: SendLog,
        currency: str = "USD",
        clock_ns: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
        lib: ModuleType | None = None,
    ) -> None:
        self.ib, self.config, self.send_log = ib, config, send_log
        self.lib = lib or import_ib()
        self.clock_ns, self.monotonic = clock_ns, monotonic
        self.book = ReportBook(
            currency=currency,
            clock_ns=clock_ns,
            on_report=send_log.report,
            on_terminal=send_log.closed,
        )
        self.breaker = CircuitBreaker(threshold=config.breaker_threshold)
        self.bucket = TokenBucket(
            rate=config.messages_per_s, capacity=config.messages_per_s, clock=monotonic
        )
        self.queue = CommandQueue()
        self.link_up = False
        self.reconcile_requested = False
        self._pending_fills: dict[str, tuple[float, dict[str, Any]]] = {}  # execId -> fill
        self._fees: dict[str, int] = {}  # execId -> commission that came first
        self._cancelled_at: dict[str, float] = {}  # cid -> when a Cancelled status came
        self._cancel_requested: set[str] = set()
        self._pump_scheduled = False
        self.reconciler = IbReconciler(self)
        self.book.set_baseline(send_log.baseline or {})  # the account's journaled start
        for order in send_log.orders.values():  # restart: know every journaled order again
            self.book.restore(
                order.command,
                venue_order_id=order.broker_ids.get("perm_id", ""),
                closed=order.closed,
                fills=order.fills,
            )
        self._hook()

    # --- connection ----------------------------------------------------------------------------

    def _hook(self) -> None:
        ib = self.ib
        ib.orderStatusEvent += self._on_status
        ib.execDetailsEvent += self._on_exec
        ib.commissionReportEvent += self._on_commission
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected

    async def connect(self) -> None:
        """Connect, synchronise and reconcile; a refused or timed-out connection is
        :class:`VenueUnavailable`."""
        cfg = self.config
        try:
            await self.ib.connectAsync(
                cfg.host,
                cfg.port,
                clientId=cfg.client_id,
                timeout=cfg.connect_timeout_s,
                account=cfg.account,
            )
        except (OSError, TimeoutError, ConnectionError) as exc:
            raise VenueUnavailable(f"IB gateway {cfg.host}:{cfg.port}: {exc!r}") from exc
        self.link_up = True
        await self.reconcile()

    async def reconcile(self) -> bool:
        """Open orders, executions and positions against the book; ``True`` when clean."""
        self.reconcile_requested = False
        clean = await self.reconciler.run()
        self.breaker.reconciled(clean=clean)
        return clean

    async def run(self, stop: asyncio.Event, *, tick_s: float = 0.05) -> None:
        """Keep the session alive until ``stop``: reconnect with backoff, pump the send queue,
        reconcile on trigger and every ``reconcile_every_s``."""
        delay, last_reconcile = self.config.reconnect_min_s, self.monotonic()
        while not stop.is_set():
            if not self.ib.isConnected():
                try:
                    await self.connect()
                    delay, last_reconcile = self.config.reconnect_min_s, self.monotonic()
                except VenueUnavailable as exc:
                    log.warning("IB reconnect failed (%s); next try in %.1fs", exc, delay)
                    await _sleep_or_stop(stop, delay)
                    delay = min(delay * 2, self.config.reconnect_max_s)
                    continue
            due = self.monotonic() - last_reconcile >= self.config.reconcile_every_s
            if self.reconcile_requested or due:
                await self.reconcile()
                last_reconcile = self.monotonic()
            self.pump()
            await _sleep_or_stop(stop, tick_s)

    def _on_disconnected(self) -> None:
        self.link_up = False
        self.reconcile_requested = True
        self._pending_fills.clear()  # executions come back with reqExecutions on reconnect

    # --- the venue port ------------------------------------------------------------------------

    def submit(self, command: SubmitOrder, ts_ns: int) -> None:
        blocked = self._blocked_reason(ts_ns)
        if blocked:
            self.book.track(command)
            self.book.rejected(
                command.client_order_id,
                code=f"gateway.{blocked}",
                reason=f"new orders blocked: {blocked}",
                ts_event=ts_ns,
            )
            return
        self._enqueue(command)

    def cancel(self, command: CancelOrder, ts_ns: int) -> None:
        order = self.book.get(command.client_order_id)
        if order is None or not order.is_open:
            state = "unknown" if order is None else order.terminal
            self.book.cancel_rejected(
                command.client_order_id,
                strategy_id=command.strategy_id,
                instrument_id=command.instrument_id,
                reason=f"cancel: {state} order",
                ts_event=ts_ns,
            )
            return
        self._enqueue(command)

    def modify(self, command: ModifyOrder, ts_ns: int) -> None:
        order = self.book.get(command.client_order_id)
        if order is None or not order.is_open:
            self.book.cancel_rejected(
                command.client_order_id,
                strategy_id=command.strategy_id,
                instrument_id=command.instrument_id,
                reason="modify: unknown or closed order",
                ts_event=ts_ns,
            )
            return
        self._enqueue(command)

    # --- sending -------------------------------------------------------------------------------

    def _blocked_reason(self, ts_ns: int) -> str:
        if not self.breaker.allows_new_orders:
            return "breaker_open"
        if not self.link_up or not self.ib.isConnected():
            return "disconnected"
        if in_reset_window(ts_ns, self.config):
            return "reset_window"
        return ""

    def _enqueue(self, command: Command) -> None:
        """Queue; send once the caller's batch is queued (on the client's loop: just after the
        current callback; called off the loop: at once)."""
        self.queue.push(command)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.pump()
            return
        if not self._pump_scheduled:
            self._pump_scheduled = True
            loop.call_soon(self._scheduled_pump)

    def _scheduled_pump(self) -> None:
        self._pump_scheduled = False
        self.pump()

    def pump(self) -> None:
        """Send queued commands as tokens allow; release fills and cancels that waited enough."""
        while len(self.queue) and self.ib.isConnected() and self.bucket.try_take():
            command = self.queue.pop()
            if command is not None:
                self._send(command)
        self._release_waiting()

    def queue_ids(self) -> set[str]:
        return self.queue.submit_ids()

    def _send(self, command: Command) -> None:
        if isinstance(command, SubmitOrder):
            self._send_submit(command, transmit=not self._followed(command))
        elif isinstance(command, CancelOrder):
            self._send_cancel(command)
        elif isinstance(command, ModifyOrder):
            self._send_modify(command)

    def _followed(self, command: SubmitOrder) -> bool:
        """Does a later leg of the same parent wait in the queue (so IB must hold this one)?"""
        cid, parent = command.client_order_id, command.parent_id
        return any(
            isinstance(q, SubmitOrder)
            and (q.parent_id == cid or (parent and q.parent_id == parent))
            for q in self.queue.waiting_submits()
        )

    def _parent_order_id(self, command: SubmitOrder) -> int | None:
        """The IB order id of a child's parent (0: not a child); None: the parent never
        reached IB, or is closed unfilled (the child would be an orphan)."""
        if not command.parent_id:
            return 0
        sent = self.send_log.orders.get(command.parent_id)
        parent = self.book.get(command.parent_id)
        order_id = sent.broker_ids.get("order_id") if sent is not None else None
        if not order_id or parent is None or (not parent.is_open and parent.cum_qty == 0):
            return None
        return int(order_id)

    def _send_submit(self, command: SubmitOrder, *, transmit: bool = True) -> None:
        cid, now = command.client_order_id, self.clock_ns()
        if not self.send_log.before_send(command):
            self.reconcile_requested = True  # journaled before: never resend, reconcile
            return
        self.book.track(command)
        spec = self.config.contract_for(command.instrument_id)
        parent_order_id = self._parent_order_id(command)
        if parent_order_id is None:
            self.book.rejected(cid, code="gateway.parent", ts_event=now,
                               reason=f"its parent {command.parent_id} never reached IB, or "
                                      "closed unfilled: not sent")
            return
        try:
            order = build_order(self.lib, command, account=self.config.account,
                                parent_order_id=parent_order_id, transmit=transmit)
        except ConfigError as exc:  # a flag IB lacks, refused by name: a reject, not a crash
            self.book.rejected(cid, code="gateway.order", reason=str(exc), ts_event=now)
            return
        try:
            trade = self.ib.placeOrder(spec.build(self.lib), order)
        except ConnectionError as exc:  # raised before any byte left: known not sent
            self.breaker.failure(str(exc))
            self.book.rejected(cid, code="gateway.disconnected", reason=str(exc), ts_event=now)
            return
        self.send_log.broker_ids(cid, order_id=str(trade.order.orderId))
        self.send_log.sent(cid)

    def _trade_of(self, client_order_id: str) -> Any | None:
        perm = self.send_log.orders.get(client_order_id)
        perm_id = perm.broker_ids.get("perm_id") if perm else None
        for trade in self.ib.trades():  # open, or held untransmitted (Inactive)
            if trade.orderStatus.status in _CLOSED:
                continue
            if trade.order.orderRef == client_order_id or (
                perm_id and str(trade.order.permId) == perm_id
            ):
                return trade
        return None

    def _send_cancel(self, command: CancelOrder) -> None:
        cid = command.client_order_id
        trade = self._trade_of(cid)
        if trade is None:  # not open at the session: find out what happened to it
            self.reconcile_requested = True
            self.book.cancel_rejected(
                cid,
                strategy_id=command.strategy_id,
                instrument_id=command.instrument_id,
                reason="cancel: order not open at IB",
                ts_event=self.clock_ns(),
            )
            return
        self.send_log.before_send(command)
        self._cancel_requested.add(cid)
        self.ib.cancelOrder(trade.order)

    def _send_modify(self, command: ModifyOrder) -> None:
        trade = self._trade_of(command.client_order_id)
        if trade is None:
            self.book.cancel_rejected(
                command.client_order_id,
                strategy_id=command.strategy_id,
                instrument_id=command.instrument_id,
                reason="modify: order not open at IB",
                ts_event=self.clock_ns(),
            )
            return
        self.send_log.before_send(command)
        order = trade.order
        order.transmit = True  # a list's leg went out held; its amendment goes out at once
        if command.quantity is not None:
            order.totalQuantity = float(from_fixed(command.quantity))
        if command.price is not None:
            order.lmtPrice = float(from_fixed(command.price))
        if command.trigger_price is not None and order.orderType == "TRAIL":
            order.trailStopPrice = float(from_fixed(command.trigger_price))  # auxPrice: the trail
        elif command.trigger_price is not None:
            order.auxPrice = float(from_fixed(command.trigger_price))
        self.ib.placeOrder(trade.contract, order)


async def _sleep_or_stop(stop: asyncio.Event, delay_s: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=delay_s)
    except TimeoutError:
        return
