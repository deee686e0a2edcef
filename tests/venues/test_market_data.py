"""Broker market data into feed messages: IB reqMktData/reqMktDepth through the unmodified
ib_async client against the loopback fake (which speaks tickPrice and updateMktDepth), and
Shioaji tick / bid-ask v1 callbacks from the callback fake (its quote surface); the stream
journal that a restarted feed reloads."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.feed_log import FeedMessages
from actors.venues.ib_support import ContractSpec, IbConfig
from actors.venues.market_data import IbMarketStream, ShioajiMarketStream, StreamSink
from runtime.errors import ConfigError
from runtime.messages import BookSnapshot, QuoteTick, Side, TradeTick
from runtime.taiwan import twse_stock
from runtime.values import fixed
from tests.venues.broker_helpers import FakeIbThread
from tests.venues.conftest import PLANTED_KEY, PLANTED_SECRET
from tests.venues.fake_shioaji import FakeShioaji, import_sj

pytest.importorskip("ib_async")


@pytest.fixture
def fake_ib() -> Iterator[FakeIbThread]:
    fake = FakeIbThread()
    yield fake
    fake.close()


def _until(check: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_ib_quotes_trades_and_depth_become_market_data(fake_ib: FakeIbThread,
                                                       tmp_path: Path) -> None:
    messages = FeedMessages([])
    sink = StreamSink(tmp_path / "feed.stream.journal", messages)
    config = IbConfig(port=fake_ib.port, client_id=5,
                      contracts={"AAPL.NASDAQ": ContractSpec(symbol="AAPL", con_id=265598)})
    stream = IbMarketStream(config, sink, depth_rows=5)
    try:
        fake = fake_ib.fake
        _until(lambda: fake_ib.call(lambda: bool(fake._live(fake.depth_subs, "AAPL"))))
        _until(lambda: any(isinstance(m, QuoteTick) for m in messages))  # the first quote
        assert fake_ib.call(fake.quote, "AAPL", 101.25, 400, 101.5, 300) == 1
        fake_ib.call(fake.trade, "AAPL", 101.5, 25)
        fake_ib.call(lambda: fake.depth("AAPL", position=0, operation=0, side=1,
                                        price=101.25, size=400))
        fake_ib.call(lambda: fake.depth("AAPL", position=0, operation=0, side=0,
                                        price=101.5, size=300))
        _until(lambda: any(isinstance(m, BookSnapshot) and m.bids and m.asks for m in messages))
        _until(lambda: any(isinstance(m, TradeTick) for m in messages))
    finally:
        stream.close()
    quotes = [m for m in messages if isinstance(m, QuoteTick)]
    assert (quotes[0].bid_price, quotes[0].ask_price) == (fixed("99.5"), fixed("100"))
    last = quotes[-1]
    assert (last.bid_price, last.bid_size, last.ask_price, last.ask_size) == (
        fixed("101.25"), fixed(400), fixed("101.5"), fixed(300))
    assert all(q.instrument_id == "AAPL.NASDAQ" for q in quotes)
    (trade,) = [m for m in messages if isinstance(m, TradeTick)]
    assert (trade.price, trade.size) == (fixed("101.5"), fixed(25))
    book = [m for m in messages if isinstance(m, BookSnapshot)][-1]
    assert book.bids == ((fixed("101.25"), fixed(400)),)
    assert book.asks == ((fixed("101.5"), fixed(300)),)
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
    # a restarted feed reloads exactly what was journaled, in order
    again = FeedMessages([])
    StreamSink(tmp_path / "feed.stream.journal", again)
    assert again == messages


def test_ib_stream_with_no_gateway_keeps_retrying_without_raising(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    messages = FeedMessages([])
    with pytest.raises(ConfigError, match=r"broker.contracts.AAPL.NASDAQ.con_id"):
        IbMarketStream(IbConfig(contracts={"AAPL.NASDAQ": ContractSpec(symbol="AAPL")}),
                       StreamSink(tmp_path / "x.journal", FeedMessages([])))
    config = IbConfig(port=port, connect_timeout_s=0.5, reconnect_min_s=0.1,
                      contracts={"AAPL.NASDAQ": ContractSpec(symbol="AAPL", con_id=265598)})
    stream = IbMarketStream(config, StreamSink(tmp_path / "s.journal", messages))
    time.sleep(0.5)
    assert not stream.task.done() and messages == []
    stream.close()


def test_shioaji_ticks_and_bidask_become_market_data(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from actors.venues import market_data
    from actors.venues.shioaji_support import ShioajiConfig

    api = FakeShioaji(import_sj(str(tmp_path)))  # never shioaji.Shioaji
    monkeypatch.setattr(market_data, "make_client", lambda sj, config: api)
    messages = FeedMessages([])
    config = ShioajiConfig(api_key_env="TW_TEST_SJ_API_KEY",
                           secret_key_env="TW_TEST_SJ_SECRET_KEY")
    ShioajiMarketStream(config, StreamSink(tmp_path / "s.journal", messages),
                        instruments={"2330.TWSE": twse_stock("2330")}, log_dir=tmp_path)
    assert sorted(api.subscriptions) == [("2330", "bid_ask"), ("2330", "tick")]
    assert api.logins == [(PLANTED_KEY, PLANTED_SECRET)]  # from the environment
    at = dt.datetime(2026, 11, 20, 9, 0, 5)  # Taipei wall time
    api.push_tick("2330", "1005", 3, tick_type=1, at=at)
    api.push_tick("2317", "150", 1, at=at)  # not an instrument of the session: ignored
    api.push_bidask("2330", [("1000", 5), ("995", 0)], [("1005", 2), ("1010", 7)], at=at)
    trade, book, quote = messages
    utc = int(dt.datetime(2026, 11, 20, 1, 0, 5, tzinfo=dt.UTC).timestamp()) * 10**9
    assert isinstance(trade, TradeTick) and trade.ts_event == utc
    assert (trade.price, trade.size, trade.aggressor) == (fixed(1005), fixed(3000), Side.BUY)
    assert isinstance(book, BookSnapshot)
    assert book.bids == ((fixed(1000), fixed(5000)),)
    assert book.asks == ((fixed(1005), fixed(2000)), (fixed(1010), fixed(7000)))
    assert isinstance(quote, QuoteTick) and (quote.bid_price, quote.ask_size) == (
        fixed(1000), fixed(2000))
