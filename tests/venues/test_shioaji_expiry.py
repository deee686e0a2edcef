"""A Shioaji ROD order ends with its trading day, and Shioaji says nothing at the close (see
``tests/venues/fake_shioaji.py``): the adapter reports the expiry itself, at the close of the
instrument's calendar day, once, after a reconciliation; a kernel's plain DAY order ends
``expired``, a GTC order kept alive by the core (one ROD leg a session) does not."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.venues.broker_config import day_orders_only, emulated_stops
from actors.venues.common import SendLog
from actors.venues.shioaji import ShioajiVenue
from actors.venues.shioaji_support import ShioajiConfig
from backtest.calendars import CalendarConfig
from runtime.instruments import InstrumentRegistry
from runtime.journal import Journal
from runtime.kernel import Kernel
from runtime.messages import (
    Message,
    OrderAccepted,
    OrderExpired,
    OrderFilled,
    OrderSide,
    OrderType,
    SubmitOrder,
    TimeInForce,
    TradeTick,
)
from runtime.orders import OrderStatus
from runtime.taiwan import twse_stock
from runtime.values import FIXED_SCALE, fixed
from tests.runtime.test_kernel_risk import Scripted, act
from tests.venues.fake_shioaji import FakeShioaji, import_sj

INST = "2330.TWSE"
LOT = 1_000 * FIXED_SCALE
S = 10**9
XTAI = CalendarConfig(name="XTAI").resolve()
OPEN = int(dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC).timestamp()) * S  # 09:00 Taipei
CLOSE = int(dt.datetime(2026, 12, 7, 5, 30, tzinfo=dt.UTC).timestamp()) * S  # 13:30 Taipei
NEXT_OPEN = int(dt.datetime(2026, 12, 8, 1, 0, tzinfo=dt.UTC).timestamp()) * S
SETTLE_S = ShioajiConfig().expiry_settle_s


class Gateway:
    """The adapter on a clock the test moves, over the fake and a journal on disk; ``restart``
    is a gateway killed and started again: a new adapter from what the journal holds."""

    def __init__(self, tmp: Path) -> None:
        self.sj = import_sj(str(tmp))
        self.fake = FakeShioaji(self.sj)
        self.path = tmp / "broker.shioaji.journal"
        self.now = OPEN + 3600 * S
        self.journal = Journal(self.path)
        self.venue = self._venue()

    def _venue(self) -> ShioajiVenue:
        venue = ShioajiVenue(self.fake, sj=self.sj, config=ShioajiConfig(),
                             instruments={INST: twse_stock("2330", calendar=XTAI)},
                             send_log=SendLog(self.journal, clock_ns=self.clock),
                             clock_ns=self.clock)
        venue.login()
        return venue

    def clock(self) -> int:
        return self.now

    def restart(self) -> None:
        self.journal = Journal(self.path)  # what a killed gateway left on disk
        self.venue = self._venue()

    def reports(self) -> list[Message]:
        self.fake.deliver()
        self.venue.tick()
        self.fake.deliver()
        return list(self.venue.drain_reports())

    def trade(self, cid: str) -> object:
        return self.fake.trade_of(self.venue.send_log.orders[cid].broker_ids["tag"])


@pytest.fixture
def g(tmp_path: Path) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path)
    yield gateway
    gateway.journal.close()


def day_limit(cid: str, lots: int = 2, tif: TimeInForce = TimeInForce.DAY) -> SubmitOrder:
    return SubmitOrder(seq=1, ts_event=OPEN, ts_init=OPEN, client_order_id=cid, strategy_id="s",
                       instrument_id=INST, side=OrderSide.BUY, order_type=OrderType.LIMIT,
                       quantity=lots * LOT, price=fixed(600), time_in_force=tif)


def kinds(reports: list[Message]) -> list[str]:
    return [type(r).__name__ for r in reports]


def test_a_rod_order_expires_at_its_close_once_after_the_broker_s_last_word(g: Gateway) -> None:
    g.venue.submit(day_limit("d-1"), g.now)
    assert kinds(g.reports()) == ["OrderAccepted"]
    g.now = CLOSE + int(SETTLE_S * S) - S  # the close passed, its deals may still come
    assert g.reports() == []
    g.fake.deal(g.trade("d-1"), 1, 600.0, drop=True)  # the closing auction's, never called back
    calls = len(g.fake.calls)
    g.now = CLOSE + int(SETTLE_S * S)
    fill, expired = g.reports()
    assert "update_status" in g.fake.calls[calls:]  # asked the broker first
    assert isinstance(fill, OrderFilled) and fill.last_qty == LOT
    assert isinstance(expired, OrderExpired) and expired.client_order_id == "d-1"
    assert expired.ts_event == CLOSE  # the order ended at the close
    g.now += 3600 * S
    assert g.reports() == []  # once
    assert g.venue.open_orders() == []
    g.restart()  # the report was journaled: a restarted gateway neither forgets nor repeats it
    assert g.reports() == [] and g.venue.open_orders() == []
    assert g.venue.send_log.orders["d-1"].closed
    assert [type(r).__name__ for r in g.venue.send_log.reports].count("OrderExpired") == 1


def test_an_interrupted_reconciliation_defers_the_expiry(g: Gateway) -> None:
    g.venue.submit(day_limit("d-2"), g.now)
    g.reports()
    g.now = CLOSE + int(SETTLE_S * S)
    g.fake.logged_in = False  # the session expired at SinoPac, its callback not yet come
    assert not any(isinstance(r, OrderExpired) for r in g.reports())  # nothing assumed
    assert g.venue.reconcile_requested and g.venue.open_orders()
    g.fake.logged_in = True
    assert kinds(g.reports()) == ["OrderExpired"]


def test_only_a_rod_order_whose_day_closed_expires(g: Gateway) -> None:
    g.venue.submit(day_limit("today"), g.now)
    g.venue.submit(day_limit("ioc", tif=TimeInForce.IOC), g.now)  # ends at once at SinoPac
    g.reports()
    g.now = CLOSE - S
    assert g.reports() == []
    assert {o.client_order_id for o in g.venue.open_orders()} == {"today", "ioc"}
    g.now = CLOSE + int(SETTLE_S * S)
    (expired,) = g.reports()
    assert expired.client_order_id == "today"  # an IOC is not the adapter's to expire


def test_a_gateway_down_over_the_close_reports_the_expiry_not_a_cancel(g: Gateway) -> None:
    """The next day Shioaji no longer lists the order: the reconciliation at login ends it as
    what happened to it, expired at the earlier close."""
    g.venue.submit(day_limit("d-3"), g.now)
    g.reports()
    g.fake.new_trading_day()  # the gateway was down over the close and the night
    g.fake.login("k", "s")
    g.now = NEXT_OPEN + 60 * S
    g.restart()
    (expired,) = g.reports()
    assert isinstance(expired, OrderExpired) and expired.ts_event == CLOSE


# --- through a kernel (risk and the strategy see one order) ------------------------------------


def kernel() -> Kernel:
    cfg, instrument = ShioajiConfig(), twse_stock("2330", calendar=XTAI)
    k = Kernel(registry=InstrumentRegistry([instrument]),
               strategies=[Scripted("s", instruments=(INST,))], initial_cash=fixed(10**8),
               currency="TWD", namespace="sjx", seed=1,
               emulated_stops=emulated_stops(cfg, [INST]),
               day_orders_only=day_orders_only(cfg, [INST]))
    k.start(OPEN)
    k.handle(TradeTick(0, OPEN + S, OPEN + S, INST, fixed(600), LOT))
    return k


def route(k: Kernel, g: Gateway, out: list[Message]) -> list[Message]:
    seen: list[Message] = list(out)
    while True:
        for msg in out:
            if isinstance(msg, SubmitOrder):
                g.venue.submit(msg, g.now)
        reports = g.reports()
        if not reports:
            return seen
        out = [m for report in reports for m in k.handle(report)]
        seen += reports + out


def strategy_events(k: Kernel) -> list[str]:
    strategy = k.strategies[0]
    assert isinstance(strategy, Scripted)
    return kinds(strategy.events)


def test_a_plain_day_order_ends_expired_in_the_kernel_once(g: Gateway) -> None:
    k = kernel()
    out = route(k, g, act(k, lambda s: s.buy(INST, 2 * LOT, fixed(600),
                                                   time_in_force=TimeInForce.DAY)))
    (sent,) = [m for m in out if isinstance(m, SubmitOrder)]
    g.now = CLOSE + int(SETTLE_S * S)
    route(k, g, [])
    order = k.orders[sent.client_order_id]
    assert order.status is OrderStatus.EXPIRED and not k.open
    assert strategy_events(k).count("OrderExpired") == 1
    g.now += 3600 * S
    assert route(k, g, []) == []


def test_a_gtc_order_s_day_leg_expires_at_the_broker_not_the_order(g: Gateway) -> None:
    k = kernel()
    out = route(k, g, act(k, lambda s: s.buy(INST, 2 * LOT, fixed(600),
                                                   time_in_force=TimeInForce.GTC)))
    (sent,) = [m for m in out if isinstance(m, SubmitOrder)]
    cid = sent.client_order_id
    assert sent.time_in_force is TimeInForce.DAY  # the session's leg, ROD at the broker
    g.now = CLOSE + int(SETTLE_S * S)
    seen = route(k, g, [])
    assert kinds([m for m in seen if isinstance(m, OrderExpired)]) == ["OrderExpired"]
    assert k.orders[cid].status is OrderStatus.ACCEPTED  # the leg ended, the order lives
    assert "OrderExpired" not in strategy_events(k)
    g.now = NEXT_OPEN + S
    seen = route(k, g, k.handle(TradeTick(0, g.now, g.now, INST, fixed(600), LOT)))
    (leg,) = [m for m in seen if isinstance(m, SubmitOrder)]
    assert leg.client_order_id == f"{cid}~2"
    assert any(isinstance(m, OrderAccepted) for m in seen)
    g.fake.deal(g.trade(leg.client_order_id), 2, 600.0)
    route(k, g, [])
    assert k.orders[cid].status is OrderStatus.FILLED
    assert "OrderExpired" not in strategy_events(k)


def test_a_day_bracket_s_take_profit_expiring_at_the_close_ends_the_held_stop(g: Gateway) -> None:
    """Day exits: the take-profit rests at Shioaji as ROD, the stop-loss is held in the core.
    The adapter's expiry of the take-profit at the close cancels the held stop and the list;
    the position stays."""
    k = kernel()
    out = route(k, g, act(k, lambda s: s.bracket(
        INST, OrderSide.BUY, 2 * LOT, entry_price=fixed(600), take_profit=fixed(620),
        stop_loss=fixed(590), time_in_force=TimeInForce.DAY,
        exit_time_in_force=TimeInForce.DAY)))
    (entry,) = [m for m in out if isinstance(m, SubmitOrder)]
    g.fake.deal(g.trade(entry.client_order_id), 2, 600.0)
    released = route(k, g, [])
    (take,) = [m for m in released if isinstance(m, SubmitOrder)]
    (stop,) = [c for c, o in k.open.items() if o.order_type is OrderType.STOP]
    g.now = CLOSE + int(SETTLE_S * S)
    route(k, g, [])
    assert k.orders[take.client_order_id].status is OrderStatus.EXPIRED
    assert k.orders[stop].status is OrderStatus.CANCELED
    assert not k.open and k.portfolio.quantity(INST) == 2 * LOT
