"""The venue port's contract, one suite for the paper venue and both broker adapters (on fakes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.messages import (
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderFilled,
    OrderSide,
    OrderUpdated,
)
from runtime.venue import VenuePort
from tests.venues.harness import HARNESSES, Harness, make_harness


@pytest.fixture(params=sorted(HARNESSES))
def venue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    harness = make_harness(request.param, tmp_path)
    yield harness
    harness.close()


def fills(reports: list[object]) -> list[OrderFilled]:
    return [r for r in reports if isinstance(r, OrderFilled)]


def test_implements_the_port(venue: Harness) -> None:
    assert isinstance(venue.port, VenuePort)


def test_submit_ack_partial_fill_with_cumulative_quantities(venue: Harness) -> None:
    venue.submit("c-1", 3)
    acks = venue.reports()
    assert [type(r) for r in acks] == [OrderAccepted]
    assert acks[0].client_order_id == "c-1" and acks[0].venue_order_id
    assert [o.client_order_id for o in venue.port.open_orders()] == ["c-1"]
    venue.fill("c-1", 1)
    venue.fill("c-1", 2)
    got = fills(venue.reports())
    u = venue.unit
    assert [(f.last_qty, f.cum_qty, f.leaves_qty) for f in got] == [
        (u, u, 2 * u),
        (2 * u, 3 * u, 0),
    ]
    assert all(f.client_order_id == "c-1" and f.fill_id for f in got)
    assert venue.port.open_orders() == []


def test_cancel(venue: Harness) -> None:
    venue.submit("c-2", 2)
    venue.reports()
    venue.cancel("c-2")
    reports = venue.reports()
    assert [type(r) for r in reports] == [OrderCanceled]
    assert reports[0].client_order_id == "c-2"
    assert venue.port.open_orders() == []


def test_cancel_of_an_unknown_order_is_a_cancel_reject(venue: Harness) -> None:
    venue.cancel("never-sent")
    reports = venue.reports()
    assert [type(r) for r in reports] == [OrderCancelRejected]
    assert reports[0].client_order_id == "never-sent"


def test_duplicate_reports_are_deduplicated(venue: Harness) -> None:
    venue.submit("c-3", 2)
    venue.fill("c-3", 1)
    first = fills(venue.reports())
    venue.duplicate_last()
    assert fills(venue.reports()) == []
    assert len(first) == 1 and len({f.fill_id for f in first}) == 1


def test_positions_equal_the_fills(venue: Harness) -> None:
    venue.submit("c-4", 3)
    venue.fill("c-4", 3)
    venue.submit("c-5", 2, OrderSide.SELL)
    venue.fill("c-5", 2, OrderSide.SELL)
    got = fills(venue.reports())
    net = sum(f.last_qty * f.side.sign for f in got)
    assert net == venue.unit
    assert venue.port.positions() == {venue.instrument_id: net}
    assert venue.port.fills_since(0) == got


def test_fills_since_pages_by_cursor(venue: Harness) -> None:
    venue.submit("c-6", 3)
    venue.fill("c-6", 1)
    first = fills(venue.reports())
    cursor = first[-1].seq
    assert venue.port.fills_since(cursor) == []
    venue.fill("c-6", 2)
    second = fills(venue.reports())
    assert venue.port.fills_since(cursor) == second
    assert venue.port.fills_since(0) == first + second


def test_modify_reduces_the_quantity(venue: Harness) -> None:
    venue.submit("c-7", 3)
    venue.reports()
    venue.modify("c-7", 2)
    (report,) = venue.reports()
    assert isinstance(report, OrderUpdated) and report.quantity == 2 * venue.unit
    (order,) = venue.port.open_orders()
    assert order.quantity == 2 * venue.unit
