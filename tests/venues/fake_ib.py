"""A loopback fake IB gateway that speaks the TWS socket protocol to the unmodified ib_async client.

Protocol (server version :data:`SERVER_VERSION`, field orders as ib_async's decoder reads them):
the client sends ``API\\0`` and a length-prefixed ``v<min>..<max>``; the server answers with its
version and connection time; the client sends startApi; the server sends nextValidId and
managedAccounts. After that every message is a 4-byte big-endian length and NUL-terminated
fields. The fake answers placeOrder, cancelOrder, reqOpenOrders, reqExecutions, reqPositions,
reqAccountUpdates(Multi), reqCompletedOrders, reqMktData, reqHistoricalData, reqHistoricalTicks
and sends openOrder, orderStatus, execDetails, commissionReport, position, error,
tickPrice/tickSize, historicalData and historicalTicksBidAsk.

Attached orders and OCA groups, as the TWS API documents them (Bracket Orders, Attaching
Orders, One Cancels All): an order placed with ``transmit`` 0 is held at the gateway
(``Inactive``: created, not transmitted) until an order of its family arrives with ``transmit``
1, which transmits the parent and every sibling; a child (``parentId``) is held
(``PreSubmitted``) until its parent fills and is canceled with its parent; a fill in an OCA group
cancels the group's other orders (``ocaType`` 1) or reduces them in proportion (2, 3), and
cancels those left with nothing. The fake never executes an order it holds.

A parent that fills in part, as IB documents attached orders (and no more than that):

* the children stay held (``PreSubmitted``, at their own, whole quantity) until the parent has
  *filled*: "The order will be created but will not be submitted until the parent order
  fills" (IBKR Mobile guide, Attached Orders: interactivebrokers.co.in/en/software/
  mobileandroid/trade/attached%20orders.htm), "Once the parent order fills, the opposite side
  profit taker and stop loss orders are triggered. When one fills, the other is canceled"
  (the same guide, clientam.com.hk/en/software/mobileiPad/trade/attached.htm), "a child order
  is submitted only on execution of the parent" (TWS API, Hedging: interactivebrokers.github.io/
  tws-api/hedging.html). None of IB's pages found speaks of resizing children to a partial
  fill, so the fake does not; its last partial fill (the parent ``Filled``) releases them at
  their full quantity, which is then the position;
* a parent cancelled (by the client, or by IB at its time in force: :meth:`expire`) takes its
  held children with it, partial fill or not: "When you cancel a parent order, it will cancel
  all bracket orders" (IBKR Client Portal API, place orders, bracket notes); the fill stands.
  What protects it then is the client's business (Tradewind's core sends the exits again for
  the filled quantity: ``runtime.linked``).

Scenario controls (called by tests between awaits): :meth:`FakeIbGateway.fill`,
:meth:`~FakeIbGateway.market` (a trade prints: stops and ``TRAIL`` orders are worked on it),
:meth:`~FakeIbGateway.expire` (IB ends an order at its time in force), ``reject_next``,
``auto_ack``, :meth:`drop_clients` (socket loss), :meth:`go_down` (IB's nightly reset: sockets
closed and connects refused for a while), :meth:`restart` (a new gateway session: order ids
start again, perm ids stay), ``pacing_violations``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import struct
from dataclasses import dataclass, field
from typing import Any

from tests.venues.fake_ib_wire import (
    SERVER_VERSION,
    Execution,
    FakeOrder,
    commission_fields,
    exec_fields,
    open_order_fields,
    read_message,
    status_fields,
)

__all__ = ["SERVER_VERSION", "Execution", "FakeIbGateway", "FakeOrder"]


@dataclass
class _Client:
    writer: asyncio.StreamWriter
    client_id: int = 0


@dataclass
class FakeIbGateway:
    account: str = "DU1234567"
    next_order_id: int = 1
    auto_ack: bool = True
    reject_next: tuple[int, str] | None = None
    pacing_violations: int = 0
    bars: list[tuple[str, float, float, float, float, float]] = field(default_factory=list)
    bid_ask: list[tuple[int, float, float, float, float]] = field(default_factory=list)
    orders: dict[int, FakeOrder] = field(default_factory=dict)  # by perm id
    executions: list[Execution] = field(default_factory=list)
    positions: dict[str, float] = field(default_factory=dict)  # symbol -> signed
    requests: list[tuple[int, float]] = field(default_factory=list)  # (msg id, loop time)
    # a broker that fills by itself: every new order, ``fill_delay_s`` after it arrives, in two
    # executions (a partial fill, then the rest) at ``auto_fill_price`` (None: fills only on
    # :meth:`fill`). A client that is gone by then gets them through reqExecutions.
    auto_fill_price: float | None = None
    fill_delay_s: float = 0.0
    placed: list[str] = field(default_factory=list)  # every orderRef placed, in order
    transmits: dict[str, bool] = field(default_factory=dict)  # orderRef -> its transmit flag
    held_modifications: list[str] = field(default_factory=list)  # sent with transmit off
    # called with each orderRef as its placeOrder arrives (a test kills the client there)
    on_place: Any = None
    # market data subscriptions: symbol -> [(client, reqId)] for reqMktData and reqMktDepth
    mkt_subs: dict[str, list[tuple[Any, int]]] = field(default_factory=dict)
    depth_subs: dict[str, list[tuple[Any, int]]] = field(default_factory=dict)
    last_prices: dict[str, float] = field(default_factory=dict)  # symbol -> last trade (market)
    refusing: bool = False  # down (:meth:`go_down`): a connect is closed before the handshake

    def __post_init__(self) -> None:
        self._server: asyncio.base_events.Server | None = None
        self._clients: list[_Client] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._perm = 9000
        self._session = 0
        self._exec = 0
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        self.drop_clients()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def drop_clients(self) -> None:
        """Socket loss: close every client connection (the gateway keeps its orders)."""
        for client in self._clients:
            client.writer.close()
        self._clients.clear()

    def go_down(self, seconds: float) -> None:
        """IB's nightly reset: every client's socket closed and new connects refused (closed
        before the handshake) for ``seconds``. The gateway keeps its orders, and its own fills
        go on: a client gets them through reqExecutions when it is back."""
        self.refusing = True
        self.drop_clients()
        asyncio.get_running_loop().call_later(seconds, setattr, self, "refusing", False)

    async def restart(self) -> None:
        """A new gateway session on the same port: order ids start again, perm ids stay."""
        await self.stop()
        self.next_order_id = 1
        self._session += 1
        await self.start(self.port)

    @property
    def connected(self) -> bool:
        return bool(self._clients)

    # --- the wire --------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        client = _Client(writer)
        if self.refusing:
            writer.close()
            return
        try:
            if await reader.readexactly(4) != b"API\0":
                writer.close()
                return
            await read_message(reader)  # "v157..178"
            now = dt.datetime.now(dt.UTC).strftime("%Y%m%d %H:%M:%S UTC")
            self._send(client, str(SERVER_VERSION), now)
            self._clients.append(client)
            while True:
                fields = await read_message(reader)
                self.requests.append((int(fields[0]), asyncio.get_running_loop().time()))
                self._handle(client, fields)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if client in self._clients:
                self._clients.remove(client)
            writer.close()

    def _send(self, client: _Client, *fields: Any) -> None:
        payload = b"".join(str(f).encode() + b"\0" for f in fields)
        client.writer.write(struct.pack(">I", len(payload)) + payload)

    def _broadcast(self, *fields: Any) -> None:
        for client in self._clients:
            self._send(client, *fields)

    def _handle(self, client: _Client, f: list[str]) -> None:
        handler = {
            71: self._start_api,
            3: self._place,
            4: self._cancel,
            5: self._open_orders,
            7: self._executions,
            61: self._positions,
            6: self._account_updates,
            76: self._account_multi,
            99: self._completed,
            1: self._mkt_data,
            20: self._historical,
            96: self._historical_ticks,
            10: self._mkt_depth,
        }.get(int(f[0]))
        if handler is not None:
            handler(client, f)

    # --- requests --------------------------------------------------------------------------

    def _start_api(self, client: _Client, f: list[str]) -> None:
        client.client_id = int(f[2])
        self._send(client, 9, 1, self.next_order_id)
        self._send(client, 15, 1, self.account)

    def _place(self, client: _Client, f: list[str]) -> None:
        # after the 12 contract fields: ... tif f[21], ocaGroup f[22], account f[23], openClose,
        # origin, orderRef f[26], transmit f[27], parentId f[28], ... triggerMethod f[32], ...
        # ocaType f[47], ... trailStopPrice f[69], trailingPercent f[70]
        order_id = int(f[1])
        existing = self._by_order_id(client.client_id, order_id)
        if existing is not None:  # modify (held, like any order, while transmit is off)
            if f[27] == "0":
                self.held_modifications.append(existing.order_ref)
                return
            existing.quantity, existing.lmt_price, existing.aux_price = float(f[17]), f[19], f[20]
            if existing.order_type == "TRAIL":  # a new trail, or a stop moved by the client
                existing.trail_percent = float(f[70] or 0.0)
                self._start_trail(existing, float(f[69]) if f[69] else existing.trail_stop)
            self._report(existing)
            return
        self.next_order_id = max(self.next_order_id, order_id + 1)
        self._perm += 1
        order = FakeOrder(
            order_id,
            self._perm,
            client.client_id,
            f[2:14],
            f[16],
            float(f[17]),
            f[18],
            f[19],
            f[20],
            f[21],
            f[23] or self.account,
            f[26],
            session=self._session,
            parent_id=int(f[28] or 0),
            oca_group=f[22],
            oca_type=int(f[47] or 0),
            trigger_method=int(f[32] or 0),
            trail_percent=float(f[70] or 0.0),
        )
        if order.order_type == "TRAIL":
            self._start_trail(order, float(f[69]) if f[69] else None)
        if self.reject_next is not None:
            code, message = self.reject_next
            self.reject_next = None
            order.status = "Cancelled"
            self.orders[order.perm_id] = order
            self._send_status(order)
            self._broadcast(4, 2, order_id, code, message, "")
            return
        self.orders[order.perm_id] = order
        self.placed.append(order.order_ref)
        self.transmits[order.order_ref] = f[27] != "0"
        if self.on_place is not None:
            self.on_place(order.order_ref)
        if f[27] == "0":  # held at the gateway until a later order of its family transmits
            order.status = "Inactive"
            self._report(order)
            return
        if order.parent_id:
            self._transmit_family(order)
            return
        if self.auto_ack:
            self._report(order)
        if self.auto_fill_price is not None:
            loop = asyncio.get_running_loop()
            loop.call_later(self.fill_delay_s, self._auto_fill, order.perm_id)

    def _transmit_family(self, child: FakeOrder) -> None:
        """The last leg of a bracket arrived with transmit: the parent and all its children
        go; the children wait (PreSubmitted) until the parent has filled."""
        parent = self._by_order_id(child.client_id, child.parent_id)
        if parent is None:
            child.status = "Cancelled"
            self._send_status(child)
            self._broadcast(4, 2, child.order_id, 135,
                            f"Can't find order with id ={child.parent_id}", "")
            return
        if parent.status == "Inactive":
            parent.status = "Submitted"
            self._report(parent)
            if self.auto_fill_price is not None:
                asyncio.get_running_loop().call_later(self.fill_delay_s, self._auto_fill,
                                                      parent.perm_id)
        for order in self._children(parent):
            if order.status in ("Inactive", "Submitted"):
                order.status = "Submitted" if parent.status == "Filled" else "PreSubmitted"
                self._report(order)

    def _children(self, parent: FakeOrder) -> list[FakeOrder]:
        return [o for o in self.orders.values()
                if o.parent_id == parent.order_id and o.client_id == parent.client_id
                and o.session == parent.session]

    def _oca(self, order: FakeOrder, qty: float) -> None:
        """A fill of ``qty`` on ``order``: the other open orders of its OCA group are
        cancelled (type 1) or reduced in proportion (2, 3), and cancelled at nothing left."""
        for other in self.orders.values():
            if (other is order or other.oca_group != order.oca_group
                    or other.status in ("Filled", "Cancelled")):
                continue
            if order.oca_type != 1:
                other.quantity -= qty * other.placed_qty / order.placed_qty
            if order.oca_type == 1 or other.remaining <= 1e-9:
                other.status = "Cancelled"
                self._send_status(other)
            else:
                self._report(other)

    def _cancel(self, client: _Client, f: list[str]) -> None:
        order_id = int(f[2])
        order = self._by_order_id(client.client_id, order_id)
        if order is None:
            self._send(client, 4, 2, order_id, 135, f"Can't find order with id ={order_id}", "")
        elif order.status in ("Filled", "Cancelled"):
            self._send(
                client,
                4,
                2,
                order_id,
                161,
                "Cancel attempted when order is not in a cancellable state",
                "",
            )
        else:
            order.status = "Cancelled"
            self._send_status(order)
            self._send(client, 4, 2, order_id, 202, "Order Canceled - reason:", "")
            self._cancel_children(order)  # cancelling a parent cancels its children

    def _open_orders(self, client: _Client, f: list[str]) -> None:
        for order in self.orders.values():
            if order.status not in ("Filled", "Cancelled"):
                self._send(client, *open_order_fields(order))
                self._send(client, *status_fields(order))
        self._send(client, 53, 1)

    def _executions(self, client: _Client, f: list[str]) -> None:
        req_id = int(f[2])
        for ex in self.executions:
            self._send(client, *exec_fields(ex, req_id))
            self._send(client, *commission_fields(ex))
        self._send(client, 55, 1, req_id)

    def _positions(self, client: _Client, f: list[str]) -> None:
        for symbol, qty in self.positions.items():
            self._send(
                client,
                61,
                3,
                self.account,
                0,
                symbol,
                "STK",
                "",
                0.0,
                "",
                "",
                "SMART",
                "USD",
                symbol,
                symbol,
                qty,
                0.0,
            )
        self._send(client, 62, 1)

    def _account_updates(self, client: _Client, f: list[str]) -> None:
        self._send(client, 54, 1, self.account)

    def _account_multi(self, client: _Client, f: list[str]) -> None:
        self._send(client, 74, 1, int(f[2]))

    def _completed(self, client: _Client, f: list[str]) -> None:
        self._send(client, 102)

    def _mkt_data(self, client: _Client, f: list[str]) -> None:
        req_id = int(f[2])
        self.mkt_subs.setdefault(f[4], []).append((client, req_id))
        self._send(client, 1, 6, req_id, 1, 99.5, 300, 0)  # bid
        self._send(client, 1, 6, req_id, 2, 100.0, 200, 0)  # ask
        self._send(client, 2, 6, req_id, 8, 12345)  # volume

    def _mkt_depth(self, client: _Client, f: list[str]) -> None:
        self.depth_subs.setdefault(f[4], []).append((client, int(f[2])))

    def _live(self, subs: dict[str, list[tuple[Any, int]]], symbol: str) -> list[Any]:
        return [(c, r) for c, r in subs.get(symbol, ()) if c in self._clients]

    def quote(self, symbol: str, bid: float, bid_size: float, ask: float,
              ask_size: float) -> int:
        """tickPrice bid and ask (with their sizes) to every live subscriber; how many."""
        subs = self._live(self.mkt_subs, symbol)
        for client, req_id in subs:
            self._send(client, 1, 6, req_id, 1, bid, bid_size, 0)
            self._send(client, 1, 6, req_id, 2, ask, ask_size, 0)
        return len(subs)

    def trade(self, symbol: str, price: float, size: float) -> int:
        """A last-price tick with its size (tickPrice LAST carries the size)."""
        subs = self._live(self.mkt_subs, symbol)
        for client, req_id in subs:
            self._send(client, 1, 6, req_id, 4, price, size, 0)
        return len(subs)

    def depth(self, symbol: str, *, position: int, operation: int, side: int, price: float,
              size: float) -> int:
        """updateMktDepth: operation 0 insert, 1 update, 2 delete; side 0 ask, 1 bid."""
        subs = self._live(self.depth_subs, symbol)
        for client, req_id in subs:
            self._send(client, 12, 1, req_id, position, operation, side, price, size)
        return len(subs)

    def _historical(self, client: _Client, f: list[str]) -> None:
        req_id = int(f[1])
        if self._pacing(client, req_id):
            return
        fields: list[Any] = [17, req_id, "", "", len(self.bars)]
        for date, o, h, low, c, v in self.bars:
            fields += [date, o, h, low, c, v, -1, -1]
        self._send(client, *fields)

    def _historical_ticks(self, client: _Client, f: list[str]) -> None:
        req_id = int(f[1])
        if self._pacing(client, req_id):
            return
        start = (
            int(
                dt.datetime.strptime(f[15], "%Y%m%d %H:%M:%S UTC")
                .replace(tzinfo=dt.UTC)
                .timestamp()
            )
            if f[15]
            else 0
        )
        page = [t for t in self.bid_ask if t[0] >= start][: int(f[17] or 1000)]
        fields: list[Any] = [97, req_id, len(page)]
        for ts, bid, ask, bid_size, ask_size in page:
            fields += [ts, 0, bid, ask, bid_size, ask_size]
        self._send(client, *fields, 1)

    def _pacing(self, client: _Client, req_id: int) -> bool:
        if self.pacing_violations <= 0:
            return False
        self.pacing_violations -= 1
        self._send(
            client,
            4,
            2,
            req_id,
            162,
            "Historical Market Data Service error message:Pacing violation",
            "",
        )
        return True

    # --- scenario controls -----------------------------------------------------------------

    def find(self, order_ref: str) -> FakeOrder:
        return next(o for o in self.orders.values() if o.order_ref == order_ref)

    def ack(self, order_ref: str) -> None:
        self._report(self.find(order_ref))

    def fill(
        self,
        order_ref: str,
        qty: float,
        price: float,
        *,
        commission: float = 1.0,
        send_commission: bool = True,
    ) -> Execution:
        """An execution (also after a cancel: a late fill); sent live when connected."""
        order = self.find(order_ref)
        if order.status in ("Inactive", "PreSubmitted"):
            raise AssertionError(f"{order_ref} is held by the gateway ({order.status}): "
                                 "IB does not execute it")
        self._exec += 1
        order.avg_price = (order.avg_price * order.filled + price * qty) / (order.filled + qty)
        order.filled += qty
        if order.status != "Cancelled":
            order.status = "Filled" if order.remaining <= 0 else "Submitted"
        sign = 1 if order.action == "BUY" else -1
        symbol = order.contract[1]
        self.positions[symbol] = self.positions.get(symbol, 0.0) + sign * qty
        now = dt.datetime.now(dt.UTC).strftime("%Y%m%d %H:%M:%S UTC")
        ex = Execution(
            f"0000e0d5.{self._exec:08d}.01.01", order, qty, price, order.filled, commission, now
        )
        self.executions.append(ex)
        self._send_status(order)
        self._broadcast(*exec_fields(ex, -1))
        if send_commission:
            self._broadcast(*commission_fields(ex))
        if order.oca_group:
            self._oca(order, qty)
        if order.status == "Filled":  # its children go to work
            for child in self._children(order):
                if child.status == "PreSubmitted":
                    child.status = "Submitted"
                    self._report(child)
        return ex

    def expire(self, order_ref: str) -> None:
        """IB ends an order at its time in force (a DAY order at the close), as a cancel: its
        attached children go with it, filled in part or not (see the module's notes)."""
        order = self.find(order_ref)
        order.status = "Cancelled"
        self._send_status(order)
        self._cancel_children(order)

    def reject(self, order_ref: str, code: int, message: str) -> None:
        """IB or the destination refuses a working order: ``Cancelled`` ("may also occur if IB or
        the destination unexpectedly rejects the order": TWS API, Order Management, Possible
        Order States, interactivebrokers.github.io/tws-api/order_submission.html), then the
        error with the order's id; as for a reject on placing (``reject_next``)."""
        order = self.find(order_ref)
        order.status = "Cancelled"
        self._send_status(order)
        self._broadcast(4, 2, order.order_id, code, message, "")

    def _cancel_children(self, parent: FakeOrder) -> None:
        for child in self._children(parent):
            if child.status not in ("Filled", "Cancelled"):
                child.status = "Cancelled"
                self._send_status(child)

    # --- stops and trailing stops (IB works them on the last price) ---------------------------
    #
    # TRAIL, as IB documents it (interactivebrokers.com/en/trading/orders/trailing-stops.php):
    # "A sell trailing stop order sets the stop price at a fixed amount below the market price
    # with an attached 'trailing' amount. As the market price rises, the stop price rises by the
    # trail amount, but if the stock price falls, the stop loss price doesn't change, and a
    # market order is submitted when the stop price is hit"; buy trailing stops mirror it. The
    # amount is ``auxPrice``, or ``trailingPercent`` of the price ("mutually exclusive": TWS API
    # Order); ``trailStopPrice`` the initial stop, which the TWS guide says is "market price -
    # trailing amount" by default and is discarded when lower than that. The market price is the
    # last trade (``triggerMethod`` 2, the default for stocks). A stop triggered becomes a market
    # order: the fake fills it whole at the trade that hit it.

    def _distance(self, order: FakeOrder, price: float) -> float:
        if order.trail_percent:
            return price * order.trail_percent / 100
        return float(order.aux_price)

    def _start_trail(self, order: FakeOrder, stop: float | None) -> None:
        last = self.last_prices.get(order.contract[1])
        if last is not None:
            sign = -1 if order.action == "SELL" else 1
            market = last + sign * self._distance(order, last)
            if stop is None or (stop - market) * sign > 0:
                stop = market  # a given stop further than the market's is discarded
        order.trail_stop = stop

    def market(self, symbol: str, price: float, size: float = 100.0) -> list[Execution]:
        """A trade prints at ``price``: the tick goes to subscribers, and IB works the stops
        and trailing stops it holds for ``symbol`` on it (ratchets, triggers, fills)."""
        self.trade(symbol, price, size)
        self.last_prices[symbol] = price
        done: list[Execution] = []
        for order in list(self.orders.values()):
            if order.contract[1] != symbol or order.status != "Submitted":
                continue
            sign = -1 if order.action == "SELL" else 1  # a sell stop sits below the market
            if order.order_type == "TRAIL":
                ratchet = price + sign * self._distance(order, price)
                if order.trail_stop is None or (order.trail_stop - ratchet) * sign > 0:
                    order.trail_stop = ratchet  # toward the market only, never back
                stop = order.trail_stop
            elif order.order_type == "STP":
                stop = float(order.aux_price)
            else:
                continue
            if (price - stop) * sign >= 0:  # hit: a market order, filled at this trade
                done.append(self.fill(order.order_ref, order.remaining, price))
        return done

    def _auto_fill(self, perm_id: int) -> None:
        order = self.orders[perm_id]
        left = order.quantity - order.filled
        if order.status in ("Filled", "Cancelled") or left <= 0 or self.auto_fill_price is None:
            return
        first = float(int(left // 2))
        for qty in (first, left - first) if first else (left,):
            self.fill(order.order_ref, qty, self.auto_fill_price)

    def send_commission(self, ex: Execution) -> None:
        self._broadcast(*commission_fields(ex))

    def _by_order_id(self, client_id: int, order_id: int) -> FakeOrder | None:
        mine = [
            o
            for o in self.orders.values()
            if o.order_id == order_id
            and o.client_id == client_id
            and (o.session == self._session or o.status not in ("Filled", "Cancelled"))
        ]
        mine.sort(key=lambda o: o.session == self._session)
        return mine[-1] if mine else None

    def _report(self, order: FakeOrder) -> None:
        self._broadcast(*open_order_fields(order))
        self._send_status(order)

    def _send_status(self, order: FakeOrder) -> None:
        self._broadcast(*status_fields(order))
