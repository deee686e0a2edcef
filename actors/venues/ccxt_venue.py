"""Crypto exchanges behind the venue port, through an injected ``ccxt.pro`` client.

Port calls (``submit``/``cancel``/``modify`` and the read side) are synchronous and never block:
they journal, queue and schedule the REST call on the client's event loop, and read the
adapter's own :class:`ReportBook`. The loop (``actors.venues.links.CcxtLink``) also runs
:meth:`CcxtVenue.run`: connect (markets, clock, account), the user stream
(:mod:`actors.venues.ccxt_stream`), REST polling while the stream is down, reconciliation, backoff.

Rules (see docs/brokers.md):

* journal before send (:class:`SendLog`); the client order id travels as the exchange's client
  order id (:func:`~actors.venues.ccxt_support.client_tag`); the exchange's order id is journaled
  the moment ``create_order`` returns;
* a 429 (or 418) means the exchange refused before processing: the order provably did not go
  in, so it is put back at the head of the queue and sending pauses for ``Retry-After`` (else a
  doubling backoff); a timeout or 5xx leaves the outcome unknown: ``OrderStatusUnknown``, the
  order is never sent again, reconciliation asks the exchange by client order id;
* a stop or stop-limit goes out as the exchange's conditional order where ccxt sends it
  natively (:data:`~actors.venues.ccxt_support.TRIGGER_ORDERS`: Binance USD-M's Algo Order
  API); it is known by its algo id until it triggers, then by the order it placed in the
  matching engine (``actual_id``), whose fills are the stop's fills; it cannot be modified;
* new orders are refused (``OrderRejected``, venue_code ``gateway.*``) in dry-run, while the
  breaker is open, before the markets are loaded, or while the clock is skewed beyond
  ``max_clock_skew_ms``; an order off the exchange's grid is refused by name, never rounded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from actors.venues.ccxt_reconcile import CcxtReconciler
from actors.venues.ccxt_stream import CcxtStream
from actors.venues.ccxt_support import (
    NATIVE_MODIFY,
    CcxtConfig,
    classify,
    client_tag,
    exchange_code,
    market_rules,
    order_args,
    order_ref,
)
from actors.venues.common import CircuitBreaker, CommandQueue, SendLog, TokenBucket
from actors.venues.reports import BookViews, ReportBook
from runtime.errors import ConfigError, VenueUnavailable
from runtime.instruments import Instrument, InstrumentRegistry
from runtime.messages import (
    CancelOrder,
    Command,
    ModifyOrder,
    SubmitOrder,
)
from runtime.values import from_fixed

__all__ = ["CcxtVenue"]

log = logging.getLogger("tradewind.venues.ccxt")


class CcxtVenue(BookViews):
    """The CCXT adapter (implements :class:`runtime.venue.VenuePort`)."""

    def __init__(self, exchange: Any, *, config: CcxtConfig, send_log: SendLog,
                 instruments: dict[str, Instrument], currency: str = "USDT",
                 clock_ns: Callable[[], int] = time.time_ns,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.exchange, self.config, self.send_log = exchange, config, send_log
        self.instruments = instruments  # the session's registry (what risk checked)
        self.clock_ns, self.monotonic = clock_ns, monotonic
        self.book = ReportBook(currency=currency, clock_ns=clock_ns,
                               on_report=send_log.report, on_terminal=send_log.closed)
        for order in send_log.orders.values():  # restart: know every journaled order again
            self.book.restore(order.command, venue_order_id=order.broker_ids.get("order_id", ""),
                              closed=order.closed, fills=order.fills)
        self.book.set_baseline(send_log.baseline or {})  # the account's journaled start
        self.breaker = CircuitBreaker(threshold=config.breaker_threshold)
        self.bucket = TokenBucket.per_window(config.orders_per_10s, 10, clock=monotonic)
        self.queue = CommandQueue()
        self.markets: dict[str, dict[str, Any]] = {}  # instrument id -> the exchange's market
        self.rules = InstrumentRegistry()  # the exchange's rules, from its markets
        self.drifts: list[str] = []  # where the session's instruments differ from the exchange
        self.account: dict[str, Any] = {}
        self.connected = False
        self.skew_ms = 0
        self.skewed = False
        self.paused_until = 0.0  # monotonic: no request before (429 / 5xx backoff)
        self.backoff_s = config.backoff_min_s
        self.reconcile_requested = False
        self._cancel_requested: set[str] = set()
        self._sender: asyncio.Task[None] | None = None
        self.inflight: set[str] = set()  # the order whose create call has not answered yet
        self.stream = CcxtStream(self)
        self.reconciler = CcxtReconciler(self)

    # --- session -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Markets (the exchange's rules), the clock, the account, then a reconciliation;
        :class:`VenueUnavailable` when the exchange does not answer."""
        pro = self.stream.pro
        try:
            markets = await self.exchange.load_markets()
            await self.check_clock()
            self.account = await self.exchange.fetch_balance()
        except pro.AuthenticationError as exc:
            raise VenueUnavailable(f"{self.config.exchange}: credentials refused "
                                   f"({exchange_code(exc)})") from exc
        except pro.BaseError as exc:  # down, throttled, or answering errors: try again later
            raise VenueUnavailable(f"{self.config.exchange}: {type(exc).__name__} "
                                   f"({exchange_code(exc)})") from exc
        rules = market_rules(self.exchange, self.config, markets, self.instruments)
        self.markets, self.rules, self.drifts = rules.markets, rules.registry, rules.drifts
        for drift in self.drifts:
            log.warning("instrument differs from the exchange: %s", drift)
        self.connected = True
        await self.reconcile()

    async def check_clock(self) -> None:
        """The clock-skew guard: the exchange's time against ours (half the round trip
        allowed for); beyond ``max_clock_skew_ms`` new orders are refused until it is back."""
        before = self.clock_ns() // 1_000_000
        server = int(await self.exchange.fetch_time())
        after = self.clock_ns() // 1_000_000
        self.skew_ms = server - (before + after) // 2
        skewed = abs(self.skew_ms) > self.config.max_clock_skew_ms
        if skewed != self.skewed:
            log.warning("clock skew against %s: %d ms (limit %d): new orders %s",
                        self.config.exchange, self.skew_ms, self.config.max_clock_skew_ms,
                        "refused" if skewed else "allowed again")
        self.skewed = skewed

    async def reconcile(self) -> bool:
        self.reconcile_requested = False
        clean = await self.reconciler.run()
        self.breaker.reconciled(clean=clean)
        return clean

    async def run(self, stop: asyncio.Event, *, tick_s: float = 0.05) -> None:
        """Keep the session until ``stop``: connect with backoff, keep the user stream, poll
        while it is down, reconcile on trigger and every ``reconcile_every_s``, pump."""
        cfg = self.config
        delay, last_reconcile, last_poll = cfg.backoff_min_s, self.monotonic(), 0.0
        last_clock = self.monotonic()
        while not stop.is_set():
            if not self.connected:
                try:
                    await self.connect()
                    delay, last_reconcile = cfg.backoff_min_s, self.monotonic()
                except VenueUnavailable as exc:
                    log.warning("%s; next try in %.1fs", exc, delay)
                    await _sleep_or_stop(stop, delay)
                    delay = min(delay * 2, cfg.backoff_max_s)
                    continue
            self.stream.ensure_running()
            now = self.monotonic()
            polling = self.stream.down and now - last_poll >= cfg.poll_every_s
            due = now - last_reconcile >= cfg.reconcile_every_s
            if self.skewed and now - last_clock >= cfg.poll_every_s:  # is it back yet?
                await self._check_clock_quietly()
                last_clock = self.monotonic()
            if (self.reconcile_requested or due or polling) and now >= self.paused_until:
                if due:
                    await self._check_clock_quietly()
                await self.reconcile()
                last_reconcile = last_poll = self.monotonic()
            if self.stream.orphans:
                self.stream.retry_orphans()  # those waiting too long were never ours
            self.pump()
            await _sleep_or_stop(stop, tick_s)
        await self.stream.stop()
        if self._sender is not None:  # waiting out a backoff: what it holds stays journaled
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)

    async def _check_clock_quietly(self) -> None:
        try:
            await self.check_clock()
        except self.stream.pro.BaseError as exc:
            log.warning("clock check failed: %s", type(exc).__name__)

    def pause(self, delay_s: float | None = None) -> None:
        """No request for ``delay_s`` (else the doubling backoff)."""
        wait = self.backoff_s if delay_s is None else delay_s
        self.paused_until = max(self.paused_until, self.monotonic() + wait)
        if delay_s is None:
            self.backoff_s = min(self.backoff_s * 2, self.config.backoff_max_s)

    def _retry_after_s(self) -> float | None:
        headers = getattr(self.exchange, "last_response_headers", None) or {}
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    # --- the venue port ------------------------------------------------------------------

    def submit(self, command: SubmitOrder, ts_ns: int) -> None:
        blocked = self._blocked_reason()
        if blocked:
            self.book.track(command)
            reason = ("dry run: orders are never sent (broker.dry_run: true)"
                      if blocked == "dry_run" else f"new orders blocked: {blocked}")
            self.book.rejected(command.client_order_id, code=f"gateway.{blocked}",
                               reason=reason, ts_event=ts_ns)
            return
        self.queue.push(command)
        self.pump()

    def _blocked_reason(self) -> str:
        if self.config.dry_run:
            return "dry_run"
        if not self.breaker.allows_new_orders:
            return "breaker_open"
        if not self.connected:
            return "disconnected"
        if self.skewed:
            return "clock_skew"
        return ""

    def cancel(self, command: CancelOrder, ts_ns: int) -> None:
        self._amend(command, ts_ns)

    def modify(self, command: ModifyOrder, ts_ns: int) -> None:
        self._amend(command, ts_ns)

    def _amend(self, command: CancelOrder | ModifyOrder, ts_ns: int) -> None:
        order = self.book.get(command.client_order_id)
        what = "cancel" if isinstance(command, CancelOrder) else "modify"
        if order is None or not order.is_open:
            self._cancel_reject(command, f"{what}: unknown or closed order", ts_ns)
            return
        if what == "modify" and self.is_trigger(command.client_order_id):
            self._cancel_reject(command, f"modify: {self.config.exchange} cannot amend a stop "
                                "order: cancel and submit instead", ts_ns)
            return
        if what == "modify" and self.config.exchange not in NATIVE_MODIFY:
            self._cancel_reject(command, f"modify: {self.config.exchange} has no in-place "
                                "amend in ccxt: cancel and submit instead", ts_ns)
            return
        self.queue.push(command)
        self.pump()

    def _cancel_reject(self, command: Command, reason: str, ts_ns: int | None = None) -> None:
        self.book.cancel_rejected(
            command.client_order_id, strategy_id=command.strategy_id,
            instrument_id=command.instrument_id, reason=reason,
            ts_event=self.clock_ns() if ts_ns is None else ts_ns)

    def queue_ids(self) -> set[str]:
        return self.queue.submit_ids()

    # --- sending -------------------------------------------------------------------------

    def pump(self) -> None:
        """Start the sender when commands wait (one at a time, in the queue's order: cancels
        first, then modifies, then new orders; an order never overtakes an earlier one)."""
        if len(self.queue) and self.connected and (self._sender is None or self._sender.done()):
            self._sender = asyncio.get_running_loop().create_task(self._send_queued())

    async def _send_queued(self) -> None:
        while len(self.queue) and self.connected:
            wait_s = max(self.paused_until - self.monotonic(), self.bucket.wait_s())
            if wait_s > 0:
                await asyncio.sleep(wait_s)
                continue
            self.bucket.try_take()
            command = self.queue.pop()
            if command is not None:
                await self._send(command)

    def sending(self) -> bool:
        return self._sender is not None and not self._sender.done()

    async def _send(self, command: Command) -> None:
        if isinstance(command, SubmitOrder):
            self.inflight.add(command.client_order_id)
            try:
                await self._send_submit(command)
            finally:
                self.inflight.discard(command.client_order_id)
        elif isinstance(command, CancelOrder):
            await self._send_cancel(command)
        elif isinstance(command, ModifyOrder):
            await self._send_modify(command)

    async def _send_submit(self, command: SubmitOrder) -> None:
        cid, now = command.client_order_id, self.clock_ns()
        if not self.send_log.before_send(command):
            self.reconcile_requested = True  # journaled before: never resend, reconcile
            return
        self.book.track(command)
        iid = command.instrument_id
        try:
            if iid not in self.markets:
                raise ConfigError(f"no market loaded for {iid} (broker.symbols.{iid})")
            args = order_args(command, config=self.config, market=self.markets[iid],
                              instrument=self.rules.get(iid))
        except ConfigError as exc:  # a flag the exchange lacks, or off its grid: a reject
            self.book.rejected(cid, code="gateway.order", reason=str(exc), ts_event=now)
            return
        self.send_log.broker_ids(cid, tag=client_tag(cid), sent_ms=str(now // 1_000_000),
                                 **({"trigger": "algo"} if args.trigger else {}))
        try:
            order = await self.exchange.create_order(args.symbol, args.type, args.side,
                                                     args.amount, args.price, args.params)
        except self.stream.pro.BaseError as exc:
            self._submit_failed(command, exc)
            return
        self.backoff_s = self.config.backoff_min_s
        self.breaker.success()
        self.send_log.broker_ids(cid, order_id=str(order["id"]))
        self.send_log.sent(cid)
        self.stream.on_order(order)
        self.stream.retry_orphans()

    def _submit_failed(self, command: SubmitOrder, exc: BaseException) -> None:
        cid, now, code = command.client_order_id, self.clock_ns(), exchange_code(exc)
        outcome = classify(exc, self.config.exchange)
        if outcome == "rate_limited":  # refused before processing: it waits, then goes again
            log.warning("%s rate limit (%s): order %s waits", self.config.exchange, code, cid)
            self.send_log.unsent(cid)
            self.book.untrack(cid)
            self.pause(self._retry_after_s())
            self.queue.push_front(command)
        elif outcome == "clock":
            self.skewed = True
            self.reconcile_requested = True
            self.book.rejected(cid, code="gateway.clock_skew", reason=f"exchange {code}: "
                               "timestamp outside the receive window", ts_event=now)
        elif outcome == "unknown":
            self.send_log.mark_unknown(cid)
            self.breaker.failure(type(exc).__name__)
            self.reconcile_requested = True
            self.pause()
            self.book.unknown(cid, command="submit", reason=type(exc).__name__, ts_event=now)
        else:
            self.send_log.sent(cid)
            if outcome == "refused":  # an expected answer (a post-only that would take) is not
                self.breaker.failure(code)  # a fault: it does not count toward the breaker
            self.book.rejected(cid, code=code, reason=_reason(exc), ts_event=now)

    async def _send_cancel(self, command: CancelOrder) -> None:
        cid = command.client_order_id
        order = self.book.get(cid)
        if order is None or not order.is_open:
            self._cancel_reject(command, "cancel: the order closed meanwhile")
            return
        self.send_log.before_send(command)
        self._cancel_requested.add(cid)
        order_id, params = self._ref(cid)
        try:
            answer = await self.exchange.cancel_order(
                order_id, self.markets[command.instrument_id]["symbol"], params)
        except self.stream.pro.BaseError as exc:
            self._amend_failed(command, "cancel", exc)
            return
        self.stream.on_order(answer)

    async def _send_modify(self, command: ModifyOrder) -> None:
        cid = command.client_order_id
        tracked = self.book.get(cid)
        if tracked is None or not tracked.is_open:
            self._cancel_reject(command, "modify: order closed meanwhile")
            return
        quantity = tracked.quantity if command.quantity is None else command.quantity
        price = tracked.price if command.price is None else command.price
        self.send_log.before_send(command)
        cmd = tracked.command
        order_id, params = self._ref(cid)
        try:
            answer = await self.exchange.edit_order(
                order_id, self.markets[cmd.instrument_id]["symbol"],
                "limit" if price is not None else "market",
                "buy" if cmd.side.sign > 0 else "sell", float(from_fixed(quantity)),
                None if price is None else float(from_fixed(price)), params)
        except self.stream.pro.BaseError as exc:
            self._amend_failed(command, "modify", exc)
            return
        self.stream.on_order(answer)

    def _amend_failed(self, command: CancelOrder | ModifyOrder, what: str,
                      exc: BaseException) -> None:
        outcome, cid = classify(exc, self.config.exchange), command.client_order_id
        self._cancel_requested.discard(cid)
        if outcome == "rate_limited":
            self.pause(self._retry_after_s())
            self.queue.push_front(command)
            return
        self.reconcile_requested = True  # a fill or a cancel may have raced it
        if outcome == "unknown":
            self.pause()
            self.book.unknown(cid, command=what, reason=type(exc).__name__,
                              ts_event=self.clock_ns())
            return
        self._cancel_reject(command, f"{what}: {self.config.exchange} {exchange_code(exc)}: "
                            f"{_reason(exc)}")

    def is_trigger(self, cid: str) -> bool:
        """A stop or stop-limit sent as the exchange's conditional (algo) order."""
        ids = self.send_log.orders.get(cid)
        return ids is not None and "trigger" in ids.broker_ids

    def _ref(self, cid: str) -> tuple[str | None, dict[str, Any]]:
        ids = self.send_log.orders.get(cid)
        return order_ref(cid, ids.broker_ids if ids else {})


def _reason(exc: BaseException) -> str:
    return str(exc)[:300]


async def _sleep_or_stop(stop: asyncio.Event, delay_s: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=delay_s)
    except TimeoutError:
        return
