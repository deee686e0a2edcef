"""A loopback Alpaca trading API (paper): REST ``/v2`` and the ``trade_updates`` WebSocket,
written from Alpaca's Trading API documentation, for the unmodified ``alpaca-py`` clients
(``TradingClient(url_override=...)``, ``TradingStream(url_override=...)``).

What it checks, as Alpaca does: the ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers on
every request (401 otherwise); the stream's ``authenticate`` action with the same pair, then
``listen`` to ``trade_updates``. Orders: a ``client_order_id`` used before is refused (422), a
quantity that is not positive (422), a buy beyond buying power (403 "insufficient buying
power"); cancel of an unknown order 404, of a closed one 422; a replace (``PATCH``) makes a new
order that ``replaces`` the old one (events ``replaced`` on the old, ``new`` on the new).
Events: ``new``, ``partial_fill``, ``fill`` (with ``execution_id``, ``price``, ``qty``,
``position_qty``), ``canceled``, ``expired``, ``replaced``.

Scenario controls (on the fake's loop): :meth:`fill`, :meth:`place_elsewhere` (an order of
the account sent by another client), ``auto_fill_price`` (market orders fill at
once), :meth:`throttle` (429), :meth:`fail` (the next order request answers 504, optionally
after taking the order), :meth:`streams_down` / :meth:`streams_up`. Market data: the v2 stock
stream (``/v2/iex``, msgpack frames: ``connected``, ``auth``, ``subscribe``, then ``q`` quotes
and ``t`` trades) through :meth:`quote` and :meth:`trade`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgpack
from aiohttp import WSMsgType, web

__all__ = ["KEY_ID", "SECRET_KEY", "FakeAlpaca"]

KEY_ID = "PKFAKEALPACA0001"
SECRET_KEY = "fake-alpaca-secret-9d2e4b"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    tif: str
    qty: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str = "new"
    filled: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    created_at: str = ""
    replaces: str | None = None
    replaced_by: str | None = None

    def rest(self) -> dict[str, Any]:
        avg = str(self.cost / self.filled) if self.filled else None
        return {"id": self.id, "client_order_id": self.client_order_id,
                "created_at": self.created_at, "updated_at": _now(),
                "submitted_at": self.created_at, "filled_at": None, "expired_at": None,
                "canceled_at": None, "failed_at": None, "replaced_at": None,
                "replaced_by": self.replaced_by, "replaces": self.replaces,
                "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415", "symbol": self.symbol,
                "asset_class": "us_equity", "notional": None, "qty": str(self.qty),
                "filled_qty": str(self.filled), "filled_avg_price": avg, "order_class": "",
                "order_type": self.type, "type": self.type, "side": self.side,
                "time_in_force": self.tif,
                "limit_price": None if self.limit_price is None else str(self.limit_price),
                "stop_price": None if self.stop_price is None else str(self.stop_price),
                "status": self.status, "extended_hours": False, "legs": None,
                "trail_percent": None, "trail_price": None, "hwm": None}


class _Error(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FakeAlpaca:
    def __init__(self, *, auto_fill_price: float | None = None, fill_delay_s: float = 0.0,
                 cash: str = "100000") -> None:
        self.auto_fill_price = None if auto_fill_price is None else Decimal(str(auto_fill_price))
        self.fill_delay_s = fill_delay_s
        self.cash = Decimal(cash)
        self.orders: dict[str, _Order] = {}
        self.by_client: dict[str, _Order] = {}
        self.attempts: list[str] = []  # client order ids of every order request that got in
        self.placed: list[str] = []
        self.executions: list[str] = []
        self.positions: dict[str, Decimal] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.authorized = 0
        self.streams: list[web.WebSocketResponse] = []
        self.data_streams: list[tuple[web.WebSocketResponse, dict[str, set[str]]]] = []
        self.streams_refused = False
        self.last_event = ""
        self._throttle = 0
        self._fail: list[bool] = []
        self._sends: set[asyncio.Future[Any]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/stream", self._ws)
        app.router.add_get("/v2/iex", self._data_ws)  # the data host's paths, on this port
        app.router.add_get("/v2/sip", self._data_ws)
        app.router.add_route("*", "/v2/{path:.*}", self._rest)
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

    # --- REST -----------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/v2/" + request.match_info["path"]
        try:
            if (request.headers.get("APCA-API-KEY-ID"), request.headers.get(
                    "APCA-API-SECRET-KEY")) != (KEY_ID, SECRET_KEY):
                raise _Error(401, 40110000, "request is not authorized")
            if self._throttle:
                self._throttle -= 1
                raise _Error(429, 42910000, "rate limit exceeded")
            body = await request.json() if request.can_read_body else {}
            result = await self._route(request.method, path, dict(request.query), body)
            status = 204 if result is None else 200
            response = (web.Response(status=204) if result is None
                        else web.json_response(result))
        except _Error as exc:
            status = exc.status
            response = web.json_response({"code": exc.code, "message": exc.message},
                                         status=exc.status)
        self.requests.append((request.method, path, status))
        return response

    async def _route(self, method: str, path: str, query: dict[str, str],
                     body: dict[str, Any]) -> Any:
        if (method, path) == ("GET", "/v2/account"):
            return self._account()
        if (method, path) == ("GET", "/v2/positions"):
            return [self._position(s, q) for s, q in sorted(self.positions.items()) if q]
        if (method, path) == ("POST", "/v2/orders"):
            if self._fail:
                take_it = self._fail.pop(0)
                if take_it:
                    self._new_order(body)
                raise _Error(504, 50400000, "gateway timeout")
            return self._new_order(body)
        if (method, path) == ("GET", "/v2/orders"):
            return self._list(query)
        if (method, path) == ("GET", "/v2/orders:by_client_order_id"):
            order = self.by_client.get(query.get("client_order_id", ""))
            if order is None:
                raise _Error(404, 40410000, "order not found")
            return order.rest()
        if path.startswith("/v2/orders/"):
            order = self.orders.get(path.rsplit("/", 1)[1])
            if order is None:
                raise _Error(404, 40410000, "order not found")
            if method == "GET":
                return order.rest()
            if method == "DELETE":
                return self._cancel(order)
            if method == "PATCH":
                return self._replace(order, body)
        raise _Error(404, 40400000, "endpoint not found")

    def _account(self) -> dict[str, Any]:
        cash = str(self.cash)
        return {"id": "4ec5d3d6-5b41-4c2b-9c6e-2a7a7a8a3b11", "account_number": "PA3FAKE0001",
                "status": "ACTIVE", "crypto_status": "INACTIVE", "currency": "USD",
                "buying_power": cash, "regt_buying_power": cash,
                "daytrading_buying_power": "0", "non_marginable_buying_power": cash,
                "cash": cash, "accrued_fees": "0", "pending_transfer_in": "0",
                "portfolio_value": cash, "pattern_day_trader": False,
                "trading_blocked": False, "transfers_blocked": False,
                "account_blocked": False, "created_at": "2024-01-02T14:30:00Z",
                "trade_suspended_by_user": False, "multiplier": "1", "shorting_enabled": True,
                "equity": cash, "last_equity": cash, "long_market_value": "0",
                "short_market_value": "0", "initial_margin": "0", "maintenance_margin": "0",
                "last_maintenance_margin": "0", "sma": "0", "daytrade_count": 0}

    def _position(self, symbol: str, qty: Decimal) -> dict[str, Any]:
        return {"asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415", "symbol": symbol,
                "exchange": "NASDAQ", "asset_class": "us_equity", "asset_marginable": True,
                "avg_entry_price": "100", "qty": str(qty), "qty_available": str(qty),
                "side": "long" if qty > 0 else "short", "market_value": "0",
                "cost_basis": "0", "unrealized_pl": "0", "current_price": "100"}

    def _new_order(self, body: dict[str, Any]) -> dict[str, Any]:
        cid = body.get("client_order_id") or str(uuid.uuid4())
        self.attempts.append(cid)
        if cid in self.by_client:
            raise _Error(422, 40010001, "client_order_id must be unique")
        qty = Decimal(str(body.get("qty", "0")))
        if qty <= 0:
            raise _Error(422, 40010001, "qty must be > 0")
        limit = body.get("limit_price")
        ref = Decimal(str(limit)) if limit else (self.auto_fill_price or Decimal(0))
        if body["side"] == "buy" and qty * ref > self.cash:
            raise _Error(403, 40310000, "insufficient buying power")
        order = _Order(str(uuid.uuid4()), cid, body["symbol"], body["side"], body["type"],
                       body["time_in_force"], qty,
                       None if limit is None else Decimal(str(limit)),
                       None if body.get("stop_price") is None
                       else Decimal(str(body["stop_price"])), created_at=_now())
        self.orders[order.id] = order
        self.by_client[cid] = order
        self.placed.append(cid)
        self._event("new", order)
        if order.type == "market" and self.auto_fill_price is not None:
            asyncio.get_running_loop().call_later(
                self.fill_delay_s, self._fill, order, qty, self.auto_fill_price)
        return order.rest()

    def _list(self, query: dict[str, str]) -> list[dict[str, Any]]:
        status = query.get("status", "open")
        open_ = ("new", "partially_filled", "accepted", "pending_new")
        rows = [o for o in self.orders.values()
                if status == "all" or (status == "open") == (o.status in open_)]
        return [o.rest() for o in rows]

    def _cancel(self, order: _Order) -> None:
        if order.status not in ("new", "partially_filled", "accepted"):
            raise _Error(422, 42210000, "order is not cancelable")
        order.status = "canceled"
        self._event("canceled", order)

    def _replace(self, order: _Order, body: dict[str, Any]) -> dict[str, Any]:
        if order.status not in ("new", "accepted") or order.filled:
            raise _Error(422, 42210000, "order is not replaceable")
        new = _Order(str(uuid.uuid4()), body.get("client_order_id") or str(uuid.uuid4()),
                     order.symbol, order.side, order.type, order.tif,
                     Decimal(str(body.get("qty") or order.qty)),
                     Decimal(str(body["limit_price"])) if body.get("limit_price")
                     else order.limit_price, order.stop_price, created_at=_now(),
                     replaces=order.id)
        if new.client_order_id in self.by_client:
            raise _Error(422, 40010001, "client_order_id must be unique")
        order.status, order.replaced_by = "replaced", new.id
        self.orders[new.id] = new
        self.by_client[new.client_order_id] = new
        self._event("replaced", order)
        self._event("new", new)
        return new.rest()

    # --- scenario controls ----------------------------------------------------------------

    def place_elsewhere(self, client_order_id: str, *, symbol: str, qty: int,
                        limit_price: str) -> None:
        """A limit order placed on the account by another client (the dashboard, another
        script): ``trade_updates`` carries every order of the account."""
        self._new_order({"client_order_id": client_order_id, "symbol": symbol, "qty": qty,
                         "side": "buy", "type": "limit", "time_in_force": "day",
                         "limit_price": limit_price})

    def fill(self, client_order_id: str, qty: float, price: float) -> str:
        order = self.by_client[client_order_id]
        return self._fill(order, Decimal(str(qty)), Decimal(str(price)))

    def _fill(self, order: _Order, qty: Decimal, price: Decimal) -> str:
        if order.status not in ("new", "partially_filled", "accepted"):
            return ""
        qty = min(qty, order.qty - order.filled)
        order.filled += qty
        order.cost += qty * price
        order.status = "filled" if order.filled == order.qty else "partially_filled"
        sign = 1 if order.side == "buy" else -1
        held = self.positions.get(order.symbol, Decimal(0)) + sign * qty
        self.positions[order.symbol] = held
        self.cash -= sign * qty * price
        execution = str(uuid.uuid4())
        self.executions.append(execution)
        event = "fill" if order.status == "filled" else "partial_fill"
        self._event(event, order, execution_id=execution, price=str(price), qty=str(qty),
                    position_qty=str(held))
        return execution

    def throttle(self, count: int) -> None:
        self._throttle += count

    def fail(self, count: int, *, take_it: bool) -> None:
        self._fail.extend([take_it] * count)

    # --- the trade_updates stream ---------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        if self.streams_refused:
            raise web.HTTPServiceUnavailable()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        authed = False
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            req = json.loads(msg.data)
            action, data = req.get("action"), req.get("data") or {}
            if action in ("authenticate", "auth"):
                authed = (data.get("key_id"), data.get("secret_key")) == (KEY_ID, SECRET_KEY)
                self.authorized += authed
                await ws.send_str(json.dumps({"stream": "authorization", "data": {
                    "status": "authorized" if authed else "unauthorized",
                    "action": "authenticate"}}))
                if not authed:
                    await ws.close()
            elif action == "listen" and authed:
                streams = data.get("streams", [])
                if "trade_updates" in streams:
                    self.streams.append(ws)
                await ws.send_str(json.dumps({"stream": "listening",
                                              "data": {"streams": streams}}))
        return ws

    # --- market data (the v2 stock stream: msgpack frames) ---------------------------------

    async def _data_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "connected"}]))
        subs: dict[str, set[str]] = {"trades": set(), "quotes": set()}
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                continue
            req = msgpack.unpackb(msg.data)
            if req.get("action") == "auth":
                ok = (req.get("key"), req.get("secret")) == (KEY_ID, SECRET_KEY)
                answer = ({"T": "success", "msg": "authenticated"} if ok
                          else {"T": "error", "code": 402, "msg": "auth failed"})
                await ws.send_bytes(msgpack.packb([answer]))
                if ok:
                    self.data_streams.append((ws, subs))
            elif req.get("action") == "subscribe":
                for channel in subs:
                    subs[channel].update(req.get(channel, []))
                await ws.send_bytes(msgpack.packb([{"T": "subscription", "trades": sorted(
                    subs["trades"]), "quotes": sorted(subs["quotes"]), "bars": []}]))
        return ws

    def data_subscriptions(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {"trades": set(), "quotes": set()}
        for ws, subs in self.data_streams:
            if not ws.closed:
                for channel, symbols in subs.items():
                    out[channel] |= symbols
        return out

    def quote(self, symbol: str, bid: float, bid_size: int, ask: float, ask_size: int) -> int:
        return self._publish("quotes", {"T": "q", "S": symbol, "bx": "V", "bp": bid,
                                        "bs": bid_size, "ax": "V", "ap": ask, "as": ask_size,
                                        "c": ["R"], "z": "C"})

    def trade(self, symbol: str, price: float, size: int) -> int:
        return self._publish("trades", {"T": "t", "S": symbol, "i": len(self.executions) + 1,
                                        "x": "V", "p": price, "s": size, "c": ["@"],
                                        "z": "C"})

    def _publish(self, channel: str, message: dict[str, Any]) -> int:
        message["t"] = msgpack.Timestamp.from_unix_nano(time.time_ns())
        frame, sent = msgpack.packb([message]), 0
        for ws, subs in self.data_streams:
            if message["S"] in subs[channel] and not ws.closed:
                task = asyncio.ensure_future(ws.send_bytes(frame))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)
                sent += 1
        return sent

    def _event(self, event: str, order: _Order, **extra: Any) -> None:
        message = {"stream": "trade_updates", "data": {
            "event": event, "timestamp": _now(), "order": order.rest(), **extra}}
        self.last_event = text = json.dumps(message)
        self._send_text(text)

    def push_again(self) -> None:
        """Send the last trade update once more (a duplicate delivery)."""
        self._send_text(self.last_event)

    def _send_text(self, text: str) -> None:
        for ws in list(self.streams):
            if ws.closed:
                self.streams.remove(ws)
                continue
            task = asyncio.ensure_future(ws.send_str(text))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def close_streams(self) -> None:
        for ws in list(self.streams):
            await ws.close()
        self.streams.clear()

    async def streams_down(self) -> None:
        self.streams_refused = True
        await self.close_streams()

    def streams_up(self) -> None:
        self.streams_refused = False
