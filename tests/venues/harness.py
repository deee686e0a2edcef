"""One driver per venue for the port contract: the same calls make each venue ack, fill and
cancel (the simulated venue through market data, the IB, Shioaji, CCXT and Alpaca adapters
through their fakes).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

from actors.venues.common import SendLog
from actors.venues.ib import IbVenue
from actors.venues.ib_support import ContractSpec, IbConfig
from actors.venues.shioaji import ShioajiVenue
from actors.venues.shioaji_support import ShioajiConfig
from runtime.journal import Journal
from runtime.messages import (
    CancelOrder,
    ModifyOrder,
    OrderEvent,
    OrderSide,
    OrderType,
    SubmitOrder,
    TimeInForce,
)
from runtime.taiwan import twse_stock
from runtime.values import FIXED_SCALE, fixed
from tests.backtest.test_venue_helpers import make_venue, quote, trade
from tests.venues.fake_ib import FakeIbGateway
from tests.venues.fake_ib_wire import exec_fields
from tests.venues.fake_shioaji import FakeShioaji, import_sj

__all__ = ["HARNESSES", "AlpacaHarness", "CcxtHarness", "IbHarness", "ShioajiHarness",
           "SimHarness", "make_harness"]

_ts = itertools.count(1_000)


class Harness:
    instrument_id = ""
    unit = FIXED_SCALE  # one lot, fixed point
    price = fixed(10)
    time_in_force = TimeInForce.GTC
    port: Any

    def command(self, cid: str, lots: int, side: OrderSide = OrderSide.BUY) -> SubmitOrder:
        return SubmitOrder(
            seq=next(_ts),
            ts_event=next(_ts),
            ts_init=0,
            client_order_id=cid,
            strategy_id="s",
            instrument_id=self.instrument_id,
            side=side,
            order_type=OrderType.LIMIT,
            quantity=lots * self.unit,
            price=self.price,
            time_in_force=self.time_in_force,
        )

    def submit(self, cid: str, lots: int, side: OrderSide = OrderSide.BUY) -> None:
        self.port.submit(self.command(cid, lots, side), next(_ts))

    def cancel(self, cid: str) -> None:
        self.port.cancel(
            CancelOrder(
                seq=next(_ts),
                ts_event=next(_ts),
                ts_init=0,
                client_order_id=cid,
                strategy_id="s",
                instrument_id=self.instrument_id,
            ),
            next(_ts),
        )

    def modify(self, cid: str, lots: int) -> None:
        self.port.modify(
            ModifyOrder(
                seq=next(_ts),
                ts_event=next(_ts),
                ts_init=0,
                client_order_id=cid,
                strategy_id="s",
                instrument_id=self.instrument_id,
                quantity=lots * self.unit,
            ),
            next(_ts),
        )

    def reports(self) -> list[OrderEvent]:
        self.settle()
        return list(self.port.drain_reports())

    def settle(self) -> None: ...
    def fill(self, cid: str, lots: int, side: OrderSide = OrderSide.BUY) -> None: ...
    def duplicate_last(self) -> None: ...
    def close(self) -> None: ...


class SimHarness(Harness):
    instrument_id = "AAA"

    def __init__(self, tmp: Path) -> None:
        self.port = make_venue({"kind": "l1"})
        self.port.on_market(quote(next(_ts), "9.99", 100, "10.05", 100))

    def settle(self) -> None:
        self.port.on_market(quote(next(_ts), "9.99", 100, "10.05", 100))

    def fill(self, cid: str, lots: int, side: OrderSide = OrderSide.BUY) -> None:
        from runtime.messages import Side

        aggressor = Side.SELL if side is OrderSide.BUY else Side.BUY
        self.port.on_market(trade(next(_ts), "10", lots, aggressor))

    def duplicate_last(self) -> None:
        """The simulated venue never repeats a report: nothing to inject."""


class IbHarness(Harness):
    instrument_id = "AAPL.NASDAQ"

    def __init__(self, tmp: Path, *, positions: dict[str, float] | None = None) -> None:
        """``positions``: what the account holds before the first connect (symbol -> signed)."""
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.fake = FakeIbGateway(positions=dict(positions or {}))
        port = self.loop.run_until_complete(self.fake.start())
        import ib_async

        self.ib = ib_async.IB()
        config = IbConfig(
            port=port,
            client_id=3,
            reset_window=("00:00", "00:00"),
            contracts={self.instrument_id: ContractSpec(symbol="AAPL")},
        )
        self.journal = Journal(tmp / "ib.journal")
        self.port = IbVenue(self.ib, config=config, send_log=SendLog(self.journal))
        self.run(self.port.connect())
        self.last: Any = None

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def settle(self) -> None:
        for _ in range(4):
            self.run(asyncio.sleep(0.01))

    def fill(self, cid: str, lots: int, side: OrderSide = OrderSide.BUY) -> None:
        self.settle()  # the order reaches the fake gateway first
        self.last = self.fake.fill(cid, float(lots), 10.0)

    def duplicate_last(self) -> None:
        ex = self.last
        self.fake._broadcast(*exec_fields(ex, -1))
        self.fake.send_commission(ex)

    def close(self) -> None:
        self.ib.disconnect()
        self.run(self.fake.stop())
        self.journal.close()
        self.loop.close()
        asyncio.set_event_loop(None)


class ShioajiHarness(Harness):
    instrument_id = "2330.TWSE"
    unit = 1_000 * FIXED_SCALE  # a board lot
    price = fixed(600)
    time_in_force = TimeInForce.DAY  # Shioaji has no GTC (ROD is its day order)

    def __init__(self, tmp: Path, *, login: bool = True) -> None:
        self.sj = import_sj(str(tmp))
        self.fake = FakeShioaji(self.sj)
        self.journal = Journal(tmp / "sj.journal")
        self.port = ShioajiVenue(
            self.fake,
            sj=self.sj,
            config=ShioajiConfig(),
            instruments={self.instrument_id: twse_stock("2330")},
            send_log=SendLog(self.journal),
        )
        if login:
            self.port.login()  # no credentials: the fake is logged in already
        self.last: tuple[Any, dict[str, Any]] | None = None

    def settle(self) -> None:
        self.fake.deliver()

    def trade_of(self, cid: str) -> Any:
        tag = self.port.send_log.orders[cid].broker_ids["tag"]
        return self.fake.trade_of(tag)

    def fill(self, cid: str, lots: int, side: OrderSide = OrderSide.BUY) -> None:
        self.fake.deal(self.trade_of(cid), lots, 600.0)
        self.last = self.fake.pending[-1]

    def duplicate_last(self) -> None:
        assert self.last is not None
        self.fake.pending.append(self.last)

    def close(self) -> None:
        self.journal.close()


class LinkedPort:
    """The port of an adapter that lives on a link (its own thread): each call runs there."""

    def __init__(self, link: Any) -> None:
        self.link, self.venue = link, link.venue

    def submit(self, command: SubmitOrder, ts_ns: int) -> None:
        self.link.call(self.venue.submit, command, ts_ns)

    def cancel(self, command: CancelOrder, ts_ns: int) -> None:
        self.link.call(self.venue.cancel, command, ts_ns)

    def modify(self, command: ModifyOrder, ts_ns: int) -> None:
        self.link.call(self.venue.modify, command, ts_ns)

    def open_orders(self) -> Any:
        return self.link.call(self.venue.open_orders)

    def positions(self) -> Any:
        return self.link.call(self.venue.positions)

    def fills_since(self, cursor: int) -> Any:
        return self.link.call(self.venue.fills_since, cursor)

    def drain_reports(self) -> Any:
        return self.link.call(self.venue.drain_reports)


class _LinkedHarness(Harness):
    fake: Any
    link: Any
    journal: Journal

    def settle(self) -> None:
        """Until nothing waits to be sent, then a moment for the stream's events."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.link.call(self._busy):
            time.sleep(0.02)
        time.sleep(0.3)

    def _busy(self) -> bool:
        return bool(len(self.link.venue.queue) or self.link.venue.inflight)

    def duplicate_last(self) -> None:
        self.fake.call(self.fake.fake.push_again)

    def close(self) -> None:
        self.link.close()
        self.fake.close()
        self.journal.close()


class CcxtHarness(_LinkedHarness):
    """The CCXT adapter (ccxt.pro binanceusdm) on the Binance USD-M fake; lots of 0.001 BTC."""

    instrument_id = "BTC-PERP"
    unit = fixed("0.001")
    price = fixed(50_000)

    def __init__(self, tmp: Path) -> None:
        from actors.venues.links import CcxtLink
        from tests.venues.broker_helpers import FakeBinanceThread
        from tests.venues.ccxt_helpers import btc_perp, ccxt_config

        self.fake = FakeBinanceThread()
        self.journal = Journal(tmp / "ccxt.journal")
        self.link = CcxtLink(ccxt_config(self.fake.port), SendLog(self.journal),
                             instruments={self.instrument_id: btc_perp()})
        self.port = LinkedPort(self.link)
        deadline = time.monotonic() + 10  # the user stream up: fills come from it
        while time.monotonic() < deadline and self.link.venue.stream.down:
            time.sleep(0.05)

    def fill(self, cid: str, lots: int, side: OrderSide = OrderSide.BUY) -> None:
        self.settle()
        self.fake.call(self.fake.fake.fill, cid, lots / 1000, 50_000.0)


class AlpacaHarness(_LinkedHarness):
    """The Alpaca adapter (alpaca-py) on the Alpaca fake."""

    instrument_id = "AAPL.NASDAQ"
    time_in_force = TimeInForce.DAY

    def __init__(self, tmp: Path) -> None:
        from actors.venues.alpaca_support import AlpacaConfig
        from actors.venues.links import AlpacaLink
        from runtime.instruments import Instrument
        from tests.venues.broker_helpers import FakeAlpacaThread

        self.fake = FakeAlpacaThread()
        self.journal = Journal(tmp / "alpaca.journal")
        config = AlpacaConfig.model_validate(self.fake.broker_block())
        self.link = AlpacaLink(config, SendLog(self.journal),
                               instruments={self.instrument_id: Instrument(
                                   instrument_id=self.instrument_id)})
        self.port = LinkedPort(self.link)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.link.venue.stream_down:
            time.sleep(0.05)

    def fill(self, cid: str, lots: int, side: OrderSide = OrderSide.BUY) -> None:
        self.settle()
        self.fake.call(self.fake.fake.fill, cid, lots, 10.0)


HARNESSES = {"paper": SimHarness, "ib": IbHarness, "shioaji": ShioajiHarness,
             "ccxt": CcxtHarness, "alpaca": AlpacaHarness}


def make_harness(name: str, tmp: Path) -> Harness:
    return HARNESSES[name](tmp)  # type: ignore[abstract]
