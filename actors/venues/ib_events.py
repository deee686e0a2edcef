"""IB client events → reports: order status, executions, commissions and error codes.

A mixin of :class:`actors.venues.ib.IbVenue` (the state it reads is the adapter's). Fills come
from execution details plus their commission report; a Cancelled status waits
``reject_grace_s`` for the error code that makes it a reject; errors are classified by code
(:mod:`actors.venues.ib_support`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from actors.venues.common import CircuitBreaker, SendLog
from actors.venues.ib_support import (
    CANCEL_REJECT_CODES,
    CANCELED_CODE,
    CONNECTIVITY_LOST,
    CONNECTIVITY_RESTORED,
    RATE_EXCEEDED,
    REJECT_CODES,
    IbConfig,
    to_fixed,
    to_ns,
)
from actors.venues.reports import ReportBook

__all__ = ["IbEvents"]

log = logging.getLogger("tradewind.venues.ib")
_UNSET = 1e300  # the TWS API's unset double is the largest float


class IbEvents:
    """Handlers for the client's events (mixed into the adapter)."""

    config: IbConfig
    book: ReportBook
    send_log: SendLog
    breaker: CircuitBreaker
    clock_ns: Callable[[], int]
    monotonic: Callable[[], float]
    link_up: bool
    reconcile_requested: bool
    _pending_fills: dict[str, tuple[float, dict[str, Any]]]
    _fees: dict[str, int]
    _cancelled_at: dict[str, float]
    _cancel_requested: set[str]

    def client_order_id(self, order_ref: str, perm_id: int) -> str | None:
        if order_ref and order_ref in self.book.orders:
            return order_ref
        return self.send_log.find("perm_id", str(perm_id)) if perm_id else None

    def _on_status(self, trade: Any) -> None:
        order, status = trade.order, trade.orderStatus
        cid = self.client_order_id(order.orderRef, order.permId)
        if cid is None:
            self.book.note_foreign()
            return
        if order.permId:
            self.send_log.broker_ids(cid, perm_id=str(order.permId), order_id=str(order.orderId))
        now = self.clock_ns()
        if status.status in ("PreSubmitted", "Submitted"):
            self.breaker.success()
            self.book.accepted(cid, venue_order_id=str(order.permId or ""), ts_event=now)
            self._sync_modify(cid, order, now)
        elif status.status in ("Cancelled", "ApiCancelled"):
            if cid in self._cancel_requested:
                self.book.canceled(cid, reason="canceled", ts_event=now)
            elif self._parent_closed(cid):  # IB cancels attached orders with their parent
                self.book.canceled(cid, reason="canceled with its parent", ts_event=now)
            else:
                self._cancelled_at.setdefault(cid, self.monotonic())

    def _parent_closed(self, cid: str) -> bool:
        """Is ``cid`` a child whose parent ended unfilled or partly filled (IB cancels attached
        orders with such a parent and sends no error code for them, so the Cancelled status
        needs no grace)? A parent filled in full released its children: from then on a
        child's Cancelled may be a reject, whose code comes after it. The parent is the
        child's own ``parent_id``, our client order id: never IB's ``parentId``, an order id,
        which a later gateway session gives to other orders."""
        child = self.book.get(cid)
        parent_id = child.command.parent_id if child is not None else None
        parent = self.book.get(parent_id) if parent_id else None
        return parent is not None and not parent.is_open and parent.cum_qty < parent.quantity

    def _sync_modify(self, cid: str, order: Any, now: int) -> None:
        tracked = self.book.get(cid)
        if tracked is None or not tracked.acked:
            return
        quantity = to_fixed(order.totalQuantity)
        price = tracked.price if tracked.price is None else to_fixed(order.lmtPrice)
        trigger = None
        if tracked.trigger_price is not None:  # a TRAIL's auxPrice is its trail, not its stop
            stop = order.trailStopPrice if order.orderType == "TRAIL" else order.auxPrice
            trigger = to_fixed(stop) if stop and stop < _UNSET else None
        self.book.updated(cid, quantity=quantity, price=price, trigger_price=trigger,
                          ts_event=now)

    def _on_exec(self, trade: Any, fill: Any) -> None:
        ex = fill.execution
        self.record_execution(ex, fee=self._fees.pop(ex.execId, None), ts=to_ns(fill.time, 0))

    def record_execution(self, ex: Any, *, fee: int | None, ts: int) -> None:
        """Report an execution now when its fee is known, else hold it for the commission."""
        cid = self.client_order_id(ex.orderRef, ex.permId)
        if cid is None:
            self.book.note_foreign()
            return
        self.send_log.broker_ids(cid, perm_id=str(ex.permId))
        fill = {
            "cid": cid,
            "fill_id": f"IB-{ex.execId}",
            "qty": to_fixed(ex.shares),
            "price": to_fixed(ex.price),
            "ts_event": ts or self.clock_ns(),
            "venue_order_id": str(ex.permId),
        }
        if fee is None:
            self._pending_fills[ex.execId] = (self.monotonic(), fill)
        else:
            self._report_fill(fill, fee)

    def _report_fill(self, fill: dict[str, Any], fee: int) -> None:
        cid = fill.pop("cid")
        self.book.filled(cid, fee=fee, **fill)

    def _on_commission(self, trade: Any, fill: Any, report: Any) -> None:
        fee = to_fixed(report.commission)
        waiting = self._pending_fills.pop(report.execId, None)
        if waiting is None:
            self._fees[report.execId] = fee
        else:
            self._report_fill(waiting[1], fee)

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        if code in CONNECTIVITY_LOST:
            self.link_up = False
        elif code in CONNECTIVITY_RESTORED:
            self.link_up = True
            self.reconcile_requested = True
        elif code == RATE_EXCEEDED:
            self.breaker.failure(f"IB {code}: {message}")
        elif req_id > 0:
            self._order_error(req_id, code, message)

    def _order_error(self, order_id: int, code: int, message: str) -> None:
        cid = self.send_log.find("order_id", str(order_id))
        if cid is None:
            return
        now, tracked = self.clock_ns(), self.book.get(cid)
        cancelled = self._cancelled_at.pop(cid, None) is not None
        if tracked is None:
            return
        if code == CANCELED_CODE:
            self.book.canceled(cid, reason=message, ts_event=now)
        elif code in CANCEL_REJECT_CODES and cid in self._cancel_requested:
            self._cancel_requested.discard(cid)
            cmd = tracked.command
            self.book.cancel_rejected(
                cid,
                strategy_id=cmd.strategy_id,
                instrument_id=cmd.instrument_id,
                reason=f"IB {code}: {message}",
                ts_event=now,
            )
        elif code in REJECT_CODES and (cancelled or not tracked.acked):
            self.breaker.failure(f"IB {code}: {message}")
            self.book.rejected(cid, code=str(code), reason=message, ts_event=now)
        elif cancelled:
            self.book.canceled(cid, reason=f"IB {code}: {message}", ts_event=now)
        else:
            log.info("IB %s for %s (order stays live): %s", code, cid, message)

    def _release_waiting(self) -> None:
        now = self.monotonic()
        for exec_id, (since, fill) in list(self._pending_fills.items()):
            if now - since >= self.config.commission_wait_s:
                del self._pending_fills[exec_id]
                log.warning("no commission report for %s: reporting the fill with fee 0", exec_id)
                self._report_fill(fill, 0)
        for cid, since in list(self._cancelled_at.items()):
            if now - since >= self.config.reject_grace_s:
                del self._cancelled_at[cid]
                self.book.canceled(cid, reason="canceled by IB", ts_event=self.clock_ns())
