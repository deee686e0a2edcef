"""Market data from the CCXT and Alpaca fakes through the unmodified client libraries into the
feed's sink (``feed.mode: broker``): best bid/ask as quotes, trades as trade ticks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from actors.feed_log import FeedMessages
from actors.venues.alpaca_market_data import AlpacaMarketStream
from actors.venues.alpaca_support import AlpacaConfig
from actors.venues.ccxt_market_data import CcxtMarketStream
from actors.venues.market_data import StreamSink
from runtime.messages import QuoteTick, Side, TradeTick
from runtime.values import fixed
from tests.venues.broker_helpers import FakeAlpacaThread, FakeBinanceThread
from tests.venues.ccxt_helpers import IID, ccxt_config

pytest.importorskip("ccxt")


def _until(check: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("not reached")


def test_ccxt_quotes_and_trades_reach_the_sink(tmp_path: Path) -> None:
    fake = FakeBinanceThread()
    messages = FeedMessages([])
    stream = CcxtMarketStream(ccxt_config(fake.port), StreamSink(tmp_path / "s.journal",
                                                                 messages))
    try:
        _until(lambda: fake.call(lambda: {"btcusdt@bookTicker", "btcusdt@trade"}
                                 <= fake.fake.subscriptions()))
        fake.call(fake.fake.quote, "BTCUSDT", 49999.9, 1.5, 50000.0, 2.25)
        fake.call(fake.fake.quote, "BTCUSDT", 49999.9, 1.5, 50000.0, 2.25)  # unchanged: once
        fake.call(fake.fake.trade, "BTCUSDT", 50000.0, 0.004, False)  # buyer took the ask
        fake.call(fake.fake.quote, "BTCUSDT", 50000.0, 0.5, 50000.1, 1.0)
        _until(lambda: len(messages) >= 3)
        time.sleep(0.3)
    finally:
        stream.close()
        fake.close()
    quotes = [m for m in messages if isinstance(m, QuoteTick)]
    trades = [m for m in messages if isinstance(m, TradeTick)]
    assert [(q.instrument_id, q.bid_price, q.bid_size, q.ask_price, q.ask_size)
            for q in quotes] == [
        (IID, fixed("49999.9"), fixed("1.5"), fixed("50000"), fixed("2.25")),
        (IID, fixed("50000"), fixed("0.5"), fixed("50000.1"), fixed("1"))]
    assert [(t.price, t.size, t.aggressor) for t in trades] == [
        (fixed("50000"), fixed("0.004"), Side.BUY)]
    assert [m.seq for m in messages] == [1, 2, 3]  # numbered by the sink, journaled first


def test_alpaca_quotes_and_trades_reach_the_sink(tmp_path: Path) -> None:
    fake = FakeAlpacaThread()
    messages = FeedMessages([])
    config = AlpacaConfig.model_validate(fake.broker_block(
        data_url_override=f"ws://127.0.0.1:{fake.port}/v2/iex"))
    stream = AlpacaMarketStream(config, StreamSink(tmp_path / "s.journal", messages),
                                instrument_ids=["AAPL.NASDAQ"])
    try:
        _until(lambda: fake.call(lambda: fake.fake.data_subscriptions())
               == {"trades": {"AAPL"}, "quotes": {"AAPL"}})
        fake.call(fake.fake.quote, "AAPL", 189.98, 300, 190.02, 200)
        fake.call(fake.fake.trade, "AAPL", 190.01, 50)
        _until(lambda: len(messages) >= 2)
    finally:
        stream.close()
        fake.close()
    quote, trade = messages
    assert isinstance(quote, QuoteTick) and isinstance(trade, TradeTick)
    assert (quote.instrument_id, quote.bid_price, quote.bid_size, quote.ask_price,
            quote.ask_size) == ("AAPL.NASDAQ", fixed("189.98"), fixed(300), fixed("190.02"),
                                fixed(200))
    assert (trade.price, trade.size, trade.aggressor) == (fixed("190.01"), fixed(50), Side.NONE)
