"""Real time under a burst: when more messages are due at once than ``feed.conflate_after``
(the chain fell behind the data), a step conflates per instrument — the strategies and risk
pass over every quote and book update a later one of the same kind and instrument in the step
supersedes, and take every trade and bar; the book actors and the paper venue apply everything.
Each skipping actor journals what it passed over, so one rebuilt from its journal (with or
without snapshots) comes back to the same state. Lockstep never conflates. In one process,
without Ray (the calls carrier over plain method calls)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from actors.carriers import CallPath
from actors.config import FeedConfig
from actors.driver import Driver, Ports
from actors.feed import load_messages
from actors.step import PING, HotInput, conflate, decode_input
from backtest.api import run_backtest
from runtime.journal import Blob, Journal
from runtime.messages import (
    Bar,
    BookDeltas,
    BookSnapshot,
    MarketData,
    QuoteTick,
    TradeTick,
)
from runtime.recovery import DROP
from tests.actors.paper_helpers import backtest_fills, paper_fills
from tests.actors.test_lockstep_inprocess import _ports, _session, data_dir

__all__ = ["data_dir"]  # the module's fixture, shared


class _Spy(CallPath):
    """The calls carrier, keeping every step it carried."""

    def __init__(self, ports: Ports) -> None:
        super().__init__(ports.hosts, ports.risk, ports.gateway, books=ports.books)
        self.inputs: list[HotInput] = []

    async def _run(self, data: bytes, parts: list[bytes]) -> bytes:
        if data != PING:
            self.inputs.append(decode_input(data))
        return await super()._run(data, parts)


def _behind(driver: Driver, upto: int) -> Driver:
    """The driver's data clock set so that the messages up to ``upto`` are due at once: the
    chain fell that far behind the data (at a speed so low that the clock stands still while
    the test runs: what is due, and the timers a step fires, do not depend on the host)."""
    messages, speed = driver.messages, driver.speed
    assert speed is not None
    behind = (messages[upto].ts_event - messages[0].ts_event) / 1e9 / speed
    driver._wall0 = time.monotonic() - behind
    return driver


def _drive(driver: Driver, stop_at: int | None) -> None:
    async def go() -> None:
        await driver.start()
        while (stop_at is None or driver.cursor < stop_at) and await driver.step():
            pass
        if stop_at is None:
            await driver.finish(cancel_open=False)
        else:
            await driver.flush()

    asyncio.run(go())


def _journaled_drops(path: Path) -> list[int]:
    import struct

    with Journal(path) as journal:
        return [i for _, r in journal.entries() if isinstance(r, Blob) and r.kind == DROP
                for i in struct.unpack(f">{len(r.payload) // 8}q", r.payload)]


@pytest.mark.parametrize("snapshot_every", [20_000, 500])
def test_a_burst_conflates_quotes_and_books_and_rebuilt_actors_hash_as_before(
        data_dir: Path, tmp_path: Path, snapshot_every: int) -> None:
    """The chain far behind the data (340 messages due at once): every step carries
    ``batch_size`` messages and conflates; the dropped ones are superseded quotes and book
    updates only (never a trade), the books still applied them, and risk, the gateway, the
    strategy and the books rebuilt from their journals hash as before, at the same feed
    positions."""
    _, setup, risk, gateway, hosts = _session("mm_book", data_dir, tmp_path, minutes=3,
                                              snapshot_every=snapshot_every)
    messages, start_ns = load_messages(setup, FeedConfig())
    ports = _ports(risk, gateway, hosts)
    spy = _Spy(ports)
    driver = _behind(Driver(ports, messages, start_ns=start_ns, carrier=spy, exact=False,
                            speed=1e-3, batch_size=64, conflate_after=8), 340)
    _drive(driver, stop_at=320)

    dropped: set[int] = set()
    for inp in spy.inputs:
        if not inp.msgs:
            continue
        assert len(inp.msgs) > 8 and inp.dropped == conflate(inp.msgs)
        for k in inp.dropped:
            msg = inp.msgs[k]
            assert type(msg) in (QuoteTick, BookDeltas, BookSnapshot)
            book = (BookDeltas, BookSnapshot)
            same = [m for m in inp.msgs[k + 1:] if m.instrument_id == msg.instrument_id
                    and (type(m) is type(msg) or (type(m) in book and type(msg) in book))]
            assert same  # a later one of the same kind and instrument supersedes it
            dropped.add(inp.index + k)
    kinds = {type(messages[i]) for i in dropped}
    assert QuoteTick in kinds and (BookDeltas in kinds or BookSnapshot in kinds)
    assert driver.counters.conflated == len(dropped) and driver.cursor == 320
    assert driver.counters.events == 320
    trades = [i for i in range(320) if type(messages[i]) in (TradeTick, Bar)]
    assert trades and not dropped & set(trades)
    # the book actor applied every message of its instrument, dropped ones too
    (book,) = (hosts[k] for k in hosts if k.startswith("book:"))
    assert book.stage.book.last_index == max(
        i for i in range(320) if type(messages[i]) in (BookDeltas, BookSnapshot))
    assert risk.summary()["orders"] > 0

    names = sorted(hosts)
    before = (risk.state_hash(), gateway.state_hash(), [hosts[k].state_hash() for k in names])
    journals = (risk.jk.journal, gateway.venue.journal, hosts["mm"].jk.journal)
    for component in journals:
        component.close()
    if snapshot_every == 20_000:  # the whole journal: every pass-over is in it, once
        for component in (risk.jk.journal, hosts["mm"].jk.journal):
            assert _journaled_drops(component.journal.path) == sorted(dropped)
        assert _journaled_drops(gateway.venue.journal.journal.path) == []  # the venue: all
    else:  # a snapshot, and a tail in which the restore passes over messages again
        for component in (risk.jk.journal, hosts["mm"].jk.journal):
            with Journal(component.journal.path) as journal:
                snapshot, _, tail = journal.restore()
                assert snapshot is not None
                assert any(isinstance(r, Blob) and r.kind == DROP for _, r in tail)
    _, _, risk2, gateway2, hosts2 = _session("mm_book", data_dir, tmp_path, minutes=3,
                                             snapshot_every=snapshot_every)
    assert (risk2.state_hash(), gateway2.state_hash(),
            [hosts2[k].state_hash() for k in names]) == before
    assert risk2.cursor == hosts2["mm"].cursor == gateway2.venue.market_count == 320


def test_a_restored_actor_passes_over_what_it_passed_over(data_dir: Path,
                                                         tmp_path: Path) -> None:
    """The same run rebuilt from journals differs from one that took every message: the
    restore skips the journaled indices (it does not re-read everything)."""
    _, setup, risk, gateway, hosts = _session("mm_book", data_dir, tmp_path / "a", minutes=3)
    messages, start_ns = load_messages(setup, FeedConfig())
    ports = _ports(risk, gateway, hosts)
    spy = _Spy(ports)
    driver = _behind(Driver(ports, messages, start_ns=start_ns, carrier=spy, exact=False,
                            speed=1e-3, batch_size=64, conflate_after=8), 340)
    _drive(driver, stop_at=320)
    _, _, risk_b, gateway_b, hosts_b = _session("mm_book", data_dir, tmp_path / "b",
                                                minutes=3)
    ports_b = _ports(risk_b, gateway_b, hosts_b)
    whole = _behind(Driver(ports_b, messages, start_ns=start_ns, carrier=_Spy(ports_b),
                           exact=False, speed=1e-3, batch_size=64, conflate_after=None), 340)
    _drive(whole, stop_at=320)
    assert whole.counters.conflated == 0 and driver.counters.conflated > 0
    # what risk saw differs (fewer quotes), and a restore reproduces the conflated run's
    assert risk.state_hash() != risk_b.state_hash()
    risk.jk.journal.close()
    _, _, risk2, *_ = _session("mm_book", data_dir, tmp_path / "a", minutes=3)
    assert risk2.state_hash() == risk.state_hash()


def test_lockstep_never_conflates(data_dir: Path, tmp_path: Path) -> None:
    """Lockstep is exact: however low ``conflate_after``, no step drops anything and the
    fills equal the backtest's."""
    config, setup, risk, gateway, hosts = _session("mm_book", data_dir, tmp_path, minutes=3)
    messages, start_ns = load_messages(setup, FeedConfig())
    ports = _ports(risk, gateway, hosts)
    spy = _Spy(ports)
    driver = Driver(ports, messages, start_ns=start_ns, carrier=spy, batch_size=256,
                    conflate_after=1)
    _drive(driver, stop_at=None)
    assert any(len(inp.msgs) > 1 for inp in spy.inputs)
    assert all(not inp.dropped for inp in spy.inputs) and driver.counters.conflated == 0
    assert paper_fills(gateway.fills()) == backtest_fills(run_backtest(config, write=False))


def _q(ts: int, inst: str) -> QuoteTick:
    return QuoteTick(seq=ts, ts_event=ts, ts_init=ts, instrument_id=inst, bid_price=1,
                     ask_price=2, bid_size=1, ask_size=1)


def test_conflate_keeps_the_latest_quote_and_book_of_each_instrument_and_every_trade() -> None:
    def t(ts: int, inst: str) -> TradeTick:
        return TradeTick(seq=ts, ts_event=ts, ts_init=ts, instrument_id=inst, price=1, size=1,
                         trade_id=str(ts))

    def d(ts: int, inst: str) -> BookDeltas:
        return BookDeltas(seq=ts, ts_event=ts, ts_init=ts, instrument_id=inst)

    def s(ts: int, inst: str) -> BookSnapshot:
        return BookSnapshot(seq=ts, ts_event=ts, ts_init=ts, instrument_id=inst, bids=(),
                            asks=())

    msgs: Sequence[MarketData] = [
        _q(0, "A"), _q(1, "B"), t(2, "A"), _q(3, "A"), d(4, "A"), s(5, "A"), d(6, "B"),
        t(7, "A"), _q(8, "A"), d(9, "A"), t(10, "B"),
    ]
    # quote A 0 and 3 (8 is A's latest), book A 4 and 5 (9 is latest: a later delta's view is
    # the whole book); B's only quote and book stay, and every trade
    assert conflate(msgs) == [0, 3, 4, 5]
    assert conflate([]) == [] and conflate(msgs[:1]) == []


def test_the_driver_conflates_only_real_time_steps_past_the_threshold() -> None:
    msgs = [_q(i, "A") for i in range(10)]
    ports = Ports(gateway=None, risk=None, hosts={})

    def choice(**kwargs: Any) -> list[int]:
        return Driver(ports, msgs, start_ns=0, **kwargs)._conflated(msgs)

    assert choice(exact=False, conflate_after=9) == list(range(9))
    assert choice(exact=False, conflate_after=10) == []  # no more due than the threshold
    assert choice(exact=False, conflate_after=None) == []  # never
    assert choice(exact=True, conflate_after=1) == []  # lockstep is exact


def test_conflate_after_must_be_positive_or_null() -> None:
    from pydantic import ValidationError

    assert FeedConfig().conflate_after == 64
    assert FeedConfig(conflate_after=None).conflate_after is None
    with pytest.raises(ValidationError, match="conflate_after"):
        FeedConfig(conflate_after=0)

