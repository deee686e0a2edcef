"""The CCXT user stream: ``watch_orders`` and ``watch_my_trades`` per market, as reports.

* an order the exchange shows open ⇒ ``OrderAccepted`` (its amount or price changed ⇒
  ``OrderUpdated``); canceled ⇒ ``OrderCanceled``; expired (an IOC/FOK remainder) ⇒
  ``OrderCanceled`` with reason ``expired``; rejected ⇒ ``OrderRejected``;
* a trade ⇒ ``OrderFilled`` with ``fill_id`` ``CX-<market id>-<trade id>`` (the same id REST
  ``fetch_my_trades`` gives, so a fill seen both ways is reported once); a trade whose order id
  is not known yet (it beat ``create_order``'s answer, or a stop's trigger event) waits up to
  :data:`ORPHAN_WAIT_S` and is matched again when an id arrives (a gap's fills are
  reconciliation's in any case);
* an order or a trade of an order this session never sent (placed elsewhere on the account, or
  a confused exchange) is counted (``ReportBook.foreign``: the unknown-order-storm watchdog reads
  it through the gateway's health) and otherwise ignored;
* a stream error marks the stream down: the adapter polls over REST (reconciliation every
  ``poll_every_s``) until a WebSocket is connected again, then reconciles once more (fills made
  during the gap come back from ``fetch_my_trades``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from actors.venues.ccxt_support import import_ccxt
from actors.venues.common import ORPHAN_WAIT_S, to_fixed
from runtime.instruments import Instrument
from runtime.messages import Liquidity, OrderSide

if TYPE_CHECKING:
    from actors.venues.ccxt_venue import CcxtVenue

__all__ = ["CcxtStream", "TradeFee", "trade_fee"]

log = logging.getLogger("tradewind.venues.ccxt")
_MAX_ORPHANS = 10_000


@dataclass(frozen=True, slots=True)
class TradeFee:
    """A trade's fee as the core takes it: ``money`` in the settlement currency (including the
    value of what was paid in kind), ``in_kind`` the base asset taken as fee (instrument units),
    ``unpriced`` the charges in a third asset the trade does not value (currency, cost)."""

    money: int = 0
    in_kind: int = 0
    unpriced: tuple[tuple[str, Decimal], ...] = ()


def trade_fee(trade: dict[str, Any], market: dict[str, Any], *, currency: str,
              instrument: Instrument, side: OrderSide, qty: int, price: int) -> TradeFee:
    """Classify a ccxt trade's fee(s) (``fees``, else ``fee``): in the settlement currency, as
    charged; in the base asset of a spot market (Binance takes a buy's fee from the BTC
    received), in kind, valued at the trade's price (exactly what the position does not get);
    in any other asset (BNB), unpriced: ccxt's trade carries no value for it, and a price
    from elsewhere would be a guess, so it is counted, not converted."""
    entries = trade.get("fees") or ([trade["fee"]] if trade.get("fee") else [])
    money = in_kind = 0
    unpriced: list[tuple[str, Decimal]] = []
    for entry in entries:
        cost, asset = entry.get("cost"), entry.get("currency")
        if not cost:
            continue
        if asset == currency:
            money += to_fixed(cost)
        elif market.get("spot") and asset == market.get("base"):
            in_kind += to_fixed(cost)
        else:
            unpriced.append((str(asset), Decimal(str(cost))))
    if in_kind:  # the value of what the position does not get: cash moves by the whole trade
        if side is OrderSide.BUY:
            money += instrument.notional(price, qty) - instrument.notional(price, qty - in_kind)
        else:
            money += instrument.notional(price, qty + in_kind) - instrument.notional(price, qty)
    return TradeFee(money, in_kind, tuple(unpriced))


class CcxtStream:
    def __init__(self, venue: CcxtVenue) -> None:
        self.venue = venue
        self.pro = import_ccxt()
        self.down = True  # until a WebSocket is connected: what happens meanwhile is polled
        self.tasks: list[asyncio.Task[None]] = []
        self.orphans: list[tuple[float, dict[str, Any]]] = []  # (first seen, trade)
        self.events = 0

    # --- the watch loops -----------------------------------------------------------------

    def ensure_running(self) -> None:
        if self.tasks and not all(t.done() for t in self.tasks):
            if self.down and self._connected():
                log.info("user stream up: reconciling what happened before it")
                self.down = False
                self.venue.reconcile_requested = True
            return
        loop = asyncio.get_running_loop()
        self.tasks = []
        for market in self.venue.markets.values():
            symbol = market["symbol"]
            self.tasks.append(loop.create_task(self._watch(symbol, trades=False)))
            self.tasks.append(loop.create_task(self._watch(symbol, trades=True)))

    async def _watch(self, symbol: str, *, trades: bool) -> None:
        exchange, cfg = self.venue.exchange, self.venue.config
        delay = cfg.backoff_min_s
        while True:
            try:
                if trades:
                    for trade in await exchange.watch_my_trades(symbol):
                        self.on_trade(trade)
                else:
                    for order in await exchange.watch_orders(symbol):
                        self.on_order(order)
                self.events += 1
                delay = cfg.backoff_min_s
            except asyncio.CancelledError:
                raise
            except self.pro.BaseError as exc:
                if not self.down:
                    log.warning("user stream down (%s): polling over REST", type(exc).__name__)
                self.down = True
                self.venue.reconcile_requested = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, cfg.backoff_max_s)

    def _connected(self) -> bool:
        """A WebSocket of this client is open again (ccxt keeps one client per URL)."""
        for client in list(getattr(self.venue.exchange, "clients", {}).values()):
            connected = getattr(client, "connected", None)
            if (connected is not None and connected.done() and not connected.cancelled()
                    and connected.exception() is None and not getattr(client, "error", None)):
                return True
        return False

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    # --- events --------------------------------------------------------------------------

    def cid_of(self, order_id: str | None, tag: str | None) -> str | None:
        find, book = self.venue.send_log.find, self.venue.book
        if tag:
            cid = find("tag", tag)
            if cid is not None:
                return cid
            if tag in book.orders:
                return tag
        if not order_id:
            return None
        return find("order_id", str(order_id)) or find("actual_id", str(order_id))

    def on_order(self, order: dict[str, Any]) -> None:
        venue = self.venue
        cid = self.cid_of(order.get("id"), order.get("clientOrderId"))
        if cid is None:  # an order this session never sent (placed elsewhere on the account)
            venue.book.note_foreign()
            return
        if venue.is_trigger(cid):
            self._on_trigger_order(cid, order)
            return
        if order.get("id"):
            venue.send_log.broker_ids(cid, order_id=str(order["id"]))
        status, now = order.get("status"), venue.clock_ns()
        ts = int(order.get("lastUpdateTimestamp") or order.get("timestamp") or 0) * 1_000_000
        ts = ts or now
        if status in ("open", "closed"):
            venue.breaker.success()
            venue.book.accepted(cid, venue_order_id=str(order.get("id") or ""), ts_event=ts)
            if status == "open":
                self._amended(cid, order, ts)
        elif status == "canceled":
            asked = cid in venue._cancel_requested
            venue.book.canceled(cid, reason="canceled" if asked else "canceled by the exchange",
                                ts_event=ts)
        elif status == "expired":
            venue.book.canceled(cid, reason="expired (time in force)", ts_event=ts)
        elif status == "rejected":
            venue.book.rejected(cid, code="rejected", reason="rejected by the exchange",
                                ts_event=ts)

    def _on_trigger_order(self, cid: str, order: dict[str, Any]) -> None:
        """A stop's state: the algo order's (``ALGO_UPDATE``, ``GET /fapi/v1/algoOrder``:
        NEW, TRIGGERING, TRIGGERED, FINISHED, CANCELED, EXPIRED, REJECTED) or, once triggered,
        the matching-engine order's it placed (its fills are the stop's)."""
        venue, info = self.venue, order.get("info") or {}
        ts = int(order.get("lastUpdateTimestamp") or order.get("timestamp") or 0) * 1_000_000
        ts = ts or venue.clock_ns()
        algo = "aid" in info or "algoId" in info
        if algo:
            algo_id = str(info.get("aid") or info.get("algoId"))
            venue.send_log.broker_ids(cid, order_id=algo_id)
            actual = str(info.get("ai") or info.get("actualOrderId") or "")
            if actual not in ("", "0"):
                venue.send_log.broker_ids(cid, actual_id=actual)
                self.retry_orphans()
            status = str(info.get("X") or info.get("algoStatus") or "")
        else:
            venue.send_log.broker_ids(cid, actual_id=str(order["id"]))
            status = {"open": "NEW", "closed": "FINISHED"}.get(str(order.get("status")),
                                                                str(order.get("status")).upper())
        if status in ("NEW", "TRIGGERING", "TRIGGERED", "FINISHED"):
            venue.breaker.success()
            venue.book.accepted(cid, venue_order_id=venue.send_log.orders[cid].broker_ids.get(
                "order_id", ""), ts_event=ts)
        elif status in ("CANCELED", "CANCELLED"):
            asked = cid in venue._cancel_requested
            venue.book.canceled(cid, reason="canceled" if asked else "canceled by the exchange",
                                ts_event=ts)
        elif status == "EXPIRED":
            venue.book.canceled(cid, reason="expired (by the exchange)", ts_event=ts)
        elif status == "REJECTED":
            why = str(info.get("rm") or "rejected by the exchange")
            venue.book.rejected(cid, code="rejected", reason=why, ts_event=ts)

    def _amended(self, cid: str, order: dict[str, Any], ts: int) -> None:
        tracked = self.venue.book.get(cid)
        if tracked is None or order.get("amount") is None:
            return
        price = order.get("price")
        new_price = tracked.price if tracked.price is None or not price else to_fixed(price)
        self.venue.book.updated(cid, quantity=to_fixed(order["amount"]), price=new_price,
                                ts_event=ts)

    def _cid_of_trade(self, trade: dict[str, Any]) -> str | None:
        return self.cid_of(str(trade.get("order") or ""), None)

    def on_trade(self, trade: dict[str, Any], *, seen_at: float | None = None) -> None:
        venue = self.venue
        order_id = str(trade.get("order") or "")
        cid = self.cid_of(order_id, None)
        if cid is None:
            if order_id and len(self.orphans) < _MAX_ORPHANS:  # its order's id may come yet
                self.orphans.append((venue.monotonic() if seen_at is None else seen_at, trade))
            else:
                venue.book.note_foreign()
            return
        market = venue.exchange.market(trade["symbol"])
        tracked = venue.book.get(cid)
        if tracked is None:
            venue.book.note_foreign()
            return
        iid = tracked.command.instrument_id
        qty, price = to_fixed(trade["amount"]), to_fixed(trade["price"])
        fill_id = f"CX-{market['id']}-{trade['id']}"
        fee = trade_fee(trade, market, currency=venue.book.currency,
                        instrument=venue.instruments.get(iid) or venue.rules.get(iid),
                        side=tracked.command.side, qty=qty, price=price)
        reported = venue.book.filled(
            cid, fill_id=fill_id, qty=qty, price=price, fee=fee.money, fee_qty=fee.in_kind,
            ts_event=int(trade.get("timestamp") or 0) * 1_000_000 or venue.clock_ns(),
            venue_order_id=order_id,
            liquidity=Liquidity.MAKER if trade.get("takerOrMaker") == "maker"
            else Liquidity.TAKER)
        if reported:
            for currency, cost in fee.unpriced:
                log.warning("fee of trade %s (%s) is %s %s, which the trade does not value in "
                            "%s: not in the session's fees or PnL (counted in the gateway's "
                            "health, unpriced_fees)", trade["id"], fill_id, cost, currency,
                            venue.book.currency)
                venue.book.note_unpriced_fee(currency, cost)

    def retry_orphans(self) -> None:
        """Match the waiting trades again (an order id was just learnt); a trade that waited
        ``ORPHAN_WAIT_S`` was for an order this session never sent, and is counted so."""
        orphans, self.orphans = self.orphans, []
        now = self.venue.monotonic()
        for seen_at, trade in orphans:
            if now - seen_at >= ORPHAN_WAIT_S and self._cid_of_trade(trade) is None:
                self.venue.book.note_foreign()
            else:
                self.on_trade(trade, seen_at=seen_at)
