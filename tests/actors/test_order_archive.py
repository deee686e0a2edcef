"""The risk actor's retired orders, archived (``actors.order_archive``): a lockstep session
over days of data, whose kernel retires orders on the hour, lists every order in its records
(the backtest's, each once) with the backtest's fills and state; actors rebuilt from their
journals after a settle (a crash) neither lose nor duplicate an archived order; an archive
that cannot be written loses nothing and says so."""

from __future__ import annotations

import asyncio
import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from actors.carriers import CallPath
from actors.config import FeedConfig
from actors.driver import Driver
from actors.feed import load_messages, write_cache
from actors.gateway import GatewayActor
from actors.order_archive import OrderArchive
from actors.risk import RiskActor
from actors.setup import SessionSetup
from backtest.api import run_backtest
from backtest.config import load_config
from runtime.errors import DiskWriteError
from runtime.messages import OrderSide, OrderType, SubmitOrder, TimeInForce
from runtime.orders import Order
from tests.actors.paper_helpers import (
    backtest_fills,
    paper_fills,
    trading_config,
    write_paper_config,
    write_sample,
)
from tests.actors.test_lockstep_inprocess import _plain, _ports, _RetryingPath, _run
from tests.actors.test_lockstep_orders import _backtest_state, _neutral_hash

RETIRE_AFTER_H = 2.0  # closed orders retire two hours (event time) after their last change


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("archive-data"), days=3)


def _config(data_dir: Path) -> Any:
    raw = trading_config("sma", data_dir)
    raw["retire_orders_after_h"] = RETIRE_AFTER_H
    return load_config(raw)


def _session(config: Any, journal: Path, snapshot_every: int) -> tuple[Any, ...]:
    from actors.strategy import StrategyActor

    setup = SessionSetup("S1", str(journal), config, snapshot_every=snapshot_every)
    write_cache(setup, FeedConfig())
    hosts = {s.id: _plain(StrategyActor)(setup, s.id) for s in config.strategies}
    return setup, _plain(RiskActor)(setup), _plain(GatewayActor)(setup), hosts


def _strip(client_order_id: str) -> str:
    return client_order_id.split("-", 1)[1]


def _check_every_order(risk: Any, expected: Any) -> list[dict[str, Any]]:
    """risk's records list the backtest's orders, in its order, each once, in their final
    states; the summary counts as many."""
    orders = risk.records()["orders"]
    assert [_strip(o["id"]) for o in orders] == [
        _strip(c) for c in expected.orders["client_order_id"]]
    assert [o["status"] for o in orders] == list(expected.orders["status"])
    assert len(orders) == risk.summary()["orders"] == len(expected.orders)
    return orders


def _archived_ids(archive: OrderArchive) -> list[str]:
    from actors.order_archive import _decode

    return [o["id"] for frame in archive.archive.frames() for o in _decode(frame)]


def test_a_session_over_days_lists_every_order_the_backtest_made(data_dir: Path,
                                                                   tmp_path: Path) -> None:
    config = _config(data_dir)
    setup, risk, gateway, hosts = _session(config, tmp_path, snapshot_every=20_000)
    _run(setup, risk, gateway, hosts)
    expected = run_backtest(config, write=False)
    assert paper_fills(gateway.fills()) == backtest_fills(expected)
    summary = risk.summary()
    assert summary["retired"] > len(expected.orders) // 2  # most retired, days before the end
    _check_every_order(risk, expected)
    archived = _archived_ids(risk.archive)
    assert len(archived) == len(set(archived)) == summary["retired"]
    assert not risk.jk.kernel.retired_orders  # all archived
    state, namespace = _backtest_state(config)
    kernel = risk.jk.kernel
    for part in ("orders", "retired", "portfolio"):
        assert _neutral_hash(kernel.state()[part], kernel.namespace) == _neutral_hash(
            state[part], namespace), part


@pytest.mark.parametrize("snapshot_every", [5, 20_000])
def test_actors_rebuilt_after_a_settle_neither_lose_nor_duplicate_an_order(
        data_dir: Path, tmp_path: Path, snapshot_every: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At every step every actor is rebuilt from its journal after its commit (and the risk
    actor's settle), before its reply: a crash there. With a snapshot every 5 inputs, a
    rebuild restores from a snapshot the settle preceded or replays the retirements of a
    settle after it; without snapshots, every rebuild replays every retirement the archive
    holds."""
    found: list[int] = []  # orders a replay retired again that the archive held already
    restored = OrderArchive.restored

    def counted(self: OrderArchive, retired: list[Order]) -> None:
        before = len(retired)
        restored(self, retired)
        found.append(before - len(retired))

    monkeypatch.setattr(OrderArchive, "restored", counted)
    config = _config(data_dir)
    setup, risk, gateway, hosts = _session(config, tmp_path, snapshot_every=snapshot_every)
    messages, start_ns = load_messages(setup, FeedConfig())
    ports = _ports(risk, gateway, hosts)
    carrier = _RetryingPath(setup, ports, 1)
    driver = Driver(ports, messages, start_ns=start_ns, batch_size=64, carrier=carrier)

    async def go() -> None:
        await driver.start()
        while await driver.step():
            pass
        await driver.finish(cancel_open=False)

    asyncio.run(go())
    risk = ports.risk._obj
    expected = run_backtest(config, write=False)
    assert carrier.rebuilt > 10
    assert paper_fills(ports.gateway._obj.fills()) == backtest_fills(expected)
    _check_every_order(risk, expected)
    archived = _archived_ids(risk.archive)
    assert len(archived) == len(set(archived)) == risk.summary()["retired"] > 0
    assert sum(found) > 0  # some rebuilds replayed retirements the archive held
    gateway = ports.gateway._obj
    if snapshot_every == 5:  # the paper broker's fills of days before left for its archive
        assert 0 < len(gateway.venue.archived_fills) < len(expected.fills)
    assert sorted(gateway.view()["fills"]) == risk.view()["fills"]


def _order(n: int, ts: int) -> Order:
    order = Order(SubmitOrder(seq=0, ts_event=ts, ts_init=ts, client_order_id=f"S1-s-{n}",
                              strategy_id="s", instrument_id="SIM-A", side=OrderSide.BUY,
                              order_type=OrderType.MARKET, quantity=10**9, price=None,
                              trigger_price=None, time_in_force=TimeInForce.GTC,
                              post_only=False, reduce_only=False))
    return order


def test_an_archive_that_cannot_be_written_keeps_its_orders_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = OrderArchive(tmp_path / "risk.journal")
    archive.settle(first := [_order(1, 10)])
    assert first == []
    retired = [_order(2, 20), _order(3, 30)]

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # the disk refuses the append's sync
    with pytest.raises(DiskWriteError, match=r"risk\.orders: 2 retired orders not archived "
                                             r"\(first S1-s-2; .*\): No space left"):
        archive.settle(retired)
    monkeypatch.undo()
    assert [o.client_order_id for o in retired] == ["S1-s-2", "S1-s-3"]  # kept: nothing lost
    assert [o["id"] for o in archive.orders(retired)] == ["S1-s-1", "S1-s-2", "S1-s-3"]
    assert len(list(archive.archive.frames())) == 1  # the failed append cut off
    archive.settle(retired)  # the disk has room again: the next settle archives them
    assert retired == []
    assert _archived_ids(archive) == ["S1-s-1", "S1-s-2", "S1-s-3"]


def test_a_torn_append_is_cut_off_and_its_orders_archived_again(tmp_path: Path) -> None:
    archive = OrderArchive(tmp_path / "risk.journal")
    archive.settle([_order(1, 10)])
    whole = archive.path.stat().st_size
    with archive.path.open("ab") as fh:
        fh.write(b"\x00\x00\x01\x00torn")  # a crash mid-append
    archive = OrderArchive(tmp_path / "risk.journal")  # the restart
    assert archive.path.stat().st_size == whole
    replayed = [_order(2, 20)]  # the journal still holds it: the replay retires it again
    archive.restored(replayed)
    assert [o.client_order_id for o in replayed] == ["S1-s-2"]  # not archived: kept
    archive.settle(replayed)
    states = archive.orders([])
    assert [o["id"] for o in states] == ["S1-s-1", "S1-s-2"]
    assert json.dumps(states)  # plain data for the CSV


@pytest.mark.usefixtures("ray_local")
def test_a_paper_session_killed_after_a_retirement_writes_every_order_once(
        data_dir: Path, tmp_path: Path) -> None:
    """A supervised lockstep session over days of data: its risk actor is SIGKILLed after
    orders retired (and were archived); it comes back with its state hash, and the session's
    orders.csv lists every order once: as many as the summary counts and the backtest made."""
    import csv

    import ray
    import yaml

    from tests.actors.test_paper_session import _check_parity, _kill, _start, _until

    path = write_paper_config(tmp_path, "sma", data_dir)
    trading = yaml.safe_load((tmp_path / "trading.yaml").read_text())
    trading["retire_orders_after_h"] = RETIRE_AFTER_H
    (tmp_path / "trading.yaml").write_text(yaml.safe_dump(trading))
    session = _start(path, "archive1")
    risk = session.children["risk"]
    _until(lambda: ray.get(risk.summary.remote())["retired"] > 0, timeout_s=300)
    ray.get(session.feed.pause.remote())
    before = ray.get(risk.state_hash.remote())
    _kill(risk)
    assert ray.get(risk.state_hash.remote()) == before
    ray.get(session.feed.resume.remote())
    assert session.wait(600)
    result = session.stop()
    _check_parity(path, result)
    assert result["risk"]["retired"] > 0
    with (tmp_path / "runs" / "archive1" / "orders.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == result["orders"]
    archive = OrderArchive(Path(result["journal_dir"]) / "risk.journal")
    archived = _archived_ids(archive)
    assert len(archived) == len(set(archived)) == result["risk"]["retired"]


def test_a_risk_actor_whose_archive_fails_fails_its_step_and_loses_no_order(
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk refuses the archive's append at a sweep: the step fails with a
    :class:`DiskWriteError` naming the archive (the feed stops with it), no snapshot is taken,
    and the orders that retired stay in risk's records; once there is room, the next commit
    archives them, once."""
    config = _config(data_dir)
    setup, risk, gateway, hosts = _session(config, tmp_path, snapshot_every=5)
    messages, start_ns = load_messages(setup, FeedConfig())
    ports = _ports(risk, gateway, hosts)
    driver = Driver(ports, messages, start_ns=start_ns, batch_size=16,
                    carrier=CallPath(ports.hosts, ports.risk, ports.gateway, books=ports.books))

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    async def go() -> None:
        await driver.start()
        while risk.summary()["retired"] == 0:
            assert await driver.step()
        monkeypatch.setattr(os, "fsync", full)
        with pytest.raises(DiskWriteError, match=r"risk\.orders: \d+ retired orders not "
                                                 r"archived .*: No space left"):
            while await driver.step():
                pass

    asyncio.run(go())
    monkeypatch.undo()
    archived = _archived_ids(risk.archive)
    waiting = [o.client_order_id for o in risk.jk.kernel.retired_orders]
    assert waiting and not set(waiting) & set(archived)
    orders = [o["id"] for o in risk.records()["orders"]]
    assert len(orders) == len(set(orders)) == risk.summary()["orders"]
    risk.apply([])  # the next commit, with room on the disk
    assert _archived_ids(risk.archive) == archived + waiting
    assert [o["id"] for o in risk.records()["orders"]] == orders


def test_parents_retire_in_a_strategy_host_as_in_the_backtest(data_dir: Path,
                                                              tmp_path: Path) -> None:
    """A strategy working TWAP parents and brackets over days: its host retires closed parents
    with their children as the backtest's kernel does (the same parents, orders and ids held,
    the same fills), and risk's records list every order the backtest made."""
    raw = trading_config("sma", data_dir)
    raw["strategies"] = [{"id": "bt", "class": "tests.actors.test_lockstep_orders:BracketAndTwap",
                          "instruments": ["SIM-A"]}]
    raw["retire_orders_after_h"] = RETIRE_AFTER_H
    config = load_config(raw)
    setup, risk, gateway, hosts = _session(config, tmp_path, snapshot_every=20_000)
    _run(setup, risk, gateway, hosts)
    expected = run_backtest(config, write=False)
    assert paper_fills(gateway.fills()) == backtest_fills(expected)
    host = hosts["bt"].jk.kernel
    state, namespace = _backtest_state(config)
    assert 0 < len(state["algos"]) < len(expected.parents) // 4  # most parents retired
    for part in ("algos", "orders", "retired", "ids"):
        assert _neutral_hash(host.state()[part], host.namespace) == _neutral_hash(
            state[part], namespace), part
    orders = risk.records()["orders"]
    children = expected.orders[expected.orders["type"].isin(
        ["market", "limit", "stop", "stop_limit"])]
    assert [_strip(o["id"]) for o in orders] == [_strip(c) for c in children["client_order_id"]]
    assert len(orders) == risk.summary()["orders"]


def test_the_paper_brokers_fills_archive_lists_each_fill_once(data_dir: Path,
                                                             tmp_path: Path) -> None:
    """The paper broker's fills of days before leave its memory for ``gateway.fills`` (at a
    snapshot); a crash between an append and the snapshot releases them again (here: the last
    append written twice): the session's fills are still the backtest's, each once, also from
    a gateway rebuilt from its journal."""
    config = _config(data_dir)
    setup, risk, gateway, hosts = _session(config, tmp_path, snapshot_every=5)
    _run(setup, risk, gateway, hosts)
    expected = run_backtest(config, write=False)
    venue = gateway.venue
    assert 0 < len(venue.archived_fills) < len(expected.fills)
    assert len(venue.venue.fills_since(-1)) < len(expected.fills)  # memory: the last day's
    last = list(venue.archive.frames())[-1]
    venue.archive.append(last, what="the same fills again")
    assert paper_fills(gateway.fills()) == backtest_fills(expected)
    venue.journal.close()
    rebuilt = _plain(GatewayActor)(setup)
    assert paper_fills(rebuilt.fills()) == backtest_fills(expected)
    assert rebuilt.state_hash() == gateway.state_hash()


def test_a_paper_broker_whose_fills_archive_fails_keeps_its_fills(
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk refuses the paper broker's archive append: the step fails with a
    :class:`DiskWriteError` naming ``gateway.fills``, no snapshot drops the fills, and the
    session's fills are all still there."""
    config = _config(data_dir)
    setup, risk, gateway, hosts = _session(config, tmp_path, snapshot_every=5)
    messages, start_ns = load_messages(setup, FeedConfig())
    ports = _ports(risk, gateway, hosts)
    driver = Driver(ports, messages, start_ns=start_ns, batch_size=16,
                    carrier=CallPath(ports.hosts, ports.risk, ports.gateway, books=ports.books))
    sync = os.fsync

    def full(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("gateway.fills"):
            raise OSError(errno.ENOSPC, "No space left on device")
        sync(fd)

    async def go() -> None:
        await driver.start()
        while not gateway.venue.archived_fills:
            assert await driver.step()
        monkeypatch.setattr(os, "fsync", full)
        with pytest.raises(DiskWriteError, match=r"gateway\.fills: the paper broker's fills not "
                                                 r"archived \(\d+ fills, first .*\): No space"):
            while await driver.step():
                pass

    asyncio.run(go())
    monkeypatch.undo()
    archived = list(gateway.venue.archived_fills)
    fills = [f.fill_id for f in gateway.fills()]
    assert fills[:len(archived)] == archived and len(fills) == len(set(fills))
    assert sorted(fills) == risk.view()["fills"]  # every fill risk applied is still there


def test_a_risk_journal_from_before_the_archive_resumes_and_archives_from_then_on(
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A risk journal whose snapshots hold a kernel that kept no retired orders (written
    before the archive) restores; the orders that retire from then on are archived."""
    config = _config(data_dir)
    plain = _plain(RiskActor)
    monkeypatch.setattr(plain, "_flush", lambda self: self.jk.flush())  # as before the archive
    setup, risk, gateway, hosts = _session(config, tmp_path, snapshot_every=5)
    risk.jk.kernel.retired_orders = None  # the risk kernel as it was built before
    _run(setup, risk, gateway, hosts, stop_at=400)
    before = risk.summary()["retired"]
    assert before > 0 and risk.jk.kernel.retired_orders is None
    risk.jk.journal.close()
    monkeypatch.undo()
    resumed = plain(setup)
    assert resumed.jk.kernel.retired_orders == []
    assert resumed.summary()["retired"] == before
    _run(setup, resumed, gateway, hosts)  # the rest of the data
    after = resumed.summary()["retired"]
    assert after > before
    assert len(_archived_ids(resumed.archive)) == after - before
