"""The paper session's split kernel (book actors, strategy actors, risk actor, paper gateway)
driven by the feed's driver in lockstep, in one process, without Ray (the step protocol over
the calls carrier, each call a plain method call): the same fills and orders as the backtest,
for a bar strategy, a market maker (timers, resting orders, sampled latency) and a taker, the
strategies and risk reading the book actors' books and features; and a book, gateway or
strategy rebuilt from its journal hashes as before."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from actors.book import BookActor
from actors.carriers import CallPath
from actors.config import FeedConfig
from actors.driver import Driver, Ports
from actors.feed import load_messages, write_cache
from actors.gateway import GatewayActor
from actors.risk import RiskActor
from actors.setup import SessionSetup
from actors.step import PING, join_views
from actors.strategy import StrategyActor
from backtest.api import run_backtest
from backtest.config import load_config
from runtime.journal import Journal
from runtime.messages import (
    CancelOrder,
    OrderDenied,
    OrderEvent,
    SubmitOrder,
    TimerFired,
    TradingStateChanged,
)
from tests.actors.paper_helpers import (
    FakeHandle,
    backtest_fills,
    paper_fills,
    trading_config,
    write_sample,
)


def _plain(actor_class: Any) -> Any:
    return actor_class.__ray_metadata__.modified_class


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("paper-data"))


def _session(kind: str, data_dir: Path, journal: Path, minutes: int,
             snapshot_every: int = 20_000) -> tuple[Any, ...]:
    config = load_config(trading_config(kind, data_dir, minutes=minutes))
    setup = SessionSetup("S1", str(journal), config, snapshot_every=snapshot_every)
    write_cache(setup, FeedConfig())  # the feed's log: where the actors re-read market data
    risk, gateway = _plain(RiskActor)(setup), _plain(GatewayActor)(setup)
    hosts = {s.id: _plain(StrategyActor)(setup, s.id) for s in config.strategies}
    hosts |= {f"book:{i}": _plain(BookActor)(i, setup) for i in setup.instruments()}
    return config, setup, risk, gateway, hosts


def _ports(risk: Any, gateway: Any, hosts: dict[str, Any]) -> Ports:
    """``hosts``: the strategy actors by id, the book actors by ``book:<instrument>``."""
    return Ports(gateway=FakeHandle(gateway), risk=FakeHandle(risk),
                 hosts={k: FakeHandle(v) for k, v in hosts.items() if not k.startswith("book:")},
                 books={k[5:]: FakeHandle(v) for k, v in hosts.items() if k.startswith("book:")})


def _carrier(ports: Ports) -> CallPath:
    return CallPath(ports.hosts, ports.risk, ports.gateway, books=ports.books)


def _run(setup: SessionSetup, risk: Any, gateway: Any, hosts: dict[str, Any],
         *, stop_at: int | None = None) -> Driver:
    messages, start_ns = load_messages(setup, FeedConfig())
    ports = _ports(risk, gateway, hosts)
    driver = Driver(ports, messages, start_ns=start_ns, batch_size=256, carrier=_carrier(ports))

    async def go() -> None:
        await driver.start()
        while (stop_at is None or driver.cursor < stop_at) and await driver.step():
            pass
        if stop_at is None:
            await driver.finish(cancel_open=False)
        else:
            await driver.flush()

    asyncio.run(go())
    return driver


@pytest.mark.parametrize("kind", ["sma", "mm", "mm_book", "taker"])
def test_lockstep_fills_equal_the_backtest(kind: str, data_dir: Path, tmp_path: Path) -> None:
    config, setup, risk, gateway, hosts = _session(kind, data_dir, tmp_path, minutes=10)
    _run(setup, risk, gateway, hosts)
    expected = run_backtest(config, write=False)
    assert paper_fills(gateway.fills()) == backtest_fills(expected)
    assert len(risk.jk.kernel.orders) == len(expected.orders)
    assert risk.view()["positions"] == gateway.view()["positions"]
    assert risk.jk.kernel.portfolio.n_fills == len(gateway.fills())


class _RetryingPath(CallPath):
    """Runs every step as a carrier does when an actor of the chain dies mid-step: the book
    actors, strategies and risk run it, their answers are lost (the gateway "died"), the step
    runs again; the gateway's reply is lost once too and it runs the step again. Every
    ``rebuild``-th step, every actor is also rebuilt from its journal in between (a crash
    after its commit, before its reply)."""

    def __init__(self, setup: SessionSetup, ports: Ports, rebuild: int) -> None:
        super().__init__(ports.hosts, ports.risk, ports.gateway, books=ports.books)
        self.setup, self.rebuild, self.steps, self.rebuilt = setup, rebuild, 0, 0

    async def _chain(self, data: bytes, parts: list[bytes]) -> tuple[bytes, list[bytes]]:
        views = join_views(await asyncio.gather(*(b.hot_step.remote(part) for b, part
                                                  in zip(self.books.values(), parts,
                                                         strict=True))))
        answers = await asyncio.gather(*(h.hot_step.remote(data, views)
                                         for h in self.hosts.values()))
        return await self.risk.hot_step.remote(data, views, *answers), list(answers)

    async def _run(self, data: bytes, parts: list[bytes]) -> bytes:
        if data == PING:
            return await super()._run(data, parts)
        await self._chain(data, parts)
        self.steps += 1
        again = bool(self.rebuild) and self.steps % self.rebuild == 0
        if again:
            self._rebuild()
        out, answers = await self._chain(data, parts)
        await self.gateway.hot_step.remote(data, out, *answers)
        if again:
            self._rebuild()
        raw: bytes = await self.gateway.hot_step.remote(data, out, *answers)
        return raw

    def _rebuild(self) -> None:
        self.rebuilt += 1
        self.risk._obj.jk.journal.close()
        self.gateway._obj.venue.journal.close()
        self.risk._obj = _plain(RiskActor)(self.setup)
        self.gateway._obj = _plain(GatewayActor)(self.setup)
        for sid, handle in self.hosts.items():
            handle._obj.jk.journal.close()
            handle._obj = _plain(StrategyActor)(self.setup, sid)
        for instrument, handle in self.books.items():
            handle._obj.journal.close()
            handle._obj = _plain(BookActor)(instrument, self.setup)


@pytest.mark.parametrize("rebuild", [0, 7])
def test_a_step_run_again_gets_the_same_replies(data_dir: Path, tmp_path: Path,
                                                rebuild: int) -> None:
    """A step a carrier retries (an actor after the strategies died; the gateway's reply
    lost), with or without the actors rebuilt from their journals in between, changes
    nothing: the backtest's fills and orders. Executing it again would lose the cancels the
    strategy sent in its first execution, and make the venue release its next reports early."""
    config, setup, risk, gateway, hosts = _session("mm", data_dir, tmp_path, minutes=3,
                                                   snapshot_every=25)
    messages, start_ns = load_messages(setup, FeedConfig())
    ports = _ports(risk, gateway, hosts)
    carrier = _RetryingPath(setup, ports, rebuild)
    driver = Driver(ports, messages, start_ns=start_ns, batch_size=256, carrier=carrier)

    async def go() -> None:
        await driver.start()
        while await driver.step():
            pass
        await driver.finish(cancel_open=False)

    asyncio.run(go())
    expected = run_backtest(config, write=False)
    gateway = ports.gateway._obj
    assert carrier.steps > 100
    assert carrier.rebuilt == (2 * (carrier.steps // rebuild) if rebuild else 0)
    assert paper_fills(gateway.fills()) == backtest_fills(expected)
    assert len(ports.risk._obj.jk.kernel.orders) == len(expected.orders)
    canceled = [o for o in ports.risk._obj.jk.kernel.orders.values()
                if str(o.status) == "canceled"]
    assert len(canceled) == int((expected.orders["status"] == "canceled").sum()) > 0


def _strategy_state(host: Any) -> dict[str, Any]:
    """What the market maker keeps of its own (outside the kernel's state hash)."""
    (strategy,) = host.jk.kernel.strategies
    return {k: v for k, v in vars(strategy).items() if isinstance(v, int | float | str)}


@pytest.mark.parametrize("kind", ["mm", "mm_book"])
@pytest.mark.parametrize("snapshot_every", [20_000, 25])
def test_actors_rebuilt_from_their_journals_hash_as_before(data_dir: Path, tmp_path: Path,
                                                          snapshot_every: int,
                                                          kind: str) -> None:
    """From the whole journal, or (every 25 inputs) from a snapshot and a short tail: the
    same state hashes (the book actor's too), the strategy's own state, and the same
    positions in the feed; no journal holds market data (the strategy and risk journal the
    book views they read, as their own input)."""
    from runtime.journal import Blob

    _, setup, risk, gateway, hosts = _session(kind, data_dir, tmp_path, minutes=3,
                                              snapshot_every=snapshot_every)
    _run(setup, risk, gateway, hosts, stop_at=150)
    books = sorted(k for k in hosts if k.startswith("book:"))
    before = (risk.state_hash(), gateway.state_hash(), hosts["mm"].state_hash(),
              [hosts[k].state_hash() for k in books])
    strategy = _strategy_state(hosts["mm"])
    features = repr(hosts["mm"].jk.kernel.books.features("SIM-A"))  # what it reads next
    assert risk.summary()["orders"] > 0
    journals = (risk.jk.journal, gateway.venue.journal, hosts["mm"].jk.journal)
    for component in journals:
        component.close()
    for component in journals:
        with Journal(component.journal.path) as journal:
            assert all(isinstance(r, Blob | OrderEvent | SubmitOrder | CancelOrder
                                  | OrderDenied | TradingStateChanged | TimerFired)
                       for _, r in journal.entries())
            assert (journal.restore().snapshot is not None) == (snapshot_every == 25)
    _, _, risk2, gateway2, hosts2 = _session(kind, data_dir, tmp_path, minutes=3,
                                             snapshot_every=snapshot_every)
    assert (risk2.state_hash(), gateway2.state_hash(), hosts2["mm"].state_hash(),
            [hosts2[k].state_hash() for k in books]) == before
    assert _strategy_state(hosts2["mm"]) == strategy
    assert repr(hosts2["mm"].jk.kernel.books.features("SIM-A")) == features
    assert risk2.cursor == 150 and gateway2.venue.market_count == 150
    assert hosts2["mm"].cursor == 150


@pytest.mark.parametrize("snapshot_every", [20_000, 25])
def test_resumed_session_ends_with_the_backtest_fills(data_dir: Path, tmp_path: Path,
                                                      snapshot_every: int) -> None:
    config, setup, risk, gateway, hosts = _session("mm", data_dir, tmp_path, minutes=3,
                                                   snapshot_every=snapshot_every)
    driver = _run(setup, risk, gateway, hosts, stop_at=120)
    for component in (risk.jk.journal, gateway.venue.journal, hosts["mm"].jk.journal):
        component.close()
    _, _, risk2, gateway2, hosts2 = _session("mm", data_dir, tmp_path, minutes=3,
                                             snapshot_every=snapshot_every)
    messages, start_ns = load_messages(setup, FeedConfig())
    ports = _ports(risk2, gateway2, hosts2)
    resumed = Driver(ports, messages, start_ns=start_ns, carrier=_carrier(ports))
    resumed.cursor, resumed.delivered = driver.cursor, driver.delivered

    async def go() -> None:
        await resumed.start()
        while await resumed.step():
            pass
        await resumed.finish(cancel_open=False)

    asyncio.run(go())
    assert paper_fills(gateway2.fills()) == backtest_fills(run_backtest(config, write=False))
    submitted = gateway2.submitted()
    assert len(submitted) == len(set(submitted))


def test_restore_without_the_feeds_log_or_with_other_data_is_refused(data_dir: Path,
                                                                    tmp_path: Path) -> None:
    """The actors' journals name positions in the feed's log: without it, or with other data
    in it, an actor refuses to come back (a clear DataError), never restores short."""
    import msgspec

    from actors.feed_log import CACHE, FeedLog, write_log
    from runtime.errors import DataError

    _, setup, risk, gateway, hosts = _session("mm", data_dir, tmp_path, minutes=3)
    _run(setup, risk, gateway, hosts, stop_at=100)
    for component in (risk.jk.journal, gateway.venue.journal, hosts["mm"].jk.journal):
        component.close()
    log = FeedLog(tmp_path)
    messages, start_ns = log.all(), log.start_ns
    (tmp_path / CACHE).rename(tmp_path / "elsewhere")
    for actor_class, args in ((RiskActor, ()), (GatewayActor, ()), (StrategyActor, ("mm",))):
        with pytest.raises(DataError, match=r"feed\.msgs: the feed's log is missing"):
            _plain(actor_class)(setup, *args)
    messages[50] = msgspec.structs.replace(messages[50], ts_event=messages[50].ts_event + 1)
    write_log(tmp_path / CACHE, start_ns, messages[:80] + messages[81:])  # one left out
    for actor_class, args in ((RiskActor, ()), (GatewayActor, ()), (StrategyActor, ("mm",))):
        with pytest.raises(DataError, match="another message at index"):
            _plain(actor_class)(setup, *args)


def test_a_strategy_on_a_broker_stream_restores_from_the_streams_journal(
        data_dir: Path, tmp_path: Path) -> None:
    """``feed.mode: broker``: the feed's log is the stream's journal (nothing loaded before);
    a strategy and risk restored after taking streamed quotes hash as before, with a snapshot
    in between, and their journals hold no market data."""
    from actors.feed_log import CACHE, FeedLog, FeedMessages, write_log
    from actors.step import HotInput, decode_messages, encode, join_views, route
    from actors.venues.market_data import StreamSink
    from runtime.journal import Blob

    config, setup, *_ = _session("mm", data_dir, tmp_path / "loaded", minutes=3)
    quotes = [m for m in FeedLog(tmp_path / "loaded").all() if type(m).__name__ == "QuoteTick"]
    setup = SessionSetup("B1", str(tmp_path / "b"), config, snapshot_every=40)
    (tmp_path / "b").mkdir()
    write_log(tmp_path / "b" / CACHE, quotes[0].ts_event, [])  # a broker session loads nothing
    feed = FeedMessages([])
    sink = StreamSink(tmp_path / "b" / "feed.stream.journal", feed)
    risk, host = _plain(RiskActor)(setup), _plain(StrategyActor)(setup, "mm")
    books = [_plain(BookActor)(i, setup) for i in setup.instruments()]
    risk.start(quotes[0].ts_event)
    host.start(quotes[0].ts_event)
    answers: list[Any] = []
    for k in range(0, 150, 10):  # real-time steps: timers fire between the quotes
        sink.put(quotes[k:k + 10])
        batch = feed[k:k + 10]
        inp = HotInput(k, batch, batch[-1].ts_event, {"mm": answers}, [], 0)
        step = encode(inp)
        views = join_views([b.hot_step(part) for b, part
                            in zip(books, route(inp, setup.instruments()), strict=True)])
        out = decode_messages(risk.hot_step(step, views, host.hot_step(step, views)))
        answers = [m for m in out if isinstance(m, SubmitOrder | OrderDenied)]
    before = (risk.state_hash(), host.state_hash())
    assert risk.summary()["orders"] > 0
    for journal in (risk.jk.journal, host.jk.journal):
        journal.close()
        with Journal(journal.journal.path) as reread:
            assert reread.restore().snapshot is not None
            assert all(isinstance(r, Blob | OrderEvent | SubmitOrder | CancelOrder | OrderDenied
                                  | TimerFired) for _, r in reread.entries())
    risk2, host2 = _plain(RiskActor)(setup), _plain(StrategyActor)(setup, "mm")
    assert (risk2.state_hash(), host2.state_hash()) == before
    assert risk2.cursor == host2.cursor == 150
    sink.journal.close()


def test_a_session_replays_generated_sample_data_without_a_store(tmp_path: Path) -> None:
    """Sample data is a source of the trading config (``sample_days``), not a feed mode: the
    feed loads it like any stream, and lockstep fills equal the backtest's on it."""
    raw = trading_config("sma", tmp_path)
    raw["data"] = [{"kind": "bars", "instrument": "SIM-A", "sample_days": 1}]
    config = load_config(raw)
    setup = SessionSetup("G1", str(tmp_path / "var"), config, snapshot_every=20_000)
    write_cache(setup, FeedConfig())
    risk, gateway = _plain(RiskActor)(setup), _plain(GatewayActor)(setup)
    hosts = {s.id: _plain(StrategyActor)(setup, s.id) for s in config.strategies}
    hosts |= {f"book:{i}": _plain(BookActor)(i, setup) for i in setup.instruments()}
    driver = _run(setup, risk, gateway, hosts)
    expected = run_backtest(config, write=False)
    assert driver.cursor == 390 and expected.n_fills > 0
    assert paper_fills(gateway.fills()) == backtest_fills(expected)
