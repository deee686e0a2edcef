"""A loopback Binance spot exchange: REST (``/api/v3``, the margin ``/sapi/v1`` interest rates)
and the WebSocket API's user data stream, written from Binance's spot API documentation
(binance-spot-api-docs: rest-api, websocket-api "userDataStream.subscribe.signature",
user-data-stream "executionReport"), for the unmodified ``ccxt.pro.binance`` client.

What it checks, as Binance does:

* signed REST endpoints: ``X-MBX-APIKEY`` and ``signature`` = HMAC-SHA256(secret, query + body)
  (-1022 when wrong, -2015 for an unknown key), ``timestamp`` within ``recvWindow`` (-1021);
* the WebSocket API (``/ws-api/v3``): a request ``{"id", "method", "params"}``;
  ``userDataStream.subscribe.signature`` with ``apiKey``, ``timestamp`` and ``signature`` =
  HMAC-SHA256(secret, the other params sorted by name, url-encoded) answers
  ``{"id", "status": 200, "result": {"subscriptionId": n}}`` (401 with -1022 / -2015
  otherwise); events then come on that connection as ``{"subscriptionId": n, "event": {...}}``:
  ``executionReport`` (x: NEW, TRADE, CANCELED, EXPIRED) and ``outboundAccountPosition``;
* orders: ``PRICE_FILTER`` tick (-1013 "Filter failure: PRICE_FILTER"), ``LOT_SIZE`` (-1013),
  ``NOTIONAL`` (-1013), a ``newClientOrderId`` in use (-2010 "Duplicate order sent."), a
  ``LIMIT_MAKER`` that would take (-2010 "Order would immediately match and take."), a sell or
  buy beyond the free balance (-2010 "Account has insufficient balance for requested
  action."); unknown orders on cancel (-2011) and query (-2013). Commission 0.1 % in the asset
  received (base on a buy, quote on a sell), as an account without BNB fee payment pays it,
  deducted from that balance; with :meth:`pay_fees_in_bnb` (the account's "use BNB to pay for
  fees", enough BNB held) 25 % less, in BNB at the price given, deducted from BNB. Trades
  (``myTrades``, ``executionReport`` ``n``/``N``) carry ``commission`` and ``commissionAsset``.

The USD-M and COIN-M ``exchangeInfo`` answer an empty symbol list (ccxt's binance loads them
with the spot markets; this exchange lists only spot). Scenario controls (on the fake's loop):
:meth:`fill`, :meth:`set_price` (market orders fill there, a crossing limit at once),
:meth:`streams_down` / :meth:`streams_up`, :meth:`set_borrow_rate` (``GET
/sapi/v1/margin/interestRateHistory``: the daily rate of an asset, newest first).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import WSMsgType, web

from tests.venues.fake_binance import _SIG, API_KEY, SECRET, _Refused

__all__ = ["FakeBinanceSpot", "spot_urls"]

_FEE = Decimal("0.001")


def spot_urls(port: int) -> dict[str, str]:
    """The ``broker.urls`` block that points ccxt's binance (spot) at this fake."""
    http, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    return {"public": f"{http}/api/v3", "private": f"{http}/api/v3", "sapi": f"{http}/sapi/v1",
            "fapiPublic": f"{http}/fapi/v1", "dapiPublic": f"{http}/dapi/v1",
            "ws.spot": f"{ws}/ws", "ws.ws-api.spot": f"{ws}/ws-api/v3"}


@dataclass
class SpotOrder:
    order_id: int
    client_id: str
    symbol: str
    side: str
    type: str
    tif: str
    qty: Decimal
    price: Decimal
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    time_ms: int = 0
    update_ms: int = 0

    def rest(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
                "clientOrderId": self.client_id, "price": str(self.price),
                "origQty": str(self.qty), "executedQty": str(self.executed),
                "cummulativeQuoteQty": str(self.quote), "status": self.status,
                "timeInForce": self.tif, "type": self.type, "side": self.side,
                "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": self.time_ms,
                "updateTime": self.update_ms, "isWorking": True,
                "workingTime": self.time_ms, "origQuoteOrderQty": "0.00000000",
                "selfTradePreventionMode": "NONE"}


class FakeBinanceSpot:
    def __init__(self, *, balances: dict[str, str] | None = None) -> None:
        self.symbol, self.base, self.quote = "BTCUSDT", "BTC", "USDT"
        self.tick, self.step, self.min_qty, self.min_notional = (
            Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), Decimal("5"))
        self.balances = {k: Decimal(v) for k, v in
                         (balances or {"BTC": "1", "USDT": "100000"}).items()}
        self.price: Decimal | None = None
        self.bnb_price: Decimal | None = None  # set: commission in BNB (BNB fee payment on)
        self.orders: dict[int, SpotOrder] = {}
        self.by_client: dict[str, SpotOrder] = {}
        self.placed: list[str] = []
        self.trades: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, int]] = []
        self.borrow: dict[str, list[dict[str, Any]]] = {}
        self.subscribers: dict[web.WebSocketResponse, int] = {}
        self.streams_refused = False
        self._ids = itertools.count(4_293_153)
        self._trade_ids = itertools.count(28_457)
        self._subs = itertools.count(0)
        self._sends: set[asyncio.Future[Any]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/ws-api/v3", self._ws_api)
        app.router.add_get("/ws", self._ws_market)
        app.router.add_route("*", "/{api}/{version}/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    async def stop(self) -> None:
        await self.close_streams()
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    # --- REST -----------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        info = request.match_info
        path = f"/{info['api']}/{info['version']}/{info['path']}"
        status = 200
        try:
            response = web.json_response(await self._route(request, path))
        except _Refused as exc:
            status = exc.status
            response = web.json_response({"code": exc.code, "msg": exc.msg}, status=status)
        self.requests.append((request.method, path, status))
        return response

    async def _route(self, request: web.Request, path: str) -> Any:
        method = request.method
        if path in ("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"):
            return {"timezone": "UTC", "serverTime": self.now_ms(), "rateLimits": [],
                    "exchangeFilters": [], "symbols": []}
        public = {"/api/v3/ping": lambda: {}, "/api/v3/time": lambda: {
            "serverTime": self.now_ms()}, "/api/v3/exchangeInfo": self._exchange_info}
        if method == "GET" and path in public:
            return public[path]()
        p = self._signed(request, await request.text())
        handlers = {("GET", "/api/v3/account"): self._account,
                    ("POST", "/api/v3/order"): self._new_order,
                    ("DELETE", "/api/v3/order"): self._cancel,
                    ("GET", "/api/v3/order"): self._query,
                    ("GET", "/api/v3/openOrders"): self._open_orders,
                    ("GET", "/api/v3/myTrades"): self._my_trades,
                    ("GET", "/sapi/v1/margin/interestRateHistory"): self._interest_rates}
        handler = handlers.get((method, path))
        if handler is None:
            raise _Refused(404, -1000, f"{method} {path} is not served here")
        return handler(p)

    def _signed(self, request: web.Request, body: str) -> dict[str, str]:
        if request.headers.get("X-MBX-APIKEY") != API_KEY:
            raise _Refused(401, -2015, "Invalid API-key, IP, or permissions for action.")
        query = request.query_string
        signature = dict(parse_qsl(query)).get("signature") or dict(parse_qsl(body)).get(
            "signature")
        total = _SIG.sub("", query) + _SIG.sub("", body)
        expected = hmac.new(SECRET.encode(), total.encode(), hashlib.sha256).hexdigest()
        if not signature or not hmac.compare_digest(signature, expected):
            raise _Refused(400, -1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(_SIG.sub("", query))) | dict(parse_qsl(_SIG.sub("", body)))
        self._check_time(params)
        return params

    def _check_time(self, params: dict[str, Any]) -> None:
        stamp, window = int(params.get("timestamp", 0)), int(params.get("recvWindow", 5000))
        if stamp < self.now_ms() - window or stamp - self.now_ms() > 1000:
            raise _Refused(400, -1021, "Timestamp for this request is outside of the "
                           "recvWindow.")

    def _exchange_info(self) -> dict[str, Any]:
        return {"timezone": "UTC", "serverTime": self.now_ms(), "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
             "limit": 100}], "exchangeFilters": [], "symbols": [{
                "symbol": self.symbol, "status": "TRADING", "baseAsset": self.base,
                "baseAssetPrecision": 8, "quoteAsset": self.quote, "quotePrecision": 8,
                "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT",
                               "TAKE_PROFIT_LIMIT"],
                "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
                "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True,
                "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": True, "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.01000000",
                     "maxPrice": "1000000.00000000", "tickSize": str(self.tick)},
                    {"filterType": "LOT_SIZE", "minQty": str(self.min_qty),
                     "maxQty": "9000.00000000", "stepSize": str(self.step)},
                    {"filterType": "NOTIONAL", "minNotional": str(self.min_notional),
                     "applyMinToMarket": True, "maxNotional": "9000000.00000000",
                     "applyMaxToMarket": False, "avgPriceMins": 5}],
                "permissions": [], "permissionSets": [["SPOT", "MARGIN"]],
                "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_MAKER"]}]}

    def _account(self, p: dict[str, str]) -> dict[str, Any]:
        locked = self._locked()
        return {"makerCommission": 10, "takerCommission": 10, "canTrade": True,
                "canWithdraw": True, "canDeposit": True, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False,
                "updateTime": self.now_ms(), "accountType": "SPOT", "permissions": ["SPOT"],
                "balances": [{"asset": a, "free": str(v - locked.get(a, Decimal(0))),
                              "locked": str(locked.get(a, Decimal(0)))}
                             for a, v in sorted(self.balances.items())]}

    def _locked(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for o in self.orders.values():
            if o.status in ("NEW", "PARTIALLY_FILLED") and o.type != "MARKET":
                left = o.qty - o.executed
                asset, amount = (self.quote, left * o.price) if o.side == "BUY" else (
                    self.base, left)
                out[asset] = out.get(asset, Decimal(0)) + amount
        return out

    def _new_order(self, p: dict[str, str]) -> dict[str, Any]:
        if p.get("symbol") != self.symbol:
            raise _Refused(400, -1121, "Invalid symbol.")
        cid = p.get("newClientOrderId") or f"web_{next(self._ids)}"
        if cid in self.by_client:
            raise _Refused(400, -2010, "Duplicate order sent.")
        otype, side = p.get("type", ""), p.get("side", "")
        qty, price = Decimal(p.get("quantity", "0")), Decimal(p.get("price", "0"))
        self._check(otype, side, qty, price)
        now = self.now_ms()
        order = SpotOrder(next(self._ids), cid, self.symbol, side, otype,
                          p.get("timeInForce", "GTC"), qty, price, time_ms=now, update_ms=now)
        crosses = self.price is not None and otype in ("LIMIT", "LIMIT_MAKER") and (
            price >= self.price if side == "BUY" else price <= self.price)
        if otype == "LIMIT_MAKER" and crosses:
            raise _Refused(400, -2010, "Order would immediately match and take.")
        self.orders[order.order_id] = order
        self.by_client[cid] = order
        self.placed.append(cid)
        self._report(order, "NEW")
        if self.price is not None and (otype == "MARKET" or crosses):
            self._fill_now(order, order.qty, self.price)
        elif order.tif == "IOC" or otype == "MARKET":
            order.status = "EXPIRED"
            self._report(order, "EXPIRED")
        return order.rest() | {"transactTime": now, "fills": []}

    def _check(self, otype: str, side: str, qty: Decimal, price: Decimal) -> None:
        if otype not in ("LIMIT", "LIMIT_MAKER", "MARKET"):
            raise _Refused(400, -1116, "Invalid orderType.")
        if qty % self.step or qty < self.min_qty:
            raise _Refused(400, -1013, "Filter failure: LOT_SIZE")
        if otype != "MARKET" and (price <= 0 or price % self.tick):
            raise _Refused(400, -1013, "Filter failure: PRICE_FILTER")
        ref = price if otype != "MARKET" else (self.price or Decimal(0))
        if ref and qty * ref < self.min_notional:
            raise _Refused(400, -1013, "Filter failure: NOTIONAL")
        asset, need = (self.quote, qty * ref) if side == "BUY" else (self.base, qty)
        free = self.balances.get(asset, Decimal(0)) - self._locked().get(asset, Decimal(0))
        if need > free:
            raise _Refused(400, -2010, "Account has insufficient balance for requested action.")

    def _find(self, p: dict[str, str], missing: tuple[int, str]) -> SpotOrder:
        order = None
        if "orderId" in p:
            order = self.orders.get(int(p["orderId"]))
        elif "origClientOrderId" in p:
            order = self.by_client.get(p["origClientOrderId"])
        if order is None or order.symbol != p.get("symbol"):
            raise _Refused(400, *missing)
        return order

    def _cancel(self, p: dict[str, str]) -> dict[str, Any]:
        order = self._find(p, (-2011, "Unknown order sent."))
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise _Refused(400, -2011, "Unknown order sent.")
        order.status, order.update_ms = "CANCELED", self.now_ms()
        self._report(order, "CANCELED")
        return order.rest() | {"origClientOrderId": order.client_id}

    def _query(self, p: dict[str, str]) -> dict[str, Any]:
        return self._find(p, (-2013, "Order does not exist.")).rest()

    def _open_orders(self, p: dict[str, str]) -> list[dict[str, Any]]:
        return [o.rest() for o in self.orders.values()
                if o.status in ("NEW", "PARTIALLY_FILLED")
                and p.get("symbol", o.symbol) == o.symbol]

    def _my_trades(self, p: dict[str, str]) -> list[dict[str, Any]]:
        if p.get("symbol") != self.symbol:
            raise _Refused(400, -1121, "Invalid symbol.")
        rows = [t for t in self.trades if t["time"] >= int(p.get("startTime", 0))
                and ("orderId" not in p or t["orderId"] == int(p["orderId"]))]
        return rows[: int(p.get("limit", 500))]

    def _interest_rates(self, p: dict[str, str]) -> list[dict[str, Any]]:
        rows = self.borrow.get(p.get("asset", ""), [])
        return sorted(rows, key=lambda r: -int(r["timestamp"]))[: int(p.get("limit", 20))]

    def set_borrow_rate(self, asset: str, daily: str, at_ms: int) -> None:
        self.borrow.setdefault(asset, []).append(
            {"asset": asset, "timestamp": at_ms, "dailyInterestRate": daily, "vipLevel": 0})

    # --- matching (scenario controls) ---------------------------------------------------

    def pay_fees_in_bnb(self, bnb_price: str) -> None:
        """The account's BNB fee payment on: commission at 0.075 % in BNB (at ``bnb_price``
        in the quote asset) while BNB covers it."""
        self.bnb_price = Decimal(bnb_price)

    def set_price(self, price: float) -> None:
        self.price = Decimal(str(price))

    def fill(self, client_id: str, qty: float, price: float) -> dict[str, Any]:
        return self._fill_now(self.by_client[client_id], Decimal(str(qty)), Decimal(str(price)))

    def _fill_now(self, order: SpotOrder, qty: Decimal, price: Decimal) -> dict[str, Any]:
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            return {}
        qty = min(qty, order.qty - order.executed)
        order.executed += qty
        order.quote += qty * price
        order.status = "FILLED" if order.executed == order.qty else "PARTIALLY_FILLED"
        order.update_ms = self.now_ms()
        buy = order.side == "BUY"
        fee_asset = self.base if buy else self.quote
        fee = ((qty if buy else qty * price) * _FEE).quantize(Decimal("0.00000001"))
        if self.bnb_price is not None:
            in_bnb = (qty * price * _FEE * Decimal("0.75") / self.bnb_price).quantize(
                Decimal("0.00000001"))
            if self.balances.get("BNB", Decimal(0)) >= in_bnb:
                fee_asset, fee = "BNB", in_bnb
        sign = 1 if buy else -1
        self.balances[self.base] = self.balances.get(self.base, Decimal(0)) + sign * qty
        self.balances[self.quote] = self.balances.get(self.quote, Decimal(0)) - sign * qty * price
        self.balances[fee_asset] -= fee
        maker = order.type != "MARKET"
        trade = {"symbol": order.symbol, "id": next(self._trade_ids), "orderId": order.order_id,
                 "orderListId": -1, "price": str(price), "qty": str(qty),
                 "quoteQty": str(qty * price), "commission": str(fee),
                 "commissionAsset": fee_asset, "time": self.now_ms(), "isBuyer": buy,
                 "isMaker": maker, "isBestMatch": True}
        self.trades.append(trade)
        self._report(order, "TRADE", trade)
        return trade

    # --- the WebSocket API's user data stream -------------------------------------------

    async def _ws_api(self, request: web.Request) -> web.WebSocketResponse:
        if self.streams_refused:
            raise web.HTTPServiceUnavailable()
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            req = json.loads(msg.data)
            if req.get("method") == "userDataStream.subscribe.signature":
                await ws.send_json(self._subscribe(ws, req))
            else:
                await ws.send_json({"id": req.get("id"), "status": 400, "error": {
                    "code": -1100, "msg": f"unknown method {req.get('method')}"}})
        self.subscribers.pop(ws, None)
        return ws

    def _subscribe(self, ws: web.WebSocketResponse, req: dict[str, Any]) -> dict[str, Any]:
        params = dict(req.get("params") or {})
        signature = str(params.pop("signature", ""))
        payload = urlencode(sorted((k, str(v).lower() if isinstance(v, bool) else str(v))
                                   for k, v in params.items()))
        expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
        try:
            if params.get("apiKey") != API_KEY:
                raise _Refused(401, -2015, "Invalid API-key, IP, or permissions for action.")
            if not hmac.compare_digest(signature, expected):
                raise _Refused(401, -1022, "Signature for this request is not valid.")
            self._check_time(params)
        except _Refused as exc:
            return {"id": req.get("id"), "status": exc.status,
                    "error": {"code": exc.code, "msg": exc.msg}}
        self.subscribers[ws] = next(self._subs)
        return {"id": req.get("id"), "status": 200,
                "result": {"subscriptionId": self.subscribers[ws]}}

    async def _ws_market(self, request: web.Request) -> web.WebSocketResponse:
        raise web.HTTPServiceUnavailable()  # market streams are the futures fake's business

    def _report(self, order: SpotOrder, execution: str,
                trade: dict[str, Any] | None = None) -> None:
        now = self.now_ms()
        event = {"e": "executionReport", "E": now, "s": order.symbol, "c": order.client_id,
                 "S": order.side, "o": order.type, "f": order.tif, "q": str(order.qty),
                 "p": str(order.price), "P": "0.00000000", "F": "0.00000000", "g": -1,
                 "C": "", "x": execution, "X": order.status, "r": "NONE",
                 "i": order.order_id, "l": trade["qty"] if trade else "0.00000000",
                 "z": str(order.executed), "L": trade["price"] if trade else "0.00000000",
                 "n": trade["commission"] if trade else "0",
                 "N": trade["commissionAsset"] if trade else None, "T": now,
                 "t": trade["id"] if trade else -1, "I": 0, "w": order.status == "NEW",
                 "m": trade["isMaker"] if trade else False, "M": False, "O": order.time_ms,
                 "Z": str(order.quote), "Y": trade["quoteQty"] if trade else "0.00000000",
                 "Q": "0.00000000", "W": order.time_ms, "V": "NONE"}
        for ws, sub in list(self.subscribers.items()):
            if ws.closed:
                self.subscribers.pop(ws, None)
                continue
            task = asyncio.ensure_future(ws.send_json({"subscriptionId": sub, "event": event}))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def close_streams(self) -> None:
        for ws in list(self.subscribers):
            await ws.close()
        self.subscribers.clear()

    async def streams_down(self) -> None:
        self.streams_refused = True
        await self.close_streams()

    def streams_up(self) -> None:
        self.streams_refused = False
