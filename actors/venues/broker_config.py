"""Which broker a session's gateway talks to (YAML ``broker:``), and the paper/live opt-in.

::

    broker: {kind: paper}                                   # the simulated venue (default)
    broker: {kind: ib, host: 127.0.0.1, port: 4002, contracts: {SIM-A: {symbol: SPY}}}
    broker: {kind: shioaji, simulation: true}
    broker: {kind: ccxt, exchange: binanceusdm, symbols: {BTC-PERP: BTC/USDT:USDT}}
    broker: {kind: alpaca, paper: true}

A discriminated union on ``kind`` (:data:`BrokerConfig`). Paper accounts (IB ``paper: true``,
Shioaji ``simulation: true``, CCXT ``paper: true``: the exchange's demo or testnet) run with
``tradewind paper``; a real-money account runs only with ``tradewind live --confirm-live``
*and* ``live: true`` in the broker block
(:func:`check_mode`). Credentials never appear here: they come from the environment.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from actors.venues.alpaca_support import AlpacaConfig
from actors.venues.ccxt_support import CcxtConfig
from actors.venues.common import Mode, env_secret
from actors.venues.ib_support import IbConfig
from actors.venues.shioaji_support import ShioajiConfig
from runtime.errors import ConfigError, VenueUnavailable
from runtime.instruments import Instrument

__all__ = [
    "BrokerConfig",
    "PaperBrokerConfig",
    "check_broker",
    "check_mode",
    "day_orders_only",
    "emulated_stops",
    "is_paper_account",
    "native_lists",
    "native_trailing",
    "preflight",
    "with_cli",
]


class PaperBrokerConfig(BaseModel):
    """The paper broker: the simulated venue with the trading config's models and seed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["paper"] = "paper"


BrokerConfig = Annotated[
    PaperBrokerConfig | IbConfig | ShioajiConfig | CcxtConfig | AlpacaConfig,
    Field(discriminator="kind"),
]
Broker = PaperBrokerConfig | IbConfig | ShioajiConfig | CcxtConfig | AlpacaConfig
KINDS = ("paper", "ib", "shioaji", "ccxt", "alpaca")


def native_lists(broker: Broker, instruments: Iterable[str]) -> tuple[str, ...]:
    """The instruments whose linked orders (OCO, OTO, brackets) this broker takes natively: a
    broker config declares it (``native_lists = True``: Interactive Brokers' parent ids and OCA
    groups); the core emulates the lists of every other venue (``runtime.linked``)."""
    if not getattr(type(broker), "native_lists", False):
        return ()
    return tuple(sorted(instruments))


def native_trailing(broker: Broker, instruments: Iterable[str]) -> tuple[str, ...]:
    """The instruments whose trailing stops this broker trails itself: a broker config
    declares it (``native_trailing``: Interactive Brokers' ``TRAIL``, on by default, off with
    ``native_trailing: false``); the core moves the trailing stops of every other venue, and
    those whose trail the broker cannot follow (``runtime.linked``)."""
    if not getattr(broker, "native_trailing", False):
        return ()
    return tuple(sorted(instruments))


def emulated_stops(broker: Broker, instruments: Iterable[str]) -> tuple[str, ...]:
    """The instruments whose stop and stop-limit orders the core holds and releases itself
    (``runtime.stops``): those of a broker whose config declares no native stops
    (``native_stops``: Shioaji; CCXT exchanges other than Binance USD-M). The paper venue, IB
    and Alpaca trigger stops themselves."""
    if getattr(broker, "native_stops", True):
        return ()
    return tuple(sorted(instruments))


def day_orders_only(broker: Broker, instruments: Iterable[str]) -> tuple[str, ...]:
    """The instruments whose GTC limit orders the core keeps alive as one day order per
    trading session (``runtime.daygtc``): those of a broker whose config declares no GTC
    (``native_gtc``: Shioaji, whose orders are ROD, IOC or FOK). The others take GTC."""
    if getattr(broker, "native_gtc", True):
        return ()
    return tuple(sorted(instruments))


def is_paper_account(broker: Broker) -> bool:
    if isinstance(broker, IbConfig | CcxtConfig | AlpacaConfig):
        return broker.paper
    if isinstance(broker, ShioajiConfig):
        return broker.simulation
    return True


def _account_field(broker: Broker) -> str:
    return "broker.simulation" if isinstance(broker, ShioajiConfig) else "broker.paper"


def check_mode(broker: Broker, *, command: Literal["paper", "live"], confirm_live: bool) -> Mode:
    """May ``tradewind <command>`` run this broker block? One clear ConfigError when not.

    ``paper``: the paper broker or a broker's paper account, never ``live: true``.
    ``live``: a real-money account with ``live: true`` in the config *and* ``--confirm-live``.
    """
    if command == "paper":
        if broker.kind == "paper":
            return Mode.PAPER
        if broker.live:
            raise ConfigError(
                "live: true is for `tradewind live --confirm-live`; "
                "tradewind paper runs paper accounts only",
                field="broker.live",
            )
        if not is_paper_account(broker):
            raise ConfigError(
                f"{_account_field(broker)}: false is a real-money account; tradewind paper runs "
                "paper accounts only (IB paper, Shioaji simulation, an exchange's demo): use "
                "tradewind live",
                field=_account_field(broker),
            )
        return Mode.PAPER
    if broker.kind == "paper":
        raise ConfigError(
            "the paper broker cannot trade live: set broker.kind to ib, shioaji, ccxt or alpaca",
            field="broker.kind",
        )
    missing = []
    if not broker.live:
        missing.append("live: true in the config's broker block")
    if not confirm_live:
        missing.append("--confirm-live on the command line")
    if missing:
        raise ConfigError(f"refusing to trade live: missing {' and '.join(missing)}")
    if is_paper_account(broker):
        raise ConfigError(
            f"{_account_field(broker)}: true is a paper account; set it to false for live "
            "trading, or run tradewind paper",
            field=_account_field(broker),
        )
    return Mode.LIVE


def check_broker(broker: Broker, instruments: list[tuple[str, str]]) -> None:
    """The broker block fits the trading config's instruments (``(id, asset_class)``)."""
    if isinstance(broker, IbConfig):
        for iid, _ in instruments:
            broker.contract_for(iid)  # ConfigError naming broker.contracts.<id>
    elif isinstance(broker, CcxtConfig):
        for iid, asset_class in instruments:
            broker.symbol_for(iid)  # ConfigError naming broker.symbols.<id>
            if asset_class not in ("crypto", "future"):
                raise ConfigError(f"ccxt trades crypto spot and futures, not {asset_class} "
                                  f"({iid})", field=f"instruments.{iid}.asset_class")
    elif isinstance(broker, AlpacaConfig):
        for iid, asset_class in instruments:
            if asset_class != "equity":
                raise ConfigError(f"the Alpaca gateway trades US equities, not {asset_class} "
                                  f"({iid})", field=f"instruments.{iid}.asset_class")
    elif isinstance(broker, ShioajiConfig):
        for iid, asset_class in instruments:
            if asset_class not in ("equity", "future"):
                raise ConfigError(
                    f"Shioaji trades Taiwan stocks and futures, not {asset_class} ({iid})",
                    field=f"instruments.{iid}",
                )


def preflight(broker: Broker, *, instruments: dict[str, Instrument] | None = None
              ) -> str | None:
    """Fail fast, before any actor starts: credentials missing from the environment (the error
    names the variable, never a value), the IB gateway not answering on its port, a CCXT
    exchange whose rules differ from the session's instruments. With ``dry_run: true`` (CCXT,
    Alpaca) the account is checked and the report to print is returned."""
    if isinstance(broker, ShioajiConfig):
        env_secret(broker.api_key_env)
        env_secret(broker.secret_key_env)
        return None
    if isinstance(broker, CcxtConfig | AlpacaConfig):
        from actors.venues.dry_run import account_report, check_markets

        broker.credentials()
        if broker.dry_run:
            return account_report(broker, instruments or {})
        if isinstance(broker, CcxtConfig):
            check_markets(broker, instruments or {})
        return None
    if not isinstance(broker, IbConfig):
        return None
    try:
        with socket.create_connection((broker.host, broker.port), broker.connect_timeout_s):
            pass
    except OSError as exc:
        raise VenueUnavailable(
            f"IB gateway {broker.host}:{broker.port} is not reachable ({exc.strerror or exc}): "
            "start TWS or IB Gateway with the API enabled, or set broker.host/broker.port "
            "(--host/--port)"
        ) from None
    return None


def with_cli(broker: Broker, *, kind: str | None, host: str | None, port: int | None,
             dry_run: bool = False) -> Broker:
    """The config's broker block with ``--broker/--host/--port/--dry-run`` applied:
    ``--broker K`` keeps the block when its kind is K, else starts from K's defaults."""
    if kind is not None and kind != broker.kind:
        broker = {"paper": PaperBrokerConfig, "ib": IbConfig, "shioaji": ShioajiConfig,
                  "ccxt": CcxtConfig, "alpaca": AlpacaConfig}[kind]()
    if host is not None or port is not None:
        if not isinstance(broker, IbConfig):
            raise ConfigError("--host/--port are for the IB gateway", field="--host/--port")
        update = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
        broker = broker.model_copy(update=update)
    if dry_run:
        if not isinstance(broker, CcxtConfig | AlpacaConfig):
            raise ConfigError("--dry-run is for the ccxt and alpaca brokers", field="--dry-run")
        broker = broker.model_copy(update={"dry_run": True})
    return broker
