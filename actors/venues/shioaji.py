"""SinoPac Shioaji behind the venue port, through an injected client (``shioaji.Shioaji`` or a
fake with the same methods).

Shioaji's client is synchronous and calls back from its own threads, so every entry point takes
one lock. Rules (see docs/brokers.md):

* journal before send; stock orders carry a 6-character ``custom_field`` tag journaled before
  the send; every broker id (``id``, ``seqno``, ``ordno``) is journaled the moment
  ``place_order`` returns (futures callbacks carry no custom field: they are matched by those);
* callbacks: an event id seen before is a duplicate and dropped; a deal before its ack reports a
  synthetic ack first; an event that cannot be matched yet (a callback that beats
  ``place_order``'s return) waits and is matched again when the ids arrive;
* ``OrderOutcomeUnknownError`` (and timeouts, connection errors during a send) ⇒
  ``OrderStatusUnknown`` and a reconciliation; the order is never sent again;
* cancelling an order of an earlier session first refreshes it with ``update_status``;
* a session-down callback blocks new orders until login and a reconciliation succeed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from types import ModuleType
from typing import Any

from actors.venues.common import (
    CircuitBreaker,
    CommandQueue,
    Secret,
    SendLog,
    TokenBucket,
    env_secret,
)
from actors.venues.reports import BookViews, ReportBook
from actors.venues.shioaji_deals import DealLedger
from actors.venues.shioaji_events import ShioajiEvents
from actors.venues.shioaji_reconcile import ShioajiReconciler
from actors.venues.shioaji_support import (
    ShioajiConfig,
    broker_quantity,
    build_order,
    custom_tag,
    resolve_contract,
)
from runtime.errors import ConfigError, VenueUnavailable
from runtime.instruments import Instrument
from runtime.messages import (
    CancelOrder,
    Command,
    ModifyOrder,
    SubmitOrder,
)
from runtime.values import from_fixed

__all__ = ["ShioajiVenue"]

log = logging.getLogger("tradewind.venues.shioaji")


class ShioajiVenue(BookViews, ShioajiEvents):
    """The Shioaji adapter (implements :class:`runtime.venue.VenuePort`)."""

    def __init__(
        self,
        api: Any,
        *,
        sj: ModuleType,
        config: ShioajiConfig,
        instruments: dict[str, Instrument],
        send_log: SendLog,
        credentials: tuple[Secret, Secret] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api, self.sj, self.config, self.send_log = api, sj, config, send_log
        self.instruments, self.credentials = instruments, credentials
        self.clock_ns, self.monotonic = clock_ns, monotonic
        self.lock = threading.RLock()
        self.book = ReportBook(
            currency="TWD",
            clock_ns=clock_ns,
            on_report=send_log.report,
            on_terminal=send_log.closed,
        )
        self.deals = DealLedger()
        self.deal_drifts: list[str] = []
        for order in send_log.orders.values():
            self.book.restore(
                order.command,
                venue_order_id=order.broker_ids.get("ordno", ""),
                closed=order.closed,
                fills=order.fills,
            )
            for fill in order.fills:
                self.deals.restore(
                    order.command.client_order_id,
                    fill=fill.fill_id,
                    qty=fill.last_qty,
                    price=fill.last_price,
                )
        self.breaker = CircuitBreaker(threshold=config.breaker_threshold)
        self.orders_bucket = TokenBucket.per_window(config.orders_per_10s, 10, clock=monotonic)
        self.account_bucket = TokenBucket.per_window(
            config.account_queries_per_5s, 5, clock=monotonic
        )
        self.data_bucket = TokenBucket.per_window(config.data_queries_per_5s, 5, clock=monotonic)
        self.queue = CommandQueue()
        self.trades: dict[str, Any] = {}  # client order id -> the library's Trade
        self._seen_events: deque[str] = deque(maxlen=100_000)
        self._seen_set: set[str] = set()
        self._orphans: list[tuple[float, Any, Any]] = []
        self.session_up = False  # until login(): nothing is sent before the session is up
        self.reconcile_requested = False
        self.reconciler = ShioajiReconciler(self)
        self.book.set_baseline(send_log.baseline or {})  # the account's journaled start
        api.set_order_callback(self._on_order_event)
        api.set_session_down_callback(self._on_session_down)

    # --- session -------------------------------------------------------------------------------

    def login(self) -> None:
        """Log in with the credentials from the environment (never logged), then reconcile."""
        if self.credentials is not None:
            key, secret = self.credentials
            try:
                self.api.login(api_key=key.reveal(), secret_key=secret.reveal())
                if not self.config.simulation:  # live orders need the certificate
                    self._activate_ca()
            except (self.sj.ShioajiError, OSError) as exc:
                raise VenueUnavailable(f"Shioaji login failed: {type(exc).__name__}") from exc
        self.session_up = True
        self.reconcile()

    def _activate_ca(self) -> None:
        cfg = self.config
        path, password, person = (
            env_secret(cfg.ca_path_env),
            env_secret(cfg.ca_password_env),
            env_secret(cfg.person_id_env),
        )
        self.api.activate_ca(
            ca_path=path.reveal(), ca_passwd=password.reveal(), person_id=person.reveal()
        )

    def _on_session_down(self) -> None:
        with self.lock:
            self.session_up = False
            self.reconcile_requested = True

    def reconcile(self) -> bool:
        """Reconcile (broker queries run outside the lock; callbacks keep flowing)."""
        self.reconcile_requested = False
        clean = self.reconciler.run()
        with self.lock:
            self.breaker.reconciled(clean=clean)
        return clean

    def tick(self) -> None:
        """One step of the gateway's loop: log in again after a session loss, reconcile when
        asked, expire the ROD orders whose trading day is over, send what the rate limits
        allow."""
        if not self.session_up:
            self.login()
        elif self.reconcile_requested:
            self.reconcile()
        if self.session_up:
            self.reconciler.expire_ended_days()
        if self._orphans:
            self.retry_orphans()
        self.pump()

    # --- the venue port ------------------------------------------------------------------------

    def submit(self, command: SubmitOrder, ts_ns: int) -> None:
        with self.lock:
            blocked = (
                "breaker_open"
                if not self.breaker.allows_new_orders
                else "session_down"
                if not self.session_up
                else ""
            )
            if blocked:
                self.book.track(command)
                self.book.rejected(
                    command.client_order_id,
                    code=f"gateway.{blocked}",
                    reason=f"new orders blocked: {blocked}",
                    ts_event=ts_ns,
                )
                return
            self.queue.push(command)
        self.pump()

    def cancel(self, command: CancelOrder, ts_ns: int) -> None:
        self._amend(command, ts_ns)

    def modify(self, command: ModifyOrder, ts_ns: int) -> None:
        self._amend(command, ts_ns)

    def _amend(self, command: CancelOrder | ModifyOrder, ts_ns: int) -> None:
        with self.lock:
            order = self.book.get(command.client_order_id)
            if order is None or not order.is_open:
                what = "cancel" if isinstance(command, CancelOrder) else "modify"
                self._cancel_reject(command, f"{what}: unknown or closed order")
                return
            self.queue.push(command)
        self.pump()

    # --- sending -------------------------------------------------------------------------------

    def pump(self) -> None:
        """Send what the order bucket allows. Broker calls run outside the lock: the library's
        callback thread must never wait for a call that may itself wait for it."""
        while True:
            with self.lock:
                if not len(self.queue) or not self.orders_bucket.try_take():
                    return
                command = self.queue.pop()
            if command is not None:
                self._send(command)

    def _send(self, command: Command) -> None:
        if isinstance(command, SubmitOrder):
            self._send_submit(command)
        elif isinstance(command, CancelOrder):
            self._send_cancel(command)
        elif isinstance(command, ModifyOrder):
            self._send_modify(command)

    def _send_submit(self, command: SubmitOrder) -> None:
        cid = command.client_order_id
        with self.lock:
            if not self.send_log.before_send(command):
                self.reconcile_requested = True  # journaled before: never resend
                return
            self.book.track(command)
            instrument = self.instruments[command.instrument_id]
            tag = custom_tag(self.config.tag_prefix, self.send_log.submits)
            self.send_log.broker_ids(cid, tag=tag)
            try:
                order = build_order(self.sj, command, instrument, tag=tag)
                contract = resolve_contract(self.api, instrument)
            except ConfigError as exc:
                self.book.rejected(
                    cid, code="gateway.order", reason=str(exc), ts_event=self.clock_ns()
                )
                return
        trade = self._call(
            "submit",
            cid,
            lambda: self.api.place_order(contract, order, timeout=self.config.timeout_ms),
        )
        if trade is not None:
            with self.lock:
                self.send_log.sent(cid)
                self._placed(cid, trade)

    def _call(self, what: str, cid: str, call: Callable[[], Any]) -> Any | None:
        """Run a broker call; an unknown outcome becomes ``OrderStatusUnknown``, a refusal a
        reject; ``None`` unless the call returned."""
        sj, now = self.sj, self.clock_ns()
        try:
            result = call()
        except sj.AuthError as exc:  # not logged in: the broker did not take it
            with self.lock:
                self._refused_by_session(what, cid, exc, now)
            return None
        except (
            sj.OrderOutcomeUnknownError,
            sj.ShioajiTimeoutError,
            sj.ShioajiConnectionError,
        ) as exc:
            with self.lock:
                if what == "submit":
                    self.send_log.mark_unknown(cid)
                self.breaker.failure(type(exc).__name__)
                self.reconcile_requested = True
                self.book.unknown(cid, command=what, reason=type(exc).__name__, ts_event=now)
            return None
        except (
            sj.ValidationError,
            sj.BadRequestError,
            sj.ShioajiValueError,
            sj.ResponseError,
        ) as exc:
            with self.lock:
                self._refused(what, cid, code=type(exc).__name__, reason=str(exc), now=now)
            return None
        with self.lock:
            self.breaker.success()
        return result

    def _refused(self, what: str, cid: str, *, code: str, reason: str, now: int) -> None:
        if what == "submit":
            self.book.rejected(cid, code=code, reason=reason, ts_event=now)
            return
        tracked = self.book.get(cid)
        if tracked is not None:
            self._cancel_reject(tracked.command, f"{what}: {reason}")

    def _refused_by_session(self, what: str, cid: str, exc: Exception, now: int) -> None:
        self.session_up = False
        self.reconcile_requested = True
        self._refused(what, cid, code="gateway.session_down", reason=type(exc).__name__, now=now)

    def _placed(self, cid: str, trade: Any) -> None:
        order = trade.order
        self.send_log.broker_ids(cid, id=order.id, seqno=order.seqno, ordno=order.ordno)
        self.trades[cid] = trade
        status = str(trade.status.status.value)
        if status == "Failed":
            self.book.rejected(
                cid,
                code=str(trade.status.status_code or "Failed"),
                reason=str(trade.status.msg or ""),
                ts_event=self.clock_ns(),
            )
        self.retry_orphans()

    def trade_for(self, cid: str) -> Any | None:
        """The library's trade of ``cid``; an order of an earlier session is refreshed first
        (``update_status``), as Shioaji needs before it can be canceled."""
        trade = self.trades.get(cid)
        if trade is None and self.account_bucket.try_take():
            self.reconciler.refresh()
            trade = self.trades.get(cid)
        return trade

    def _send_cancel(self, command: CancelOrder) -> None:
        trade = self.trade_for(command.client_order_id)
        with self.lock:
            if trade is None:
                self._cancel_reject(command, "cancel: order not found at Shioaji")
                return
            self.send_log.before_send(command)
        self._call(
            "cancel",
            command.client_order_id,
            lambda: self.api.cancel_order(trade, timeout=self.config.timeout_ms),
        )

    def _send_modify(self, command: ModifyOrder) -> None:
        cid = command.client_order_id
        trade = self.trade_for(cid)
        with self.lock:
            reduce_by = self._modify_reduction(command, trade)
            if reduce_by is None:
                return
            self.send_log.before_send(command)
        price = None if command.price is None else float(from_fixed(command.price))
        self._call(
            "modify",
            cid,
            lambda: self.api.update_order(
                trade, price=price, qty=reduce_by or None, timeout=self.config.timeout_ms
            ),
        )

    def _modify_reduction(self, command: ModifyOrder, trade: Any) -> int | None:
        """Broker lots to take off (Shioaji's ``update_order(qty=)`` *reduces* by ``qty``);
        ``None`` after a cancel-reject."""
        tracked = self.book.get(command.client_order_id)
        if trade is None or tracked is None:
            self._cancel_reject(command, "modify: order not found at Shioaji")
            return None
        if command.quantity is None:
            return 0
        if command.quantity > tracked.quantity:
            self._cancel_reject(command, "modify: Shioaji cannot increase a quantity")
            return None
        instrument = self.instruments[tracked.command.instrument_id]
        return broker_quantity(instrument, tracked.quantity - command.quantity)
