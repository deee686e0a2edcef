"""IB reconciliation: open orders, executions and positions against the adapter's book.

Runs on connect, on reconnect (fills that happened while disconnected come back only through
``reqExecutions``), on 1101/1102, on a timer and on trigger (a resend refused, a cancel of an order
IB does not show open). What it emits are ordinary reports, synthesised for anything missed:

* an order open at IB that the book has not seen acknowledged ⇒ ``OrderAccepted`` (not one
  IB holds untransmitted, ``Inactive``: a linked list's legs still to come will transmit it);
* an execution the book has not reported ⇒ ``OrderFilled`` (deduplicated by ``IB-<execId>``);
* an order the book holds open that IB neither shows open nor filled ⇒ ``OrderCanceled`` when IB
  had acknowledged it, else ``OrderRejected`` with venue_code ``not_found`` (it never arrived:
  the outcome of an unknown send is settled, and it is never resent).

The result is *clean* when no order is open at IB that this adapter did not send and IB's
positions equal the positions of the reported fills for every configured instrument; only a clean
reconciliation closes the circuit breaker.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from actors.venues.common import PositionCheck, note_reconciled
from actors.venues.ib_support import to_fixed, to_ns

if TYPE_CHECKING:
    from actors.venues.ib import IbVenue

__all__ = ["IbReconciler"]

log = logging.getLogger("tradewind.venues.ib")


class IbReconciler:
    def __init__(self, venue: IbVenue) -> None:
        self.venue = venue
        self.last_drifts: list[str] = []

    async def run(self) -> bool:
        ib = self.venue.ib
        try:  # positions first: what comes after brings in the fills they count (PositionCheck)
            check = PositionCheck(self.venue.book)
            positions = await ib.reqPositionsAsync()
            trades = await ib.reqOpenOrdersAsync()
            fills = await ib.reqExecutionsAsync()
        except (ConnectionError, OSError, TimeoutError) as exc:
            log.warning("IB reconciliation interrupted: %r", exc)
            self.venue.reconcile_requested = True
            return False
        drifts = self._open_orders(trades)
        self._executions(fills)
        self._missing(open_cids={c for c in (self._cid(t.order) for t in trades) if c})
        lines, unsettled = check.drifts("IB", self._positions(positions),
                                        self.venue.config.contracts, self.venue.send_log)
        drifts += lines
        note_reconciled(self, drifts, unsettled)
        for drift in drifts:
            log.warning("IB reconciliation: %s", drift)
        return not drifts

    def _cid(self, order: Any) -> str | None:
        return self.venue.client_order_id(order.orderRef, order.permId)

    def _open_orders(self, trades: list[Any]) -> list[str]:
        venue, drifts = self.venue, []
        for trade in trades:
            cid = self._cid(trade.order)
            if cid is None:
                drifts.append(f"order {trade.order.permId} open at IB was not sent by Tradewind")
                continue
            venue.send_log.broker_ids(
                cid, perm_id=str(trade.order.permId), order_id=str(trade.order.orderId)
            )
            if trade.orderStatus.status == "Inactive":
                continue  # held by the gateway, not transmitted yet (a list's later legs will)
            venue.book.accepted(
                cid, venue_order_id=str(trade.order.permId), ts_event=venue.clock_ns()
            )
        return drifts

    def _executions(self, fills: list[Any]) -> None:
        venue = self.venue
        known = getattr(getattr(venue.ib, "wrapper", None), "fills", {})
        for fill in fills:
            ex = fill.execution
            first = known.get(ex.execId, fill)
            report = first.commissionReport
            fee = to_fixed(report.commission) if report.execId else None
            venue.record_execution(ex, fee=fee, ts=to_ns(ex.time, venue.clock_ns()))

    def _missing(self, *, open_cids: set[str]) -> None:
        venue, now = self.venue, self.venue.clock_ns()
        waiting = {f["cid"] for _, f in venue._pending_fills.values()}
        for cid, order in list(venue.book.orders.items()):
            if not order.is_open or cid in open_cids or cid in waiting:
                continue
            if cid in venue.queue_ids():
                continue  # not sent yet
            if order.acked:
                venue.book.canceled(cid, reason="reconcile: not open at IB", ts_event=now)
            else:
                venue.book.rejected(
                    cid, code="not_found", reason="reconcile: IB has no such order", ts_event=now
                )

    def _positions(self, positions: list[Any]) -> dict[str, int]:
        venue = self.venue
        broker: dict[str, int] = {}
        for position in positions:
            iid = venue.config.instrument_of(position.contract)
            if iid is not None:
                broker[iid] = broker.get(iid, 0) + to_fixed(position.position)
        return broker
