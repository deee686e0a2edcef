"""SinoPac Shioaji helpers: config, the library import (log path first), contracts, order building.

Importing ``shioaji`` writes ``shioaji.log`` into the working directory unless ``SJ_LOG_PATH``
is set (its Rust core reads ``SJ_LOG_PATH``/``SJ_LOG_LEVEL``); :func:`import_shioaji` sets it
under ``var/`` when the caller has not. Constructing ``shioaji.Shioaji`` contacts SinoPac at
once: only :func:`make_client` does it, and only the gateway actor calls that (tests inject a
fake).

The client order id cannot travel as is: Shioaji's ``custom_field`` takes at most 6 letters or
digits (SinoPac's order documentation; the 1.7.9 client does not check it, the server refuses
longer values), so each stock order gets a 6-character tag (``prefix`` + 5 base-36 digits of a
counter) journaled *before* the order is sent; futures orders carry no custom field in their
callbacks and are matched by the broker ids saved the moment ``place_order`` returns.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from runtime.errors import ConfigError
from runtime.instruments import Instrument
from runtime.messages import OrderSide, OrderType, SubmitOrder, TimeInForce
from runtime.values import FIXED_SCALE, from_fixed

__all__ = [
    "CUSTOM_FIELD_MAX",
    "ShioajiConfig",
    "broker_quantity",
    "build_order",
    "custom_tag",
    "import_shioaji",
    "is_rod",
    "make_client",
    "port_quantity",
    "resolve_contract",
]

CUSTOM_FIELD_MAX = 6
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class ShioajiConfig(BaseModel):
    """The Shioaji gateway's config block (YAML ``broker:`` with ``kind: shioaji``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["shioaji"] = "shioaji"
    #: Shioaji has no stop price type (LMT, MKT, MKP): the core holds stops and releases a
    #: market or limit order when triggered (``broker_config.emulated_stops``, ``runtime.stops``)
    native_stops: ClassVar[bool] = False
    #: Shioaji's time in force is ROD, IOC or FOK: the core keeps a GTC limit alive as one ROD
    #: order per session (``broker_config.day_orders_only``, ``runtime.daygtc``)
    native_gtc: ClassVar[bool] = False
    # ``module:callable`` returning the client, called as ``factory(sj, config)`` instead of
    # constructing ``shioaji.Shioaji`` (which contacts SinoPac at once): the hook tests use to
    # inject their fake. ``None``: the real client.
    client_factory: str | None = Field(None, pattern=r"^[\w.]+:\w+$")
    simulation: bool = True  # SinoPac's simulation environment (paper); live needs opt-in
    live: bool = False
    api_key_env: str = "SHIOAJI_API_KEY"
    secret_key_env: str = "SHIOAJI_SECRET_KEY"
    ca_path_env: str = "SHIOAJI_CA_PATH"  # live only: the certificate and its password
    ca_password_env: str = "SHIOAJI_CA_PASSWORD"
    person_id_env: str = "SHIOAJI_PERSON_ID"
    tag_prefix: str = Field("T", min_length=1, max_length=1, pattern="^[A-Z]$")
    orders_per_10s: int = Field(200, gt=0, le=250)  # SinoPac: 250 orders / 10 s
    account_queries_per_5s: int = Field(20, gt=0, le=25)  # 25 / 5 s
    data_queries_per_5s: int = Field(40, gt=0, le=50)  # 50 / 5 s
    reconcile_every_s: float = 60.0
    #: a ROD order ends with its trading day; Shioaji reports nothing at the close, so the
    #: adapter reports the expiry itself, this long after the close (the closing auction's
    #: deals arrive first) and after a reconciliation found the order still unfilled
    expiry_settle_s: float = Field(120.0, ge=0)
    breaker_threshold: int = 3
    timeout_ms: int = 10_000


def import_shioaji(log_dir: str | os.PathLike[str] = "var/log") -> ModuleType:
    """Import shioaji with its log file under ``log_dir`` (unless ``SJ_LOG_PATH`` is set)."""
    if "SJ_LOG_PATH" not in os.environ:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        os.environ["SJ_LOG_PATH"] = str(Path(log_dir) / "shioaji.log")
    try:
        return importlib.import_module("shioaji")
    except ModuleNotFoundError as exc:
        raise ConfigError("the Shioaji gateway needs shioaji (pip install shioaji)") from exc


def make_client(sj: ModuleType, config: ShioajiConfig) -> Any:
    """The client: ``config.client_factory(sj, config)`` when set (tests inject their fake
    there), else the real ``shioaji.Shioaji`` (contacts SinoPac: the gateway actor only)."""
    if config.client_factory:
        module, _, name = config.client_factory.partition(":")
        try:
            factory = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"cannot load {config.client_factory}: {exc}", field="broker.client_factory"
            ) from None
        return factory(sj, config)
    return sj.Shioaji(simulation=config.simulation)


def custom_tag(prefix: str, counter: int) -> str:
    """``prefix`` + ``counter`` in 5 base-36 digits: 6 characters, letters and digits only."""
    if counter < 0 or counter >= 36**5:
        raise ConfigError(f"custom_field counter {counter} out of range")
    digits = ""
    for _ in range(CUSTOM_FIELD_MAX - 1):
        counter, rest = divmod(counter, 36)
        digits = _DIGITS[rest] + digits
    return prefix + digits


def is_odd_lot(instrument: Instrument) -> bool:
    return instrument.asset_class == "equity" and instrument.lot_size == FIXED_SCALE


def broker_quantity(instrument: Instrument, quantity: int) -> int:
    """Port quantity (shares or contracts, fixed point) to Shioaji's unit: board lots of 1,000
    shares for common stock orders, shares for odd lots, contracts for futures."""
    unit = instrument.lot_size if instrument.asset_class == "equity" else FIXED_SCALE
    if quantity % unit:
        raise ConfigError(
            f"quantity {from_fixed(quantity)} is not whole lots of {instrument.instrument_id}"
        )
    return quantity // unit


def port_quantity(instrument: Instrument, broker_qty: int) -> int:
    unit = instrument.lot_size if instrument.asset_class == "equity" else FIXED_SCALE
    return int(broker_qty) * unit


def resolve_contract(api: Any, instrument: Instrument) -> Any:
    """``2330.TWSE`` → ``Contracts.Stocks["2330"]``; ``TXF202612.TAIFEX`` →
    ``Contracts.Futures["TXF"]["TXF202612"]``."""
    symbol = instrument.instrument_id.split(".")[0]
    try:
        if instrument.asset_class == "future":
            return api.Contracts.Futures[symbol[:3]][symbol]
        return api.Contracts.Stocks[symbol]
    except (KeyError, AttributeError, TypeError) as exc:
        raise ConfigError(f"Shioaji has no contract for {instrument.instrument_id}") from exc


_PRICE_TYPES = {OrderType.MARKET: "MKT", OrderType.LIMIT: "LMT"}
#: Shioaji's ``time_in_force`` (``sj.OrderType``) offers ROD (rest of day), IOC and FOK only
_TIF = {
    TimeInForce.DAY: "ROD",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
}


def is_rod(command: SubmitOrder) -> bool:
    """Does ``command`` go out as a ROD order (:func:`build_order`): one that rests until the
    close of its trading day?"""
    tif = _TIF.get(command.time_in_force)
    return tif == "ROD" or (tif is None and command.order_type is OrderType.MARKET)


def build_order(sj: ModuleType, command: SubmitOrder, instrument: Instrument, *, tag: str) -> Any:
    """A ``shioaji.StockOrder`` or ``FuturesOrder`` for ``command``.

    What Shioaji does not offer is refused by name with a :class:`ConfigError` before anything
    is sent (the gateway reports it as a reject), never dropped or replaced: stop orders (no
    stop price type), GTC on an order that rests (``time_in_force`` is ROD, IOC or FOK: GTC
    would silently become a day order; the core sends a GTC limit as one ROD order per
    session, ``runtime.daygtc``, so one arrives here only from a kernel not told; a GTC market
    order, which does not rest, is sent as ROD) and post-only (no maker-only price type or
    flag: the order could take liquidity).
    """
    price_type = _PRICE_TYPES.get(command.order_type)
    if price_type is None:
        raise ConfigError(f"Shioaji takes market and limit orders, not {command.order_type}")
    tif = _TIF.get(command.time_in_force)
    if tif is None and command.order_type is OrderType.MARKET:
        tif = "ROD"  # a market order does not rest: good-till-cancelled and rest-of-day agree
    if tif is None:
        raise ConfigError(
            f"Shioaji has no {command.time_in_force.name} time in force (ROD, IOC or FOK): "
            "the core keeps GTC alive as one ROD order per session only where its kernel is "
            "told the venue has day orders only (broker_config.day_orders_only), and this "
            "order came from one that was not"
        )
    if command.post_only:
        raise ConfigError(
            "Shioaji has no post-only flag (price types LMT/MKT/MKP, time in force ROD/IOC/FOK): "
            "post_only refused rather than sent as a limit order that may take liquidity"
        )
    common = {
        "action": "Buy" if command.side is OrderSide.BUY else "Sell",
        "price": float(from_fixed(command.price or 0)),
        "quantity": broker_quantity(instrument, command.quantity),
        "price_type": price_type,
        "time_in_force": tif,
    }
    if instrument.asset_class == "future":
        return sj.FuturesOrder(**common, octype="Auto")
    lot = "IntradayOdd" if is_odd_lot(instrument) else "Common"
    return sj.StockOrder(**common, order_lot=lot, custom_field=tag)
