"""Shioaji deals by two numberings (callback ``exchange_seq`` vs ``update_status`` ``Deal.seq``):
each deal counted once, a gap's fills recovered, a mismatch a drift and never a crash."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.venues.common import SendLog
from actors.venues.shioaji import ShioajiVenue
from actors.venues.shioaji_deals import DealLedger, fill_id
from actors.venues.shioaji_support import ShioajiConfig
from runtime.messages import OrderFilled, OrderRejected
from runtime.values import FIXED_SCALE, fixed
from tests.venues.harness import ShioajiHarness

LOT = 1_000 * FIXED_SCALE


@pytest.fixture
def h(tmp_path: Path) -> Iterator[ShioajiHarness]:
    harness = ShioajiHarness(tmp_path)
    yield harness
    harness.close()


def fills(reports: list[object]) -> list[OrderFilled]:
    return [r for r in reports if isinstance(r, OrderFilled)]


def test_the_ledger_pairs_the_two_paths_by_price_and_quantity() -> None:
    ledger = DealLedger()
    assert ledger.admit("c", path="callback", deal_id="669901", qty=1, price=10)
    assert not ledger.admit("c", path="callback", deal_id="669901", qty=1, price=10)  # dup
    assert not ledger.admit("c", path="status", deal_id="000001", qty=1, price=10)  # paired
    assert ledger.admit("c", path="status", deal_id="000002", qty=1, price=10)  # a second deal
    assert not ledger.admit("c", path="callback", deal_id="669907", qty=1, price=10)  # its pair
    assert ledger.admit("c", path="callback", deal_id="669908", qty=2, price=10)  # new again
    assert fill_id(ordno="O1", path="status", deal_id="000002") == "SJ-O1-D000002"


def test_the_fake_numbers_a_deal_differently_on_each_path(h: ShioajiHarness) -> None:
    h.submit("n-1", 1)
    h.fill("n-1", 1)
    (_, msg) = h.fake.pending[-1]
    assert msg["exchange_seq"] != h.fake.trades[0].status.deals[0].seq


def test_callback_deals_are_not_counted_again_by_reconciliation(h: ShioajiHarness) -> None:
    h.submit("c-1", 3)
    h.fill("c-1", 1)
    h.fill("c-1", 2)
    assert [f.cum_qty for f in fills(h.reports())] == [LOT, 3 * LOT]
    assert h.port.reconcile()  # no "would make filled 6000 > ordered 3000"
    assert h.reports() == []
    assert h.port.positions() == {"2330.TWSE": 3 * LOT}


def test_a_gap_is_recovered_and_its_late_callback_not_counted_twice(h: ShioajiHarness) -> None:
    h.submit("g-1", 3)
    h.fill("g-1", 1)
    h.reports()
    h.fill("g-1", 2)
    late = h.fake.pending.pop()  # the second deal's callback is late (a gap in the stream)
    assert h.port.reconcile()
    (recovered,) = fills(h.reports())
    assert (recovered.last_qty, recovered.cum_qty) == (2 * LOT, 3 * LOT)
    assert recovered.fill_id.endswith("-D000002")  # found by update_status
    h.fake.pending.append(late)
    assert h.reports() == []  # the late callback pairs with the recovered deal
    assert h.port.positions() == {"2330.TWSE": 3 * LOT}
    assert h.port.reconcile()


def test_after_a_restart_neither_path_counts_a_deal_again(h: ShioajiHarness) -> None:
    h.submit("r-1", 2)
    h.fill("r-1", 1)
    h.reports()
    h.fill("r-1", 1)
    late = h.fake.pending.pop()
    assert h.port.reconcile()
    h.reports()
    again = ShioajiVenue(
        h.fake,
        sj=h.sj,
        config=ShioajiConfig(),
        instruments=h.port.instruments,
        send_log=SendLog(h.journal),
    )
    h.port = again
    h.port.login()
    h.fake.pending.append(late)
    assert h.reports() == []
    assert h.port.reconcile() and h.reports() == []
    assert h.port.positions() == {"2330.TWSE": 2 * LOT}


def test_a_deal_that_would_overfill_is_a_drift_never_a_crash(h: ShioajiHarness) -> None:
    h.submit("o-1", 1)
    h.reports()
    h.fake.deal(h.trade_of("o-1"), 2, 600.0)  # the broker says 2 lots of an order of 1
    assert fills(h.reports()) == []  # refused, and nothing raised out of the callback
    assert h.port.reconcile_requested
    assert not h.port.reconcile()  # the status path is refused too, and says so
    drifts = h.port.reconciler.last_drifts
    assert any("would make filled 2000 > ordered 1000" in d for d in drifts), drifts
    assert any("Shioaji filled 2000 vs reported 0" in d for d in drifts), drifts
    assert not any(str(10**9) in d for d in drifts)  # human units, never raw fixed point


def test_the_adapter_is_built_before_the_session_logs_in(tmp_path: Path) -> None:
    h = ShioajiHarness(tmp_path, login=False)
    try:
        h.fake.logged_in = False  # a fresh client: nothing works until login
        assert not h.port.session_up
        h.submit("l-1", 1)
        (blocked,) = h.reports()
        assert isinstance(blocked, OrderRejected) and blocked.venue_code == "gateway.session_down"
        assert h.fake.placed == []
        h.fake.login("k", "s")
        h.port.login()
        h.submit("l-2", 1)
        assert [type(r).__name__ for r in h.reports()] == ["OrderAccepted"]
        assert h.fake.placed[0].price == pytest.approx(float(fixed(600)) / FIXED_SCALE)
    finally:
        h.close()
