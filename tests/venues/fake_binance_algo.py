"""Binance USD-M conditional orders for the loopback fake: the Algo Order API, written from
Binance's documentation (derivatives-trading/usds-margined-futures: "New Algo Order", "Cancel
Algo Order", "Query Algo Order", "Current All Algo Open Orders", and the user data stream's
``ALGO_UPDATE`` event). Since December 2025 Binance takes STOP_MARKET, STOP, TAKE_PROFIT,
TAKE_PROFIT_MARKET and TRAILING_STOP_MARKET only there (ccxt 4.5 sends them there).

* ``POST /fapi/v1/algoOrder`` (signed): ``algoType=CONDITIONAL``, ``type``, ``side``,
  ``quantity``, ``triggerPrice``, ``price`` (STOP, TAKE_PROFIT), ``timeInForce``,
  ``reduceOnly``, ``clientAlgoId``; answers the algo order (``algoId``, ``algoStatus`` NEW...).
  Refused: an ``algoType`` other than CONDITIONAL (-1116), a type it does not take (-1116), a
  trigger or price off the tick (-4014), a quantity off the step (-1111), a ``clientAlgoId``
  used before (-20132);
* ``DELETE /fapi/v1/algoOrder`` (``algoId`` or ``clientAlgoId``): only while NEW, else -2011;
  answers ``{"algoId", "clientAlgoId", "code": "200", "msg": "success"}``;
* ``GET /fapi/v1/algoOrder`` (one, -2013 when unknown) and ``GET /fapi/v1/openAlgoOrders``;
* the trigger (the contract's last price, ``workingType`` CONTRACT_PRICE, moved by
  ``set_price``): a buy stop when the price is at or above ``triggerPrice``, a sell stop at or
  below. Status NEW → TRIGGERING → TRIGGERED (the order placed in the matching engine: its id is
  ``actualOrderId``, ``ai`` in the event) → FINISHED when that order is filled or cancelled;
  each change is an ``ALGO_UPDATE``; the matching-engine order's own events are ordinary
  ``ORDER_TRADE_UPDATE``s (its client order id is the ``clientAlgoId``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.venues.fake_binance import FakeBinanceFutures, FakeOrder

__all__ = ["AlgoBook", "AlgoOrder"]

_TYPES = ("STOP_MARKET", "STOP", "TAKE_PROFIT", "TAKE_PROFIT_MARKET")


@dataclass
class AlgoOrder:
    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    type: str
    tif: str
    qty: Decimal
    price: Decimal
    trigger: Decimal
    reduce_only: bool
    status: str = "NEW"
    actual_order_id: int = 0
    create_ms: int = 0
    update_ms: int = 0
    trigger_ms: int = 0

    def rest(self) -> dict[str, Any]:
        return {"algoId": self.algo_id, "clientAlgoId": self.client_algo_id,
                "algoType": "CONDITIONAL", "orderType": self.type, "symbol": self.symbol,
                "side": self.side, "positionSide": "BOTH", "timeInForce": self.tif,
                "quantity": str(self.qty), "algoStatus": self.status,
                "actualOrderId": str(self.actual_order_id or ""),
                "triggerPrice": str(self.trigger), "price": str(self.price),
                "icebergQuantity": None, "selfTradePreventionMode": "NONE",
                "workingType": "CONTRACT_PRICE", "priceMatch": "NONE",
                "closePosition": False, "priceProtect": False,
                "reduceOnly": self.reduce_only, "createTime": self.create_ms,
                "updateTime": self.update_ms, "triggerTime": self.trigger_ms,
                "goodTillDate": 0}

    def event(self) -> dict[str, Any]:
        return {"caid": self.client_algo_id, "aid": self.algo_id, "at": "CONDITIONAL",
                "o": self.type, "s": self.symbol, "S": self.side, "ps": "BOTH",
                "f": self.tif, "q": str(self.qty), "X": self.status,
                "ai": str(self.actual_order_id or ""), "ap": "0", "aq": "0", "act": "0",
                "tp": str(self.trigger), "p": str(self.price), "V": "NONE",
                "wt": "CONTRACT_PRICE", "pm": "NONE", "cp": False, "pP": False,
                "R": self.reduce_only, "tt": self.trigger_ms, "gtd": 0, "rm": ""}

    def triggered_by(self, price: Decimal) -> bool:
        stop = self.type in ("STOP_MARKET", "STOP")
        rising = (self.side == "BUY") == stop  # a buy stop fires on the way up
        return price >= self.trigger if rising else price <= self.trigger


class AlgoBook:
    """The conditional orders of the fake exchange (its ``algo`` attribute)."""

    def __init__(self, exchange: FakeBinanceFutures) -> None:
        self.exchange = exchange
        self.orders: dict[int, AlgoOrder] = {}
        self.by_client: dict[str, AlgoOrder] = {}
        self.by_actual: dict[int, AlgoOrder] = {}
        self._ids = itertools.count(3_358_000)

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("POST", "/fapi/v1/algoOrder"): self.new,
                ("DELETE", "/fapi/v1/algoOrder"): self.cancel,
                ("GET", "/fapi/v1/algoOrder"): self.query,
                ("GET", "/fapi/v1/openAlgoOrders"): self.open_orders}

    async def new(self, p: dict[str, str]) -> dict[str, Any]:
        from tests.venues.fake_binance import _Refused

        ex = self.exchange
        spec = ex._spec(p.get("symbol"))
        cid = p.get("clientAlgoId") or f"algo{next(self._ids)}"
        ex.attempts.append(cid)
        if p.get("algoType") != "CONDITIONAL" or p.get("type") not in _TYPES:
            raise _Refused(400, -1116, "Invalid orderType.")
        if cid in self.by_client:
            raise _Refused(400, -20132, "The client algo id is duplicated.")
        qty, trigger = Decimal(p.get("quantity", "0")), Decimal(p.get("triggerPrice", "0"))
        limit = p["type"] in ("STOP", "TAKE_PROFIT")
        price = Decimal(p.get("price", "0")) if limit else Decimal(0)
        if qty <= 0 or qty % Decimal(spec.step) or qty < Decimal(spec.min_qty):
            raise _Refused(400, -1111, "Precision is over the maximum defined for this asset.")
        tick = Decimal(spec.tick)
        if trigger <= 0 or trigger % tick or (limit and (price <= 0 or price % tick)):
            raise _Refused(400, -4014, "Price not increased by tick size.")
        now = ex.now_ms()
        order = AlgoOrder(next(self._ids), cid, spec.symbol, p["side"], p["type"],
                          p.get("timeInForce", "GTC"), qty, price, trigger,
                          p.get("reduceOnly", "false").lower() == "true", create_ms=now,
                          update_ms=now)
        self.orders[order.algo_id] = order
        self.by_client[cid] = order
        ex.placed.append(cid)
        self.push(order)
        return order.rest()

    def _find(self, p: dict[str, str], missing: tuple[int, str]) -> AlgoOrder:
        from tests.venues.fake_binance import _Refused

        order = None
        if "algoId" in p:
            order = self.orders.get(int(p["algoId"]))
        elif "clientAlgoId" in p:
            order = self.by_client.get(p["clientAlgoId"])
        if order is None:
            raise _Refused(400, *missing)
        return order

    async def cancel(self, p: dict[str, str]) -> dict[str, Any]:
        from tests.venues.fake_binance import _Refused

        order = self._find(p, (-2011, "Unknown order sent."))
        if order.status != "NEW":
            raise _Refused(400, -2011, "Unknown order sent.")
        order.status, order.update_ms = "CANCELED", self.exchange.now_ms()
        self.push(order)
        return {"algoId": order.algo_id, "clientAlgoId": order.client_algo_id,
                "code": "200", "msg": "success"}

    async def query(self, p: dict[str, str]) -> dict[str, Any]:
        return self._find(p, (-2013, "Order does not exist.")).rest()

    async def open_orders(self, p: dict[str, str]) -> list[dict[str, Any]]:
        return [o.rest() for o in self.orders.values()
                if o.status in ("NEW", "TRIGGERING")
                and ("symbol" not in p or o.symbol == p["symbol"])]

    # --- the trigger ----------------------------------------------------------------------

    def on_price(self, symbol: str, price: Decimal) -> None:
        """The contract traded at ``price``: fire every stop it reaches."""
        for order in [o for o in self.orders.values() if o.symbol == symbol
                      and o.status == "NEW" and o.triggered_by(price)]:
            self._fire(order, price)

    def _fire(self, order: AlgoOrder, price: Decimal) -> None:
        from tests.venues.fake_binance import FakeOrder

        ex = self.exchange
        now = ex.now_ms()
        order.status, order.trigger_ms, order.update_ms = "TRIGGERING", now, now
        self.push(order)
        limit = order.type in ("STOP", "TAKE_PROFIT")
        placed = FakeOrder(next(ex._ids), order.client_algo_id, order.symbol, order.side,
                           "LIMIT" if limit else "MARKET", order.tif if limit else "GTC",
                           order.qty, order.price, order.reduce_only, time_ms=now,
                           update_ms=now)
        ex.orders[placed.order_id] = placed
        order.status, order.actual_order_id = "TRIGGERED", placed.order_id
        self.by_actual[placed.order_id] = order
        self.push(order)
        ex._push_order(placed, "NEW")
        crosses = not limit or (price <= order.price if order.side == "BUY"
                                else price >= order.price)
        if crosses:
            ex._fill_now(placed, placed.qty, price if not limit else order.price)

    def engine_order_ended(self, placed: FakeOrder) -> None:
        """The matching-engine order a trigger placed was filled or cancelled: FINISHED."""
        order = self.by_actual.get(placed.order_id)
        if order is not None and order.status == "TRIGGERED":
            order.status, order.update_ms = "FINISHED", self.exchange.now_ms()
            self.push(order)

    def push(self, order: AlgoOrder) -> None:
        now = self.exchange.now_ms()
        self.exchange._broadcast_private({"e": "ALGO_UPDATE", "T": now, "E": now,
                                          "o": order.event()})
