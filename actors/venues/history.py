"""Historical market data from the brokers, as canonical store tables (``bars``, ``quotes``).

* IB: ``reqHistoricalData`` (bars; ``formatDate=2`` so times are epoch seconds, UTC) and
  ``reqHistoricalTicks`` (``BID_ASK`` quotes, paged by time, at most 1,000 per request). Pacing
  stays below IB's historical limits (60 requests per 10 minutes: a token bucket of
  ``requests_per_10min``); a pacing violation (error 162/420) waits ``backoff_s`` (doubling) and
  retries, ``max_retries`` times, then is a :class:`~runtime.errors.DataError`.
* Shioaji: ``kbars`` (1-minute bars) and ``ticks`` (per day), through the data-query bucket
  (50 per 5 s at SinoPac: configured below). Shioaji stamps both in nanoseconds of Taipei wall
  time written as if it were UTC, and a kbar at the end of its minute: ``ts - 8 h`` is the UTC
  close time.

A bar's ``ts_event`` is its *close* time (``open + interval``), as everywhere in Tradewind.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from actors.venues.common import TokenBucket, to_fixed
from actors.venues.ib_support import PACING_CODES
from backtest.data.schema import SCHEMAS, seq_within_ts
from runtime.errors import DataError, VenueUnavailable

__all__ = ["IbHistory", "bars_table", "quotes_table", "shioaji_bars", "shioaji_quotes"]

_NS = 1_000_000_000
BarRow = tuple[int, Any, Any, Any, Any, Any]  # (close_ns, open, high, low, close, volume)
QuoteRow = tuple[int, Any, Any, Any, Any]  # (ts_ns, bid, bid_size, ask, ask_size)
_TAIPEI_NS = 8 * 3600 * _NS  # Shioaji's timestamps are Taipei wall time labelled UTC
_BAR_SIZES = {"1 min": 60, "5 mins": 300, "15 mins": 900, "1 hour": 3600, "1 day": 86_400}


def bars_table(
    instrument_id: str,
    rows: Sequence[BarRow],
    *,
    interval_ns: int,
    now_ns: int,
) -> pa.Table:
    """Rows ``(close_ns, open, high, low, close, volume)`` (broker numbers) → a bars table."""
    rows = sorted(rows, key=lambda r: r[0])
    ts = [r[0] for r in rows]
    import numpy as np

    data = {
        "ts_event": ts,
        "ts_init": [now_ns] * len(rows),
        "seq": seq_within_ts(np.asarray(ts, dtype=np.int64)).tolist(),
        "instrument_id": [instrument_id] * len(rows),
        **{
            name: [to_fixed(r[i]) for r in rows]
            for i, name in enumerate(("open", "high", "low", "close", "volume"), start=1)
        },
        "interval_ns": [interval_ns] * len(rows),
    }
    return pa.table(data, schema=SCHEMAS["bars"])


def quotes_table(instrument_id: str, rows: Sequence[QuoteRow], *, now_ns: int) -> pa.Table:
    """Rows ``(ts_ns, bid, bid_size, ask, ask_size)`` → a quotes table (deduplicated)."""
    rows = sorted(set(rows), key=lambda r: r[0])
    import numpy as np

    ts = [r[0] for r in rows]
    data = {
        "ts_event": ts,
        "ts_init": [now_ns] * len(rows),
        "seq": seq_within_ts(np.asarray(ts, dtype=np.int64)).tolist(),
        "instrument_id": [instrument_id] * len(rows),
        "bid_price": [to_fixed(r[1]) for r in rows],
        "bid_size": [to_fixed(r[2]) for r in rows],
        "ask_price": [to_fixed(r[3]) for r in rows],
        "ask_size": [to_fixed(r[4]) for r in rows],
    }
    return pa.table(data, schema=SCHEMAS["quotes"])


class IbHistory:
    """Paced historical requests on a connected ``ib_async.IB``."""

    def __init__(
        self,
        ib: Any,
        *,
        requests_per_10min: int = 50,
        backoff_s: float = 15.0,
        max_retries: int = 4,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.ib = ib
        self.bucket = TokenBucket.per_window(requests_per_10min, 600)
        self.backoff_s, self.max_retries, self.sleep = backoff_s, max_retries, sleep
        self.violations = 0

    async def _paced(self, request: Callable[[], Any]) -> Any:
        delay = self.backoff_s
        for _ in range(self.max_retries + 1):
            while not self.bucket.try_take():
                await self.sleep(self.bucket.wait_s())
            codes: list[int] = []

            def on_error(
                req_id: int, code: int, message: str, contract: Any, codes: list[int] = codes
            ) -> None:
                codes.append(code)

            self.ib.errorEvent += on_error
            try:
                result = await request()
            except (ConnectionError, OSError) as exc:
                raise VenueUnavailable(f"IB historical request failed: {exc!r}") from exc
            finally:
                self.ib.errorEvent -= on_error
            if not any(code in PACING_CODES for code in codes):
                return result
            self.violations += 1
            await self.sleep(delay)
            delay *= 2
        raise DataError(f"IB historical data: pacing violations after {self.max_retries} retries")

    async def bars(
        self,
        contract: Any,
        *,
        end: dt.datetime,
        duration: str,
        bar_size: str,
        what: str = "TRADES",
        use_rth: bool = False,
    ) -> list[BarRow]:
        if bar_size not in _BAR_SIZES:
            raise DataError(f"bar size {bar_size!r} (known: {', '.join(_BAR_SIZES)})")
        interval_ns = _BAR_SIZES[bar_size] * _NS
        bars = await self._paced(
            lambda: self.ib.reqHistoricalDataAsync(
                contract,
                endDateTime=end,
                durationStr=duration,
                barSizeSetting=bar_size,
                whatToShow=what,
                useRTH=use_rth,
                formatDate=2,
            )
        )
        return [(_ns(b.date) + interval_ns, b.open, b.high, b.low, b.close, b.volume) for b in bars]

    def _ticks_request(self, contract: Any, start: dt.datetime, use_rth: bool) -> Callable[[], Any]:
        def request() -> Any:
            return self.ib.reqHistoricalTicksAsync(
                contract,
                startDateTime=start,
                endDateTime="",
                numberOfTicks=1000,
                whatToShow="BID_ASK",
                useRth=use_rth,
            )

        return request

    async def quotes(
        self, contract: Any, *, start: dt.datetime, end: dt.datetime, use_rth: bool = False
    ) -> list[QuoteRow]:
        """BID_ASK ticks in ``[start, end)``, paged 1,000 at a time."""
        rows: list[QuoteRow] = []
        cursor = start
        while cursor < end:
            page = await self._paced(self._ticks_request(contract, cursor, use_rth))
            page = [t for t in page if t.time < end]
            rows += [(_ns(t.time), t.priceBid, t.sizeBid, t.priceAsk, t.sizeAsk) for t in page]
            if len(page) < 1000:
                break
            cursor = page[-1].time + dt.timedelta(seconds=1)
        return rows


def shioaji_bars(
    api: Any, contract: Any, *, start: str, end: str, bucket: TokenBucket | None = None
) -> list[BarRow]:
    """1-minute kbars between ``start`` and ``end`` (``YYYY-MM-DD``); ``ts`` is the close."""
    _take(bucket)
    k = api.kbars(contract, start=start, end=end)
    ts = [int(t) - _TAIPEI_NS for t in k.ts]
    return list(zip(ts, k.Open, k.High, k.Low, k.Close, k.Volume, strict=True))


def shioaji_quotes(
    api: Any, contract: Any, *, date: str, bucket: TokenBucket | None = None
) -> list[QuoteRow]:
    _take(bucket)
    t = api.ticks(contract, date=date)
    ts = [int(x) - _TAIPEI_NS for x in t.ts]
    return list(zip(ts, t.bid_price, t.bid_volume, t.ask_price, t.ask_volume, strict=True))


def _take(bucket: TokenBucket | None) -> None:
    if bucket is not None and not bucket.try_take():
        raise DataError(f"Shioaji data-query limit: retry in {bucket.wait_s():.1f}s")


def _ns(moment: Any) -> int:
    if isinstance(moment, dt.datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return int(moment.timestamp()) * _NS + int(moment.microsecond) * 1000
    if isinstance(moment, dt.date):
        return (
            int(dt.datetime(moment.year, moment.month, moment.day, tzinfo=dt.UTC).timestamp()) * _NS
        )
    return int(moment) * _NS
