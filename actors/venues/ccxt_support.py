"""CCXT helpers: the broker block, the exchange client, instruments from the exchange's markets,
order arguments, error classification and the client order id tag.

The client is ``ccxt.pro.<exchange>`` (the async REST API plus the WebSocket ``watch_*`` calls;
ccxt.pro ships inside ccxt). ``urls`` in the broker block overrides the exchange's endpoints (a
regional host, a proxy; the tests point it at a loopback fake): a key names an entry of the
client's ``urls["api"]`` (``fapiPrivate``), ``ws.<type>`` one of its WebSocket URLs
(``ws.ws-api.spot``: a nested entry, Binance spot's WebSocket API).

Errors are classified once, here (:func:`classify`):

* ``rate_limited`` — ccxt ``DDoSProtection``/``RateLimitExceeded`` (HTTP 429/418): the exchange
  refused the request before processing it; the order provably did not go in, and waits;
* ``clock`` — ``InvalidNonce`` (Binance -1021, timestamp outside ``recvWindow``): refused, the
  clock-skew guard looks again;
* ``unknown`` — any other ``NetworkError`` (timeouts, 5xx, ``ExchangeNotAvailable``), or an
  exchange code documented as "execution status unknown" (:data:`UNKNOWN_CODES`): the request
  may have been processed; an order is never sent again, only reconciled;
* ``refused`` — an ``ExchangeError`` (bad order, insufficient funds, unknown order...): the
  exchange answered no; the code is the exchange's own (``-4164``) when its body carries one.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from decimal import Decimal
from types import ModuleType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from actors.venues.aux_feeds import AuxFeedConfig
from actors.venues.common import Secret, env_secret
from runtime.errors import ConfigError
from runtime.instruments import Instrument, InstrumentRegistry, TickBand
from runtime.messages import OrderSide, OrderType, SubmitOrder, TimeInForce
from runtime.values import FIXED_PRECISION, fixed, from_fixed

__all__ = [
    "NATIVE_MODIFY",
    "TRIGGER_ORDERS",
    "CcxtConfig",
    "MarketRules",
    "OrderArgs",
    "classify",
    "client_tag",
    "exchange_code",
    "import_ccxt",
    "instrument_from_market",
    "make_exchange",
    "market_drifts",
    "market_rules",
    "order_args",
    "order_ref",
]

#: exchanges whose ccxt ``edit_order`` amends the order in place (same order id): Binance's
#: futures ``PUT /fapi/v1/order`` and ``/dapi/v1/order``. Elsewhere ccxt may cancel and replace
#: (a new order id), so a modify is refused there: cancel and submit instead.
NATIVE_MODIFY = frozenset({"binanceusdm", "binancecoinm"})
#: exchange codes whose request may have been processed (Binance: -1000 unknown error, -1006
#: unexpected response, -1007 backend timeout; "execution status unknown"): like a timeout
UNKNOWN_CODES = {
    "binanceusdm": frozenset({"-1000", "-1006", "-1007"}),
    "binancecoinm": frozenset({"-1000", "-1006", "-1007"}),
    "binance": frozenset({"-1000", "-1006", "-1007"}),
}
#: exchanges whose stop and stop-limit orders are sent natively, as ccxt routes them: Binance
#: USD-M takes them only through its Algo Order API (``POST /fapi/v1/algoOrder``: an algo id,
#: then, when triggered, an order in the matching engine with an id of its own). Elsewhere each
#: exchange triggers them differently: refused by name (the core's stop emulation is the way).
TRIGGER_ORDERS = frozenset({"binanceusdm"})
#: exchange codes that answer an order as documented, not a fault: a post-only order that would
#: take liquidity (Binance futures -5022, "could not be executed as maker"). A reject like any
#: other, but it neither counts toward the circuit breaker nor pauses the gateway.
EXPECTED_CODES = {
    "binanceusdm": frozenset({"-5022"}),
    "binancecoinm": frozenset({"-5022"}),
}
_TAG_OK = re.compile(r"^[.A-Za-z0-9:/_-]{1,36}$")  # Binance newClientOrderId


class CcxtConfig(BaseModel):
    """The CCXT gateway's config block (YAML ``broker:`` with ``kind: ccxt``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["ccxt"] = "ccxt"
    exchange: str = Field("binanceusdm", pattern=r"^[a-z0-9]+$")  # a ccxt.pro exchange id
    symbols: dict[str, str] = Field(default_factory=dict)  # instrument id -> ccxt symbol
    paper: bool = True  # the exchange's demo/testnet environment; live needs the opt-in
    live: bool = False
    dry_run: bool = False  # check the account, never send an order
    api_key_env: str = "CCXT_API_KEY"
    secret_env: str = "CCXT_SECRET"
    password_env: str | None = None  # exchanges with an API passphrase
    urls: dict[str, str] = Field(default_factory=dict)  # endpoint overrides (see the module)
    orders_per_10s: int = Field(100, gt=0, le=300)  # Binance USD-M: 300 / 10 s; keep below
    recv_window_ms: int = Field(5000, gt=0, le=60_000)
    max_clock_skew_ms: int = Field(1000, gt=0)
    reconcile_every_s: float = Field(60.0, gt=0)
    poll_every_s: float = Field(2.0, gt=0)  # REST polling while the user stream is down
    backoff_min_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    breaker_threshold: int = Field(3, ge=1)
    request_timeout_ms: int = Field(10_000, gt=0)
    connect_timeout_s: float = Field(15.0, gt=0)
    #: auxiliary feeds polled into the session's feed (``feed.mode: broker``): funding rates,
    #: mark/index prices, open interest (:mod:`actors.venues.ccxt_aux`)
    aux: tuple[AuxFeedConfig, ...] = ()

    def symbol_for(self, instrument_id: str) -> str:
        try:
            return self.symbols[instrument_id]
        except KeyError:
            raise ConfigError(f"no exchange symbol for {instrument_id}",
                              field=f"broker.symbols.{instrument_id}") from None

    def instrument_of(self, symbol: str) -> str | None:
        for iid, sym in self.symbols.items():
            if sym == symbol:
                return iid
        return None

    @property
    def native_stops(self) -> bool:
        """Whether stops go to the exchange (:data:`TRIGGER_ORDERS`); elsewhere the core holds
        them (``broker_config.emulated_stops``)."""
        return self.exchange in TRIGGER_ORDERS

    def credentials(self) -> dict[str, Secret]:
        found = {"apiKey": env_secret(self.api_key_env), "secret": env_secret(self.secret_env)}
        if self.password_env:
            found["password"] = env_secret(self.password_env)
        return found


def import_ccxt() -> ModuleType:
    """``ccxt.pro`` (async REST plus WebSocket); a clear error when ccxt is missing."""
    try:
        return importlib.import_module("ccxt.pro")
    except ModuleNotFoundError:
        raise ConfigError("the CCXT gateway needs ccxt (pip install ccxt)") from None


def make_exchange(config: CcxtConfig, *, credentials: dict[str, Secret] | None) -> Any:
    """The ``ccxt.pro`` client: the paper environment first, then the ``urls`` overrides."""
    pro = import_ccxt()
    cls = getattr(pro, config.exchange, None)
    if cls is None:
        raise ConfigError(f"ccxt.pro has no exchange {config.exchange!r}",
                          field="broker.exchange")
    options: dict[str, Any] = {"fetchCurrencies": False, "recvWindow": config.recv_window_ms}
    settings: dict[str, Any] = {"enableRateLimit": True, "timeout": config.request_timeout_ms,
                                "options": options}
    for key, secret in (credentials or {}).items():
        settings[key] = secret.reveal()
    exchange = cls(settings)
    if config.paper:
        _paper_environment(exchange, config)
    for key, url in config.urls.items():
        where, *path = key.split(".") if key.startswith("ws.") else (key,)
        table = exchange.urls["api"]
        for part in [where, *path][:-1]:
            table = table.setdefault(part, {})
        table[[where, *path][-1]] = url
    return exchange


def _paper_environment(exchange: Any, config: CcxtConfig) -> None:
    """The exchange's demo trading where ccxt has it, else its sandbox (testnet)."""
    if callable(getattr(exchange, "enable_demo_trading", None)) and "demo" in exchange.urls:
        exchange.enable_demo_trading(True)
    elif "test" in exchange.urls:
        exchange.set_sandbox_mode(True)
    else:
        raise ConfigError(f"{config.exchange} has no demo or testnet environment in ccxt: "
                          "set paper: false (a real-money account) or pick another exchange",
                          field="broker.paper")


# --- instruments -------------------------------------------------------------------------


def _step(exchange: Any, value: Any, what: str, symbol: str) -> Decimal:
    """A precision entry as a step: ccxt's TICK_SIZE mode holds the step, DECIMAL_PLACES the
    number of decimals."""
    if value is None:
        raise ConfigError(f"{symbol}: the exchange gives no {what} precision")
    from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TICK_SIZE

    mode = exchange.precisionMode
    if mode == TICK_SIZE:
        return Decimal(str(value))
    if mode == DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(value))
    raise ConfigError(f"{exchange.id}: significant-digit precision cannot be a tick grid")


def _places(step: Decimal) -> int:
    return max(0, -step.normalize().as_tuple().exponent)  # type: ignore[operator]


def instrument_from_market(exchange: Any, instrument_id: str, market: dict[str, Any]) -> Instrument:
    """The exchange's rules for one market as an :class:`Instrument`: tick, lot (amount step),
    minimum quantity, minimum notional and contract size (the multiplier)."""
    symbol = market["symbol"]
    tick = _step(exchange, market["precision"].get("price"), "price", symbol)
    lot = _step(exchange, market["precision"].get("amount"), "amount", symbol)
    price_places, size_places = _places(tick), _places(lot)
    if price_places + size_places > FIXED_PRECISION:
        raise ConfigError(f"{symbol}: tick {tick} and lot {lot} need more than "
                          f"{FIXED_PRECISION} decimals together")
    limits = market.get("limits") or {}
    min_qty = (limits.get("amount") or {}).get("min") or lot
    min_cost = (limits.get("cost") or {}).get("min") or 0
    contract = market.get("contractSize") or 1
    asset_class = "crypto" if market.get("spot") else "future"
    return Instrument(
        instrument_id=instrument_id,
        venue=exchange.id.upper(),
        asset_class=asset_class,
        currency=str(market.get("settle") or market["quote"]),
        price_precision=price_places,
        size_precision=size_places,
        tick_ladder=(TickBand(0, fixed(tick)),),
        lot_size=fixed(lot),
        min_quantity=fixed(Decimal(str(min_qty))),
        min_notional=fixed(Decimal(str(min_cost))),
        multiplier=fixed(Decimal(str(contract))),
    )


def market_drifts(ours: Instrument, theirs: Instrument) -> list[str]:
    """Where the session's instrument differs from the exchange's (empty: they agree)."""
    out = []
    for name in ("lot_size", "min_quantity", "min_notional", "multiplier"):
        a, b = getattr(ours, name), getattr(theirs, name)
        if a != b:
            out.append(f"instruments.{ours.instrument_id}.{name}: {from_fixed(a)} here, "
                       f"{from_fixed(b)} at the exchange")
    tick_ours, tick_theirs = ours.tick_ladder[0].tick, theirs.tick_ladder[0].tick
    if len(ours.tick_ladder) != 1 or tick_ours != tick_theirs:
        out.append(f"instruments.{ours.instrument_id}.price_precision: tick "
                   f"{from_fixed(tick_ours)} here, {from_fixed(tick_theirs)} at the exchange")
    if ours.currency != theirs.currency:
        out.append(f"instruments.{ours.instrument_id}.currency: {ours.currency} here, "
                   f"{theirs.currency} at the exchange")
    return out


class MarketRules(BaseModel):
    """The configured markets as the exchange lists them, its rules as instruments, and where
    the session's instruments differ from them."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    markets: dict[str, dict[str, Any]]  # instrument id -> the exchange's market
    registry: InstrumentRegistry
    drifts: list[str]


def market_rules(exchange: Any, config: CcxtConfig, markets: dict[str, Any],
                 instruments: dict[str, Instrument]) -> MarketRules:
    """The exchange's rules for ``config.symbols`` (loaded ``markets``) against the session's
    ``instruments``; a symbol the exchange does not list is a ConfigError naming it."""
    found, registry, drifts = {}, InstrumentRegistry(), []
    for iid, symbol in sorted(config.symbols.items()):
        if symbol not in markets:
            raise ConfigError(f"{config.exchange} lists no market {symbol}",
                              field=f"broker.symbols.{iid}")
        found[iid] = markets[symbol]
        rules = instrument_from_market(exchange, iid, markets[symbol])
        registry.add(rules)
        if iid in instruments:
            drifts += market_drifts(instruments[iid], rules)
    return MarketRules(markets=found, registry=registry, drifts=drifts)


# --- orders ------------------------------------------------------------------------------


class OrderArgs(BaseModel):
    model_config = ConfigDict(frozen=True)

    symbol: str
    type: str
    side: str
    amount: float
    price: float | None
    params: dict[str, Any]
    trigger: bool = False  # a stop or stop-limit (the exchange's conditional order)


def client_tag(client_order_id: str) -> str:
    """The client order id as the exchange takes it: itself when it fits Binance's rule (at most
    36 of ``.A-Za-z0-9:/_-``), else ``tw`` + 32 hex digits of its SHA-256 (deterministic, so a
    restarted gateway finds the same order)."""
    if _TAG_OK.match(client_order_id):
        return client_order_id
    return "tw" + hashlib.sha256(client_order_id.encode()).hexdigest()[:32]


def order_args(command: SubmitOrder, *, config: CcxtConfig, market: dict[str, Any],
               instrument: Instrument) -> OrderArgs:
    """ccxt ``create_order`` arguments; a flag the exchange lacks is a :class:`ConfigError`
    naming it, and an order off the exchange's grid (tick, lot, minimums) is refused, never
    rounded."""
    where = f"ccxt {config.exchange}"
    violation = instrument.check_order(quantity=command.quantity, price=command.price)
    if violation is not None:
        raise ConfigError(f"{where}: {violation.message} (the exchange's {violation.rule})")
    trigger = command.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
    params: dict[str, Any] = {"clientOrderId": client_tag(command.client_order_id)}
    if trigger:
        params["triggerPrice"] = _trigger_price(command, config=config, market=market,
                                                instrument=instrument)
    market_order = command.order_type in (OrderType.MARKET, OrderType.STOP)
    tif = command.time_in_force
    if not market_order:
        if tif is TimeInForce.DAY:
            raise ConfigError(f"{where}: no DAY time in force (crypto trades around the "
                              "clock): use GTC, IOC or FOK")
        params["timeInForce"] = tif.name
    elif tif is TimeInForce.FOK:
        params["timeInForce"] = "FOK"
    if command.post_only:
        if market_order or tif in (TimeInForce.IOC, TimeInForce.FOK):
            raise ConfigError(f"{where}: post_only needs a resting limit order (GTC)")
        params["postOnly"] = True
        params.pop("timeInForce", None)
    if command.reduce_only and market.get("contract"):  # spot has no such flag: risk's check
        params["reduceOnly"] = True                       # in the core is what holds there
    return OrderArgs(
        symbol=market["symbol"],
        type="market" if market_order else "limit",
        side="buy" if command.side is OrderSide.BUY else "sell",
        amount=float(from_fixed(command.quantity)),
        price=None if command.price is None or market_order
        else float(from_fixed(command.price)),
        params=params,
        trigger=trigger,
    )


def order_ref(client_order_id: str, broker_ids: dict[str, str]) -> tuple[str | None,
                                                                         dict[str, Any]]:
    """How the exchange knows an order (ccxt ``cancel_order``/``fetch_order`` id and params):
    its order id, else our client order id (its create call has not answered). A stop is the
    algo order (``trigger``) until it triggers, then the order it placed in the matching
    engine (``actual_id``)."""
    if "trigger" in broker_ids:
        if broker_ids.get("actual_id"):
            return broker_ids["actual_id"], {}
        if broker_ids.get("order_id"):
            return broker_ids["order_id"], {"trigger": True}
        return None, {"clientOrderId": client_tag(client_order_id), "trigger": True}
    order_id = broker_ids.get("order_id")
    return (order_id, {}) if order_id else (None, {"clientOrderId": client_tag(client_order_id)})


def _trigger_price(command: SubmitOrder, *, config: CcxtConfig, market: dict[str, Any],
                   instrument: Instrument) -> float:
    """A stop's trigger for ccxt's ``triggerPrice`` (a stop-loss: ccxt sends STOP_MARKET for
    a market and STOP for a limit order); refused where it is not sent natively or off the
    tick grid."""
    where = f"ccxt {config.exchange}"
    if config.exchange not in TRIGGER_ORDERS or not market.get("contract"):
        raise ConfigError(f"{where}: stop orders on {market['symbol']} are not sent natively "
                          "(tested: Binance USD-M perpetuals): refused")
    if command.trigger_price is None:
        raise ConfigError(f"{where}: a {command.order_type.name} order needs trigger_price")
    if command.post_only:
        raise ConfigError(f"{where}: post_only does not go with a stop order")
    if command.time_in_force not in (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK):
        raise ConfigError(f"{where}: a stop rests until it triggers: use GTC, not "
                          f"{command.time_in_force.name}")
    tick = instrument.tick_at(command.trigger_price)
    if command.trigger_price <= 0 or command.trigger_price % tick:
        raise ConfigError(f"{where}: trigger price {from_fixed(command.trigger_price)} is not "
                          f"a multiple of tick {from_fixed(tick)} (the exchange's tick_size)")
    return float(from_fixed(command.trigger_price))


# --- errors ------------------------------------------------------------------------------

Outcome = Literal["rate_limited", "clock", "unknown", "refused", "expected"]


def classify(exc: BaseException, exchange_id: str = "") -> Outcome:
    pro = import_ccxt()
    code = exchange_code(exc)
    if code in UNKNOWN_CODES.get(exchange_id, ()):
        return "unknown"
    if code in EXPECTED_CODES.get(exchange_id, ()):
        return "expected"
    if isinstance(exc, pro.DDoSProtection | pro.RateLimitExceeded):
        return "rate_limited"
    if isinstance(exc, pro.InvalidNonce):
        return "clock"
    if isinstance(exc, pro.NetworkError | TimeoutError | OSError):
        return "unknown"
    return "refused"


def exchange_code(exc: BaseException) -> str:
    """The exchange's own error code from a ccxt error (its JSON body), else the error's class."""
    text = str(exc)
    start = text.find("{")
    if start >= 0:
        try:
            body = json.loads(text[start:])
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("code") is not None:
            return str(body["code"])
    return type(exc).__name__

