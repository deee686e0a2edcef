"""The Shioaji callback fake across processes: the broker outlives the gateway actor's worker.

:class:`FakeShioajiBroker` (a Ray actor) holds a :class:`~tests.venues.fake_shioaji.FakeShioaji`
— the broker's book, positions and queued callbacks. :func:`connect` is the gateway's
``broker.client_factory`` hook (``tests.venues.fake_shioaji_remote:connect``): it returns a
:class:`RemoteFakeShioaji`, the client surface the adapter calls (``place_order``,
``cancel_order``, ``update_status``, ``list_trades``, ``list_positions``, ``login``, callbacks),
each call a round trip to the broker actor, with a thread that delivers the queued callbacks as
the library's callback thread would. ``shioaji.Shioaji`` is never constructed. Library values
(enums, orders) do not pickle: they cross as plain values and are rebuilt with the real shioaji
enums on each side; broker exceptions are re-raised as the real shioaji exception classes.

``auto_fill_price``: every new order is filled at once (a deal for its whole quantity), as a
broker whose market orders execute immediately; with ``auto_fill_market_only`` only market
(``MKT``) orders are, and limit orders rest.
"""

from __future__ import annotations

import threading
from types import ModuleType, SimpleNamespace
from typing import Any

import ray

from tests.venues.fake_shioaji import (
    FakeContract,
    FakeDeal,
    FakeOrderResult,
    FakePosition,
    FakeShioaji,
    FakeStatus,
    FakeTrade,
    _Category,
    import_sj,
)

__all__ = ["BROKER_NAME", "FakeShioajiBroker", "RemoteFakeShioaji", "connect"]

BROKER_NAME = "tw.test.fake_shioaji"


def _export_trade(trade: FakeTrade) -> dict[str, Any]:
    o, st = trade.order, trade.status
    return {
        "contract": (trade.contract.code, trade.contract.security_type),
        "order": (o.id, o.seqno, o.ordno, str(o.action.value), o.price, o.quantity,
                  o.custom_field),
        "status": (str(st.status.value), st.status_code, st.msg, st.order_quantity,
                   st.deal_quantity, [(d.seq, d.price, d.quantity, d.ts) for d in st.deals]),
    }


def _import_trade(sj: ModuleType, data: dict[str, Any]) -> FakeTrade:
    oid, seqno, ordno, action, price, qty, custom = data["order"]
    status, code, msg, order_qty, deal_qty, deals = data["status"]
    return FakeTrade(
        FakeContract(*data["contract"]),
        FakeOrderResult(oid, seqno, ordno, sj.Action(action), price, qty, custom),
        FakeStatus(sj.OrderStatus(status), code, msg, order_qty, deal_qty,
                   [FakeDeal(*d) for d in deals]),
    )


@ray.remote(num_cpus=0, max_restarts=0)
class FakeShioajiBroker:
    """The broker side (see the module docstring)."""

    def __init__(self, log_dir: str, auto_fill_price: float | None = None,
                 auto_fill_market_only: bool = False) -> None:
        self.sj = import_sj(log_dir)
        self.fake = FakeShioaji(self.sj)
        self.auto_fill_price = auto_fill_price
        self.auto_fill_market_only = auto_fill_market_only
        self.quotes: list[tuple[str, dict[str, Any]]] = []  # (callback kind, fields)
        for kind in ("tick_stk", "bidask_stk", "tick_fop", "bidask_fop"):
            getattr(self.fake, f"set_on_{kind}_v1_callback")(
                lambda quote, kind=kind: self.quotes.append((kind, dict(vars(quote)))))

    def contracts(self) -> dict[str, Any]:
        c = self.fake.Contracts
        return {"stocks": {k: v.security_type for k, v in c.Stocks.items()},
                "futures": {k: list(v) for k, v in c.Futures.items()}}

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """One client call: ``("ok", value)`` or ``("error", exception class name, text)``."""
        try:
            return "ok", getattr(self, f"_{name}")(*args, **kwargs)
        except Exception as exc:  # a broker refusal: re-raised as the shioaji class
            return "error", type(exc).__name__, str(exc)

    def _place_order(self, contract: tuple[str, str], order: dict[str, Any],
                     timeout: int = 0) -> dict[str, Any]:
        order = dict(order)
        market = order.pop("price_type", "MKT") == "MKT"
        spec = SimpleNamespace(**{**order, "action": self.sj.Action(order["action"])})
        trade = self.fake.place_order(FakeContract(*contract), spec, timeout)
        if (self.auto_fill_price is not None and str(trade.status.status.value) != "Failed"
                and (market or not self.auto_fill_market_only)):
            self.fake.deal(trade, int(order["quantity"]), self.auto_fill_price)
        return _export_trade(trade)

    def _trade(self, trade_id: str) -> Any:
        return SimpleNamespace(order=SimpleNamespace(id=trade_id))

    def _cancel_order(self, trade_id: str, timeout: int = 0) -> dict[str, Any]:
        return _export_trade(self.fake.cancel_order(self._trade(trade_id), timeout))

    def _update_order(self, trade_id: str, price: float | None = None, qty: int | None = None,
                      timeout: int = 0) -> dict[str, Any]:
        return _export_trade(self.fake.update_order(self._trade(trade_id), price, qty, timeout))

    def _update_status(self, **kwargs: Any) -> None:
        self.fake.update_status(**kwargs)

    def _list_trades(self) -> list[dict[str, Any]]:
        return [_export_trade(t) for t in self.fake.list_trades()]

    def _list_positions(self, **kwargs: Any) -> list[tuple[str, str, int]]:
        return [(p.code, str(p.direction.value), p.quantity)
                for p in self.fake.list_positions(**kwargs)]

    def _subscribe(self, contract: tuple[str, str], quote_type: str, **kwargs: Any) -> None:
        self.fake.subscribe(FakeContract(*contract), SimpleNamespace(value=quote_type))

    def push_tick(self, code: str, close: str, volume: int, **kwargs: Any) -> None:
        self.fake.push_tick(code, close, volume, **kwargs)

    def push_bidask(self, code: str, bids: list[tuple[str, int]], asks: list[tuple[str, int]],
                    **kwargs: Any) -> None:
        self.fake.push_bidask(code, bids, asks, **kwargs)

    def take_quotes(self) -> list[tuple[str, dict[str, Any]]]:
        quotes, self.quotes = self.quotes, []
        return quotes

    def _login(self, api_key: str, secret_key: str, **kwargs: Any) -> None:
        self.fake.login(api_key, secret_key, **kwargs)

    def _activate_ca(self, **kwargs: Any) -> None:
        self.fake.activate_ca(**kwargs)

    def take_events(self) -> list[tuple[str, dict[str, Any]]]:
        """The queued callbacks, for the client's callback thread."""
        pending, self.fake.pending = self.fake.pending, []
        return [(str(state.value), msg) for state, msg in pending]

    def snapshot(self) -> dict[str, Any]:
        """What the broker holds: positions (code -> signed shares/contracts), every order's
        custom field, every deal id, the logins it saw."""
        return {"positions": dict(self.fake.positions),
                "orders": [t.order.custom_field or t.order.id for t in self.fake.trades],
                # each deal under both its numbers: the callback's and update_status's
                "deals": [[f"SJ-{t.order.ordno}-{self.fake.exchange_seqs[(t.order.ordno, d.seq)]}",
                           f"SJ-{t.order.ordno}-D{d.seq}"]
                          for t in self.fake.trades for d in t.status.deals],
                "logins": list(self.fake.logins),
                "subscriptions": list(self.fake.subscriptions)}


class RemoteFakeShioaji:
    """The client surface of ``shioaji.Shioaji`` the adapter uses, over the broker actor."""

    def __init__(self, sj: ModuleType, broker: Any, *, poll_s: float = 0.02) -> None:
        self.sj, self.broker, self.poll_s = sj, broker, poll_s
        contracts = ray.get(broker.contracts.remote())
        self.Contracts = SimpleNamespace(
            Stocks=_Category({k: FakeContract(k, t) for k, t in contracts["stocks"].items()}),
            Futures=_Category({k: _Category({c: FakeContract(c, "FUT") for c in v})
                               for k, v in contracts["futures"].items()}))
        self._order_cb: Any = None
        self._session_cb: Any = None
        self._quote_cbs: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._deliver, name="fake-sj-cb", daemon=True)
        self._thread.start()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        answer = ray.get(self.broker.call.remote(name, args, kwargs))
        if answer[0] == "error":
            raise getattr(self.sj, answer[1], RuntimeError)(answer[2])
        return answer[1]

    def _deliver(self) -> None:
        while not self._stop.wait(self.poll_s):
            if self._order_cb is not None:
                for state, msg in ray.get(self.broker.take_events.remote()):
                    self._order_cb(self.sj.OrderState(state), msg)
            if self._quote_cbs:  # only a client that subscribed takes the quotes
                for kind, fields in ray.get(self.broker.take_quotes.remote()):
                    self._quote_cbs[kind](SimpleNamespace(**fields))

    def __getattr__(self, name: str) -> Any:
        """``set_on_{tick,bidask}_{stk,fop}_v1_callback``: kept here, fed by ``_deliver``."""
        prefix, suffix = "set_on_", "_v1_callback"
        if name.startswith(prefix) and name.endswith(suffix):
            kind = name[len(prefix):-len(suffix)]
            return lambda callback, bind=False: self._quote_cbs.__setitem__(kind, callback)
        raise AttributeError(name)

    def subscribe(self, contract: FakeContract, quote_type: Any = None,
                  intraday_odd: bool = False, version: Any = None) -> None:
        self._call("subscribe", (contract.code, contract.security_type), str(quote_type.value))

    # --- the client surface ------------------------------------------------------------------

    def set_order_callback(self, callback: Any) -> None:
        self._order_cb = callback

    def set_session_down_callback(self, callback: Any) -> None:
        self._session_cb = callback

    def login(self, api_key: str, secret_key: str, **kwargs: Any) -> list[Any]:
        self._call("login", api_key, secret_key, **kwargs)
        return []

    def activate_ca(self, ca_path: str, ca_passwd: str, person_id: str | None = None) -> bool:
        self._call("activate_ca", ca_path=ca_path, ca_passwd=ca_passwd, person_id=person_id)
        return True

    def place_order(self, contract: FakeContract, order: Any, timeout: int = 0) -> FakeTrade:
        data = {"action": str(order.action.value), "price": float(order.price),
                "quantity": int(order.quantity),
                "custom_field": getattr(order, "custom_field", None),
                "price_type": str(order.price_type.value)}
        exported = self._call("place_order", (contract.code, contract.security_type), data,
                              timeout)
        return _import_trade(self.sj, exported)

    def cancel_order(self, trade: FakeTrade, timeout: int = 0) -> FakeTrade:
        return _import_trade(self.sj, self._call("cancel_order", trade.order.id, timeout))

    def update_order(self, trade: FakeTrade, price: float | None = None, qty: int | None = None,
                     timeout: int = 0) -> FakeTrade:
        return _import_trade(self.sj,
                             self._call("update_order", trade.order.id, price, qty, timeout))

    def update_status(self, account: Any = None, *, trade: Any = None, timeout: int = 0) -> None:
        self._call("update_status", timeout=timeout)

    def list_trades(self) -> list[FakeTrade]:
        return [_import_trade(self.sj, t) for t in self._call("list_trades")]

    def list_positions(self, account: Any = None, unit: Any = None,
                       timeout: int = 0) -> list[FakePosition]:
        return [FakePosition(code, self.sj.Action(d), q)
                for code, d, q in self._call("list_positions", timeout=timeout)]


def connect(sj: ModuleType, config: Any) -> RemoteFakeShioaji:
    """The ``broker.client_factory`` hook: the client of the named broker actor."""
    return RemoteFakeShioaji(sj, ray.get_actor(BROKER_NAME))
