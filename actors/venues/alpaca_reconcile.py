"""Alpaca reconciliation: open orders, the orders open here, and positions against the book.

Runs on connect, every ``reconcile_every_s``, every ``poll_every_s`` while ``trade_updates`` is
down (the REST fallback), and on trigger. Reports go through
:meth:`~actors.venues.alpaca_venue.AlpacaVenue.apply_order`, the stream's own path, so a fill
is named by the order's cumulative filled quantity either way and counted once:

* an order open at Alpaca ⇒ its ack and any fill beyond what was reported;
* an order open here but not there ⇒ read by order id, else by client order id (a submit whose
  outcome is unknown): its status settles it; not found ⇒ ``OrderRejected`` ``not_found``
  (never resent), or ``OrderCanceled`` when it had been acknowledged.

Clean when Alpaca shows no open order Tradewind did not send and its positions equal the replay
of the reported fills (plus what the account held before the first order).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from actors.venues.alpaca_support import classify, client_id
from actors.venues.common import PositionCheck, note_reconciled, to_fixed

if TYPE_CHECKING:
    from actors.venues.alpaca_venue import AlpacaVenue

__all__ = ["reconcile"]

log = logging.getLogger("tradewind.venues.alpaca")


def reconcile(venue: AlpacaVenue) -> bool:
    """One reconciliation (REST calls outside the adapter's lock); ``True`` when clean."""
    from alpaca.trading.enums import QueryOrderStatus
    from alpaca.trading.requests import GetOrdersRequest

    try:  # positions first: what comes after brings in the fills they count (PositionCheck)
        with venue.lock:
            check = PositionCheck(venue.book)
        positions = venue.call(venue.rest.get_all_positions)
        opened = venue.call(venue.rest.get_orders,
                            GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500))
        drifts = _open_orders(venue, opened)
        _missing(venue, {str(o.id) for o in opened})
    except Exception as exc:  # alpaca-py raises APIError or requests' errors: classified
        log.warning("Alpaca reconciliation interrupted: %s", type(exc).__name__)
        venue.reconcile_requested = True
        if classify(exc) != "refused":
            venue.pause()
        return False
    with venue.lock:
        lines, unsettled = check.drifts("Alpaca", _positions(venue, positions), venue.instruments,
                                        venue.send_log)
    drifts += lines
    note_reconciled(venue, drifts, unsettled)
    for drift in drifts:
        log.warning("Alpaca reconciliation: %s", drift)
    return not drifts


def _open_orders(venue: AlpacaVenue, opened: list[Any]) -> list[str]:
    drifts = []
    with venue.lock:
        for order in opened:
            if venue.cid_of(order) is None:
                drifts.append(f"order {order.id} open at Alpaca was not sent by Tradewind")
                continue
            venue.apply_order(order)
    return drifts


def _missing(venue: AlpacaVenue, open_ids: set[str]) -> None:
    from alpaca.common.exceptions import APIError

    with venue.lock:
        waiting = venue.queue.submit_ids() | venue.inflight
        todo = [(cid, venue.order_id(cid)) for cid, o in venue.book.orders.items()
                if o.is_open and cid not in waiting and cid in venue.send_log.orders
                and venue.order_id(cid) not in open_ids]
    for cid, order_id in todo:
        try:
            order = (venue.call(venue.rest.get_order_by_id, order_id) if order_id else
                     venue.call(venue.rest.get_order_by_client_id, client_id(cid)))
        except APIError as exc:
            if exc.status_code != 404:
                raise
            with venue.lock:
                tracked, now = venue.book.get(cid), venue.clock_ns()
                if tracked is not None and tracked.acked:
                    venue.book.canceled(cid, reason="reconcile: not known at Alpaca",
                                        ts_event=now)
                else:
                    venue.book.rejected(cid, code="not_found",
                                        reason="reconcile: Alpaca has no such order",
                                        ts_event=now)
            continue
        with venue.lock:
            venue.send_log.broker_ids(cid, order_id=str(order.id))
            venue.apply_order(order)


def _positions(venue: AlpacaVenue, positions: list[Any]) -> dict[str, int]:
    by_symbol = {venue.config.symbol_for(iid): iid for iid in venue.instruments}
    broker: dict[str, int] = {}
    for position in positions:
        iid = by_symbol.get(str(position.symbol))
        if iid is not None:
            broker[iid] = broker.get(iid, 0) + to_fixed(position.qty)
    return broker
