"""Linked orders at Interactive Brokers, natively: a bracket goes out as IB attaches orders
(the children with ``parentId``, ``transmit`` off on all but the last leg) with its exits in an
OCA group, through the unmodified ib_async client against the loopback fake gateway, whose
side follows the TWS API's documented behaviour (children held until the parent fills, an OCA
fill reducing or cancelling the others). Then a crash between legs: nothing sent twice, nothing
left orphaned."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.venues.ib_support import OCA_REDUCE_WITH_BLOCK, ContractSpec, IbConfig
from actors.venues.links import open_broker_gateway
from runtime.messages import (
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderType,
    SubmitOrder,
)
from runtime.values import FIXED_SCALE, fixed
from tests.venues.broker_helpers import FakeIbThread
from tests.venues.harness import IbHarness

pytest.importorskip("ib_async")
Q = FIXED_SCALE


def _leg(cid: str, side: OrderSide, order_type: OrderType, *, instrument: str,
         parent: str = "", oca: str = "", price: str | None = None,
         trigger: str | None = None) -> SubmitOrder:
    return SubmitOrder(seq=1, ts_event=1, ts_init=1, client_order_id=cid, strategy_id="s",
                       instrument_id=instrument, side=side, order_type=order_type,
                       quantity=10 * Q, price=None if price is None else fixed(price),
                       trigger_price=None if trigger is None else fixed(trigger),
                       protective=bool(parent), parent_id=parent, oca_group=oca)


def _bracket(instrument: str, prefix: str = "b") -> list[SubmitOrder]:
    entry = f"{prefix}-1"
    return [
        _leg(entry, OrderSide.BUY, OrderType.LIMIT, instrument=instrument, price="10"),
        _leg(f"{prefix}-2", OrderSide.SELL, OrderType.LIMIT, instrument=instrument,
             parent=entry, oca=f"{prefix}-L", price="11"),
        _leg(f"{prefix}-3", OrderSide.SELL, OrderType.STOP, instrument=instrument,
             parent=entry, oca=f"{prefix}-L", trigger="9"),
    ]


@pytest.fixture
def h(tmp_path: Path) -> Iterator[IbHarness]:
    harness = IbHarness(tmp_path)
    yield harness
    harness.close()


def _send(h: IbHarness, legs: list[SubmitOrder]) -> None:
    async def hand() -> None:  # one call on the client's loop, as the gateway hands a batch
        for leg in legs:
            h.port.submit(leg, 1)

    h.run(hand())
    h.settle()


def _after_grace(h: IbHarness) -> list[object]:
    """Reports once a Cancelled status has waited out its grace for an error code."""
    h.run(asyncio.sleep(h.port.config.reject_grace_s + 0.1))
    h.port.pump()
    return h.reports()


def test_a_bracket_arrives_attached_with_an_oca_group_and_ib_holds_the_exits(
        h: IbHarness) -> None:
    _send(h, _bracket(h.instrument_id))
    fake = h.fake
    entry, take, stop = (fake.find(c) for c in ("b-1", "b-2", "b-3"))
    assert fake.transmits == {"b-1": False, "b-2": False, "b-3": True}
    assert (take.parent_id, stop.parent_id) == (entry.order_id, entry.order_id)
    assert (take.oca_group, stop.oca_group) == ("b-L", "b-L")
    assert take.oca_type == stop.oca_type == OCA_REDUCE_WITH_BLOCK
    assert (entry.status, take.status, stop.status) == ("Submitted", "PreSubmitted",
                                                        "PreSubmitted")
    assert [type(r) for r in h.reports()] == [OrderAccepted] * 3
    with pytest.raises(AssertionError, match="held"):
        fake.fill("b-3", 10.0, 9.0)  # IB does not work a child before its parent fills
    fake.fill("b-1", 10.0, 10.0)
    assert (take.status, stop.status) == ("Submitted", "Submitted")
    fake.fill("b-2", 4.0, 11.0)  # a partial take-profit: IB reduces the stop by as much
    assert stop.remaining == 6.0
    fake.fill("b-2", 6.0, 11.0)
    assert stop.status == "Cancelled"
    reports = h.reports() + _after_grace(h)
    fills = [r for r in reports if isinstance(r, OrderFilled)]
    assert [(f.client_order_id, f.last_qty) for f in fills] == [
        ("b-1", 10 * Q), ("b-2", 4 * Q), ("b-2", 6 * Q)]
    assert any(isinstance(r, OrderCanceled) and r.client_order_id == "b-3" for r in reports)
    assert h.port.positions().get(h.instrument_id, 0) == 0


def test_cancelling_the_entry_cancels_the_exits_it_holds(h: IbHarness) -> None:
    _send(h, _bracket(h.instrument_id, "c"))
    h.reports()
    h.cancel("c-1")
    reports = h.reports() + _after_grace(h)
    canceled = {r.client_order_id for r in reports if isinstance(r, OrderCanceled)}
    assert canceled == {"c-1", "c-2", "c-3"}


def test_a_child_whose_parent_never_reached_ib_is_refused_not_sent(h: IbHarness) -> None:
    orphan = _leg("o-2", OrderSide.SELL, OrderType.LIMIT, instrument=h.instrument_id,
                  parent="o-1", oca="o-L", price="11")
    _send(h, [orphan])
    (report,) = h.reports()
    assert isinstance(report, OrderRejected) and report.venue_code == "gateway.parent"
    assert h.fake.placed == []


def _config(port: int, **extra: object) -> IbConfig:
    return IbConfig(port=port, client_id=21, reset_window=("00:00", "00:00"),
                    contracts={"SIM-A": ContractSpec(symbol="SIMA")},
                    **extra)  # type: ignore[arg-type]


def _settle(gateway: object) -> list[object]:
    reports: list[object] = []
    while (more := gateway.drain(len(reports))) is not None:  # type: ignore[attr-defined]
        reports.extend(more)
    return reports


@pytest.fixture
def fake_ib() -> Iterator[FakeIbThread]:
    fake = FakeIbThread()
    yield fake
    fake.close()


_GATEWAY = """
import sys, time
from pathlib import Path
from actors.venues.ib_support import ContractSpec, IbConfig
from actors.venues.links import open_broker_gateway
from tests.venues.test_ib_linked import _bracket
config = IbConfig(port=int(sys.argv[1]), client_id=21, reset_window=("00:00", "00:00"),
                  contracts={"SIM-A": ContractSpec(symbol="SIMA")}, messages_per_s=1.0)
gateway = open_broker_gateway(config, Path(sys.argv[2]), instruments={}, confirmed_live=False)
gateway.send(_bracket("SIM-A", "k"))
time.sleep(600)
"""


def test_a_sigkill_between_legs_sends_no_leg_twice_and_orphans_none(fake_ib: FakeIbThread,
                                                                    tmp_path: Path) -> None:
    """A gateway process gets the bracket, journals it and sends the entry (IB holds it,
    untransmitted); one message token a second, so the exits wait; it is SIGKILLed the moment
    the entry reaches IB. The restarted gateway reconciles (the entry is held, not lost, not
    taken for acknowledged), sends only the exits, the last transmitting all three."""
    victim: dict[str, int] = {}

    def kill_after_entry(order_ref: str) -> None:
        if order_ref == "k-1":
            os.kill(victim["pid"], signal.SIGKILL)

    fake_ib.call(lambda: setattr(fake_ib.fake, "on_place", kill_after_entry))
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-c", _GATEWAY, str(fake_ib.port), str(tmp_path)],
                            env={**os.environ, "PYTHONPATH": root}, cwd=root)
    victim["pid"] = proc.pid
    assert proc.wait(timeout=300) == -signal.SIGKILL
    fake_ib.call(lambda: setattr(fake_ib.fake, "on_place", None))
    held = fake_ib.call(lambda: (list(fake_ib.fake.placed), fake_ib.fake.find("k-1").status))
    assert held == (["k-1"], "Inactive")

    legs = _bracket("SIM-A", "k")
    again = open_broker_gateway(_config(fake_ib.port), tmp_path, instruments={},
                                confirmed_live=False)
    try:
        reports = _settle(again)
        assert again.send(legs) == 0  # a retried call: dropped
        statuses = fake_ib.call(
            lambda: {c: fake_ib.fake.find(c).status for c in ("k-1", "k-2", "k-3")})
        assert statuses == {"k-1": "Submitted", "k-2": "PreSubmitted", "k-3": "PreSubmitted"}
        fake_ib.call(lambda: fake_ib.fake.fill("k-1", 10.0, 10.0))
        fake_ib.call(lambda: fake_ib.fake.fill("k-3", 10.0, 9.0))  # stopped out
        reports += _settle(again)
        again.link.run(asyncio.sleep(again.link.venue.config.reject_grace_s + 0.2))
        reports += _settle(again)
        view = again.view()
    finally:
        again.close()
    assert fake_ib.snapshot()["placed"] == ["k-1", "k-2", "k-3"]  # each leg once
    assert fake_ib.call(lambda: dict(fake_ib.fake.transmits)) == {
        "k-1": False, "k-2": False, "k-3": True}
    closed = {r.client_order_id: type(r).__name__ for r in reports
              if isinstance(r, OrderFilled | OrderCanceled) and (
                  not isinstance(r, OrderFilled) or r.leaves_qty == 0)}
    assert closed == {"k-1": "OrderFilled", "k-2": "OrderCanceled", "k-3": "OrderFilled"}
    assert view["open_orders"] == [] and view["positions"].get("SIM-A", 0) == 0


def test_ib_declares_native_lists_the_others_are_emulated() -> None:
    from actors.venues.broker_config import PaperBrokerConfig, native_lists
    from actors.venues.shioaji_support import ShioajiConfig

    assert native_lists(_config(4002), ["SIM-B", "SIM-A"]) == ("SIM-A", "SIM-B")
    assert native_lists(ShioajiConfig(), ["2330.TWSE"]) == ()
    assert native_lists(PaperBrokerConfig(), ["SIM-A"]) == ()


def test_an_amended_exit_goes_out_transmitted(h: IbHarness) -> None:
    """The take-profit went out held (transmit off, its stop followed); the core shrinking it
    later must not leave the amendment held at the gateway."""
    _send(h, _bracket(h.instrument_id, "m"))
    h.fake.fill("m-1", 10.0, 10.0)
    h.reports()
    h.modify("m-2", 4)
    h.settle()
    assert h.fake.held_modifications == []
    assert h.fake.find("m-2").quantity == 4.0
