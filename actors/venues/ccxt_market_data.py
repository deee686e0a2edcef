"""Market data from a CCXT exchange into the session's feed (``feed.mode: broker``).

``watch_bids_asks`` (Binance: the ``bookTicker`` stream) becomes :class:`QuoteTick` when the
best bid or ask or their sizes changed; ``watch_trades`` (Binance: ``trade``) becomes
:class:`TradeTick` with the taker's side as the aggressor. The public streams need no
credentials. Each batch goes through the feed's :class:`~actors.venues.market_data.StreamSink`
(journaled before the feed sees it). The client runs on a loop of its own thread and
reconnects with backoff (ccxt dials again on the next ``watch_*`` call). The broker block's
``aux`` feeds (funding, mark, open interest) are polled into the same sink
(:class:`~actors.venues.ccxt_aux.CcxtAuxPoller`); :meth:`CcxtMarketStream.telemetry` reports
their age and errors.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from typing import Any

from actors.venues.ccxt_aux import CcxtAuxPoller
from actors.venues.ccxt_support import CcxtConfig, import_ccxt, make_exchange
from actors.venues.common import to_fixed
from runtime.messages import MarketData, QuoteTick, Side, TradeTick

__all__ = ["CcxtMarketStream", "quote_of", "trade_of"]

log = logging.getLogger("tradewind.venues.market_data")


def quote_of(iid: str, ticker: dict[str, Any], now_ns: int) -> QuoteTick | None:
    """A ccxt bid/ask ticker as a quote (``None`` without both sides)."""
    bid, ask = ticker.get("bid"), ticker.get("ask")
    if not bid or not ask:
        return None
    ts = int(ticker.get("timestamp") or 0) * 1_000_000 or now_ns
    return QuoteTick(seq=0, ts_event=ts, ts_init=now_ns, instrument_id=iid,
                     bid_price=to_fixed(bid), bid_size=to_fixed(ticker.get("bidVolume") or 0),
                     ask_price=to_fixed(ask), ask_size=to_fixed(ticker.get("askVolume") or 0))


def trade_of(iid: str, trade: dict[str, Any], now_ns: int) -> TradeTick:
    side = {"buy": Side.BUY, "sell": Side.SELL}.get(str(trade.get("side")), Side.NONE)
    return TradeTick(seq=0, ts_event=int(trade.get("timestamp") or 0) * 1_000_000 or now_ns,
                     ts_init=now_ns, instrument_id=iid, price=to_fixed(trade["price"]),
                     size=to_fixed(trade["amount"]), aggressor=side)


class CcxtMarketStream:
    def __init__(self, config: CcxtConfig, sink: Any) -> None:
        self.config, self.sink = config, sink
        self.by_symbol = {sym: iid for iid, sym in config.symbols.items()}
        self.last: dict[str, tuple[int, int, int, int]] = {}
        self.pro = import_ccxt()
        self.main: asyncio.Task[None] | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tw-ccxt-md",
                                       daemon=True)
        self.thread.start()
        self.task = asyncio.run_coroutine_threadsafe(self._run(), self.loop)
        self.aux: CcxtAuxPoller | None = None
        if config.aux:
            self.aux = CcxtAuxPoller(config, list(config.aux), sink.put)
            self.aux.start()

    def telemetry(self) -> dict[str, Any]:
        """The auxiliary feeds: per feed its age, staleness and errors (empty without any)."""
        return {} if self.aux is None else self.aux.telemetry()

    async def _run(self) -> None:
        self.main = asyncio.current_task()
        self.exchange = make_exchange(self.config, credentials=None)
        symbols = sorted(self.by_symbol)
        loops = [self._watch(lambda: self.exchange.watch_bids_asks(symbols), self._quotes)]
        loops += [self._watch(lambda s=s: self.exchange.watch_trades(s), self._trades)
                  for s in symbols]
        try:
            await asyncio.gather(*loops)
        finally:
            await self.exchange.close()

    async def _watch(self, call: Any, handle: Any) -> None:
        delay = self.config.backoff_min_s
        while True:
            try:
                handle(await call())
                delay = self.config.backoff_min_s
            except self.pro.BaseError as exc:
                log.warning("%s market data: %s; again in %.1fs", self.config.exchange,
                            type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.backoff_max_s)

    def _quotes(self, tickers: dict[str, Any]) -> None:
        now, batch = time.time_ns(), list[MarketData]()
        for symbol, ticker in sorted(tickers.items()):
            iid = self.by_symbol.get(symbol)
            quote = quote_of(iid, ticker, now) if iid else None
            if quote is None or iid is None:
                continue
            key = (quote.bid_price, quote.bid_size, quote.ask_price, quote.ask_size)
            if self.last.get(iid) != key:
                self.last[iid] = key
                batch.append(quote)
        self.sink.put(batch)

    def _trades(self, trades: list[dict[str, Any]]) -> None:
        now = time.time_ns()
        self.sink.put([trade_of(self.by_symbol[t["symbol"]], t, now) for t in trades
                       if t.get("symbol") in self.by_symbol])

    def close(self) -> None:
        if self.aux is not None:
            self.aux.close()

        async def stop() -> None:  # the run's finally closes the client's sockets
            if self.main is not None:
                self.main.cancel()
                await asyncio.gather(self.main, return_exceptions=True)

        with contextlib.suppress(concurrent.futures.TimeoutError):
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
