"""A loopback Binance USD-M futures exchange: REST (``/fapi``) and the WebSocket streams, written
from Binance's API documentation (derivatives-trading/usds-margined-futures), for the unmodified
``ccxt`` client (``ccxt.pro.binanceusdm`` with its ``urls`` pointed here).

What it checks, as Binance does:

* signed endpoints (``TRADE``/``USER_DATA``): the ``X-MBX-APIKEY`` header, and ``signature`` =
  HMAC-SHA256(secret, totalParams) where totalParams is the query string followed by the body,
  without the signature (-1022 when wrong, -2015 for an unknown key); ``timestamp`` within
  ``recvWindow`` (default 5000 ms) of the server's time and at most 1000 ms ahead (-1021);
* orders: ``PRICE_FILTER`` tick (-4014), ``LOT_SIZE`` step and minimum (-1111, -4003),
  ``MIN_NOTIONAL`` (-4164, unless reduce-only), a ``newClientOrderId`` already used (-4116), a
  ``GTX`` (post-only) order that would take liquidity (-5022), a reduce-only order that would
  not reduce (-2022); unknown orders on cancel (-2011) and query (-2013);
* the user data stream: ``POST /fapi/v1/listenKey``, then ``/private/ws?listenKey=`` carrying
  ``ORDER_TRADE_UPDATE`` (x: NEW, TRADE, CANCELED, EXPIRED, AMENDMENT) and ``ACCOUNT_UPDATE``;
  market streams on ``/public/ws`` (bookTicker, depth) and ``/market/ws`` (trade, aggTrade)
  through ``{"method": "SUBSCRIBE"}`` requests.

Conditional orders (stop, stop-limit) go to the Algo Order API
(:mod:`tests.venues.fake_binance_algo`).

Scenario controls (call them on the fake's loop): :meth:`fill` (partial or full, at a price),
:meth:`place_elsewhere` (an order of the account sent by another client),
:meth:`set_price` (a market order fills there; a crossing limit order fills at once),
:meth:`throttle` (the next requests answer 429 with ``Retry-After``), :meth:`fail` (the next
order requests answer 503 with -1007 "execution status unknown", optionally *after* taking the
order),
:meth:`streams_down` / :meth:`streams_up` (close every WebSocket and refuse new ones: fills
made meanwhile are only in ``/fapi/v1/userTrades``), ``skew_ms`` (the server's clock ahead),
:meth:`quote` / :meth:`trade` (market data), :meth:`set_premium` (``GET /fapi/v1/premiumIndex``:
mark and index price, the current funding rate and the next funding time), :meth:`settle_funding`
(a row of ``GET /fapi/v1/fundingRate``, the funding history: ``startTime``/``endTime``/``limit``,
ascending, at most 1000), :meth:`set_open_interest` (``GET /fapi/v1/openInterest``); each answers
-1121 for a symbol it does not list.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from tests.venues.fake_binance_algo import AlgoBook

__all__ = ["API_KEY", "SECRET", "FakeBinanceFutures", "SymbolSpec", "ccxt_urls"]

API_KEY = "fake-binance-key-3f9a"
SECRET = "fake-binance-secret-77c1"
_SIG = re.compile(r"&?signature=[0-9a-fA-F]+")


@dataclass(frozen=True)
class SymbolSpec:
    symbol: str = "BTCUSDT"
    base: str = "BTC"
    quote: str = "USDT"
    tick: str = "0.10"
    step: str = "0.001"
    min_qty: str = "0.001"
    min_notional: str = "100"
    price_precision: int = 2
    quantity_precision: int = 3


@dataclass
class FakeOrder:
    order_id: int
    client_id: str
    symbol: str
    side: str
    type: str
    tif: str
    qty: Decimal
    price: Decimal
    reduce_only: bool
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    time_ms: int = 0
    update_ms: int = 0
    trades: list[int] = field(default_factory=list)

    def rest(self) -> dict[str, Any]:
        avg = self.cum_quote / self.executed if self.executed else Decimal(0)
        return {"orderId": self.order_id, "symbol": self.symbol, "status": self.status,
                "clientOrderId": self.client_id, "price": str(self.price), "avgPrice": str(avg),
                "origQty": str(self.qty), "executedQty": str(self.executed),
                "cumQty": str(self.executed), "cumQuote": str(self.cum_quote),
                "timeInForce": self.tif, "type": self.type, "reduceOnly": self.reduce_only,
                "closePosition": False, "side": self.side, "positionSide": "BOTH",
                "stopPrice": "0", "workingType": "CONTRACT_PRICE", "priceProtect": False,
                "origType": self.type, "priceMatch": "NONE", "selfTradePreventionMode": "NONE",
                "goodTillDate": 0, "time": self.time_ms, "updateTime": self.update_ms}


class _Refused(Exception):
    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None):
        super().__init__(msg)
        self.status, self.code, self.msg, self.headers = status, code, msg, headers or {}


def ccxt_urls(port: int) -> dict[str, str]:
    """The ``broker.urls`` block that points ccxt's binanceusdm at this fake."""
    http, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    return {"fapiPublic": f"{http}/fapi/v1", "fapiPublicV2": f"{http}/fapi/v2",
            "fapiPublicV3": f"{http}/fapi/v3", "fapiPrivate": f"{http}/fapi/v1",
            "fapiPrivateV2": f"{http}/fapi/v2", "fapiPrivateV3": f"{http}/fapi/v3",
            "fapiData": f"{http}/futures/data", "ws.linear": f"{ws}/ws"}


class FakeBinanceFutures:
    def __init__(self, *, symbols: tuple[SymbolSpec, ...] = (SymbolSpec(),),
                 auto_fill_price: float | None = None, fill_delay_s: float = 0.0,
                 balance: str = "100000") -> None:
        self.specs = {s.symbol: s for s in symbols}
        self.prices: dict[str, Decimal] = {}
        if auto_fill_price is not None:
            self.prices = {s: Decimal(str(auto_fill_price)) for s in self.specs}
        self.fill_delay_s = fill_delay_s
        self.balance = Decimal(balance)
        self.skew_ms = 0
        self.orders: dict[int, FakeOrder] = {}
        self.by_client: dict[str, FakeOrder] = {}
        self.placed: list[str] = []  # every accepted newClientOrderId, in order
        self.attempts: list[str] = []  # every order request that reached the matching engine
        self.trades: list[dict[str, Any]] = []  # userTrades rows
        self.positions: dict[str, Decimal] = {}
        self.entry: dict[str, Decimal] = {}  # last fill price per symbol (the entry shown)
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.signed_ok = 0
        self.listen_keys: set[str] = set()
        self.last_order_event: dict[str, Any] = {}
        self.private_ws: list[web.WebSocketResponse] = []
        self.public_ws: list[tuple[web.WebSocketResponse, set[str]]] = []
        self.streams_refused = False
        self._throttle: list[tuple[float, str]] = []  # (Retry-After, path or "" for any)
        self._fail: list[bool] = []
        self._ids = itertools.count(8_389_765_000)
        self._trade_ids = itertools.count(5_001)
        self._runner: web.AppRunner | None = None
        self._sends: set[asyncio.Future[Any]] = set()
        self.port = 0
        self.premium: dict[str, dict[str, Any]] = {}
        self.funding_history: list[dict[str, Any]] = []
        self.open_interest: dict[str, str] = {}
        self.algo = AlgoBook(self)  # conditional orders: the Algo Order API

    # --- server ---------------------------------------------------------------------------

    async def start(self) -> int:
        app = web.Application()
        app.router.add_route("*", "/fapi/{version}/{path:.*}", self._rest)
        app.router.add_get("/{category}/ws", self._ws)
        app.router.add_get("/{category}/ws/{stream_id}", self._ws)  # ccxt numbers its sockets
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

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms

    # --- REST -----------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        path = f"/fapi/{request.match_info['version']}/{request.match_info['path']}"
        body = await request.text()
        status = 200
        try:
            result = await self._route(request, path, body)
            response = web.json_response(result)
        except _Refused as exc:
            status = exc.status
            response = web.json_response({"code": exc.code, "msg": exc.msg}, status=exc.status,
                                         headers=exc.headers)
        self.requests.append((request.method, path, status))
        return response

    async def _route(self, request: web.Request, path: str, body: str) -> Any:
        method = request.method
        if self._throttle and not path.endswith(("/time", "/ping", "/exchangeInfo")) and (
                self._throttle[0][1] in ("", path)):
            retry_after = self._throttle.pop(0)[0]
            raise _Refused(429, -1003, "Too many requests; current limit of IP is 2400 requests "
                           "per minute.", {"Retry-After": str(int(retry_after))})
        public = {("GET", "/fapi/v1/ping"): lambda: {},
                  ("GET", "/fapi/v1/time"): lambda: {"serverTime": self.now_ms()},
                  ("GET", "/fapi/v1/exchangeInfo"): self._exchange_info}
        if (method, path) in public:
            return public[(method, path)]()
        market = {"/fapi/v1/premiumIndex": self._premium_index,
                  "/fapi/v1/fundingRate": self._funding_rate,
                  "/fapi/v1/openInterest": self._open_interest}
        if method == "GET" and path in market:
            return market[path](dict(parse_qsl(request.query_string)))
        if path == "/fapi/v1/listenKey":
            self._api_key(request)
            if method == "POST":
                key = f"lk{next(self._ids)}"
                self.listen_keys.add(key)
                return {"listenKey": key}
            return {}
        params = self._signed(request, body)
        handlers = {("POST", "/fapi/v1/order"): self._new_order,
                    ("DELETE", "/fapi/v1/order"): self._cancel,
                    ("PUT", "/fapi/v1/order"): self._modify,
                    ("GET", "/fapi/v1/order"): self._query,
                    ("GET", "/fapi/v1/openOrders"): self._open_orders,
                    ("GET", "/fapi/v1/userTrades"): self._user_trades,
                    ("GET", "/fapi/v2/positionRisk"): self._position_risk,
                    ("GET", "/fapi/v3/positionRisk"): self._position_risk,
                    ("GET", "/fapi/v1/leverageBracket"): self._leverage_brackets,
                    ("GET", "/fapi/v2/balance"): self._balances,
                    ("GET", "/fapi/v3/balance"): self._balances,
                    ("GET", "/fapi/v2/account"): self._account,
                    ("GET", "/fapi/v3/account"): self._account} | self.algo.routes()
        handler = handlers.get((method, path))
        if handler is None:
            raise _Refused(404, -5000, f"Path {path}, Method {method} is invalid")
        ordering = path in ("/fapi/v1/order", "/fapi/v1/algoOrder") and method in ("POST", "PUT")
        if ordering and self._fail:
            take_it = self._fail.pop(0)
            if take_it:
                await handler(params)
            raise _Refused(503, -1007, "Timeout waiting for response from backend server. Send "
                           "status unknown; execution status unknown.")
        return await handler(params)

    def _api_key(self, request: web.Request) -> None:
        if request.headers.get("X-MBX-APIKEY") != API_KEY:
            raise _Refused(401, -2015, "Invalid API-key, IP, or permissions for action.")

    def _signed(self, request: web.Request, body: str) -> dict[str, str]:
        self._api_key(request)
        query = request.query_string
        signature = dict(parse_qsl(query)).get("signature") or dict(parse_qsl(body)).get(
            "signature")
        total = _SIG.sub("", query) + _SIG.sub("", body)
        expected = hmac.new(SECRET.encode(), total.encode(), hashlib.sha256).hexdigest()
        if not signature or not hmac.compare_digest(signature, expected):
            raise _Refused(400, -1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(_SIG.sub("", query))) | dict(parse_qsl(_SIG.sub("", body)))
        stamp, window = int(params.get("timestamp", 0)), int(params.get("recvWindow", 5000))
        server = self.now_ms()
        if stamp < server - window or stamp - server > 1000:
            raise _Refused(400, -1021, "Timestamp for this request is outside of the "
                           "recvWindow.")
        self.signed_ok += 1
        return params

    def _exchange_info(self) -> dict[str, Any]:
        symbols = []
        for s in self.specs.values():
            symbols.append({
                "symbol": s.symbol, "pair": s.symbol, "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000, "onboardDate": 1569398400000,
                "status": "TRADING", "maintMarginPercent": "2.5000",
                "requiredMarginPercent": "5.0000", "baseAsset": s.base, "quoteAsset": s.quote,
                "marginAsset": s.quote, "pricePrecision": s.price_precision,
                "quantityPrecision": s.quantity_precision, "baseAssetPrecision": 8,
                "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": ["PoW"],
                "triggerProtect": "0.0500", "liquidationFee": "0.012500",
                "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764",
                     "tickSize": s.tick},
                    {"filterType": "LOT_SIZE", "minQty": s.min_qty, "maxQty": "1000",
                     "stepSize": s.step},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": s.min_qty, "maxQty": "120",
                     "stepSize": s.step},
                    {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                    {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                    {"filterType": "MIN_NOTIONAL", "notional": s.min_notional},
                    {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500",
                     "multiplierDown": "0.9500", "multiplierDecimal": "4"}],
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                               "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"]})
        return {"timezone": "UTC", "serverTime": self.now_ms(), "futuresType": "U_MARGINED",
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                     "limit": 2400},
                    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1,
                     "limit": 1200},
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                     "limit": 300}],
                "exchangeFilters": [], "assets": [
                    {"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
                "symbols": symbols}

    # --- orders ---------------------------------------------------------------------------

    def _spec(self, symbol: str | None) -> SymbolSpec:
        if symbol not in self.specs:
            raise _Refused(400, -1121, "Invalid symbol.")
        return self.specs[symbol]

    async def _new_order(self, p: dict[str, str]) -> dict[str, Any]:
        spec = self._spec(p.get("symbol"))
        cid = p.get("newClientOrderId") or f"auto{next(self._ids)}"
        self.attempts.append(cid)
        if cid in self.by_client:
            raise _Refused(400, -4116, "ClientOrderId is duplicated.")
        otype, tif = p.get("type", ""), p.get("timeInForce", "GTC")
        qty, price = Decimal(p.get("quantity", "0")), Decimal(p.get("price", "0"))
        reduce_only = p.get("reduceOnly", "false").lower() == "true"
        self._check(spec, otype, qty, price, reduce_only, p.get("side", ""))
        order = FakeOrder(next(self._ids), cid, spec.symbol, p["side"], otype,
                          "GTC" if otype == "MARKET" else tif, qty, price, reduce_only,
                          time_ms=self.now_ms(), update_ms=self.now_ms())
        mark = self.prices.get(spec.symbol)
        crosses = mark is not None and otype == "LIMIT" and (
            price >= mark if order.side == "BUY" else price <= mark)
        if tif == "GTX" and crosses:
            raise _Refused(400, -5022, "Due to the order could not be executed as maker, the "
                           "Post Only order will be rejected.")
        if tif == "FOK" and not crosses:
            order.status = "EXPIRED"
        self.orders[order.order_id] = order
        self.by_client[cid] = order
        self.placed.append(cid)
        self._push_order(order, "NEW")
        answer = order.rest()
        if order.status == "EXPIRED":
            self._push_order(order, "EXPIRED")
        elif mark is not None and (otype == "MARKET" or crosses):
            asyncio.get_running_loop().call_later(
                self.fill_delay_s, self._fill_now, order, order.qty, mark)
        elif tif == "IOC":
            order.status = "EXPIRED"
            self._push_order(order, "EXPIRED")
        return answer

    def _check(self, spec: SymbolSpec, otype: str, qty: Decimal, price: Decimal,
               reduce_only: bool, side: str) -> None:
        if otype not in ("LIMIT", "MARKET"):
            raise _Refused(400, -1116, "Invalid orderType.")
        if qty <= 0:
            raise _Refused(400, -4003, "Quantity less than or equal to zero.")
        if qty % Decimal(spec.step) or qty < Decimal(spec.min_qty):
            raise _Refused(400, -1111, "Precision is over the maximum defined for this asset.")
        if otype == "LIMIT" and (price <= 0 or price % Decimal(spec.tick)):
            raise _Refused(400, -4014, "Price not increased by tick size.")
        ref = price if otype == "LIMIT" else self.prices.get(spec.symbol, Decimal(0))
        if not reduce_only and ref and qty * ref < Decimal(spec.min_notional):
            raise _Refused(400, -4164, f"Order's notional must be no smaller than "
                           f"{spec.min_notional} (unless you choose reduce only).")
        if reduce_only:
            held = self.positions.get(spec.symbol, Decimal(0))
            if held == 0 or (held > 0) == (side == "BUY") or qty > abs(held):
                raise _Refused(400, -2022, "ReduceOnly Order is rejected.")

    def _find(self, p: dict[str, str], missing: tuple[int, str]) -> FakeOrder:
        order = None
        if "orderId" in p:
            order = self.orders.get(int(p["orderId"]))
        elif "origClientOrderId" in p:
            order = self.by_client.get(p["origClientOrderId"])
        if order is None or order.symbol != p.get("symbol"):
            raise _Refused(400, *missing)
        return order

    async def _cancel(self, p: dict[str, str]) -> dict[str, Any]:
        order = self._find(p, (-2011, "Unknown order sent."))
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise _Refused(400, -2011, "Unknown order sent.")
        order.status, order.update_ms = "CANCELED", self.now_ms()
        self._push_order(order, "CANCELED")
        self.algo.engine_order_ended(order)
        return order.rest()

    async def _modify(self, p: dict[str, str]) -> dict[str, Any]:
        order = self._find(p, (-2013, "Order does not exist."))
        if order.type != "LIMIT" or order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise _Refused(400, -2011, "Unknown order sent.")
        qty, price = Decimal(p["quantity"]), Decimal(p["price"])
        if qty < order.executed or qty % Decimal(self.specs[order.symbol].step):
            raise _Refused(400, -4003, "Quantity less than or equal to zero.")
        order.qty, order.price, order.update_ms = qty, price, self.now_ms()
        self._push_order(order, "AMENDMENT")
        return order.rest()

    async def _query(self, p: dict[str, str]) -> dict[str, Any]:
        return self._find(p, (-2013, "Order does not exist.")).rest()

    async def _open_orders(self, p: dict[str, str]) -> list[dict[str, Any]]:
        return [o.rest() for o in self.orders.values()
                if o.status in ("NEW", "PARTIALLY_FILLED")
                and ("symbol" not in p or o.symbol == p["symbol"])]

    async def _user_trades(self, p: dict[str, str]) -> list[dict[str, Any]]:
        self._spec(p.get("symbol"))
        start = int(p.get("startTime", 0))
        rows = [t for t in self.trades if t["symbol"] == p["symbol"] and t["time"] >= start]
        return rows[: int(p.get("limit", 500))]

    async def _position_risk(self, p: dict[str, str]) -> list[dict[str, Any]]:
        # Binance lists a flat symbol with entryPrice 0 (ccxt drops those rows)
        return [{"symbol": s, "positionAmt": str(self.positions.get(s, Decimal(0))),
                 "entryPrice": str(self.entry.get(s, "0.0")) if self.positions.get(s) else "0.0",
                 "breakEvenPrice": "0.0",
                 "markPrice": str(self.prices.get(s, Decimal(0))), "unRealizedProfit": "0",
                 "liquidationPrice": "0", "leverage": "10", "maxNotionalValue": "1000000",
                 "marginType": "cross", "isolatedMargin": "0", "isAutoAddMargin": "false",
                 "positionSide": "BOTH", "notional": "0", "isolatedWallet": "0",
                 "updateTime": self.now_ms()}
                for s in self.specs if "symbol" not in p or p["symbol"] == s]

    async def _leverage_brackets(self, p: dict[str, str]) -> list[dict[str, Any]]:
        return [{"symbol": s, "notionalCoef": 1.0, "brackets": [
            {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
             "maintMarginRatio": 0.004, "cum": 0.0}]} for s in self.specs]

    async def _balances(self, p: dict[str, str]) -> list[dict[str, Any]]:
        return [{"accountAlias": "SgsR", "asset": "USDT", "balance": str(self.balance),
                 "crossWalletBalance": str(self.balance), "crossUnPnl": "0",
                 "availableBalance": str(self.balance), "maxWithdrawAmount": str(self.balance),
                 "marginAvailable": True, "updateTime": self.now_ms()}]

    async def _account(self, p: dict[str, str]) -> dict[str, Any]:
        b = str(self.balance)
        return {"totalInitialMargin": "0", "totalMaintMargin": "0", "totalWalletBalance": b,
                "totalUnrealizedProfit": "0", "totalMarginBalance": b,
                "totalPositionInitialMargin": "0", "totalOpenOrderInitialMargin": "0",
                "totalCrossWalletBalance": b, "totalCrossUnPnl": "0", "availableBalance": b,
                "maxWithdrawAmount": b, "canTrade": True, "canDeposit": True,
                "canWithdraw": True, "feeTier": 0, "updateTime": 0,
                "assets": await self._balances(p), "positions": []}

    # --- market data of the contract (public) --------------------------------------------

    def _premium_index(self, p: dict[str, str]) -> Any:
        symbol = p.get("symbol")
        if symbol is None:
            return [{**self.premium[s], "time": self.now_ms()} for s in sorted(self.premium)]
        self._spec(symbol)
        if symbol not in self.premium:
            raise _Refused(400, -1121, "Invalid symbol.")
        return {**self.premium[symbol], "time": self.now_ms()}

    def _funding_rate(self, p: dict[str, str]) -> list[dict[str, Any]]:
        symbol = p.get("symbol")
        if symbol is not None:
            self._spec(symbol)
        start, end = int(p.get("startTime", 0)), int(p.get("endTime", 2**62))
        limit = min(int(p.get("limit", 100)), 1000)
        rows = [r for r in self.funding_history if (symbol is None or r["symbol"] == symbol)
                and start <= r["fundingTime"] <= end]
        return sorted(rows, key=lambda r: r["fundingTime"])[:limit]

    def _open_interest(self, p: dict[str, str]) -> dict[str, Any]:
        symbol = p.get("symbol")
        self._spec(symbol)
        if symbol not in self.open_interest:
            raise _Refused(400, -1121, "Invalid symbol.")
        return {"openInterest": self.open_interest[symbol], "symbol": symbol,
                "time": self.now_ms()}

    def set_premium(self, symbol: str, *, mark: str, index: str, rate: str,
                    next_funding_ms: int) -> None:
        """What ``premiumIndex`` answers for ``symbol`` from now on (stamped when asked)."""
        self.premium[symbol] = {
            "symbol": symbol, "markPrice": mark, "indexPrice": index,
            "estimatedSettlePrice": index, "lastFundingRate": rate,
            "interestRate": "0.00010000", "nextFundingTime": next_funding_ms}

    def settle_funding(self, symbol: str, *, rate: str, at_ms: int, mark: str) -> None:
        self.funding_history.append({"symbol": symbol, "fundingRate": rate,
                                     "fundingTime": at_ms, "markPrice": mark})

    def set_open_interest(self, symbol: str, amount: str) -> None:
        self.open_interest[symbol] = amount

    # --- matching (scenario controls) ---------------------------------------------------

    def set_price(self, symbol: str, price: float) -> None:
        """The contract's last price: market orders fill there, and the stops it reaches
        trigger (:mod:`tests.venues.fake_binance_algo`)."""
        self.prices[symbol] = Decimal(str(price))
        self.algo.on_price(symbol, self.prices[symbol])

    def fill(self, client_id: str, qty: float, price: float) -> dict[str, Any]:
        """Fill ``qty`` of an open order at ``price`` (a partial fill when less than left)."""
        return self._fill_now(self.by_client[client_id], Decimal(str(qty)), Decimal(str(price)))

    def place_elsewhere(self, client_id: str, *, side: str, qty: str, price: str,
                        symbol: str = "BTCUSDT") -> None:
        """A limit order placed on the account by another client (the web UI, another
        script): the user data stream carries it like any other order of the account."""
        order = FakeOrder(next(self._ids), client_id, symbol, side, "LIMIT", "GTC",
                          Decimal(qty), Decimal(price), False, time_ms=self.now_ms(),
                          update_ms=self.now_ms())
        self.orders[order.order_id] = order
        self.by_client[client_id] = order
        self._push_order(order, "NEW")

    def _fill_now(self, order: FakeOrder, qty: Decimal, price: Decimal) -> dict[str, Any]:
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            return {}
        qty = min(qty, order.qty - order.executed)
        order.executed += qty
        order.cum_quote += qty * price
        order.status = "FILLED" if order.executed == order.qty else "PARTIALLY_FILLED"
        order.update_ms = self.now_ms()
        sign = 1 if order.side == "BUY" else -1
        self.positions[order.symbol] = self.positions.get(order.symbol, Decimal(0)) + sign * qty
        self.entry[order.symbol] = price
        maker = order.type == "LIMIT" and order.tif != "IOC"
        commission = (qty * price * Decimal("0.0002" if maker else "0.0005")).quantize(
            Decimal("0.00000001"))
        trade = {"buyer": order.side == "BUY", "commission": str(commission),
                 "commissionAsset": "USDT", "id": next(self._trade_ids), "maker": maker,
                 "orderId": order.order_id, "price": str(price), "qty": str(qty),
                 "quoteQty": str(qty * price), "realizedPnl": "0", "side": order.side,
                 "positionSide": "BOTH", "symbol": order.symbol, "time": self.now_ms()}
        self.trades.append(trade)
        order.trades.append(trade["id"])
        self._push_order(order, "TRADE", trade)
        if order.status == "FILLED":
            self.algo.engine_order_ended(order)
        return trade

    # --- WebSocket ------------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        category = request.match_info["category"]
        if self.streams_refused or category not in ("public", "market", "private"):
            raise web.HTTPServiceUnavailable()
        if category == "private" and request.query.get("listenKey") not in self.listen_keys:
            raise web.HTTPBadRequest()
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        subs: set[str] = set()
        if category == "private":
            self.private_ws.append(ws)
        else:
            self.public_ws.append((ws, subs))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            req = json.loads(msg.data)
            if req.get("method") == "SUBSCRIBE":
                subs.update(req.get("params", []))
            elif req.get("method") == "UNSUBSCRIBE":
                subs.difference_update(req.get("params", []))
            await ws.send_json({"result": None, "id": req.get("id")})
        return ws

    def _push_order(self, order: FakeOrder, execution: str,
                    trade: dict[str, Any] | None = None) -> None:
        now = self.now_ms()
        status = "NEW" if execution in ("NEW", "AMENDMENT") and not order.executed else (
            order.status)
        event = {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": {
            "s": order.symbol, "c": order.client_id, "S": order.side, "o": order.type,
            "f": order.tif, "q": str(order.qty), "p": str(order.price),
            "ap": str(order.cum_quote / order.executed if order.executed else 0), "sp": "0",
            "x": execution, "X": status, "i": order.order_id,
            "l": trade["qty"] if trade else "0", "z": str(order.executed),
            "L": trade["price"] if trade else "0", "N": "USDT",
            "n": trade["commission"] if trade else "0", "T": now,
            "t": trade["id"] if trade else 0, "b": "0", "a": "0",
            "m": trade["maker"] if trade else False, "R": order.reduce_only,
            "wt": "CONTRACT_PRICE", "ot": order.type, "ps": "BOTH", "cp": False,
            "rp": "0", "pP": False, "si": 0, "ss": 0, "V": "NONE", "pm": "NONE", "gtd": 0}}
        self._broadcast_private(event)
        if trade:
            held = self.positions.get(order.symbol, Decimal(0))
            self._broadcast_private({"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": {
                "m": "ORDER", "B": [{"a": "USDT", "wb": str(self.balance),
                                     "cw": str(self.balance), "bc": "0"}],
                "P": [{"s": order.symbol, "pa": str(held), "ep": trade["price"], "bep": "0",
                       "cr": "0", "up": "0", "mt": "cross", "iw": "0", "ps": "BOTH"}]}})

    def push_again(self) -> None:
        """Send the last ORDER_TRADE_UPDATE once more (a duplicate delivery)."""
        self._broadcast_private(self.last_order_event)

    def _broadcast_private(self, event: dict[str, Any]) -> None:
        if event.get("e") == "ORDER_TRADE_UPDATE":
            self.last_order_event = event
        for ws in list(self.private_ws):
            if ws.closed:
                self.private_ws.remove(ws)
            else:
                self._keep(ws.send_json(event))

    def _keep(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def quote(self, symbol: str, bid: float, bid_qty: float, ask: float, ask_qty: float) -> int:
        """A bookTicker update to its subscribers; how many got it."""
        now = self.now_ms()
        event = {"e": "bookTicker", "u": now, "s": symbol, "b": str(bid), "B": str(bid_qty),
                 "a": str(ask), "A": str(ask_qty), "T": now, "E": now}
        return self._publish(f"{symbol.lower()}@bookTicker", event)

    def trade(self, symbol: str, price: float, qty: float, buyer_maker: bool) -> int:
        now = self.now_ms()
        event = {"e": "trade", "E": now, "T": now, "s": symbol, "t": next(self._trade_ids),
                 "p": str(price), "q": str(qty), "X": "MARKET", "m": buyer_maker}
        return self._publish(f"{symbol.lower()}@trade", event)

    def _publish(self, stream: str, event: dict[str, Any]) -> int:
        sent = 0
        for ws, subs in list(self.public_ws):
            if stream in subs and not ws.closed:
                self._keep(ws.send_json(event))
                sent += 1
        return sent

    def subscriptions(self) -> set[str]:
        return {s for ws, subs in self.public_ws if not ws.closed for s in subs}

    # --- outages --------------------------------------------------------------------------

    def throttle(self, count: int, retry_after_s: float = 1.0, path: str = "") -> None:
        """The next ``count`` requests (to ``path``, or any but time/ping/exchangeInfo) answer
        429 with ``Retry-After``."""
        self._throttle.extend([(retry_after_s, path)] * count)

    def fail(self, count: int, *, take_it: bool) -> None:
        """The next ``count`` order requests answer 503; ``take_it``: after accepting them."""
        self._fail.extend([take_it] * count)

    async def close_streams(self) -> None:
        for ws in [*self.private_ws, *(w for w, _ in self.public_ws)]:
            await ws.close()
        self.private_ws.clear()
        self.public_ws.clear()

    async def streams_down(self) -> None:
        self.streams_refused = True
        await self.close_streams()

    def streams_up(self) -> None:
        self.streams_refused = False
