"""A full disk under the gateway's journals, on a real small filesystem (a 2 MB tmpfs mounted
for the test, filled with a ballast file): trading stops without sending an order that is not
journaled, the error names the file and what was not written, and what was journaled before
survives. Mounting needs root: elsewhere these tests skip, saying so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.venues.links import open_broker_gateway
from actors.venues.send_log import SendLog
from runtime.errors import DiskWriteError
from runtime.journal import Journal
from runtime.messages import OrderFilled
from runtime.values import FIXED_SCALE
from tests.small_disk import fill_up, mounted_tmpfs
from tests.venues.broker_helpers import FakeIbThread
from tests.venues.sendlog_child import config, submit


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted afterwards."""
    with mounted_tmpfs(tmp_path / "small", "2m") as folder:
        yield folder


def test_a_full_disk_refuses_the_send_and_keeps_what_was_journaled(small_fs: Path) -> None:
    path = small_fs / "broker.x.journal"
    log = SendLog(Journal(path))
    for i in range(3):
        assert log.before_send(submit(f"ok-{i}"))
        log.sent(f"ok-{i}")
    ballast = fill_up(small_fs)
    with pytest.raises(DiskWriteError) as caught:
        log.before_send(submit("full-1"))
    message = str(caught.value)
    assert str(path) in message and "SubmitOrder full-1" in message
    assert "SQLITE_FULL" in message and "intact up to seq 6" in message
    assert "full-1" not in log.orders  # refused: the adapter never calls the broker
    ballast.unlink()  # space again: the log stays stopped until a restart
    with pytest.raises(DiskWriteError):
        log.before_send(submit("full-2"))
    log.journal.close()
    again = SendLog(Journal(path))
    assert list(again.orders) == ["ok-0", "ok-1", "ok-2"]
    assert all(o.sent for o in again.orders.values())
    assert again.before_send(submit("full-1"))  # it never went: it may go now
    again.journal.close()


@pytest.fixture
def fake_ib() -> Iterator[FakeIbThread]:
    pytest.importorskip("ib_async")
    fake = FakeIbThread(auto_fill_price=100.0)
    yield fake
    fake.close()


def test_a_gateway_on_a_full_disk_stops_sending_and_a_restart_recovers(
        fake_ib: FakeIbThread, small_fs: Path) -> None:
    gateway = open_broker_gateway(config(fake_ib.port), small_fs, instruments={},
                                  confirmed_live=False)
    seen = 0
    try:
        for i in range(3):
            assert gateway.send([submit(f"d-{i}")]) == 1
            while (more := gateway.drain(seen)) is not None:
                seen += len(more)
            gateway.commit()
        ballast = fill_up(small_fs)
        with pytest.raises(DiskWriteError) as caught:
            for i in range(3, 40):  # the WAL may have room for a few more
                gateway.send([submit(f"d-{i}")])
                while (more := gateway.drain(seen)) is not None:
                    seen += len(more)
        assert str(small_fs) in str(caught.value) and "not written" in str(caught.value)
        health = gateway.health()
        assert health["journal_error"] == str(caught.value)
        ballast.unlink()
        with pytest.raises(DiskWriteError):  # stopped for good, space or not
            gateway.send([submit("d-after")])
        placed = fake_ib.snapshot()["placed"]
    finally:
        gateway.close()
    with Journal(small_fs / "broker.ib.journal") as journal:
        journaled = set(SendLog(journal).orders)
    assert set(placed) <= journaled  # nothing reached the broker that was not journaled
    assert "d-after" not in placed and {"d-0", "d-1", "d-2"} <= set(placed)
    again = open_broker_gateway(config(fake_ib.port), small_fs, instruments={},
                                confirmed_live=False)
    try:
        while (more := again.drain(seen)) is not None:
            seen += len(more)
        snap = fake_ib.snapshot()
        assert again.view()["positions"] == {"SIM-A": int(snap["positions"]["SIMA"])
                                              * FIXED_SCALE}
        fills = [r.fill_id for r in again.reports if isinstance(r, OrderFilled)]
        assert len(fills) == len(set(fills)) == len(snap["executions"])
        assert snap["placed"] == placed  # the restart resent nothing
    finally:
        again.close()


def test_a_session_log_that_cannot_be_written_stops_the_gateway(
        fake_ib: FakeIbThread, small_fs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from actors import logs

    monkeypatch.setattr(logs, "_write_failure", None)  # this process's, put back afterwards
    handler = logs.install("fullsession", "gateway", small_fs / "session.log.jsonl")
    gateway = open_broker_gateway(config(fake_ib.port), small_fs, instruments={},
                                  confirmed_live=False)
    try:
        assert gateway.send([submit("l-0")]) == 1
        seen = 0
        while (more := gateway.drain(seen)) is not None:
            seen += len(more)
        ballast = fill_up(small_fs)
        logging.getLogger("tradewind.test").warning("a line the full disk refuses")
        failure = logs.write_failure()
        assert failure is not None and "session.log.jsonl" in str(failure)
        ballast.unlink()  # the journals could write again: the log's failure still stops it
        with pytest.raises(DiskWriteError, match="cannot write the session log"):
            gateway.send([submit("l-1")])
        assert gateway.health()["journal_error"] == str(failure)
    finally:
        gateway.close()
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert "l-1" not in fake_ib.snapshot()["placed"]
