"""Shioaji reconciliation: ``update_status`` + ``list_trades`` + ``list_positions`` against the
adapter's book, emitting synthetic reports for anything the callbacks did not deliver.

* a trade the book has not seen acknowledged and the broker shows working ⇒ ``OrderAccepted``;
* a deal (``trade.status.deals``) not reported ⇒ ``OrderFilled`` (``SJ-<ordno>-<seq>``);
* a trade the broker shows Cancelled/Failed ⇒ ``OrderCanceled``/``OrderRejected``;
* an order the book holds open that the broker does not list ⇒ ``OrderExpired`` when it is a
  ROD order whose trading day closed, else ``OrderCanceled`` when it was acknowledged, else
  ``OrderRejected`` (``not_found``): an unknown outcome is settled, never resent.

A ROD order ends with its trading day, and Shioaji reports nothing at the close (no callback, and
``update_status`` still shows it ``Submitted``/``PartFilled`` in that session; the next session's
lists no longer hold it). So :meth:`ShioajiReconciler.expire_ended_days` reports the expiry: an
open ROD order whose trading day (its instrument's calendar, :func:`backtest.venue.day_end_ns`,
from when it was sent) closed ``expiry_settle_s`` ago is expired (``OrderExpired`` at the close)
after a reconciliation has brought in what the broker still had for it (the closing auction's
deals, a cancel the callbacks missed). An interrupted reconciliation defers it to a later tick.

Clean when the broker lists no working order this adapter did not send and its positions equal
the positions of the reported fills (plus the account's starting positions).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from actors.venues.common import PositionCheck, note_reconciled, to_fixed
from actors.venues.shioaji_support import broker_quantity, is_rod, port_quantity
from backtest.venue import day_end_ns
from runtime.values import from_fixed

if TYPE_CHECKING:
    from actors.venues.shioaji import ShioajiVenue

__all__ = ["ShioajiReconciler"]

log = logging.getLogger("tradewind.venues.shioaji")
_WORKING = ("PendingSubmit", "PreSubmitted", "Submitted", "PartFilled")


class ShioajiReconciler:
    def __init__(self, venue: ShioajiVenue) -> None:
        self.venue = venue
        self.last_drifts: list[str] = []

    def refresh(self) -> list[Any]:
        """``update_status`` then ``list_trades``; remembers each trade under its order."""
        venue = self.venue
        venue.api.update_status(timeout=venue.config.timeout_ms)
        trades = list(venue.api.list_trades())
        with venue.lock:
            for trade in trades:
                cid = self._cid(trade)
                if cid is not None:
                    venue.trades[cid] = trade
        return trades

    def run(self) -> bool:
        """Query the broker (outside the adapter's lock), then apply under it."""
        venue = self.venue
        sj = venue.sj
        try:  # positions first: what comes after brings in the deals they count (PositionCheck)
            with venue.lock:
                check = PositionCheck(venue.book)
            positions = venue.api.list_positions(unit="Share", timeout=venue.config.timeout_ms)
            trades = self.refresh()
        except (sj.ShioajiConnectionError, sj.ShioajiTimeoutError, sj.AuthError) as exc:
            log.warning("Shioaji reconciliation interrupted: %s", type(exc).__name__)
            venue.reconcile_requested = True
            return False
        with venue.lock:
            drifts, venue.deal_drifts = list(venue.deal_drifts), []
            found, listed = self._trades(trades)
            drifts += found
            self._missing(listed)
            lines, unsettled = check.drifts("Shioaji", self._positions(positions),
                                            venue.instruments, venue.send_log)
            drifts += lines
        note_reconciled(self, drifts, unsettled)
        for drift in drifts:
            log.warning("Shioaji reconciliation: %s", drift)
        return not drifts

    def ended_days(self, now: int, *, settle_s: float = 0.0) -> dict[str, int]:
        """Open ROD orders whose trading day closed ``settle_s`` before ``now``: client order
        id -> the close. An order with no send time (never sent, or from a journal older than
        send times) is left to reconciliation."""
        venue, settle_ns = self.venue, int(settle_s * 1e9)
        ended: dict[str, int] = {}
        for cid, order in venue.book.orders.items():
            ids = venue.send_log.orders.get(cid)
            if not order.is_open or ids is None or not ids.sent_ns or not is_rod(order.command):
                continue
            close = day_end_ns(venue.instruments[order.command.instrument_id], ids.sent_ns)
            if close + settle_ns <= now:
                ended[cid] = close
        return ended

    def expire_ended_days(self) -> None:
        """Report the expiry of each ROD order whose trading day is over (module docstring)."""
        venue = self.venue
        with venue.lock:
            ended = self.ended_days(venue.clock_ns(), settle_s=venue.config.expiry_settle_s)
        if not ended or venue.reconcile_requested:
            return  # (a reconciliation owed is the next tick's; the expiry waits for it)
        venue.reconcile()
        if venue.reconcile_requested:
            return  # interrupted: the broker's last word is not in yet
        with venue.lock:
            for cid, close in sorted(ended.items()):
                venue.book.expired(cid, ts_event=close)

    def _cid(self, trade: Any) -> str | None:
        find, order = self.venue.send_log.find, trade.order
        for kind, key in (
            ("tag", getattr(order, "custom_field", None)),
            ("id", order.id),
            ("seqno", order.seqno),
            ("ordno", order.ordno),
        ):
            if key:
                cid = find(kind, str(key))
                if cid is not None:
                    return cid
        return self._adopt(trade)

    def _adopt(self, trade: Any) -> str | None:
        """A futures order whose ``place_order`` never returned has no ids to match: adopt the
        one unknown-outcome order with the same contract, side, quantity and price."""
        venue, order = self.venue, trade.order
        side = "Buy" if str(order.action.value) == "Buy" else "Sell"
        candidates = []
        for ids in venue.send_log.unknown():
            cmd = ids.command
            instrument = venue.instruments.get(cmd.instrument_id)
            if ids.closed or "id" in ids.broker_ids or instrument is None:
                continue
            same = (
                cmd.instrument_id.split(".")[0] == str(trade.contract.code)
                and cmd.side.name.title() == side
                and broker_quantity(instrument, cmd.quantity) == int(order.quantity)
                and (cmd.price or 0) == to_fixed(order.price)
            )
            if same:
                candidates.append(cmd.client_order_id)
        if len(candidates) != 1:
            return None
        venue.send_log.broker_ids(candidates[0], id=order.id, seqno=order.seqno, ordno=order.ordno)
        return candidates[0]

    def _trades(self, trades: list[Any]) -> tuple[list[str], set[str]]:
        venue, drifts, listed = self.venue, [], set()
        now = venue.clock_ns()
        for trade in trades:
            status = str(trade.status.status.value)
            cid = self._cid(trade)
            if cid is None:
                if status in _WORKING:
                    drifts.append(
                        f"order {trade.order.ordno} working at Shioaji was not sent by Tradewind"
                    )
                continue
            listed.add(cid)
            order = trade.order
            venue.send_log.broker_ids(cid, id=order.id, seqno=order.seqno, ordno=order.ordno)
            if status not in ("Failed", "PendingSubmit"):
                venue.book.accepted(cid, venue_order_id=str(order.ordno), ts_event=now)
            for deal in trade.status.deals:
                venue.deal(
                    cid,
                    ordno=str(order.ordno),
                    path="status",
                    deal_id=str(deal.seq),
                    qty=int(deal.quantity),
                    price=deal.price,
                    ts_s=float(deal.ts),
                )
            drifts += self._filled(cid, trade)
            if status == "Cancelled":
                venue.book.canceled(cid, reason="reconcile: cancelled at Shioaji", ts_event=now)
            elif status == "Failed":
                venue.book.rejected(
                    cid,
                    code=str(trade.status.status_code or "Failed"),
                    reason=str(trade.status.msg or ""),
                    ts_event=now,
                )
        return drifts, listed

    def _filled(self, cid: str, trade: Any) -> list[str]:
        """The broker's cumulative filled quantity of the order against the reported fills."""
        tracked = self.venue.book.get(cid)
        if tracked is None:
            return []
        instrument = self.venue.instruments[tracked.command.instrument_id]
        filled = trade.status.deal_quantity  # Optional in the library: else the deals' sum
        if filled is None:
            filled = sum(int(d.quantity) for d in trade.status.deals)
        broker = port_quantity(instrument, int(filled))
        if broker == tracked.cum_qty:
            return []
        return [
            f"order {cid} ({trade.order.ordno}): Shioaji filled {from_fixed(broker)} "
            f"vs reported {from_fixed(tracked.cum_qty)}"
        ]

    def _missing(self, listed: set[str]) -> None:
        venue, now = self.venue, self.venue.clock_ns()
        queued, ended = venue.queue.submit_ids(), self.ended_days(now)
        for cid, order in list(venue.book.orders.items()):
            if not order.is_open or cid in listed or cid in queued:
                continue
            if cid in ended and order.acked:  # a later session no longer lists its day's ROD
                venue.book.expired(cid, ts_event=ended[cid])
            elif order.acked:
                venue.book.canceled(cid, reason="reconcile: not listed at Shioaji", ts_event=now)
            else:
                venue.book.rejected(
                    cid,
                    code="not_found",
                    reason="reconcile: Shioaji has no such order",
                    ts_event=now,
                )

    def _positions(self, positions: list[Any]) -> dict[str, int]:
        venue = self.venue
        by_symbol = {iid.split(".")[0]: iid for iid in venue.instruments}
        broker: dict[str, int] = {}
        for position in positions:
            iid = by_symbol.get(str(position.code))
            if iid is None:
                continue
            sign = -1 if str(position.direction.value) == "Sell" else 1
            instrument = venue.instruments[iid]
            qty = int(position.quantity)  # shares (unit=Share) or contracts
            raw = (
                qty * 10**9
                if instrument.asset_class == "equity"
                else port_quantity(instrument, qty)
            )
            broker[iid] = broker.get(iid, 0) + sign * raw
        return broker
