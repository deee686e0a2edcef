"""Market data from Alpaca into the session's feed (``feed.mode: broker``).

alpaca-py's ``StockDataStream`` (the v2 stock stream, IEX or SIP per ``broker.data_feed``):
each quote becomes a :class:`QuoteTick`, each trade a :class:`TradeTick` (the stream does not
say which side took liquidity: ``Side.NONE``). Sizes are taken as shares, as the v2 stream
reports them. The stream runs on a thread of its own and reconnects by itself; each batch goes
through the feed's :class:`~actors.venues.market_data.StreamSink`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from typing import Any

from actors.venues.alpaca_support import AlpacaConfig
from actors.venues.common import to_fixed
from runtime.messages import QuoteTick, TradeTick

__all__ = ["AlpacaMarketStream"]

log = logging.getLogger("tradewind.venues.market_data")


def _ns(moment: Any, default_ns: int) -> int:
    if isinstance(moment, dt.datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return int(moment.timestamp() * 1_000_000) * 1_000
    return default_ns


class AlpacaMarketStream:
    def __init__(self, config: AlpacaConfig, sink: Any, *, instrument_ids: list[str]) -> None:
        from alpaca.data.enums import DataFeed
        from alpaca.data.live.stock import StockDataStream

        self.sink = sink
        self.by_symbol = {config.symbol_for(iid): iid for iid in instrument_ids}
        key, secret = config.credentials()
        self.stream = StockDataStream(key.reveal(), secret.reveal(),
                                      feed=DataFeed(config.data_feed),
                                      url_override=config.data_url_override)
        symbols = sorted(self.by_symbol)
        self.stream.subscribe_quotes(self._on_quote, *symbols)
        self.stream.subscribe_trades(self._on_trade, *symbols)
        self.thread = threading.Thread(target=self.stream.run, name="tw-alpaca-md", daemon=True)
        self.thread.start()

    async def _on_quote(self, quote: Any) -> None:
        iid = self.by_symbol.get(str(quote.symbol))
        if iid is None or not quote.bid_price or not quote.ask_price:
            return
        now = time.time_ns()
        self.sink.put([QuoteTick(seq=0, ts_event=_ns(quote.timestamp, now), ts_init=now,
                                 instrument_id=iid, bid_price=to_fixed(quote.bid_price),
                                 bid_size=to_fixed(quote.bid_size),
                                 ask_price=to_fixed(quote.ask_price),
                                 ask_size=to_fixed(quote.ask_size))])

    async def _on_trade(self, trade: Any) -> None:
        iid = self.by_symbol.get(str(trade.symbol))
        if iid is None or not trade.size:
            return
        now = time.time_ns()
        self.sink.put([TradeTick(seq=0, ts_event=_ns(trade.timestamp, now), ts_init=now,
                                 instrument_id=iid, price=to_fixed(trade.price),
                                 size=to_fixed(trade.size))])

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, AttributeError):
            self.stream.stop()
        self.thread.join(5)
