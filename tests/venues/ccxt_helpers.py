"""The CCXT adapter on its link (its own loop thread) against the fake Binance USD-M exchange on
its own thread, and a port proxy that runs each call on the adapter's loop."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from actors.venues.ccxt_support import CcxtConfig
from actors.venues.common import SendLog
from actors.venues.links import CcxtLink
from runtime.instruments import Instrument
from runtime.journal import Journal
from runtime.messages import (
    CancelOrder,
    ModifyOrder,
    OrderEvent,
    OrderFilled,
    OrderSide,
    OrderType,
    SubmitOrder,
    TimeInForce,
)
from runtime.values import fixed
from runtime.venue import VenueOrder
from tests.venues.broker_helpers import FakeBinanceThread
from tests.venues.fake_binance import ccxt_urls

__all__ = ["IID", "SYMBOL", "CcxtRig", "btc_perp", "ccxt_config", "submit_command"]

IID, SYMBOL = "BTC-PERP", "BTC/USDT:USDT"
_ts = itertools.count(10_000)


def btc_perp() -> Instrument:
    """The session's instrument, as the fake exchange lists BTCUSDT."""
    return Instrument(instrument_id=IID, venue="BINANCEUSDM", asset_class="future",
                      currency="USDT", price_precision=1, size_precision=3,
                      lot_size=fixed("0.001"), min_quantity=fixed("0.001"),
                      min_notional=fixed("100"))


def ccxt_config(port: int, **extra: Any) -> CcxtConfig:
    base: dict[str, Any] = {"exchange": "binanceusdm", "symbols": {IID: SYMBOL},
                            "urls": ccxt_urls(port), "api_key_env": "TW_TEST_CCXT_API_KEY",
                            "secret_env": "TW_TEST_CCXT_SECRET", "poll_every_s": 0.3,
                            "backoff_min_s": 0.2, "backoff_max_s": 2.0}
    return CcxtConfig.model_validate(base | extra)


def submit_command(cid: str, qty: str, price: str | None, *, side: OrderSide = OrderSide.BUY,
                   **extra: Any) -> SubmitOrder:
    """A BTC-PERP order: market without a price, else limit."""
    return SubmitOrder(seq=next(_ts), ts_event=next(_ts), ts_init=0, client_order_id=cid,
                       strategy_id="s", instrument_id=IID, side=side,
                       order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
                       quantity=fixed(qty), price=None if price is None else fixed(price),
                       time_in_force=extra.pop("time_in_force", TimeInForce.GTC), **extra)


class CcxtRig:
    """The adapter (through :class:`CcxtLink`) and the fake, with port calls as in the
    gateway: each runs on the adapter's loop."""

    def __init__(self, tmp: Path, fake: FakeBinanceThread, **config: Any) -> None:
        self.fake = fake
        self.journal = Journal(tmp / "ccxt.journal")
        self.config = ccxt_config(fake.port, **config)
        self.link = CcxtLink(self.config, SendLog(self.journal),
                             instruments={IID: btc_perp()})
        self.venue = self.link.venue
        self.collected: list[OrderEvent] = []

    def submit(self, cid: str, qty: str, price: str | None, **extra: Any) -> None:
        command = submit_command(cid, qty, price, **extra)
        self.link.call(self.venue.submit, command, time.time_ns())

    def cancel(self, cid: str) -> None:
        self.link.call(self.venue.cancel, CancelOrder(
            seq=next(_ts), ts_event=next(_ts), ts_init=0, client_order_id=cid,
            strategy_id="s", instrument_id=IID), time.time_ns())

    def modify(self, cid: str, qty: str, price: str) -> None:
        self.link.call(self.venue.modify, ModifyOrder(
            seq=next(_ts), ts_event=next(_ts), ts_init=0, client_order_id=cid,
            strategy_id="s", instrument_id=IID, quantity=fixed(qty), price=fixed(price)),
            time.time_ns())

    def reports(self) -> list[OrderEvent]:
        out: list[OrderEvent] = self.link.call(self.venue.drain_reports)
        self.collected.extend(out)
        return out

    def wait_for(self, check: Any, timeout_s: float = 15.0) -> list[OrderEvent]:
        """Reports until ``check(all reports so far)`` holds; all of them."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.reports()
            if check(self.collected):
                return self.collected
            time.sleep(0.05)
        raise AssertionError(f"not reached; reports: {self.collected}")

    def open_orders(self) -> list[VenueOrder]:
        return self.link.call(self.venue.open_orders)  # type: ignore[no-any-return]

    def positions(self) -> dict[str, int]:
        return self.link.call(self.venue.positions)  # type: ignore[no-any-return]

    def fills(self) -> list[OrderFilled]:
        return [r for r in self.collected if isinstance(r, OrderFilled)]

    def close(self) -> None:
        self.link.close()
        self.journal.close()
