"""CCXT reconciliation: open orders, the account's trades and positions against the book.

Runs on connect, every ``reconcile_every_s``, every ``poll_every_s`` while the user stream is
down (the REST fallback), and on trigger (an unknown outcome, a refused resend, a cancel the
exchange did not know). What it emits are ordinary reports, through the same handlers as the
stream (:class:`~actors.venues.ccxt_stream.CcxtStream`), so nothing is reported twice:

* an order open at the exchange ⇒ ``OrderAccepted`` when the book has not seen it acknowledged;
* a trade of the account (``fetch_my_trades`` since the oldest order still open here was
  sent) ⇒ ``OrderFilled``, deduplicated by ``CX-<market id>-<trade id>``;
* a stop (a conditional order) is open at the exchange while it waits for its trigger; once
  triggered, its algo order names the order it placed in the matching engine
  (``actualOrderId``), whose state and trades settle the stop;
* an order open here but not at the exchange ⇒ asked for by order id, else by client order id
  (an order whose create call's outcome is unknown): its status settles it; an order the
  exchange does not know is ``OrderRejected`` ``not_found`` (it never arrived; never resent),
  or ``OrderCanceled`` when it had been acknowledged.

Clean when the exchange shows no open order Tradewind did not send and its positions equal the
replay of the reported fills (plus the positions the account held before the first order). The
positions are asked for first, so the orders and trades asked for after them bring in any fill
they count that the stream had not delivered yet; an instrument with a fill of ours in between
is compared at the next run (:class:`~actors.venues.common.PositionCheck`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from actors.venues.ccxt_support import TRIGGER_ORDERS, classify, client_tag
from actors.venues.common import PositionCheck, note_reconciled, to_fixed

if TYPE_CHECKING:
    from actors.venues.ccxt_venue import CcxtVenue

__all__ = ["CcxtReconciler"]

log = logging.getLogger("tradewind.venues.ccxt")
_LOOKBACK_MS = 60_000


class CcxtReconciler:
    def __init__(self, venue: CcxtVenue) -> None:
        self.venue = venue
        self.last_drifts: list[str] = []
        self.runs = 0

    async def run(self) -> bool:
        venue = self.venue
        if not venue.markets:
            return False
        try:  # positions first: what comes after brings in the fills they count (PositionCheck)
            check = PositionCheck(venue.book)
            positions = await self._positions()
            opened = await self._open_orders()
            trades = await self._trades()
        except venue.stream.pro.BaseError as exc:
            self._interrupted(exc)
            return False
        stream = venue.stream
        drifts, open_cids = [], set()
        for order in opened:
            cid = stream.cid_of(order.get("id"), order.get("clientOrderId"))
            if cid is None:
                drifts.append(f"order {order.get('id')} open at {venue.config.exchange} was "
                              "not sent by Tradewind")
                continue
            open_cids.add(cid)
            stream.on_order(order)
        for trade in trades:
            if stream.cid_of(str(trade.get("order") or ""), None) is not None:
                stream.on_trade(trade)
        try:
            await self._missing(open_cids)
        except venue.stream.pro.BaseError as exc:
            self._interrupted(exc)
            return False
        lines, unsettled = check.drifts(venue.config.exchange, positions, venue.markets,
                                        venue.send_log)
        drifts += lines
        self.runs += 1
        note_reconciled(self, drifts, unsettled)
        for drift in drifts:
            log.warning("%s reconciliation: %s", venue.config.exchange, drift)
        return not drifts

    def _interrupted(self, exc: BaseException) -> None:
        venue = self.venue
        log.warning("%s reconciliation interrupted: %s", venue.config.exchange,
                    type(exc).__name__)
        venue.reconcile_requested = True
        if classify(exc, venue.config.exchange) in ("rate_limited", "unknown"):
            venue.pause(venue._retry_after_s())

    async def _open_orders(self) -> list[dict[str, Any]]:
        """Open orders, and where stops go out natively the open conditional orders too."""
        venue, out = self.venue, list[dict[str, Any]]()
        stops = venue.config.exchange in TRIGGER_ORDERS
        for market in venue.markets.values():
            out += await venue.exchange.fetch_open_orders(market["symbol"])
            if stops and market.get("contract"):
                out += await venue.exchange.fetch_open_orders(market["symbol"], None, None,
                                                              {"trigger": True})
        return out

    def _since_ms(self) -> int | None:
        """From when to ask for the account's trades: the first send of an order still open
        here, less a minute (``None``: no order open here, no fill to look for). Binance pages
        ``userTrades`` by at most 7 days from ``startTime``: a window that starts at the oldest
        order still open stays short."""
        venue = self.venue
        sent = [int(ids.broker_ids["sent_ms"]) for cid, ids in venue.send_log.orders.items()
                if "sent_ms" in ids.broker_ids and (o := venue.book.get(cid)) is not None
                and o.is_open]
        return min(sent) - _LOOKBACK_MS if sent else None

    async def _trades(self) -> list[dict[str, Any]]:
        since = self._since_ms()
        if since is None:
            return []
        out: list[dict[str, Any]] = []
        for market in self.venue.markets.values():
            out += await self.venue.exchange.fetch_my_trades(market["symbol"], since=since)
        return out

    async def _missing(self, open_cids: set[str]) -> None:
        """Orders open here, not open at the exchange: ask for each (by id or client id)."""
        venue = self.venue
        waiting = venue.queue_ids() | venue.inflight
        for cid, order in list(venue.book.orders.items()):
            if not order.is_open or cid in open_cids or cid in waiting:
                continue
            ids = venue.send_log.orders.get(cid)
            if ids is None:
                continue
            order_id = ids.broker_ids.get("order_id")
            symbol = venue.markets[order.command.instrument_id]["symbol"]
            params: dict[str, Any] = {} if order_id else {"clientOrderId": client_tag(cid)}
            if venue.is_trigger(cid):
                params["trigger"] = True
            try:
                answer = await venue.exchange.fetch_order(order_id, symbol, params)
            except venue.stream.pro.OrderNotFound:
                now = venue.clock_ns()
                if order.acked:
                    venue.book.canceled(cid, reason="reconcile: not known at the exchange",
                                        ts_event=now)
                else:
                    venue.book.rejected(cid, code="not_found", reason="reconcile: the exchange"
                                        " has no such order", ts_event=now)
                continue
            venue.stream.on_order(answer)
            venue.stream.retry_orphans()
            if venue.is_trigger(cid):
                await self._triggered(cid, symbol)
            elif answer.get("status") == "closed" and order.is_open:
                for trade in await venue.exchange.fetch_order_trades(answer["id"], symbol):
                    venue.stream.on_trade(trade)

    async def _triggered(self, cid: str, symbol: str) -> None:
        """A stop not open as a conditional order: when it triggered, the order it placed in
        the matching engine says the rest (its state; its trades when it is done)."""
        venue = self.venue
        actual = venue.send_log.orders[cid].broker_ids.get("actual_id")
        tracked = venue.book.get(cid)
        if not actual or tracked is None or not tracked.is_open:
            return
        placed = await venue.exchange.fetch_order(actual, symbol)
        if placed.get("status") != "open":
            for trade in await venue.exchange.fetch_order_trades(actual, symbol):
                venue.stream.on_trade(trade)
        venue.stream.on_order(placed)

    async def _positions(self) -> dict[str, int]:
        venue, out = self.venue, dict[str, int]()
        contracts = [m for m in venue.markets.values() if m.get("contract")]
        if contracts:
            rows = await venue.exchange.fetch_positions([m["symbol"] for m in contracts])
            for row in rows:
                iid = venue.config.instrument_of(row["symbol"])
                if iid is None or not row.get("contracts"):
                    continue
                sign = -1 if row.get("side") == "short" else 1
                out[iid] = out.get(iid, 0) + sign * to_fixed(row["contracts"])
        spots = [(i, m) for i, m in venue.markets.items() if m.get("spot")]
        if spots:
            balance = await venue.exchange.fetch_balance()
            for iid, market in spots:
                held = (balance.get("total") or {}).get(market["base"]) or 0
                if held:
                    out[iid] = to_fixed(held)
        return out
