"""L2 fills against runtime.book.L2Book: book walking, consumed liquidity, queue from the level."""

from __future__ import annotations

import pytest

from runtime.messages import OrderSide, OrderType, Side, TimeInForce
from tests.backtest.test_venue_helpers import (
    Q,
    all_reports,
    deltas,
    fills_of,
    make_venue,
    px,
    snapshot,
    submit,
    trade,
)

BUY, SELL = OrderSide.BUY, OrderSide.SELL
LIMIT = OrderType.LIMIT
L2 = {"kind": "l2"}
BOOK = snapshot(1, bids=(("99.9", 4), ("99.8", 6)), asks=(("100", 2), ("100.1", 3), ("100.2", 5)))


def test_market_order_walks_the_book() -> None:
    venue = make_venue(L2)
    venue.on_market(BOOK)
    submit(venue, "m", BUY, 6 * Q, ts=1)
    assert fills_of(all_reports(venue)) == [
        ("m", 2, px("100"), 1),
        ("m", 3, px("100.1"), 1),
        ("m", 1, px("100.2"), 1),
    ]


def test_taken_liquidity_is_gone_until_the_level_is_updated() -> None:
    venue = make_venue(L2)
    venue.on_market(BOOK)
    submit(venue, "a", BUY, 2 * Q, ts=1)
    submit(venue, "b", BUY, 1 * Q, ts=1, order_type=LIMIT, price=px("100"))  # 100 is used up
    venue.on_market(deltas(2, bids=(("99.9", 5),)))  # another level: 100 still used up
    assert fills_of(all_reports(venue)) == [("a", 2, px("100"), 1)]
    venue.on_market(deltas(3, asks=(("100", 2),)))  # the feed refreshes the 100 level
    assert fills_of(all_reports(venue)) == [("b", 1, px("100"), 3)]


def test_marketable_limit_walks_to_its_limit_and_rests_behind_the_level() -> None:
    venue = make_venue(L2)
    venue.on_market(BOOK)
    submit(venue, "l", BUY, 9 * Q, ts=1, order_type=LIMIT, price=px("100.1"))
    reports = all_reports(venue)
    assert fills_of(reports) == [("l", 2, px("100"), 1), ("l", 3, px("100.1"), 1)]
    # the remaining 4 rest at 100.1: nothing was displayed on the bid there, queue 0
    venue.on_market(deltas(2, asks=(("100", 0), ("100.1", 0))))
    venue.on_market(trade(3, "100.1", 3, Side.SELL))
    assert fills_of(all_reports(venue)) == [("l", 3, px("100.1"), 3)]


@pytest.mark.parametrize(
    ("shrink", "ahead"),
    [
        ("behind_first", 6),
        ("proportional", 4),
        ("ahead_first", 2),
    ],
)
def test_level_decreases_shrink_the_queue_by_the_named_rule(shrink: str, ahead: int) -> None:
    venue = make_venue({"kind": "l2", "queue_shrink": shrink})
    venue.on_market(BOOK)
    submit(venue, "q", BUY, 1 * Q, ts=1, order_type=LIMIT, price=px("99.8"))  # 6 ahead
    venue.on_market(deltas(2, bids=(("99.8", 12),)))  # 6 behind us
    venue.on_market(deltas(3, bids=(("99.8", 8),)))  # 4 canceled: 6 - 4 x 6/12 = 4
    venue.on_market(trade(4, "99.8", ahead, Side.SELL))
    venue.on_market(deltas(5, bids=(("99.8", 8 - ahead),)))  # the print, reported: no double count
    assert fills_of(all_reports(venue)) == []
    venue.on_market(trade(6, "99.8", 1, Side.SELL))
    assert fills_of(all_reports(venue)) == [("q", 1, px("99.8"), 6)]


def test_the_ask_reaching_a_resting_bid_fills_it() -> None:
    venue = make_venue(L2)
    venue.on_market(BOOK)
    submit(venue, "q", BUY, 3 * Q, ts=1, order_type=LIMIT, price=px("99.9"))
    venue.on_market(deltas(2, asks=(("99.9", 1),)))  # the book removes the crossed bid levels
    assert fills_of(all_reports(venue)) == [("q", 3, px("99.9"), 2)]


def test_fok_against_depth_and_unsynced_book() -> None:
    venue = make_venue(L2)
    submit(venue, "early", BUY, 1 * Q, ts=0, tif=TimeInForce.IOC)  # no book yet: canceled
    venue.on_market(BOOK)
    submit(venue, "too_big", BUY, 11 * Q, ts=1, tif=TimeInForce.FOK)
    submit(venue, "fits", BUY, 10 * Q, ts=1, tif=TimeInForce.FOK)
    reports = all_reports(venue)
    assert fills_of(reports) == [
        ("fits", 2, px("100"), 1),
        ("fits", 3, px("100.1"), 1),
        ("fits", 5, px("100.2"), 1),
    ]
    assert [type(r).__name__ for r in reports].count("OrderCanceled") == 2


def test_stop_triggers_when_the_offer_reaches_it() -> None:
    venue = make_venue(L2)
    venue.on_market(BOOK)
    submit(venue, "s", SELL, 5 * Q, ts=1, order_type=OrderType.STOP, trigger=px("99.8"))
    venue.on_market(deltas(2, bids=(("99.9", 0),)))
    assert fills_of(all_reports(venue)) == [("s", 5, px("99.8"), 2)]  # 6 displayed at 99.8
