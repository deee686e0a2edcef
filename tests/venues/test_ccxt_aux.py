"""Auxiliary data polled through the unmodified ccxt binanceusdm client from the loopback Binance
USD-M fake (``premiumIndex``, ``fundingRate``, ``openInterest``): values, the settled history
once, backoff on 429 with Retry-After, telemetry (age, errors), staleness past the TTL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.feed_log import FeedMessages
from actors.venues.aux_feeds import AuxFeedConfig, AuxPolls
from actors.venues.ccxt_aux import CcxtAuxPoller
from runtime.errors import ConfigError
from runtime.messages import AuxData, FundingRate, IndexMarkPrice, OpenInterest
from runtime.values import fixed
from tests.venues.broker_helpers import FakeBinanceThread
from tests.venues.ccxt_helpers import IID, ccxt_config

pytest.importorskip("ccxt")

_8H_MS = 8 * 3600 * 1000


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def next_ms() -> int:
    """The next funding time, at least an hour after now. Taken when the test runs, not when the
    module is imported: the fake stamps its answers with the wall clock, and a whole suite can
    run past a funding time between collection and this test (a CI collected at 15:5x UTC ran
    these at 17:04: the fake's "next" funding time, 16:00, was then in the past)."""
    return ((int(time.time() * 1000) + 3600_000) // _8H_MS + 1) * _8H_MS


@pytest.fixture
def fake(next_ms: int) -> Iterator[FakeBinanceThread]:
    thread = FakeBinanceThread()
    f = thread.fake
    thread.call(lambda: f.set_premium("BTCUSDT", mark="50012.50000000", index="50001.25000000",
                                      rate="0.00012345", next_funding_ms=next_ms))
    thread.call(f.set_open_interest, "BTCUSDT", "10659.509")
    for k, rate in enumerate(("0.00010000", "-0.00002500")):
        at = next_ms - (2 - k) * 8 * 3600 * 1000
        thread.call(lambda at=at, rate=rate: f.settle_funding("BTCUSDT", rate=rate, at_ms=at,
                                                              mark="49990.10000000"))
    yield thread
    thread.close()


def _poller(fake: FakeBinanceThread, clock: Clock, **feed: Any) -> tuple[CcxtAuxPoller,
                                                                         list[AuxData]]:
    got: list[AuxData] = []
    feeds = [AuxFeedConfig(kind=k, instrument=IID, every_s=10, ttl_s=30)
             for k in feed.get("kinds", ("funding", "mark", "open_interest"))]
    return CcxtAuxPoller(ccxt_config(fake.port), feeds, got.extend, clock=clock), got


def _run(poller: CcxtAuxPoller, rounds: int = 1) -> None:
    async def go() -> None:
        try:
            for _ in range(rounds):
                await poller.poll_due()
        finally:
            await poller.aclose()
    asyncio.run(go())


def test_funding_mark_and_open_interest_as_the_exchange_publishes_them(
        fake: FakeBinanceThread, next_ms: int) -> None:
    poller, got = _poller(fake, Clock())
    _run(poller)
    settled = [m for m in got if isinstance(m, FundingRate) and m.ts_event >= m.funding_ts]
    assert [(m.rate, m.funding_ts, m.mark_price) for m in settled] == [
        (fixed("0.0001"), (next_ms - 16 * 3600_000) * 10**6, fixed("49990.1")),
        (fixed("-0.000025"), (next_ms - 8 * 3600_000) * 10**6, fixed("49990.1"))]
    [estimate] = [m for m in got if isinstance(m, FundingRate) and m.ts_event < m.funding_ts]
    assert (estimate.rate, estimate.funding_ts) == (fixed("0.00012345"), next_ms * 10**6)
    marks = [m for m in got if isinstance(m, IndexMarkPrice)]
    assert [(m.mark_price, m.index_price) for m in marks] == [(fixed("50012.5"),
                                                               fixed("50001.25"))]
    [oi] = [m for m in got if isinstance(m, OpenInterest)]
    assert oi.open_interest == fixed("10659.509") and oi.instrument_id == IID
    assert poller.polls.latest("open_interest", IID) == [oi]
    paths = {p for _, p, _ in fake.call(lambda: list(fake.fake.requests))}
    assert {"/fapi/v1/premiumIndex", "/fapi/v1/fundingRate", "/fapi/v1/openInterest"} <= paths


def test_settled_rates_are_sent_once_and_polls_wait_their_interval(
        fake: FakeBinanceThread, next_ms: int) -> None:
    clock = Clock()
    poller, got = _poller(fake, clock, kinds=("funding",))

    async def go() -> list[int]:
        sent = [await poller.poll_due()]
        clock.now += 5  # not due yet: nothing asked
        sent.append(await poller.poll_due())
        clock.now += 5
        fake.call(lambda: fake.fake.settle_funding("BTCUSDT", rate="0.00030000",
                                                   at_ms=next_ms, mark="50000.00000000"))
        sent.append(await poller.poll_due())
        await poller.aclose()
        return sent
    assert asyncio.run(go()) == [3, 0, 2]  # 2 settled + estimate; nothing; 1 new + estimate
    settled = [m.funding_ts for m in got if isinstance(m, FundingRate)
               and m.ts_event >= m.funding_ts]
    assert settled == sorted(set(settled)) and len(settled) == 3


def test_a_429_backs_off_per_retry_after_then_recovers_and_telemetry_says_so(
        fake: FakeBinanceThread) -> None:
    clock = Clock()
    poller, got = _poller(fake, clock, kinds=("open_interest",))
    fake.call(fake.fake.throttle, 1, 7.0, "/fapi/v1/openInterest")

    async def go() -> None:
        await poller.poll_due()  # 429: no data, next try after Retry-After (7 s > backoff)
        t = poller.telemetry()["open_interest/BTC-PERP"]
        assert (t["errors"], t["failures"], t["age_s"], t["stale"]) == (1, 1, None, True)
        assert "RateLimitExceeded" in str(t["last_error"]) or "DDoS" in str(t["last_error"])
        assert poller.polls.next_due_s() == pytest.approx(clock.now + 7.0)
        clock.now += 6
        assert await poller.poll_due() == 0  # still backing off: not asked
        clock.now += 1
        assert await poller.poll_due() == 1
        clock.now += 4
        t = poller.telemetry()["open_interest/BTC-PERP"]
        assert (t["errors"], t["failures"], t["age_s"], t["stale"]) == (1, 0, 4.0, False)
        clock.now += 27  # 31 s after the last success: older than the 30 s TTL
        assert poller.polls.stale(clock.now) == [("open_interest", IID)]
        await poller.aclose()
    asyncio.run(go())
    assert len(got) == 1


def test_backoff_doubles_to_its_cap_and_resets() -> None:
    polls = AuxPolls([AuxFeedConfig(kind="mark", instrument="X", every_s=5, ttl_s=20)],
                     backoff_min_s=1, backoff_max_s=6)
    delays = [polls.on_error(("mark", "X"), "boom", 0.0) for _ in range(5)]
    assert delays == [1, 2, 4, 6, 6]
    polls.on_ok(("mark", "X"), [], 10.0)
    assert polls.feeds[("mark", "X")].failures == 0 and polls.next_due_s() == 15.0
    assert polls.on_error(("mark", "X"), "boom", 15.0) == 1


def test_bad_feed_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="stale between polls"):
        AuxFeedConfig(kind="funding", instrument="X", every_s=60, ttl_s=30)
    with pytest.raises(ValueError):
        AuxFeedConfig(kind="dividends", instrument="X")
    with pytest.raises(ConfigError, match="no exchange symbol"):
        CcxtAuxPoller(ccxt_config(1), [AuxFeedConfig(kind="mark", instrument="ETH-PERP")],
                      lambda batch: None)


def test_a_broker_stream_polls_its_aux_feeds_into_the_journaled_feed(
        fake: FakeBinanceThread, tmp_path: Path) -> None:
    from actors.venues.ccxt_market_data import CcxtMarketStream
    from actors.venues.market_data import StreamSink

    feeds = [{"kind": "funding", "instrument": IID, "every_s": 0.2, "ttl_s": 5},
             {"kind": "open_interest", "instrument": IID, "every_s": 0.2, "ttl_s": 5}]
    messages = FeedMessages([])
    stream = CcxtMarketStream(ccxt_config(fake.port, aux=feeds),
                              StreamSink(tmp_path / "feed.stream.journal", messages))
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
                any(isinstance(m, OpenInterest) for m in messages)
                and sum(isinstance(m, FundingRate) for m in messages) >= 3):
            time.sleep(0.05)
        telemetry = stream.telemetry()
    finally:
        stream.close()
    kinds = {type(m) for m in messages}
    assert {FundingRate, OpenInterest} <= kinds
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))  # the sink numbered them
    assert set(telemetry) == {"funding/BTC-PERP", "open_interest/BTC-PERP"}
    assert all(t["stale"] is False and t["errors"] == 0 for t in telemetry.values())
    # a restart reads back what the journal holds, auxiliary data included
    again = FeedMessages([])
    StreamSink(tmp_path / "feed.stream.journal", again).journal.close()
    assert again[:len(messages)] == messages[:len(again)]


def test_an_answer_without_what_it_should_hold_is_a_data_error() -> None:
    from actors.venues.ccxt_aux import funding_of, open_interest_of
    from runtime.errors import DataError

    with pytest.raises(DataError, match="open interest of BTC-PERP without an amount"):
        open_interest_of(IID, {"symbol": "BTC/USDT:USDT", "info": {}}, 5)
    assert funding_of(IID, {"fundingRate": None, "fundingTimestamp": None}, 5) is None


def test_an_estimate_stamped_at_or_after_its_funding_time_is_not_sent() -> None:
    from actors.venues.ccxt_aux import funding_of

    answer = {"fundingRate": 0.0001, "fundingTimestamp": 8_000, "markPrice": 50_000.0}
    assert funding_of(IID, {**answer, "timestamp": 8_000}, 5) is None
    assert funding_of(IID, {**answer, "timestamp": 9_000}, 5) is None
    estimate = funding_of(IID, {**answer, "timestamp": 7_999}, 5)
    assert estimate is not None and (estimate.ts_event, estimate.funding_ts) == (
        7_999 * 10**6, 8_000 * 10**6)


def test_a_premium_index_whose_next_funding_has_passed_sends_the_settled_rates_only(
        fake: FakeBinanceThread, next_ms: int) -> None:
    # around a funding the premium index can still name the funding just settled as the next:
    # read as an estimate it would be stamped after its funding time, i.e. read as settled
    past = next_ms - 32 * 3600_000  # next_ms is at most 9 h away: this one has passed
    fake.call(lambda: fake.fake.set_premium("BTCUSDT", mark="50012.50000000",
                                            index="50001.25000000", rate="0.00012345",
                                            next_funding_ms=past))
    poller, got = _poller(fake, Clock(), kinds=("funding",))
    _run(poller)
    assert [(m.rate, m.funding_ts) for m in got] == [
        (fixed("0.0001"), (next_ms - 16 * 3600_000) * 10**6),
        (fixed("-0.000025"), (next_ms - 8 * 3600_000) * 10**6)]
    assert all(isinstance(m, FundingRate) and m.ts_event == m.funding_ts for m in got)
