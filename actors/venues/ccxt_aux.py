"""Auxiliary data from a CCXT exchange: funding rates, mark/index prices and open interest,
polled through ccxt's unified API (public endpoints: no credentials).

* ``funding``: ``fetch_funding_rate`` (Binance USD-M: ``GET /fapi/v1/premiumIndex``) becomes a
  :class:`FundingRate` for the *next* funding time (an estimate: it charges nothing) and
  ``fetch_funding_rate_history`` (``GET /fapi/v1/fundingRate``) the settled rates since the last
  one seen (these are what a backtest charges when they are recorded and replayed);
* ``mark``: the same premium index as an :class:`IndexMarkPrice`;
* ``open_interest``: ``fetch_open_interest`` (``GET /fapi/v1/openInterest``) as
  :class:`OpenInterest`;
* ``borrow`` (a spot instrument): ``fetch_cross_borrow_rate`` of its base asset (Binance:
  ``GET /sapi/v1/margin/interestRateHistory``, the cross-margin daily rate, a signed request:
  the feed needs the account's key) as a :class:`BorrowRate`, annualised on the carry's
  actual/360 basis (a daily rate times 360), so a short accrues per day what the exchange
  charges per day. Where ccxt has no cross-margin rate for the exchange, or the paper
  environment has no margin API (Binance's demo and testnet have none), the feed is refused
  when the poller is built, naming why.

:class:`CcxtAuxPoller` runs the polls the pure :class:`~actors.venues.aux_feeds.AuxPolls` says are
due, hands each batch to ``sink`` (the session's feed: journaled, recorded, replayed), and on an
error (a 429, a 5xx, a timeout, an answer that does not parse) backs off per feed, honouring a
429's ``Retry-After``. ``poll_due`` is one round (tests call it); ``start`` runs rounds on a loop
of its own thread until ``close``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from actors.venues.aux_feeds import AuxFeedConfig, AuxPolls
from actors.venues.ccxt_support import CcxtConfig, import_ccxt, make_exchange
from actors.venues.common import to_fixed
from runtime.carry import BORROW_DAY_COUNT
from runtime.errors import ConfigError, DataError
from runtime.messages import AuxData, BorrowRate, FundingRate, IndexMarkPrice, OpenInterest

__all__ = ["CcxtAuxPoller", "borrow_of", "funding_of", "history_of", "mark_of",
           "open_interest_of"]

log = logging.getLogger("tradewind.venues.aux")
_MS = 1_000_000


def _stamp(data: dict[str, Any], now_ns: int) -> int:
    return int(data.get("timestamp") or 0) * _MS or now_ns


def funding_of(iid: str, data: dict[str, Any], now_ns: int) -> FundingRate | None:
    """ccxt's funding rate structure as the estimate for its next funding time; None when it
    has none, or when that time is not after the answer's own time (an answer from around a
    funding, before the exchange moved its next funding time on): stamped at or after its
    funding time it would read as a settled rate (``ts_event >= funding_ts``) and be charged
    with a rate and mark that were never settled, and the settled row, polled from the
    history, would then be refused as a funding already charged."""
    rate, funding_ms = data.get("fundingRate"), data.get("fundingTimestamp")
    if rate is None or not funding_ms:
        return None
    stamp, funding_ts = _stamp(data, now_ns), int(funding_ms) * _MS
    if funding_ts <= stamp:
        return None
    mark = data.get("markPrice")
    return FundingRate(seq=0, ts_event=stamp, ts_init=now_ns, instrument_id=iid,
                       rate=to_fixed(rate), funding_ts=funding_ts,
                       mark_price=to_fixed(mark) if mark else 0)


def mark_of(iid: str, data: dict[str, Any], now_ns: int) -> IndexMarkPrice | None:
    mark, index = data.get("markPrice"), data.get("indexPrice")
    if not mark:
        return None
    return IndexMarkPrice(seq=0, ts_event=_stamp(data, now_ns), ts_init=now_ns,
                          instrument_id=iid, mark_price=to_fixed(mark),
                          index_price=to_fixed(index) if index else 0)


def history_of(iid: str, rows: list[dict[str, Any]], now_ns: int) -> list[FundingRate]:
    """Settled rates (``fetch_funding_rate_history``), stamped at their funding time; the mark
    is the exchange's own (``info.markPrice``) when it sends one."""
    out = []
    for row in rows:
        at = int(row["timestamp"]) * _MS
        mark = (row.get("info") or {}).get("markPrice")
        out.append(FundingRate(seq=0, ts_event=at, ts_init=now_ns, instrument_id=iid,
                               rate=to_fixed(row["fundingRate"]), funding_ts=at,
                               mark_price=to_fixed(mark) if mark else 0))
    return out


def open_interest_of(iid: str, data: dict[str, Any], now_ns: int) -> OpenInterest:
    amount = data.get("openInterestAmount")
    if amount is None:
        raise DataError(f"open interest of {iid} without an amount: {data.get('info')!r}")
    return OpenInterest(seq=0, ts_event=_stamp(data, now_ns), ts_init=now_ns,
                        instrument_id=iid, open_interest=to_fixed(amount))


def borrow_of(iid: str, data: dict[str, Any], now_ns: int) -> BorrowRate:
    """ccxt's borrow rate structure (a rate per ``period`` ms) as an annual rate on the
    actual/360 basis the carry accrues daily."""
    rate, period_ms = data.get("rate"), data.get("period") or 86_400_000
    if rate is None:
        raise DataError(f"borrow rate of {iid} without a rate: {data.get('info')!r}")
    annual = Decimal(str(rate)) * Decimal(86_400_000) / Decimal(int(period_ms)) * \
        BORROW_DAY_COUNT
    return BorrowRate(seq=0, ts_event=_stamp(data, now_ns), ts_init=now_ns,
                      instrument_id=iid, rate=to_fixed(annual))


def _check_borrow(config: CcxtConfig) -> None:
    """A ``borrow`` feed is possible here: ccxt has the exchange's cross-margin rate and the
    chosen environment has the margin API."""
    exchange = make_exchange(config, credentials=None)
    if not exchange.has.get("fetchCrossBorrowRate"):
        raise ConfigError(f"ccxt {config.exchange} has no cross-margin borrow rate "
                          "(fetchCrossBorrowRate): no borrow feed there", field="broker.aux")
    if config.exchange.startswith("binance") and not exchange.urls["api"].get("sapi"):
        raise ConfigError(f"{config.exchange}'s paper environment has no margin API: a borrow "
                          "feed needs paper: false (a read-only key will do) or urls.sapi",
                          field="broker.aux")


class CcxtAuxPoller:
    """Polls the configured feeds of one exchange; batches go to ``sink``."""

    def __init__(self, config: CcxtConfig, feeds: list[AuxFeedConfig],
                 sink: Callable[[list[AuxData]], None], *,
                 clock: Callable[[], float] = time.time) -> None:
        for feed in feeds:
            config.symbol_for(feed.instrument)  # an instrument without a symbol: ConfigError
        self.signed = any(feed.kind == "borrow" for feed in feeds)
        if self.signed:
            _check_borrow(config)
        self.config, self.sink, self.clock = config, sink, clock
        self.polls = AuxPolls(feeds, backoff_min_s=config.backoff_min_s,
                              backoff_max_s=config.backoff_max_s)
        self.pro = import_ccxt()
        self.exchange: Any = None
        self.settled_ms: dict[str, int] = {}  # instrument -> last settled funding time seen
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None

    async def poll_due(self) -> int:
        """One round: every due feed polled once; the messages handed to the sink."""
        if self.exchange is None:  # public, unless a borrow feed asks for the account's rate
            self.exchange = make_exchange(
                self.config, credentials=self.config.credentials() if self.signed else None)
        sent = 0
        for key in self.polls.due(self.clock()):
            try:
                batch = await self._poll(*key)
            except (self.pro.BaseError, DataError, OSError) as exc:
                retry = self._retry_after(exc)
                delay = self.polls.on_error(key, f"{type(exc).__name__}: {exc}"[:300],
                                            self.clock(), retry_after_s=retry)
                log.warning("%s %s of %s: %s; again in %.1fs", self.config.exchange, key[0],
                            key[1], type(exc).__name__, delay)
                continue
            self.polls.on_ok(key, batch, self.clock())
            if batch:
                self.sink(batch)
                sent += len(batch)
        return sent

    async def _poll(self, kind: str, iid: str) -> list[AuxData]:
        symbol = self.config.symbol_for(iid)
        now_ns = int(self.clock() * 1e9)
        if kind == "open_interest":
            return [open_interest_of(iid, await self.exchange.fetch_open_interest(symbol),
                                     now_ns)]
        if kind == "borrow":
            await self.exchange.load_markets()
            market = self.exchange.market(symbol)
            if not market.get("spot"):
                raise DataError(f"borrow of {iid}: {symbol} is not a spot market (a contract's "
                                "carry is its funding)")
            rate = await self.exchange.fetch_cross_borrow_rate(market["base"])
            return [borrow_of(iid, rate, now_ns)]
        premium = await self.exchange.fetch_funding_rate(symbol)
        if kind == "mark":
            mark = mark_of(iid, premium, now_ns)
            return [mark] if mark is not None else []
        since = self.settled_ms.get(iid)
        rows = await self.exchange.fetch_funding_rate_history(
            symbol, since=None if since is None else since + 1)
        settled = history_of(iid, rows, now_ns)
        if settled:
            self.settled_ms[iid] = settled[-1].funding_ts // _MS
        estimate = funding_of(iid, premium, now_ns)
        return [*settled, *([estimate] if estimate is not None else [])]

    def _retry_after(self, exc: BaseException) -> float:
        if not isinstance(exc, self.pro.RateLimitExceeded | self.pro.DDoSProtection):
            return 0.0
        headers = getattr(self.exchange, "last_response_headers", None) or {}
        try:
            return float(headers.get("Retry-After", 0))
        except (TypeError, ValueError):
            return 0.0

    async def aclose(self) -> None:
        """Close the client (a poller driven by :meth:`poll_due` on the caller's loop)."""
        if self.exchange is not None:
            await self.exchange.close()
            self.exchange = None

    def telemetry(self) -> dict[str, dict[str, float | int | str | bool | None]]:
        return self.polls.telemetry(self.clock())

    # --- on a thread of its own (a session) ------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tw-ccxt-aux",
                                        daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._run(), self._loop)

    async def _run(self) -> None:
        self._main = asyncio.current_task()
        try:
            while True:
                await self.poll_due()
                await asyncio.sleep(max(0.05, self.polls.next_due_s() - self.clock()))
        finally:
            if self.exchange is not None:
                await self.exchange.close()

    def close(self) -> None:
        """Stop the polls; the run's ``finally`` closes the client."""
        loop = self._loop
        if loop is None:
            return

        async def stop() -> None:
            if self._main is not None:
                self._main.cancel()
                await asyncio.gather(self._main, return_exceptions=True)

        with contextlib.suppress(concurrent.futures.TimeoutError):
            asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None
