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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from actors.venues.ib_support import OCA_REDUCE_WITH_BLOCK, TRIGGER_LAST, ContractSpec, IbConfig
from actors.venues.links import open_broker_gateway
from runtime.kernel import Kernel
from runtime.messages import (
    CancelOrder,
    Message,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderListChanged,
    OrderListStatus,
    OrderRejected,
    OrderSide,
    OrderType,
    OrderUpdated,
    SubmitOrder,
    TradeTick,
)
from runtime.values import FIXED_SCALE, fixed
from tests.runtime.test_kernel import REG
from tests.runtime.test_kernel_risk import Scripted, act
from tests.runtime.test_linked_native import native
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


@pytest.mark.parametrize("restart", [False, True])
def test_a_released_child_s_reject_is_a_reject_not_a_cancel(h: IbHarness,
                                                            restart: bool) -> None:
    """A bracket's entry fills, which releases its exits; IB Gateway may restart (its order
    ids start again: a new order may take the entry's). An exit then refused by IB
    (``Cancelled``, then its error code) is rejected: only a parent that ended unfilled or
    partly filled takes its children with it, and the parent is the exit's own
    (``parent_id``), never found by an IB order id."""
    _send(h, _bracket(h.instrument_id, "p"))
    h.fake.fill("p-1", 10.0, 10.0)
    h.reports()
    if restart:
        h.run(h.fake.restart())
        h.settle()
        h.run(h.port.connect())
    h.submit("n-1", 1)  # a new order in the new IB session, canceled
    h.settle()
    h.cancel("n-1")
    assert [type(r) for r in h.reports()][-1] is OrderCanceled
    h.fake.reject("p-2", 201, "Order rejected - reason:the exchange refused it")
    reports = h.reports() + _after_grace(h)
    (ended,) = [r for r in reports if r.client_order_id == "p-2"]
    assert isinstance(ended, OrderRejected) and ended.venue_code == "201"
    assert h.port.book.get("p-3").is_open


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


# --- a parent that fills partly: the kernel, the adapter and IB agree after every step --------

class _KernelHarness(IbHarness):
    instrument_id = "X"  # the runtime tests' instrument, named AAPL at the fake gateway


@pytest.fixture
def kh(tmp_path: Path) -> Iterator[IbHarness]:
    harness = _KernelHarness(tmp_path)
    yield harness
    harness.close()


def route(k: Kernel, h: IbHarness, out: list[Message]) -> list[Message]:
    """``out``'s commands to the adapter (one batch, as the gateway hands them), its reports
    to the kernel, until both are quiet (a Cancelled status waits out its grace); everything
    on the way."""
    seen: list[Message] = list(out)
    while True:
        async def hand(batch: list[Message]) -> None:
            for msg in batch:
                if isinstance(msg, SubmitOrder):
                    h.port.submit(msg, k.now)
                elif isinstance(msg, CancelOrder):
                    h.port.cancel(msg, k.now)
                elif isinstance(msg, ModifyOrder):
                    h.port.modify(msg, k.now)

        h.run(hand(out))
        reports = h.reports() or (_after_grace(h) if h.port._cancelled_at else [])
        if not reports:
            return seen
        out = [m for report in reports for m in k.handle(report)]
        seen += reports + out


def _fill(k: Kernel, h: IbHarness, cid: str, qty: float, price: float) -> list[Message]:
    h.fake.fill(cid, qty, price)
    return route(k, h, [])


def _agree(k: Kernel, h: IbHarness) -> None:
    """The kernel, the adapter and IB hold the same open orders with the same quantities and
    the same position, and a reconciliation finds nothing to mend."""
    fake = h.fake
    at_ib = {o.order_ref: o.remaining for o in fake.orders.values()
             if o.status not in ("Filled", "Cancelled")}
    assert {cid: o.leaves_qty for cid, o in k.open.items()} == {
        cid: round(left * Q) for cid, left in at_ib.items()}
    assert {o.client_order_id for o in h.port.open_orders()} == set(at_ib)
    position = round(fake.positions.get("AAPL", 0.0) * Q)
    assert k.portfolio.quantity("X") == position == h.port.positions().get("X", 0)
    assert h.run(h.port.reconcile()) is True and h.port.reconciler.last_drifts == []
    assert h.reports() == []  # and has nothing to report


def _kernel_bracket(k: Kernel, h: IbHarness) -> tuple[str, str, str]:
    out = route(k, h, act(k, lambda s: s.bracket("X", OrderSide.BUY, 100 * Q,
                                                  entry_price=fixed(100),
                                                  take_profit=fixed(110),
                                                  stop_loss=fixed(95))))
    entry, take, stop = (m.client_order_id for m in out if isinstance(m, SubmitOrder))
    return entry, take, stop


def _list_statuses(seen: list[Message]) -> list[OrderListStatus]:
    return [m.status for m in seen if isinstance(m, OrderListChanged)]


def test_a_partly_filled_entry_keeps_its_exits_held_at_ib_until_it_fills_in_full(
        kh: IbHarness) -> None:
    """IB holds a bracket's exits (PreSubmitted, at the entry's whole quantity) until the
    entry has filled: after each partial fill the kernel, the adapter and IB agree on the
    exits (held, full size), the position and a clean reconciliation; the full fill releases
    them; a stop-out cancels the take-profit through the OCA group."""
    k = native()
    entry, take, stop = _kernel_bracket(k, kh)
    _agree(k, kh)
    for qty in (30.0, 45.0):
        seen = _fill(k, kh, entry, qty, 100.0)
        assert _list_statuses(seen) == []  # nothing released yet: IB still holds the exits
        assert (kh.fake.find(take).status, kh.fake.find(stop).status) == (
            "PreSubmitted", "PreSubmitted")
        assert kh.fake.find(stop).quantity == 100.0 and k.orders[stop].quantity == 100 * Q
        _agree(k, kh)
    seen = _fill(k, kh, entry, 25.0, 100.0)
    assert _list_statuses(seen) == [OrderListStatus.RELEASED]
    assert (kh.fake.find(take).status, kh.fake.find(stop).status) == ("Submitted", "Submitted")
    _agree(k, kh)
    seen = _fill(k, kh, stop, 100.0, 95.0)
    assert _list_statuses(seen) == [OrderListStatus.COMPLETED]
    assert kh.fake.find(take).status == "Cancelled" and not k.open
    _agree(k, kh)


def test_an_entry_cancelled_partly_filled_leaves_its_fill_protected(kh: IbHarness) -> None:
    """IB cancels the exits it holds with their cancelled parent, partial fill or not: the
    core sends them again for the filled 30, in an OCA group of their own (no parent), and
    everything agrees; the new take-profit's fill then cancels the new stop at IB."""
    k = native()
    entry, take, stop = _kernel_bracket(k, kh)
    _fill(k, kh, entry, 30.0, 100.0)
    seen = route(k, kh, act(k, lambda s: s.cancel(entry)))
    assert {c: kh.fake.find(c).status for c in (entry, take, stop)} == dict.fromkeys(
        (entry, take, stop), "Cancelled")
    again = [m for m in seen if isinstance(m, SubmitOrder)]
    assert [(m.order_type, m.quantity, m.parent_id) for m in again] == [
        (OrderType.LIMIT, 30 * Q, ""), (OrderType.STOP, 30 * Q, "")]
    take2, stop2 = (kh.fake.find(m.client_order_id) for m in again)
    assert take2.oca_group == stop2.oca_group == again[0].client_order_id
    assert (take2.status, stop2.status, take2.parent_id) == ("Submitted", "Submitted", 0)
    assert _list_statuses(seen) == [OrderListStatus.RELEASED]
    _agree(k, kh)
    done = _fill(k, kh, take2.order_ref, 30.0, 110.0)
    assert stop2.status == "Cancelled" and _list_statuses(done) == [OrderListStatus.COMPLETED]
    _agree(k, kh)


def _kernel_config(port: int) -> IbConfig:
    return IbConfig(port=port, client_id=22, reset_window=("00:00", "00:00"),
                    contracts={"X": ContractSpec(symbol="AAPL")})


def _bracket_commands(k: Kernel) -> list[Message]:
    """The bracket the kernel ``k`` sends (the same ids for every kernel built alike)."""
    return act(k, lambda s: s.bracket("X", OrderSide.BUY, 100 * Q, entry_price=fixed(100),
                                      take_profit=fixed(110), stop_loss=fixed(95)))


_PARTIAL_GATEWAY = """
import sys, time
from pathlib import Path
from actors.venues.links import open_broker_gateway
from tests.runtime.test_linked_native import native
from tests.venues.test_ib_linked import _bracket_commands, _kernel_config
gateway = open_broker_gateway(_kernel_config(int(sys.argv[1])), Path(sys.argv[2]),
                              instruments={}, confirmed_live=False)
gateway.send([m for m in _bracket_commands(native()) if hasattr(m, "side")])
seen = 0
while True:  # journal what comes, until the SIGKILL
    seen += len(gateway.drain(seen) or [])
    gateway.commit()
    time.sleep(0.05)
"""


def _through(k: Kernel, gateway: Any, out: list[Message]) -> list[Message]:
    """``out``'s commands to the gateway, its new reports to the kernel, until quiet."""
    seen: list[Message] = []
    commands = (SubmitOrder, CancelOrder, ModifyOrder)
    while True:
        gateway.send([m for m in out if isinstance(m, commands)])
        reports = gateway.drain(_through.cursor) or []  # type: ignore[attr-defined]
        _through.cursor += len(reports)  # type: ignore[attr-defined]
        if not reports and not any(isinstance(m, commands) for m in out):
            return seen
        out = [m for report in reports for m in k.handle(report)]
        seen += reports + out


def _killed_after_a_partial_fill(fake_ib: FakeIbThread, tmp_path: Path,
                                 ) -> tuple[Kernel, str, str, str]:
    """A gateway process sends the kernel's bracket; IB fills 40 of its 100 and the process is
    SIGKILLed. The kernel (built alike, so the same ids) and the legs' ids."""
    fake = fake_ib.fake
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen(
        [sys.executable, "-c", _PARTIAL_GATEWAY, str(fake_ib.port), str(tmp_path)],
        env={**os.environ, "PYTHONPATH": root}, cwd=root)
    try:
        k = native()
        entry, take, stop = (m.client_order_id for m in _bracket_commands(k)
                             if isinstance(m, SubmitOrder))
        for _ in range(600):
            if fake_ib.call(lambda: len(fake.placed)) == 3:
                break
            time.sleep(0.1)
        fake_ib.call(lambda: fake.fill(entry, 40.0, 100.0))
        time.sleep(1.0)  # the process may or may not have journaled the fill: either is fine
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    return k, entry, take, stop


def test_a_sigkill_while_the_entry_is_partly_filled_then_filled_releases_the_exits_once(
        fake_ib: FakeIbThread, tmp_path: Path) -> None:
    """While the gateway is down IB fills the entry's other 60 and releases the exits it held
    (full size). The restarted gateway reconciles the missed executions: the kernel reports
    the list released, sends nothing, and the kernel, the gateway and IB agree; the
    take-profit's fill then cancels the stop through the OCA group."""
    fake = fake_ib.fake
    k, entry, take, stop = _killed_after_a_partial_fill(fake_ib, tmp_path)
    fake_ib.call(lambda: fake.fill(entry, 60.0, 100.5))
    again = open_broker_gateway(_kernel_config(fake_ib.port), tmp_path, instruments={},
                                confirmed_live=False)
    _through.cursor = 0  # type: ignore[attr-defined]
    try:
        seen = _through(k, again, [])
        assert [m for m in seen if isinstance(m, SubmitOrder | CancelOrder | ModifyOrder)] == []
        assert [m.status for m in seen if isinstance(m, OrderListChanged)] == [
            OrderListStatus.RELEASED]
        assert fake_ib.call(lambda: {c: (fake.find(c).status, fake.find(c).remaining)
                                     for c in (take, stop)}) == {
            take: ("Submitted", 100.0), stop: ("Submitted", 100.0)}
        assert {c: o.leaves_qty for c, o in k.open.items()} == {take: 100 * Q, stop: 100 * Q}
        assert k.portfolio.quantity("X") == 100 * Q == again.view()["positions"].get("X")
        assert sorted(again.view()["open_orders"]) == sorted([take, stop])
        assert again.link.call(lambda: again.link.venue.reconciler.last_drifts) == []
        fake_ib.call(lambda: fake.fill(take, 100.0, 110.0))
        done = _through(k, again, [])
        time.sleep(again.link.venue.config.reject_grace_s + 0.2)  # the OCA cancel's grace
        done += _through(k, again, [])
        assert [m.status for m in done if isinstance(m, OrderListChanged)] == [
            OrderListStatus.COMPLETED]
        assert not k.open and k.portfolio.quantity("X") == 0
        assert again.view()["open_orders"] == [] and again.view()["positions"].get("X", 0) == 0
    finally:
        again.close()
    assert fake_ib.snapshot()["placed"] == [entry, take, stop]  # each leg once


def test_a_sigkill_while_the_entry_is_partly_filled_then_expired_leaves_its_fill_protected(
        fake_ib: FakeIbThread, tmp_path: Path) -> None:
    """While the gateway is down IB fills 20 more and then ends the entry at its time in
    force, taking the held exits with it. The restarted gateway reconciles: the 60 filled,
    three orders closed; the kernel sends the exits again for 60 (an OCA group, no parent,
    each once), and the kernel, the gateway and IB agree; a stop-out then flattens
    everything."""
    fake = fake_ib.fake
    k, entry, take, stop = _killed_after_a_partial_fill(fake_ib, tmp_path)
    fake_ib.call(lambda: fake.fill(entry, 20.0, 100.5))
    fake_ib.call(lambda: fake.expire(entry))
    assert fake_ib.call(lambda: {c: fake.find(c).status for c in (entry, take, stop)}) == (
        dict.fromkeys((entry, take, stop), "Cancelled"))

    again = open_broker_gateway(_kernel_config(fake_ib.port), tmp_path, instruments={},
                                confirmed_live=False)
    _through.cursor = 0  # type: ignore[attr-defined]
    try:
        assert again.send([m for m in _bracket_commands(native())
                           if isinstance(m, SubmitOrder)]) == 0  # a retried call: dropped
        seen = _through(k, again, [])
        exits = [m for m in seen if isinstance(m, SubmitOrder)]
        assert [(m.order_type, m.quantity, m.parent_id) for m in exits] == [
            (OrderType.LIMIT, 60 * Q, ""), (OrderType.STOP, 60 * Q, "")]
        at_ib = fake_ib.call(lambda: {o.order_ref: (o.status, o.remaining, o.oca_group)
                                      for o in fake.orders.values()})
        group = exits[0].client_order_id
        assert {c: v for c, v in at_ib.items() if v[0] != "Cancelled"} == {
            m.client_order_id: ("Submitted", 60.0, group) for m in exits}
        assert {c: o.leaves_qty for c, o in k.open.items()} == {
            m.client_order_id: 60 * Q for m in exits}
        at_broker = fake_ib.snapshot()["positions"]["AAPL"]
        assert k.portfolio.quantity("X") == 60 * Q == round(at_broker * Q)
        view = again.view()
        assert sorted(view["open_orders"]) == sorted(m.client_order_id for m in exits)
        assert view["positions"].get("X") == 60 * Q
        assert again.link.call(lambda: again.link.venue.reconciler.last_drifts) == []
        fake_ib.call(lambda: fake.fill(exits[1].client_order_id, 60.0, 95.0))
        done = _through(k, again, [])
        time.sleep(again.link.venue.config.reject_grace_s + 0.2)  # the OCA cancel's grace
        done += _through(k, again, [])
        assert [m.status for m in done if isinstance(m, OrderListChanged)] == [
            OrderListStatus.COMPLETED]
        assert not k.open and k.portfolio.quantity("X") == 0
        assert again.view()["open_orders"] == [] and again.view()["positions"].get("X", 0) == 0
    finally:
        again.close()
    placed = fake_ib.snapshot()["placed"]
    assert sorted(placed) == sorted({*placed}) and len(placed) == 5  # each leg once


# --- trailing stops: IB's TRAIL where IB can follow the trail, the core's elsewhere ----------

_PATH = (100.5, 101.0, 103.0, 102.0, 104.5, 103.2, 102.9, 102.4, 101.0)  # 102.5: stopped out


def _trail_run(tmp: Path, *, native: bool, **trail: Any) -> tuple[list[tuple[Any, ...]],
                                                                  tuple[Any, ...]]:
    """A strategy buys 100 at 100 and protects them with a sell trailing stop (``trail``),
    then trades print along :data:`_PATH` (the kernel sees each as IB does); the stop's fills
    as (side, qty, price), and how the stop went out to IB (type, auxPrice, trailingPercent,
    trailStopPrice, triggerMethod)."""
    tmp.mkdir(parents=True)
    h = _KernelHarness(tmp)
    try:
        k = Kernel(registry=REG, strategies=[Scripted("s", instruments=("X",))],
                   initial_cash=fixed(1_000_000), namespace="kt", seed=1,
                   native_trailing=("X",) if native else ())
        k.start(0)
        ts = iter(range(10**9, 10**12, 10**9))

        def prints(price: float) -> list[Message]:
            when = next(ts)
            seen = route(k, h, k.handle(TradeTick(0, when, when, "X", fixed(str(price)), Q)))
            h.fake.market("AAPL", price)
            return seen + route(k, h, [])

        prints(100.0)
        (entry,) = [m.client_order_id for m in route(k, h, act(k, lambda s: s.buy("X", 100 * Q)))
                    if isinstance(m, SubmitOrder)]
        h.fake.fill(entry, 100.0, 100.0)
        route(k, h, [])
        stop = ""

        def protect(s: Any) -> None:
            nonlocal stop
            stop = s.trailing_stop("X", OrderSide.SELL, 100 * Q, **trail)

        route(k, h, act(k, protect))
        placed = h.fake.find(stop)
        wire = (placed.order_type, placed.aux_price, placed.trail_percent, placed.trail_stop,
                placed.trigger_method)
        fills: list[tuple[Any, ...]] = []
        for price in _PATH:
            fills += [(f.side, f.last_qty, f.last_price) for f in prints(price)
                      if isinstance(f, OrderFilled) and f.client_order_id == stop]
        assert k.portfolio.quantity("X") == 0 == h.port.positions().get("X", 0)
        assert not k.open and h.run(h.port.reconcile()) is True
        return fills, wire
    finally:
        h.close()


def test_a_trailing_stop_is_ib_s_trail_and_fills_as_the_core_s_emulation(
        tmp_path: Path) -> None:
    """The same strategy, the same prints: IB trailing the stop itself (TRAIL, 2.00 behind the
    last price, its initial stop 98.00 from the last price at the time) and the core moving a
    plain stop (STP, modified on each new high) stop out once, at the same trade, for the
    same quantity: the one sell at 102.40 (the high 104.50 less 2.00 is 102.50)."""
    native, wire = _trail_run(tmp_path / "native", native=True, offset=fixed(2))
    emulated, plain = _trail_run(tmp_path / "emulated", native=False, offset=fixed(2))
    assert wire == ("TRAIL", "2.0", 0.0, 98.0, TRIGGER_LAST)
    assert plain[0] == "STP"
    assert native == emulated == [(OrderSide.SELL, 100 * Q, fixed("102.4"))]


def test_a_trailing_stop_in_basis_points_is_ib_s_trailing_percent(tmp_path: Path) -> None:
    """200 bps is trailingPercent 2: the stop trails 2% under the last price (102.41 under the
    104.50 high), hit by the 102.40 print; the core's emulation trails alike (to the tick)."""
    native, wire = _trail_run(tmp_path / "native", native=True, bps=200)
    emulated, _ = _trail_run(tmp_path / "emulated", native=False, bps=200)
    assert wire == ("TRAIL", "", 2.0, 98.0, TRIGGER_LAST)
    assert native == emulated == [(OrderSide.SELL, 100 * Q, fixed("102.4"))]


def test_a_trail_ib_cannot_follow_stays_with_the_core(tmp_path: Path) -> None:
    """IB's TRAIL follows the last price by an amount or a percentage: a trail off the mid, or
    in ticks, is a plain stop the core moves, even where IB trails natively."""
    for trail in ({"offset": fixed(2), "reference": "mid"}, {"ticks": 200}):
        fills, wire = _trail_run(tmp_path / f"core{len(trail)}",
                                 native=True, **trail)
        assert wire[0] == "STP" and wire[2] == 0.0
        assert fills == [(OrderSide.SELL, 100 * Q, fixed("102.4"))]


def test_ib_trails_natively_by_default_and_can_be_told_not_to() -> None:
    from actors.venues.broker_config import PaperBrokerConfig, native_trailing
    from actors.venues.shioaji_support import ShioajiConfig

    assert native_trailing(_config(4002), ["SIM-A"]) == ("SIM-A",)
    assert native_trailing(_config(4002, native_trailing=False), ["SIM-A"]) == ()
    assert native_trailing(ShioajiConfig(), ["X"]) == native_trailing(PaperBrokerConfig(),
                                                                      ["X"]) == ()


def test_a_trail_on_anything_but_a_stop_is_refused_by_name(h: IbHarness) -> None:
    leg = _leg("tl-1", OrderSide.SELL, OrderType.LIMIT, instrument=h.instrument_id, price="11")
    _send(h, [msgspec.structs.replace(leg, trail_amount=fixed(1))])
    (report,) = h.reports()
    assert isinstance(report, OrderRejected) and report.venue_code == "gateway.order"
    assert "TRAIL is a stop order" in report.reason and h.fake.placed == []


def test_amending_a_trail_s_stop_moves_its_trail_stop_price_not_its_trail(h: IbHarness) -> None:
    """A client's new trigger for a TRAIL goes out as ``trailStopPrice`` (``auxPrice`` is the
    trail and stays), and IB's confirmation reaches the core as an ``OrderUpdated``."""
    leg = _leg("tr-1", OrderSide.SELL, OrderType.STOP, instrument=h.instrument_id, trigger="9")
    _send(h, [msgspec.structs.replace(leg, trail_amount=fixed(1))])
    assert [type(r) for r in h.reports()] == [OrderAccepted]
    h.port.modify(ModifyOrder(seq=2, ts_event=2, ts_init=2, client_order_id="tr-1",
                              strategy_id="s", instrument_id=h.instrument_id,
                              trigger_price=fixed("9.5")), 2)
    h.settle()
    placed = h.fake.find("tr-1")
    assert (placed.order_type, placed.aux_price, placed.trail_stop) == ("TRAIL", "1.0", 9.5)
    updated = [r for r in h.reports() if isinstance(r, OrderUpdated)]
    assert [u.trigger_price for u in updated] == [fixed("9.5")]
