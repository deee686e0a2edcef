"""Before a CCXT or Alpaca session starts: the account behind the credentials, and (CCXT) the
exchange's rules for the configured markets against the session's instruments.

:func:`account_report` is what ``tradewind paper|live`` prints with ``broker.dry_run: true``
(or ``--dry-run``): the account (credentials checked against the account endpoint), the broker
block with every credential shown by variable name only, and for CCXT each market's rules as an
``instruments:`` entry. :func:`check_markets` refuses a session whose instruments differ from
the exchange's (tick, lot, minimums, contract size): prices are never rounded to fit.
"""

from __future__ import annotations

import asyncio
from typing import Any

import yaml

from actors.venues.alpaca_support import AlpacaConfig, make_clients
from actors.venues.ccxt_support import (
    CcxtConfig,
    exchange_code,
    import_ccxt,
    make_exchange,
    market_rules,
)
from runtime.errors import ConfigError, VenueUnavailable
from runtime.instruments import Instrument
from runtime.values import from_fixed

__all__ = ["account_report", "check_markets", "redacted"]


def redacted(broker: CcxtConfig | AlpacaConfig) -> dict[str, Any]:
    """The broker block as configured: credentials appear as their variables' names (they are
    never in the block; their values are never printed)."""
    block = broker.model_dump(mode="json")
    for key in [k for k in block if k.endswith("_env") and block[k]]:
        block[key] = f"{block[key]} (set; value hidden)"
    return block


def check_markets(broker: CcxtConfig, instruments: dict[str, Instrument]) -> None:
    """ConfigError naming each field where the session's instruments differ from the
    exchange's markets (public data: no credentials needed)."""
    drifts = asyncio.run(_markets(broker, instruments))[1]
    if drifts:
        raise ConfigError("the exchange's rules differ: " + "; ".join(drifts))


async def _markets(broker: CcxtConfig, instruments: dict[str, Instrument],
                   credentials: bool = False) -> tuple[list[Instrument], list[str],
                                                       dict[str, Any]]:
    pro = import_ccxt()
    exchange = make_exchange(broker, credentials=broker.credentials() if credentials else None)
    try:
        markets = await exchange.load_markets()
        balance = await exchange.fetch_balance() if credentials else {}
    except pro.AuthenticationError as exc:
        raise VenueUnavailable(f"{broker.exchange} refused the credentials "
                               f"({exchange_code(exc)})") from None
    except pro.BaseError as exc:
        raise VenueUnavailable(f"{broker.exchange} is not reachable ({type(exc).__name__})"
                               ) from None
    finally:
        await exchange.close()
    rules = market_rules(exchange, broker, markets, instruments)
    return list(rules.registry), rules.drifts, balance


def account_report(broker: CcxtConfig | AlpacaConfig,
                   instruments: dict[str, Instrument]) -> str:
    """The dry run's report; :class:`VenueUnavailable` when the account endpoint refuses."""
    lines = [f"dry run ({broker.kind}, {'paper' if broker.paper else 'LIVE'} account): "
             "orders are refused at the gateway, never sent"]
    if isinstance(broker, CcxtConfig):
        rules, drifts, balance = asyncio.run(_markets(broker, instruments, credentials=True))
        totals = {k: v for k, v in (balance.get("total") or {}).items() if v}
        lines.append(f"account: {broker.exchange}, balances {totals}")
        lines.append("the exchange's rules as instruments:")
        lines.append(yaml.safe_dump({"instruments": [_entry(i) for i in rules]},
                                    sort_keys=False).rstrip())
        lines += [f"differs: {d}" for d in drifts]
    else:
        lines.append("account: " + _alpaca_account(broker))
    lines.append("broker block:")
    lines.append(yaml.safe_dump(redacted(broker), sort_keys=True).rstrip())
    return "\n".join(lines)


def _entry(instrument: Instrument) -> dict[str, Any]:
    return {"id": instrument.instrument_id, "venue": instrument.venue,
            "asset_class": instrument.asset_class, "currency": instrument.currency,
            "price_precision": instrument.price_precision,
            "size_precision": instrument.size_precision,
            "lot_size": str(from_fixed(instrument.lot_size)),
            "min_quantity": str(from_fixed(instrument.min_quantity)),
            "min_notional": str(from_fixed(instrument.min_notional)),
            "multiplier": str(from_fixed(instrument.multiplier))}


def _alpaca_account(broker: AlpacaConfig) -> str:
    from alpaca.common.exceptions import APIError
    from requests import RequestException

    rest, _ = make_clients(broker, broker.credentials())
    try:
        account = rest.get_account()
        positions = rest.get_all_positions()
    except APIError as exc:
        raise VenueUnavailable(f"Alpaca refused the account request ({exc.status_code})"
                               ) from None
    except RequestException as exc:
        raise VenueUnavailable(f"Alpaca is not reachable ({type(exc).__name__})") from None
    held = {str(p.symbol): str(p.qty) for p in positions}
    status = getattr(account.status, "value", account.status)
    return (f"{account.account_number} ({status}), cash {account.cash} "
            f"{account.currency}, buying power {account.buying_power}, positions {held}")
