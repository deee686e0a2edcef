"""A callback-level fake of ``shioaji.Shioaji`` built on the real shioaji enums, order classes and
exceptions (it never constructs ``shioaji.Shioaji``, which contacts SinoPac at once).

It keeps a broker-side order book and delivers order/deal callbacks with the real
``shioaji.OrderState`` values and the documented event dicts (``event_id``, ``operation``,
``order``, ``status``, ``contract`` for orders; ``trade_id``, ``seqno``, ``ordno``,
``exchange_seq``, ``price``, ``quantity``, ``custom_field``, ``ts`` for deals). As at SinoPac, a
deal has two numbers: the callback's ``exchange_seq`` is the exchange's sequence number (one counter
for every deal, e.g. ``669915``), while ``update_status`` lists it in ``trade.status.deals`` as
``Deal(seq=...)``, the order's own counter (``000001``, ``000002``, …). Scenario controls:
``deliver_inline`` (callbacks before ``place_order`` returns), :meth:`deal` with ``duplicate``
(same event id twice), ``drop`` (recorded at the broker, never called back) and
``before_ack``, ``outcome_unknown_next`` (the order reaches the broker but ``place_order`` raises
``OrderOutcomeUnknownError``), ``reject_next``, :meth:`session_down` (the session is lost:
calls fail with ``TokenError`` until ``login``; after a login ``list_trades`` is empty until
``update_status``), :meth:`new_trading_day`.

The close of a trading day: a ROD order is "rest of day" (``order_type`` ROD, IOC or FOK), and
SinoPac's order/deal event docs (https://sinotrade.github.io/tutor/callback/orderdeal_event/)
say an order event comes "each time you call place_order, update_order, or cancel_order" (op_type
``New``, ``Cancel``, ``UpdatePrice``, ``UpdateQty``) and a deal event per deal: nothing is called
back when the exchange ends a ROD order at the close, and the trade keeps the status it had
(``Submitted``/``PartFilled``) in that day's lists. ``update_status``/``list_trades`` hold the
day's orders: after :meth:`new_trading_day` the earlier days' trades are no longer listed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

__all__ = ["FakeShioaji", "import_sj"]


def import_sj(log_dir: str) -> ModuleType:
    """shioaji, with its log file under ``log_dir`` (never in the working directory)."""
    os.environ.setdefault("SJ_LOG_PATH", os.path.join(log_dir, "shioaji.log"))
    import shioaji

    return shioaji


@dataclass
class FakeContract:
    code: str
    security_type: str  # "STK" | "FUT"


@dataclass
class FakeDeal:
    seq: str
    price: float
    quantity: int
    ts: float


@dataclass
class FakeOrderResult:
    id: str
    seqno: str
    ordno: str
    action: Any
    price: float
    quantity: int
    custom_field: str | None


@dataclass
class FakeStatus:
    status: Any  # shioaji.OrderStatus
    status_code: str = ""
    msg: str = ""
    order_quantity: int = 0
    deal_quantity: int = 0
    deals: list[FakeDeal] = field(default_factory=list)


@dataclass
class FakeTrade:
    contract: FakeContract
    order: FakeOrderResult
    status: FakeStatus


@dataclass
class FakePosition:
    code: str
    direction: Any
    quantity: int


class _Category(dict[str, Any]):
    pass


class FakeShioaji:
    def __init__(self, sj: ModuleType, *, ts: float = 1_760_000_000.0) -> None:
        self.sj = sj
        self.ts = ts
        self.Contracts = type("Contracts", (), {})()
        self.Contracts.Stocks = _Category({c: FakeContract(c, "STK") for c in ("2330", "2317")})
        self.Contracts.Futures = _Category(
            TXF=_Category(TXF202612=FakeContract("TXF202612", "FUT")),
            MXF=_Category(MXF202612=FakeContract("MXF202612", "FUT")),
        )
        self.trades: list[FakeTrade] = []  # the broker's book (all sessions)
        self.placed: list[Any] = []  # the order objects place_order received, as sent
        self.session_trades: list[FakeTrade] = []  # what list_trades shows this session
        self._day_start = 0  # index in ``trades`` of the current trading day's first order
        self.positions: dict[str, int] = {}  # code -> signed broker units (shares/contracts)
        self.deliver_inline = False
        self.outcome_unknown_next = False
        self.reject_next: tuple[str, str] | None = None
        self.logged_in = True
        self.logins: list[tuple[str, str]] = []
        self.calls: list[str] = []
        self.pending: list[tuple[Any, dict[str, Any]]] = []
        self._order_cb: Callable[[Any, Any], None] | None = None
        self._session_cb: Callable[[], None] | None = None
        self._n = 0
        self._event = 0
        self._exchange_seq = 669_900  # the exchange's deal numbering (deal callbacks)
        self.exchange_seqs: dict[tuple[str, str], str] = {}  # (ordno, Deal.seq) -> exchange_seq
        self.subscriptions: list[tuple[str, str]] = []  # (code, quote type) subscribed
        self._quote_cbs: dict[str, Callable[[Any], None]] = {}

    # --- the client's surface --------------------------------------------------------------

    def set_order_callback(self, callback: Callable[[Any, Any], None]) -> None:
        self._order_cb = callback

    def set_session_down_callback(self, callback: Callable[[], None]) -> None:
        self._session_cb = callback

    def login(self, api_key: str, secret_key: str, **_: Any) -> list[Any]:
        self.logins.append((api_key, secret_key))
        self.logged_in = True
        self.session_trades = []  # a new session knows nothing until update_status
        return []

    def activate_ca(self, ca_path: str, ca_passwd: str, person_id: str | None = None) -> bool:
        self.calls.append("activate_ca")
        return True

    def place_order(self, contract: FakeContract, order: Any, timeout: int = 0) -> FakeTrade:
        self._check_session("place_order")
        self.placed.append(order)
        self._n += 1
        n = self._n
        result = FakeOrderResult(
            f"id{n:04d}",
            f"S{n:05d}",
            f"O{n:04d}",
            order.action,
            float(order.price),
            int(order.quantity),
            getattr(order, "custom_field", None),
        )
        trade = FakeTrade(
            contract,
            result,
            FakeStatus(self.sj.OrderStatus.PendingSubmit, order_quantity=int(order.quantity)),
        )
        self.trades.append(trade)
        self.session_trades.append(trade)
        if self.reject_next is not None:
            code, message = self.reject_next
            self.reject_next = None
            trade.status.status = self.sj.OrderStatus.Failed
            trade.status.status_code, trade.status.msg = code, message
            self._order_event(trade, "New", code, message)
        else:
            trade.status.status = self.sj.OrderStatus.Submitted
            self._order_event(trade, "New", "00", "")
        if self.deliver_inline:
            self.deliver()
        if self.outcome_unknown_next:
            self.outcome_unknown_next = False
            raise self.sj.OrderOutcomeUnknownError("no acknowledgement from the order gateway")
        return trade

    def cancel_order(self, trade: FakeTrade, timeout: int = 0) -> FakeTrade:
        self._check_session("cancel_order")
        mine = self._find(trade)
        if mine is None or mine not in self.session_trades:
            raise self.sj.ShioajiValueError("trade not in this session: call update_status")
        if str(mine.status.status.value) in ("Filled", "Cancelled", "Failed"):
            self._order_event(mine, "Cancel", "88", "order cannot be cancelled")
        else:
            mine.status.status = self.sj.OrderStatus.Cancelled
            self._order_event(mine, "Cancel", "00", "")
        return mine

    def update_order(
        self, trade: FakeTrade, price: float | None = None, qty: int | None = None, timeout: int = 0
    ) -> FakeTrade:
        self._check_session("update_order")
        mine = self._find(trade)
        assert mine is not None
        if qty:
            mine.status.order_quantity -= qty
            self._order_event(mine, "UpdateQty", "00", "")
        if price is not None:
            mine.order.price = price
            self._order_event(mine, "UpdatePrice", "00", "", modified_price=price)
        return mine

    def update_status(self, account: Any = None, *, trade: Any = None, timeout: int = 0) -> None:
        self._check_session("update_status")
        self.session_trades = self.trades[self._day_start:]  # the day's orders

    def list_trades(self) -> list[FakeTrade]:
        self.calls.append("list_trades")
        return list(self.session_trades)

    def list_positions(
        self, account: Any = None, unit: Any = None, timeout: int = 0
    ) -> list[FakePosition]:
        self._check_session("list_positions")
        return [
            FakePosition(code, self.sj.Action.Buy if q > 0 else self.sj.Action.Sell, abs(q))
            for code, q in self.positions.items()
            if q
        ]

    def kbars(
        self,
        contract: FakeContract,
        start: str | None = None,
        end: str | None = None,
        timeout: int = 0,
    ) -> Any:
        self._check_session("kbars")
        return type(
            "KBars",
            (),
            {
                "ts": [1_760_000_060_000_000_000],
                "Open": [100.0],
                "High": [101.0],
                "Low": [99.5],
                "Close": [100.5],
                "Volume": [12],
                "Amount": [1200.0],
            },
        )()

    def ticks(self, contract: FakeContract, date: str | None = None, **_: Any) -> Any:
        self._check_session("ticks")
        return type(
            "Ticks",
            (),
            {
                "ts": [1_760_000_001_000_000_000],
                "close": [100.5],
                "volume": [3],
                "bid_price": [100.0],
                "bid_volume": [5],
                "ask_price": [100.5],
                "ask_volume": [7],
                "tick_type": [1],
            },
        )()

    # --- market data (v1 quote callbacks) ----------------------------------------------------

    def subscribe(self, contract: FakeContract, quote_type: Any = None, intraday_odd: bool = False,
                  version: Any = None) -> None:
        self._check_session("subscribe")
        self.subscriptions.append((contract.code, str(quote_type.value)))

    def set_on_tick_stk_v1_callback(self, callback: Callable[[Any], None], bind: bool = False
                                    ) -> None:
        self._quote_cbs["tick_STK"] = callback

    def set_on_bidask_stk_v1_callback(self, callback: Callable[[Any], None], bind: bool = False
                                      ) -> None:
        self._quote_cbs["bidask_STK"] = callback

    def set_on_tick_fop_v1_callback(self, callback: Callable[[Any], None], bind: bool = False
                                    ) -> None:
        self._quote_cbs["tick_FUT"] = callback

    def set_on_bidask_fop_v1_callback(self, callback: Callable[[Any], None], bind: bool = False
                                      ) -> None:
        self._quote_cbs["bidask_FUT"] = callback

    def _security(self, code: str) -> str:
        return "STK" if code in self.Contracts.Stocks else "FUT"

    def push_tick(self, code: str, close: str, volume: int, *, tick_type: int = 1,
                  at: Any = None) -> None:
        """A TickSTKv1/TickFOPv1-shaped tick (prices as text, Taipei wall time) to the
        subscriber's callback, as the library's quote thread delivers it."""
        from types import SimpleNamespace

        tick = SimpleNamespace(code=code, datetime=at, close=close, volume=volume,
                               tick_type=tick_type)
        self._quote_cbs[f"tick_{self._security(code)}"](tick)

    def push_bidask(self, code: str, bids: list[tuple[str, int]], asks: list[tuple[str, int]],
                    *, at: Any = None) -> None:
        """A BidAskSTKv1/BidAskFOPv1-shaped update (5 levels a side, volume 0 = empty)."""
        from types import SimpleNamespace

        quote = SimpleNamespace(code=code, datetime=at, bid_price=[p for p, _ in bids],
                                bid_volume=[v for _, v in bids], ask_price=[p for p, _ in asks],
                                ask_volume=[v for _, v in asks])
        self._quote_cbs[f"bidask_{self._security(code)}"](quote)

    # --- scenario controls -----------------------------------------------------------------

    def deliver(self) -> None:
        """Run the queued callbacks (the library's callback thread catching up)."""
        pending, self.pending = self.pending, []
        for state, msg in pending:
            assert self._order_cb is not None
            self._order_cb(state, msg)

    def trade_of(self, tag_or_n: str | int) -> FakeTrade:
        if isinstance(tag_or_n, int):
            return self.trades[tag_or_n]
        return next(t for t in self.trades if t.order.custom_field == tag_or_n)

    def deal(
        self,
        trade: FakeTrade,
        qty: int,
        price: float,
        *,
        duplicate: bool = False,
        drop: bool = False,
        before_ack: bool = False,
    ) -> None:
        self.ts += 1
        seq = f"{len(trade.status.deals) + 1:06d}"
        trade.status.deals.append(FakeDeal(seq, price, qty, self.ts))
        trade.status.deal_quantity += qty
        if trade.status.deal_quantity >= trade.status.order_quantity:
            trade.status.status = self.sj.OrderStatus.Filled
        sign = 1 if str(trade.order.action.value) == "Buy" else -1
        unit = 1000 if trade.contract.security_type == "STK" else 1
        self.positions[trade.contract.code] = (
            self.positions.get(trade.contract.code, 0) + sign * qty * unit
        )
        self._exchange_seq += 1
        self.exchange_seqs[(trade.order.ordno, seq)] = str(self._exchange_seq)
        if drop:
            return
        is_stock = trade.contract.security_type == "STK"
        msg = {
            "event_id": self._next_event(),
            "trade_id": trade.order.id,
            "seqno": trade.order.seqno,
            "ordno": trade.order.ordno,
            "exchange_seq": str(self._exchange_seq),
            "action": trade.order.action.value,
            "code": trade.contract.code,
            "price": price,
            "quantity": qty,
            "ts": self.ts,
        }
        if is_stock:
            msg["custom_field"] = trade.order.custom_field or ""
        state = self.sj.OrderState.StockDeal if is_stock else self.sj.OrderState.FuturesDeal
        item = (state, msg)
        if before_ack:
            self.pending.insert(0, item)
        else:
            self.pending.append(item)
        if duplicate:
            self.pending.append(item)

    def new_trading_day(self) -> None:
        """The exchange's day rolled: its ROD orders are gone, silently (module docstring)."""
        self._day_start = len(self.trades)
        self.session_trades = [t for t in self.session_trades if t in self.trades[self._day_start:]]

    def session_down(self) -> None:
        self.logged_in = False
        if self._session_cb is not None:
            self._session_cb()

    # --- internals -------------------------------------------------------------------------

    def _check_session(self, call: str) -> None:
        self.calls.append(call)
        if not self.logged_in:
            raise self.sj.TokenError("session expired: login again")

    def _find(self, trade: FakeTrade) -> FakeTrade | None:
        return next((t for t in self.trades if t.order.id == trade.order.id), None)

    def _next_event(self) -> str:
        self._event += 1
        return f"ev{self._event:06d}"

    def _order_event(
        self, trade: FakeTrade, op_type: str, code: str, message: str, **status: Any
    ) -> None:
        is_stock = trade.contract.security_type == "STK"
        order: dict[str, Any] = {
            "id": trade.order.id,
            "seqno": trade.order.seqno,
            "ordno": trade.order.ordno,
            "action": trade.order.action.value,
            "price": trade.order.price,
            "quantity": trade.order.quantity,
        }
        if is_stock:
            order["custom_field"] = trade.order.custom_field or ""
        msg = {
            "event_id": self._next_event(),
            "operation": {"op_type": op_type, "op_code": code, "op_msg": message},
            "order": order,
            "status": {
                "id": trade.order.id,
                "exchange_ts": self.ts,
                "order_quantity": trade.status.order_quantity,
                "cancel_quantity": 0,
                **status,
            },
            "contract": {"code": trade.contract.code},
        }
        state = self.sj.OrderState.StockOrder if is_stock else self.sj.OrderState.FuturesOrder
        self.pending.append((state, msg))
