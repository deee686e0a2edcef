"""Alpaca helpers: the broker block, the ``alpaca-py`` clients, order requests, error classes.

``TradingClient`` (REST, synchronous) and ``TradingStream`` (the ``trade_updates`` WebSocket)
come from alpaca-py; ``url_override`` / ``stream_url_override`` point them elsewhere (the tests:
a loopback fake). alpaca-py retries 429 and 504 answers by itself, also for ``POST /v2/orders``:
a retried 504 could send an order whose outcome is unknown a second time, so
:class:`_TradingClient` turns that retry off and the adapter answers with its own backoff.

Errors (:func:`classify`): a 429 ⇒ ``rate_limited`` (refused before processing: the order
waits, then goes); a 5xx, a timeout or a dropped connection ⇒ ``unknown`` (never resent:
reconciled by client order id); another 4xx ⇒ ``refused`` (the code is Alpaca's, e.g.
``40310000`` insufficient buying power).
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from actors.venues.common import Secret, env_secret
from runtime.errors import ConfigError
from runtime.instruments import Instrument
from runtime.messages import OrderSide, OrderType, SubmitOrder, TimeInForce
from runtime.values import from_fixed

__all__ = ["AlpacaConfig", "build_request", "classify", "client_id", "error_code",
           "make_clients"]

_CLIENT_ID_MAX = 128  # Alpaca: client_order_id up to 128 characters


class AlpacaConfig(BaseModel):
    """The Alpaca gateway's config block (YAML ``broker:`` with ``kind: alpaca``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["alpaca"] = "alpaca"
    #: Alpaca takes stop and stop-limit orders (``broker_config.emulated_stops``)
    native_stops: ClassVar[bool] = True
    paper: bool = True  # Alpaca's paper account; live needs live: true and --confirm-live
    live: bool = False
    dry_run: bool = False  # check the account, never send an order
    api_key_env: str = "APCA_API_KEY_ID"
    secret_env: str = "APCA_API_SECRET_KEY"
    url_override: str | None = None  # REST base URL (default: Alpaca's paper or live host)
    stream_url_override: str | None = None  # trade_updates WebSocket URL
    symbols: dict[str, str] = Field(default_factory=dict)  # instrument id -> symbol
    data_feed: Literal["iex", "sip"] = "iex"  # market data (feed.mode: broker): IEX is free
    data_url_override: str | None = None  # the stock data WebSocket URL
    orders_per_min: int = Field(150, gt=0, le=200)  # Alpaca: 200 requests / min; keep below
    reconcile_every_s: float = Field(60.0, gt=0)
    poll_every_s: float = Field(2.0, gt=0)  # REST polling while the stream is down
    backoff_min_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    breaker_threshold: int = Field(3, ge=1)

    def symbol_for(self, instrument_id: str) -> str:
        """The configured symbol, else the id's first part (``AAPL.NASDAQ`` → ``AAPL``)."""
        return self.symbols.get(instrument_id) or instrument_id.split(".")[0]

    def credentials(self) -> tuple[Secret, Secret]:
        return env_secret(self.api_key_env), env_secret(self.secret_env)


def make_clients(config: AlpacaConfig, credentials: tuple[Secret, Secret]) -> tuple[Any, Any]:
    """``(TradingClient, TradingStream)`` for the paper or the live account."""
    try:
        from alpaca.trading.client import TradingClient
        from alpaca.trading.stream import TradingStream
    except ModuleNotFoundError:
        raise ConfigError("the Alpaca gateway needs alpaca-py (pip install alpaca-py)") from None

    class _TradingClient(TradingClient):
        """alpaca-py without its own 429/504 retries (see the module docstring)."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._retry_codes: list[int] = []

    key, secret = credentials
    rest = _TradingClient(api_key=key.reveal(), secret_key=secret.reveal(), paper=config.paper,
                          url_override=config.url_override)
    stream = TradingStream(key.reveal(), secret.reveal(), paper=config.paper,
                           url_override=config.stream_url_override or "")  # "": Alpaca's
    return rest, stream


def client_id(client_order_id: str) -> str:
    """The client order id as Alpaca takes it (at most 128 characters), deterministic."""
    if len(client_order_id) <= _CLIENT_ID_MAX:
        return client_order_id
    return "tw" + hashlib.sha256(client_order_id.encode()).hexdigest()


def build_request(command: SubmitOrder, *, symbol: str, instrument: Instrument) -> Any:
    """The alpaca-py order request; a flag Alpaca lacks is a :class:`ConfigError` naming it.

    Reduce-only has no Alpaca flag for equities: risk enforces it in the core before the
    order comes here (it shrinks or denies the order), as for IB and Shioaji."""
    from alpaca.trading import enums, requests

    if command.post_only:
        raise ConfigError("Alpaca has no post-only order flag: post_only refused rather than "
                          "sent as a limit order that may take liquidity")
    violation = instrument.check_order(quantity=command.quantity, price=command.price)
    if violation is not None:
        raise ConfigError(f"Alpaca: {violation.message} ({violation.rule})")
    common: dict[str, Any] = {
        "symbol": symbol,
        "qty": float(from_fixed(command.quantity)),
        "side": enums.OrderSide.BUY if command.side is OrderSide.BUY else enums.OrderSide.SELL,
        "time_in_force": enums.TimeInForce(_TIF[command.time_in_force]),
        "client_order_id": client_id(command.client_order_id),
    }
    price = None if command.price is None else float(from_fixed(command.price))
    stop = None if command.trigger_price is None else float(from_fixed(command.trigger_price))
    kind = command.order_type
    if kind is OrderType.MARKET:
        return requests.MarketOrderRequest(**common)
    if kind is OrderType.LIMIT:
        return requests.LimitOrderRequest(limit_price=price, **common)
    if kind is OrderType.STOP:
        return requests.StopOrderRequest(stop_price=stop, **common)
    return requests.StopLimitOrderRequest(limit_price=price, stop_price=stop, **common)


_TIF = {TimeInForce.DAY: "day", TimeInForce.GTC: "gtc", TimeInForce.IOC: "ioc",
        TimeInForce.FOK: "fok"}

Outcome = Literal["rate_limited", "unknown", "refused"]


def classify(exc: BaseException) -> Outcome:
    from alpaca.common.exceptions import APIError
    from requests import RequestException

    if isinstance(exc, APIError):
        status = exc.status_code
        if status == 429:
            return "rate_limited"
        if status is None or status >= 500:
            return "unknown"
        return "refused"
    if isinstance(exc, RequestException | OSError | TimeoutError):
        return "unknown"
    return "refused"


def error_code(exc: BaseException) -> str:
    from alpaca.common.exceptions import APIError

    if isinstance(exc, APIError):
        try:
            return str(exc.code)
        except (ValueError, KeyError, TypeError):
            return str(exc.status_code)
    return type(exc).__name__


def error_message(exc: BaseException) -> str:
    from alpaca.common.exceptions import APIError

    if isinstance(exc, APIError):
        try:
            return str(exc.message)
        except (ValueError, KeyError, TypeError):
            return str(exc)[:300]
    return str(exc)[:300]
