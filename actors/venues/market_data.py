"""Market data streamed from a broker into the session's feed (``feed.mode: broker``).

* IB: ``reqMktData`` (top of book and trades) and ``reqMktDepth`` (L2 rows) per configured
  contract, on a client of its own (``client_id + market_data_client_offset``); each update of
  the client's tickers becomes :class:`~runtime.messages.QuoteTick` (bid/ask changed),
  :class:`~runtime.messages.TradeTick` (a last-price tick with a size) and
  :class:`~runtime.messages.BookSnapshot` (the depth rows after a depth update).
* Shioaji: ``subscribe(contract, QuoteType.Tick/BidAsk, version=v1)`` with the stock and futures
  tick / bid-ask callbacks; a tick is a ``TradeTick`` (``tick_type`` 1 = buyer-initiated), a
  bid/ask a ``BookSnapshot`` plus a ``QuoteTick`` of its best level. Stock volumes come in board
  lots (1,000 shares) and become shares; Shioaji stamps Taipei wall time.
* CCXT (:mod:`actors.venues.ccxt_market_data`) and Alpaca
  (:mod:`actors.venues.alpaca_market_data`): best bid/ask and trades.

:class:`StreamSink` journals each batch (``feed.stream.journal`` beside the feed's cache) *before*
it becomes visible in the feed's message list, so a restarted feed actor reloads exactly the
messages its saved cursor counted, then subscribes again. Library types stay in this module.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from actors.feed_log import FeedMessages
from actors.journals import open_journal
from actors.venues.alpaca_support import AlpacaConfig
from actors.venues.ccxt_support import CcxtConfig
from actors.venues.common import to_fixed
from actors.venues.ib_support import IbConfig, import_ib
from actors.venues.shioaji_support import ShioajiConfig, import_shioaji, make_client
from runtime.errors import ConfigError, VenueUnavailable
from runtime.instruments import Instrument
from runtime.messages import (
    AuxData,
    BookSnapshot,
    MarketData,
    QuoteTick,
    Side,
    TradeTick,
    decode,
    encode,
)

__all__ = ["IbMarketStream", "ShioajiMarketStream", "StreamSink", "check_streamable",
           "open_stream", "ticker_messages"]

log = logging.getLogger("tradewind.venues.market_data")
_TAIPEI = ZoneInfo("Asia/Taipei")
_LAST, _DELAYED_LAST = 4, 68


class StreamSink:
    """Journal, then append to the feed's list (which the driver reads by index); retention
    (``actors.retention``) drops the oldest from both (:meth:`retire`)."""

    def __init__(self, path: Path, messages: FeedMessages) -> None:
        self.journal = open_journal(path)
        self.messages = messages
        self.lock = threading.Lock()
        snapshot, dropped, tail = self.journal.restore()
        first = None if snapshot is None else cast(MarketData, decode(snapshot))
        messages.reopen(dropped=dropped, first=first,
                        msgs=cast(list[MarketData], [m for _, m in tail]))
        self.seq = len(messages)
        self.opened_ns = time.time_ns()  # the watchdogs count silence from here at the latest
        self.last_ns: dict[str, int] = {}  # instrument -> when its last message arrived

    def health(self) -> dict[str, Any]:
        """When the stream opened, when each instrument was last heard, and now (wall clock,
        ns)."""
        with self.lock:
            return {"since_ns": self.opened_ns, "last_ns": dict(self.last_ns),
                    "messages": self.seq, "now_ns": time.time_ns()}

    def put(self, batch: Iterable[MarketData | AuxData]) -> None:
        import msgspec

        with self.lock:
            out = []
            for msg in batch:
                self.seq += 1
                out.append(msgspec.structs.replace(msg, seq=self.seq))
            if not out:
                return
            for msg in out:
                self.journal.append(msg)
            self.journal.flush()
            # the feed's list is typed as market data; auxiliary data rides in it (the driver,
            # the kernels and the venue take both)
            self.messages.extend(cast(list[MarketData], out))
            now = time.time_ns()
            for msg in out:
                self.last_ns[msg.instrument_id] = now


    def retire(self, upto: Callable[[FeedMessages], int]) -> int:
        """Drop the stream's messages below feed index ``upto(messages)`` (worked out under
        the lock): a snapshot in the journal says how many went (and keeps the first
        message), the entries before it go, and the feed's list lets them go."""
        with self.lock:
            messages = self.messages
            index = upto(messages)
            n = index - messages.cached  # journal seqs 1..n hold feed indices cached..index - 1
            if n <= messages.dropped or messages.first is None:
                return 0
            self.journal.snapshot(encode(messages.first), upto_seq=n)
            self.journal.compact(n)
            return messages.retire(index)


def _num(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) or x <= 0 else x


def _ns(moment: Any, default_ns: int) -> int:
    if not isinstance(moment, dt.datetime):
        return default_ns
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1_000_000) * 1_000


def ticker_messages(iid: str, ticker: Any, last_quote: dict[str, tuple[Any, ...]],
                    now_ns: int) -> list[MarketData]:
    """One IB ticker update as market data (pure: the test drives it with real tickers)."""
    out: list[MarketData] = []
    for tick in ticker.ticks:
        if tick.tickType in (_LAST, _DELAYED_LAST) and _num(tick.size) and _num(tick.price):
            out.append(TradeTick(seq=0, ts_event=_ns(tick.time, now_ns), ts_init=now_ns,
                                 instrument_id=iid, price=to_fixed(tick.price),
                                 size=to_fixed(tick.size)))
    bid, ask = _num(ticker.bid), _num(ticker.ask)
    if bid and ask:
        quote = (bid, _num(ticker.bidSize) or 0.0, ask, _num(ticker.askSize) or 0.0)
        if last_quote.get(iid) != quote:
            last_quote[iid] = quote
            out.append(QuoteTick(seq=0, ts_event=_ns(ticker.time, now_ns), ts_init=now_ns,
                                 instrument_id=iid, bid_price=to_fixed(bid),
                                 bid_size=to_fixed(quote[1]), ask_price=to_fixed(ask),
                                 ask_size=to_fixed(quote[3])))
    if ticker.domTicks:
        out.append(BookSnapshot(
            seq=0, ts_event=_ns(ticker.domTicks[-1].time, now_ns), ts_init=now_ns,
            instrument_id=iid,
            bids=tuple((to_fixed(lv.price), to_fixed(lv.size)) for lv in ticker.domBids),
            asks=tuple((to_fixed(lv.price), to_fixed(lv.size)) for lv in ticker.domAsks)))
    return out


def check_streamable(broker: Any) -> None:
    """IB streams only contracts with a ``con_id`` (ib_async keys its tickers by it): find it
    with ``tradewind fetch``'s contract lookup or in TWS (Contract Description)."""
    if isinstance(broker, IbConfig):
        for iid, spec in sorted(broker.contracts.items()):
            if not spec.con_id:
                raise ConfigError("feed.mode: broker streams IB market data by contract id: "
                                  "set con_id", field=f"broker.contracts.{iid}.con_id")


class IbMarketStream:
    """``reqMktData``/``reqMktDepth`` for every configured contract, on its own loop thread;
    reconnects (and subscribes again) with backoff."""

    def __init__(self, config: IbConfig, sink: StreamSink, *, depth_rows: int = 5,
                 client_offset: int = 100) -> None:
        check_streamable(config)
        self.config, self.sink, self.depth_rows = config, sink, depth_rows
        self.client_id = config.client_id + client_offset
        self.lib = import_ib()
        self.last_quote: dict[str, tuple[Any, ...]] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tw-ib-md",
                                       daemon=True)
        self.thread.start()
        self.stop = threading.Event()
        self.task = asyncio.run_coroutine_threadsafe(self._run(), self.loop)

    async def _run(self) -> None:
        self.ib = self.lib.IB()
        self.ib.pendingTickersEvent += self._on_tickers
        delay = self.config.reconnect_min_s
        while not self.stop.is_set():
            if not self.ib.isConnected():
                try:
                    await self._subscribe()
                    delay = self.config.reconnect_min_s
                except (OSError, TimeoutError, ConnectionError) as exc:
                    log.warning("IB market data: %r; next try in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.config.reconnect_max_s)
                    continue
            await asyncio.sleep(0.05)
        self.ib.disconnect()

    async def _subscribe(self) -> None:
        cfg = self.config
        await self.ib.connectAsync(cfg.host, cfg.port, clientId=self.client_id,
                                   timeout=cfg.connect_timeout_s, readonly=True)
        self.by_ticker: dict[int, str] = {}
        for iid, spec in sorted(cfg.contracts.items()):
            contract = spec.build(self.lib)
            self.by_ticker[id(self.ib.reqMktData(contract))] = iid
            if self.depth_rows:
                self.by_ticker[id(self.ib.reqMktDepth(contract, self.depth_rows))] = iid

    def _on_tickers(self, tickers: Iterable[Any]) -> None:
        now, batch = time.time_ns(), []
        for ticker in tickers:
            iid = self.by_ticker.get(id(ticker))
            if iid is not None:
                batch.extend(ticker_messages(iid, ticker, self.last_quote, now))
        self.sink.put(batch)

    def close(self) -> None:
        self.stop.set()
        try:
            self.task.result(5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def _tw_ns(moment: Any, default_ns: int) -> int:
    """Shioaji stamps Taipei wall time (naive)."""
    if not isinstance(moment, dt.datetime):
        return default_ns
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_TAIPEI)
    return int(moment.timestamp() * 1_000_000) * 1_000


class ShioajiMarketStream:
    """Tick and bid/ask subscriptions of the instruments, through the client's v1 callbacks."""

    def __init__(self, config: ShioajiConfig, sink: StreamSink, *,
                 instruments: dict[str, Instrument], log_dir: Path) -> None:
        from actors.venues.common import env_secret
        from actors.venues.shioaji_support import resolve_contract

        self.sink, self.instruments = sink, instruments
        self.by_code = {iid.split(".")[0]: iid for iid in instruments}
        sj = import_shioaji(log_dir)
        self.api = make_client(sj, config)
        key, secret = env_secret(config.api_key_env), env_secret(config.secret_key_env)
        try:
            self.api.login(api_key=key.reveal(), secret_key=secret.reveal())
        except (sj.ShioajiError, OSError) as exc:
            raise VenueUnavailable(f"Shioaji login failed: {type(exc).__name__}") from exc
        for setter in ("set_on_tick_stk_v1_callback", "set_on_tick_fop_v1_callback"):
            getattr(self.api, setter)(self._on_tick)
        for setter in ("set_on_bidask_stk_v1_callback", "set_on_bidask_fop_v1_callback"):
            getattr(self.api, setter)(self._on_bidask)
        for iid, instrument in sorted(instruments.items()):
            contract = resolve_contract(self.api, instrument)
            for quote_type in (sj.QuoteType.Tick, sj.QuoteType.BidAsk):
                self.api.subscribe(contract, quote_type=quote_type, version=sj.QuoteVersion.v1)
            log.info("Shioaji market data: subscribed %s", iid)

    def _unit(self, iid: str) -> int:
        instrument = self.instruments[iid]
        return instrument.lot_size if instrument.asset_class == "equity" else to_fixed(1)

    def _on_tick(self, tick: Any) -> None:
        iid = self.by_code.get(str(tick.code))
        if iid is None or not int(tick.volume):
            return
        now = time.time_ns()
        aggressor = {1: Side.BUY, 2: Side.SELL}.get(int(tick.tick_type), Side.NONE)
        self.sink.put([TradeTick(seq=0, ts_event=_tw_ns(tick.datetime, now), ts_init=now,
                                 instrument_id=iid, price=to_fixed(tick.close),
                                 size=int(tick.volume) * self._unit(iid), aggressor=aggressor)])

    def _on_bidask(self, bidask: Any) -> None:
        iid = self.by_code.get(str(bidask.code))
        if iid is None:
            return
        now, unit = time.time_ns(), self._unit(iid)
        ts = _tw_ns(bidask.datetime, now)
        bids = tuple((to_fixed(p), int(v) * unit)
                     for p, v in zip(bidask.bid_price, bidask.bid_volume, strict=False) if int(v))
        asks = tuple((to_fixed(p), int(v) * unit)
                     for p, v in zip(bidask.ask_price, bidask.ask_volume, strict=False) if int(v))
        batch: list[MarketData] = [BookSnapshot(seq=0, ts_event=ts, ts_init=now,
                                                instrument_id=iid, bids=bids, asks=asks)]
        if bids and asks:
            batch.append(QuoteTick(seq=0, ts_event=ts, ts_init=now, instrument_id=iid,
                                   bid_price=bids[0][0], bid_size=bids[0][1],
                                   ask_price=asks[0][0], ask_size=asks[0][1]))
        self.sink.put(batch)

    def close(self) -> None:
        """Nothing to stop: the client's callback threads end with the process."""


def open_stream(broker: Any, journal_dir: str, messages: FeedMessages, *,
                instruments: dict[str, Instrument]) -> Any:
    """The feed's broker stream (``feed.mode: broker``): messages streamed before a restart
    are put back into ``messages`` first, then new ones follow."""
    folder = Path(journal_dir)
    sink = StreamSink(folder / "feed.stream.journal", messages)
    if isinstance(broker, IbConfig):
        return IbMarketStream(broker, sink)
    if isinstance(broker, ShioajiConfig):
        return ShioajiMarketStream(broker, sink, instruments=instruments, log_dir=folder)
    if isinstance(broker, CcxtConfig):
        from actors.venues.ccxt_market_data import CcxtMarketStream

        return CcxtMarketStream(broker, sink)
    if isinstance(broker, AlpacaConfig):
        from actors.venues.alpaca_market_data import AlpacaMarketStream

        return AlpacaMarketStream(broker, sink, instrument_ids=sorted(instruments))
    raise ConfigError("feed.mode: broker streams from an IB, Shioaji, CCXT or Alpaca broker "
                      "block", field="feed.mode")
