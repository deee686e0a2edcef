"""The gateway's broker side (``actors.venues.gateway.BrokerGateway``) across restarts, without
Ray: the IB adapter on its loop thread against the loopback fake, journals reopened as a
restarted gateway actor reopens them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.venues.common import SendLog
from actors.venues.ib_support import ContractSpec, IbConfig
from actors.venues.links import open_broker_gateway
from runtime.errors import ConfigError
from runtime.journal import Journal
from runtime.messages import (
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderStatusUnknown,
    OrderType,
    SubmitOrder,
    TimeInForce,
)
from runtime.values import FIXED_SCALE
from tests.venues.broker_helpers import FakeIbThread

pytest.importorskip("ib_async")


@pytest.fixture
def fake_ib() -> Iterator[FakeIbThread]:
    fake = FakeIbThread(auto_fill_price=100.0)
    yield fake
    fake.close()


def _config(port: int, **extra: object) -> IbConfig:
    return IbConfig(port=port, client_id=21, reset_window=("00:00", "00:00"),
                    contracts={"SIM-A": ContractSpec(symbol="SIMA")}, **extra)  # type: ignore[arg-type]


def _submit(cid: str, qty: int = 10) -> SubmitOrder:
    return SubmitOrder(seq=1, ts_event=1, ts_init=1, client_order_id=cid, strategy_id="s",
                       instrument_id="SIM-A", side=OrderSide.BUY, order_type=OrderType.MARKET,
                       quantity=qty * FIXED_SCALE, price=None, time_in_force=TimeInForce.DAY)


def _settle(gateway: object) -> list[object]:
    reports: list[object] = []
    while (more := gateway.drain(len(reports))) is not None:  # type: ignore[attr-defined]
        reports.extend(more)
    return reports


def test_each_report_is_handed_out_once_across_a_restart(fake_ib: FakeIbThread,
                                                         tmp_path: Path) -> None:
    gateway = open_broker_gateway(_config(fake_ib.port), tmp_path, instruments={},
                                  confirmed_live=False)
    assert gateway.send([_submit("g-1")]) == 1
    assert gateway.send([_submit("g-1")]) == 0  # a retried call: dropped, not sent again
    reports = _settle(gateway)
    gateway.close()
    assert [type(r) for r in reports] == [OrderAccepted, OrderFilled, OrderFilled]
    again = open_broker_gateway(_config(fake_ib.port), tmp_path, instruments={},
                                confirmed_live=False)
    try:
        assert again.reports == reports  # the same list, by index: nothing new, nothing lost
        assert again.send([_submit("g-1")]) == 0
        assert _settle(again)[len(reports):] == []
        assert again.view()["positions"] == {"SIM-A": 10 * FIXED_SCALE}
    finally:
        again.close()
    assert fake_ib.snapshot()["placed"] == ["g-1"]


def test_a_command_received_but_never_sent_goes_out_after_a_restart(fake_ib: FakeIbThread,
                                                                    tmp_path: Path) -> None:
    journal = Journal(tmp_path / "gateway.journal")  # the crash came between journal and send
    journal.append(_submit("g-2"), durable=True)
    journal.close()
    gateway = open_broker_gateway(_config(fake_ib.port), tmp_path, instruments={},
                                  confirmed_live=False)
    try:
        reports = _settle(gateway)
        assert gateway.send([_submit("g-2")]) == 0
    finally:
        gateway.close()
    assert fake_ib.snapshot()["placed"] == ["g-2"]
    assert sum(isinstance(r, OrderFilled) for r in reports) == 2


def test_an_order_journaled_before_a_crash_is_reconciled_never_resent(fake_ib: FakeIbThread,
                                                                      tmp_path: Path) -> None:
    """The crash came after the order was journaled for the broker and before (or while) it
    was sent: its outcome is unknown. The restarted gateway asks the broker, never resends."""
    journal = Journal(tmp_path / "gateway.journal")
    journal.append(_submit("g-3"), durable=True)
    journal.close()
    log = SendLog(Journal(tmp_path / "broker.ib.journal"))
    assert log.before_send(_submit("g-3"))
    log.journal.close()
    gateway = open_broker_gateway(_config(fake_ib.port), tmp_path, instruments={},
                                  confirmed_live=False)
    try:
        (report,) = _settle(gateway)
        assert gateway.send([_submit("g-3")]) == 0
    finally:
        gateway.close()
    assert fake_ib.snapshot()["placed"] == []
    assert isinstance(report, OrderRejected) and report.venue_code == "not_found"


def test_outcome_unknown_goes_to_the_view_not_to_the_kernel(fake_ib: FakeIbThread,
                                                            tmp_path: Path) -> None:
    gateway = open_broker_gateway(_config(fake_ib.port), tmp_path, instruments={},
                                  confirmed_live=False)
    try:
        gateway.send_log.report(OrderStatusUnknown(
            seq=1, ts_event=1, ts_init=1, client_order_id="g-4", strategy_id="s",
            instrument_id="SIM-A", command="submit", reason="OrderOutcomeUnknownError"))
        assert gateway.drain(0) is None and gateway.reports == []
        assert gateway.view()["unknown"] == ["g-4"]
    finally:
        gateway.close()


def test_a_real_money_account_needs_both_opt_ins_at_the_gateway_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--confirm-live"):
        open_broker_gateway(_config(1, paper=False, live=True), tmp_path, instruments={},
                            confirmed_live=False)
    with pytest.raises(ConfigError, match="live: true"):
        open_broker_gateway(_config(1, paper=False), tmp_path, instruments={},
                            confirmed_live=True)


def test_the_command_journal_stays_bounded_and_still_dedupes_after_a_restart(
        fake_ib: FakeIbThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``compact_every`` commands a snapshot keeps the latest ``keep_commands`` (and any
    the adapter has not taken) and the journal drops the rest; a retried step's command is
    still recognised after a restart, and nothing goes to the broker twice."""
    from actors.venues.gateway import BrokerGateway

    monkeypatch.setattr(BrokerGateway, "keep_commands", 3)
    monkeypatch.setattr(BrokerGateway, "compact_every", 4)
    gateway = open_broker_gateway(_config(fake_ib.port), tmp_path, instruments={},
                                  confirmed_live=False)
    sizes = []
    for i in range(12):
        assert gateway.send([_submit(f"c-{i}")]) == 1
        gateway.commit()
        sizes.append(sum(1 for _ in gateway.journal.entries()))
    _settle(gateway)
    gateway.close()
    assert max(sizes) <= 4 and sizes[-1] == 0  # compacted: the snapshot holds the latest 3
    with Journal(tmp_path / "gateway.journal") as journal:
        snapshot, upto, tail = journal.restore()
        assert snapshot is not None and upto == 12 and list(tail) == []
    again = open_broker_gateway(_config(fake_ib.port), tmp_path, instruments={},
                                confirmed_live=False)
    try:
        assert [c.client_order_id for c in again.commands] == ["c-9", "c-10", "c-11"]
        assert again.send([_submit("c-11")]) == 0  # a retried step: recognised
        assert again.send([_submit("c-12")]) == 1
        _settle(again)
    finally:
        again.close()
    assert fake_ib.snapshot()["placed"] == [f"c-{i}" for i in range(13)]  # each once
