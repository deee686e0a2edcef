"""A gateway SIGKILLed after its send log was compacted, restarted against the IB loopback fake:
nothing is sent twice, every fill is counted once, the reports go on from the driver's cursor,
positions equal the broker's, and an order the session never sent is still noticed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.venues.links import open_broker_gateway
from actors.venues.send_log import SendLog
from runtime.errors import InvariantError
from runtime.journal import Journal
from runtime.values import FIXED_SCALE
from tests.venues.broker_helpers import FakeIbThread
from tests.venues.sendlog_child import config, submit

pytest.importorskip("ib_async")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_ib() -> Iterator[FakeIbThread]:
    fake = FakeIbThread(auto_fill_price=100.0)
    yield fake
    fake.close()


def _run_until_compacted(port: int, folder: Path, *, retired: int) -> tuple[int, int]:
    """The child gateway until ``retired`` orders retired and a few more went; SIGKILL. The
    last (orders done, report base) it printed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-m", "tests.venues.sendlog_child", str(port),
                              str(folder)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert child.stdout is not None
    done = base = 0
    after = 0
    try:
        for line in child.stdout:
            done, gone, base = map(int, line.split())
            after += gone >= retired
            if after >= 3:  # mid-run: the next order is on its way when the kill lands
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    assert after >= 3, f"the child stopped early (rc {child.returncode})"
    return done, base


def test_restart_after_compaction_sends_nothing_twice_and_counts_each_fill_once(
        fake_ib: FakeIbThread, tmp_path: Path) -> None:
    done, base = _run_until_compacted(fake_ib.port, tmp_path, retired=20)
    with Journal(tmp_path / "broker.ib.journal") as journal:
        kept = set(SendLog(journal).orders)
    every = fake_ib.snapshot()["executions"]

    def the_day_passed() -> None:  # IB lists the day's executions: the retired were earlier
        fake = fake_ib.fake
        fake.executions = [e for e in fake.executions if e.order.order_ref in kept]
    fake_ib.call(the_day_passed)

    again = open_broker_gateway(config(fake_ib.port), tmp_path, instruments={},
                                confirmed_live=False)
    try:
        assert again.report_base >= base > 0  # compacted before the kill, and stays so
        with pytest.raises(InvariantError, match="compaction"):
            again.reports_due(again.report_base - 1)
        seen = again.report_base + len(again.reports)
        while (more := again.drain(seen)) is not None:
            seen += len(more)
        placed = fake_ib.snapshot()["placed"]
        assert len(placed) == len(set(placed)) and len(placed) >= done  # each order once
        last = [submit(cid) for cid in placed[-5:]]
        assert again.send(last) == 0  # a retried step after the restart: recognised
        assert again.send([submit("after-kill")]) == 1
        while (more := again.drain(seen)) is not None:
            seen += len(more)
        view = again.view()
        snap = fake_ib.snapshot()
        assert snap["placed"].count("after-kill") == 1 and len(snap["placed"]) == len(placed) + 1
        assert view["positions"] == {"SIM-A": int(snap["positions"]["SIMA"]) * FIXED_SCALE}
        fills = view["fills"]
        assert len(fills) == len(set(fills))  # each fill once
        assert set(fills) == {f"IB-{e}" for e in every + snap["executions"]}
        assert again.health()["foreign_reports"] == 0  # nothing the session sent looks foreign
    finally:
        again.close()


def test_a_broker_listing_retired_orders_again_counts_them_foreign_never_twice(
        fake_ib: FakeIbThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why orders retire only a day after they closed: a reconciliation that lists a retired
    order's executions again (IB lists the day's) finds no order for them. They are counted as
    reports about orders the session never sent (the storm watchdog's count) and never as
    fills: positions and fills stay as they were, in the same process as after a restart."""
    from actors.venues.gateway import BrokerGateway

    monkeypatch.setattr(BrokerGateway, "retire_after_s", 0.0)
    monkeypatch.setattr(BrokerGateway, "cursor_settle_s", 0.0)
    monkeypatch.setattr(BrokerGateway, "keep_commands", 1)  # the window: the latest command
    monkeypatch.setattr(BrokerGateway, "compact_every", 1)
    gateway = open_broker_gateway(config(fake_ib.port), tmp_path, instruments={},
                                  confirmed_live=False)
    try:
        seen = 0
        for i in range(5):
            gateway.send([submit(f"r-{i}")])
            while (more := gateway.drain(seen)) is not None:
                seen += len(more)
            gateway.commit()
        gateway.clock_ns = lambda: time.time_ns() + 10**10  # ten seconds on: the cursor settles
        gateway.reports_due(seen)
        assert sorted(gateway.compact_send_log()) == [f"r-{i}" for i in range(4)]
        before = gateway.view()
        gateway.request_reconcile()
        deadline = time.monotonic() + 20
        while gateway.health()["foreign_reports"] < 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gateway.health()["foreign_reports"] == 8  # 4 orders x 2 executions, listed again
        after = gateway.view()
        assert after["positions"] == before["positions"] == {"SIM-A": 50 * FIXED_SCALE}
        assert after["fills"] == before["fills"] and len(set(after["fills"])) == 10
        assert gateway.reports_due(seen) == []  # nothing reported twice
    finally:
        gateway.close()
