"""Shioaji order and deal callbacks → reports (a mixin of the Shioaji adapter).

Duplicate deliveries share an event id and are dropped; an event that cannot be matched to an
order yet (a callback that beats ``place_order``'s return) waits in ``_orphans`` and is matched
again when an order's ids are learnt and on every tick of the gateway's loop; one that waited
:data:`~actors.venues.common.ORPHAN_WAIT_S` was for an order this session never sent (placed
from the broker's app or another program on the account: Shioaji's order callback carries every
order of the logged-in account) and is counted (``ReportBook.foreign``: the unknown-order-storm
watchdog reads it), then dropped; deals carry no
fee, so the fee comes from the instrument's :class:`~runtime.instruments.FeeSchedule` (Taiwan
rules in :mod:`runtime.taiwan`).
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from actors.venues.common import ORPHAN_WAIT_S, CircuitBreaker, SendLog, to_fixed
from actors.venues.reports import ReportBook
from actors.venues.shioaji_deals import DealLedger, Path, fill_id
from actors.venues.shioaji_support import port_quantity
from runtime.errors import VenueProtocolError
from runtime.instruments import Instrument
from runtime.messages import OrderSide
from runtime.values import from_fixed

__all__ = ["ShioajiEvents", "ns_of"]

log = logging.getLogger("tradewind.venues.shioaji")
_OK = "00"


class ShioajiEvents:
    """Handlers for the client's callbacks (mixed into the adapter)."""

    lock: contextlib.AbstractContextManager[Any]  # an RLock (callbacks come on its threads)
    book: ReportBook
    send_log: SendLog
    breaker: CircuitBreaker
    instruments: dict[str, Instrument]
    clock_ns: Callable[[], int]
    monotonic: Callable[[], float]
    _seen_events: deque[str]
    _seen_set: set[str]
    _orphans: list[tuple[float, Any, Any]]  # (first seen, monotonic; state; message)
    deals: DealLedger
    deal_drifts: list[str]  # deals the book refused since the last reconciliation
    reconcile_requested: bool

    def _cancel_reject(self, command: Any, reason: str) -> None:
        self.book.cancel_rejected(
            command.client_order_id,
            strategy_id=command.strategy_id,
            instrument_id=command.instrument_id,
            reason=reason,
            ts_event=self.clock_ns(),
        )

    def _on_order_event(self, state: Any, msg: Any) -> None:
        with self.lock:
            event_id = str(msg.get("event_id") or "")
            if event_id:
                if event_id in self._seen_set:
                    return  # a duplicate delivery
                if len(self._seen_events) == self._seen_events.maxlen:
                    self._seen_set.discard(self._seen_events[0])
                self._seen_events.append(event_id)
                self._seen_set.add(event_id)
            self._dispatch(state, msg)

    def _dispatch(self, state: Any, msg: Any, seen_at: float | None = None) -> None:
        is_deal = str(state.value) in ("SDEAL", "FDEAL")
        cid = self._match(msg, is_deal=is_deal)
        if cid is None:
            self._orphans.append((self.monotonic() if seen_at is None else seen_at, state, msg))
            return
        if is_deal:
            self.deal(
                cid,
                ordno=str(msg.get("ordno", "")),
                path="callback",
                deal_id=str(msg.get("exchange_seq", "")),
                qty=int(msg["quantity"]),
                price=msg["price"],
                ts_s=float(msg.get("ts", 0)),
            )
        else:
            self._order_event(cid, msg)

    def retry_orphans(self) -> None:
        """Match the waiting events again (an order's ids were just learnt, or time passed);
        one that waited ``ORPHAN_WAIT_S`` unmatched is counted as foreign and dropped."""
        with self.lock:
            orphans, self._orphans = self._orphans, []
            now = self.monotonic()
            for seen_at, state, msg in orphans:
                if now - seen_at < ORPHAN_WAIT_S:
                    self._dispatch(state, msg, seen_at)
                elif self._match(msg, is_deal=str(state.value) in ("SDEAL", "FDEAL")) is None:
                    self.book.note_foreign()
                    log.info("shioaji: an event of an order this session never sent (%s)",
                             state.value)
                else:
                    self._dispatch(state, msg, seen_at)

    def _match(self, msg: Any, *, is_deal: bool) -> str | None:
        order = msg if is_deal else msg.get("order", {})
        find = self.send_log.find
        tag = str(order.get("custom_field") or "")
        for kind, key in (
            ("tag", tag),
            ("id", order.get("trade_id") or order.get("id")),
            ("seqno", order.get("seqno")),
            ("ordno", order.get("ordno")),
        ):
            if key:
                cid = find(kind, str(key))
                if cid is not None:
                    return cid
        return None

    def _order_event(self, cid: str, msg: Any) -> None:
        op, order, status = msg["operation"], msg.get("order", {}), msg.get("status", {})
        ok, now = op.get("op_code") == _OK, ns_of(status.get("exchange_ts"), self.clock_ns())
        if order.get("ordno"):
            self.send_log.broker_ids(cid, ordno=str(order["ordno"]))
        kind, text = op.get("op_type"), str(op.get("op_msg", ""))
        tracked = self.book.get(cid)
        if kind == "New" and ok:
            self.book.accepted(cid, venue_order_id=str(order.get("ordno", "")), ts_event=now)
        elif kind in ("New", "Reject"):
            self.breaker.failure(f"{op.get('op_code')}: {text}")
            self.book.rejected(cid, code=str(op.get("op_code")), reason=text, ts_event=now)
        elif kind == "Cancel" and ok:
            self.book.canceled(cid, reason=text or "canceled", ts_event=now)
        elif tracked is not None and not ok:
            self._cancel_reject(tracked.command, f"{kind}: {op.get('op_code')} {text}")
        elif tracked is not None and kind in ("UpdatePrice", "UpdateQty"):
            instrument = self.instruments[tracked.command.instrument_id]
            qty = status.get("order_quantity")
            quantity = tracked.quantity if qty is None else port_quantity(instrument, qty)
            price = status.get("modified_price") or None
            self.book.updated(
                cid,
                quantity=quantity,
                price=tracked.price if price is None else to_fixed(price),
                ts_event=now,
            )

    def deal(
        self,
        cid: str,
        *,
        ordno: str,
        path: Path,
        deal_id: str,
        qty: int,
        price: float,
        ts_s: float,
    ) -> None:
        """Report one deal, from a callback (``path="callback"``, ``exchange_seq``) or a
        reconciliation (``"status"``, ``Deal.seq``), once whichever path brings it
        (:mod:`actors.venues.shioaji_deals`); fee from the instrument. A deal the book refuses
        (it would overfill the order) is a drift, never a crash: it is logged, kept in
        ``deal_drifts`` for the next reconciliation, and not reported."""
        tracked = self.book.get(cid)
        if tracked is None:
            return
        instrument = self.instruments[tracked.command.instrument_id]
        quantity, fixed_price = port_quantity(instrument, qty), to_fixed(price)
        if not self.deals.admit(cid, path=path, deal_id=deal_id, qty=quantity, price=fixed_price):
            return
        fee = instrument.fees.fee(
            notional=instrument.notional(fixed_price, quantity),
            quantity=quantity,
            is_maker=False,
            is_sell=tracked.command.side is OrderSide.SELL,
        )
        try:
            self.book.filled(
                cid,
                fill_id=fill_id(ordno=ordno or cid, path=path, deal_id=deal_id),
                qty=quantity,
                price=fixed_price,
                fee=fee,
                ts_event=ns_of(ts_s, self.clock_ns()),
                venue_order_id=ordno,
            )
        except VenueProtocolError:
            self.deals.forget(cid, path=path, deal_id=deal_id)
            drift = (
                f"order {cid} ({ordno}): {path} deal {deal_id} of {from_fixed(quantity)} at "
                f"{from_fixed(fixed_price)} would make filled "
                f"{from_fixed(tracked.cum_qty + quantity)} > ordered "
                f"{from_fixed(tracked.quantity)}: not reported"
            )
            log.warning("Shioaji deal drift: %s", drift)
            self.deal_drifts.append(drift)
            if path == "callback":
                self.reconcile_requested = True


def ns_of(seconds: Any, default: int) -> int:
    return int(float(seconds) * 1e9) if seconds else default
