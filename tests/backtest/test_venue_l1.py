"""L1 fills: taking displayed size, resting limits with a queue position, TIF, post-only, stops."""

from __future__ import annotations

import pytest

from runtime.messages import (
    Liquidity,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderType,
    Side,
    TimeInForce,
)
from tests.backtest.test_venue_helpers import (
    Q,
    all_reports,
    fills_of,
    kinds,
    make_venue,
    modify,
    px,
    quote,
    submit,
    trade,
)

BUY, SELL = OrderSide.BUY, OrderSide.SELL
LIMIT = OrderType.LIMIT
L1 = {"kind": "l1"}


def test_market_order_takes_displayed_size_and_waits_for_more() -> None:
    venue = make_venue(L1)
    venue.on_market(quote(1, "9.99", 10, "10", 4))
    submit(venue, "m", BUY, 10 * Q, ts=1)
    submit(venue, "m2", BUY, 1 * Q, ts=1)  # same quote: the 4 shown are gone
    venue.on_market(quote(2, "10", 10, "10.02", 3))
    venue.on_market(quote(3, "10", 10, "10.05", 50))
    reports = all_reports(venue)
    assert fills_of(reports) == [
        ("m", 4, px("10"), 1),
        ("m", 3, px("10.02"), 2),
        ("m", 3, px("10.05"), 3),
        ("m2", 1, px("10.05"), 3),
    ]
    last = [r for r in reports if isinstance(r, OrderFilled)][2]
    assert (last.cum_qty, last.leaves_qty, last.liquidity) == (10 * Q, 0, Liquidity.TAKER)


def test_marketable_limit_takes_up_to_its_limit_then_rests() -> None:
    venue = make_venue(L1)
    venue.on_market(quote(1, "9.99", 10, "10", 4))
    submit(venue, "l", BUY, 6 * Q, ts=1, order_type=LIMIT, price=px("10"))
    venue.on_market(quote(2, "9.99", 10, "10.01", 5))  # moved away: rests at 10 (improves: q=0)
    venue.on_market(trade(3, "10", 1, Side.SELL))
    assert fills_of(all_reports(venue)) == [("l", 4, px("10"), 1), ("l", 1, px("10"), 3)]


def test_order_behind_five_lots_fills_only_after_five_lots_trade() -> None:
    venue = make_venue(L1)
    venue.on_market(quote(1, "10", 5, "10.01", 5))
    submit(venue, "q", BUY, 3 * Q, ts=1, order_type=LIMIT, price=px("10"))
    venue.on_market(trade(2, "10", 2, Side.SELL))
    venue.on_market(trade(3, "10", 3, Side.SELL))
    assert fills_of(all_reports(venue)) == []  # exactly the 5 ahead traded
    venue.on_market(trade(4, "10", 1, Side.BUY))  # a buyer lifting the offer: not our side
    venue.on_market(trade(5, "10", 2, Side.SELL))
    venue.on_market(trade(6, "10", 4, Side.NONE))
    reports = all_reports(venue)
    assert fills_of(reports) == [("q", 2, px("10"), 5), ("q", 1, px("10"), 6)]
    assert all(r.liquidity is Liquidity.MAKER for r in reports if isinstance(r, OrderFilled))


def test_quote_or_trade_through_the_price_fills_in_full() -> None:
    venue = make_venue(L1)
    venue.on_market(quote(1, "10", 50, "10.02", 5))
    submit(venue, "a", BUY, 7 * Q, ts=1, order_type=LIMIT, price=px("10"))
    submit(venue, "b", SELL, 7 * Q, ts=1, order_type=LIMIT, price=px("10.02"))
    venue.on_market(quote(2, "9.98", 5, "10", 5))  # the offer reached a's price
    venue.on_market(trade(3, "10.03", 1))  # printed through b's price
    assert fills_of(all_reports(venue)) == [("a", 7, px("10"), 2), ("b", 7, px("10.02"), 3)]


@pytest.mark.parametrize(
    ("shrink", "expected_ahead"),
    [
        ("behind_first", 8),
        ("proportional", 6),
        ("ahead_first", 4),
    ],
)
def test_queue_shrink_models(shrink: str, expected_ahead: int) -> None:
    venue = make_venue({"kind": "l1", "queue_shrink": shrink})
    venue.on_market(quote(1, "10", 8, "10.01", 5))
    submit(venue, "q", BUY, 1 * Q, ts=1, order_type=LIMIT, price=px("10"))
    venue.on_market(quote(2, "10", 12, "10.01", 5))  # 4 joined behind: 8 ahead of 12
    venue.on_market(quote(3, "10", 8, "10.01", 5))  # 4 canceled at 10: whose?
    # behind_first: min(8, 8) = 8; proportional: 8 - 4 x 8/12 = 6; ahead_first: 8 - 4 = 4
    venue.on_market(trade(4, "10", expected_ahead, Side.SELL))
    assert fills_of(all_reports(venue)) == []
    venue.on_market(trade(5, "10", 1, Side.SELL))
    assert fills_of(all_reports(venue)) == [("q", 1, px("10"), 5)]


def test_proportional_shrink_splits_cancellations() -> None:
    venue = make_venue({"kind": "l1", "queue_shrink": "proportional"})
    venue.on_market(quote(1, "10", 6, "10.01", 5))
    submit(venue, "q", BUY, 1 * Q, ts=1, order_type=LIMIT, price=px("10"))
    venue.on_market(quote(2, "10", 9, "10.01", 5))  # 3 joined behind us: 6 ahead of 9
    venue.on_market(quote(3, "10", 3, "10.01", 5))  # 6 left: 6 x 6/9 = 4 of them ahead
    venue.on_market(trade(4, "10", 2, Side.SELL))
    assert fills_of(all_reports(venue)) == []
    venue.on_market(trade(5, "10", 1, Side.SELL))
    assert fills_of(all_reports(venue)) == [("q", 1, px("10"), 5)]


def test_quantity_decrease_keeps_the_queue_and_price_change_loses_it() -> None:
    venue = make_venue(L1)
    venue.on_market(quote(1, "10", 2, "10.01", 5))
    submit(venue, "keep", BUY, 5 * Q, ts=1, order_type=LIMIT, price=px("10"))
    submit(venue, "move", BUY, 5 * Q, ts=1, order_type=LIMIT, price=px("10"))
    venue.on_market(quote(2, "10", 6, "10.01", 5))
    modify(venue, "keep", ts=2, quantity=2 * Q)
    modify(venue, "move", ts=2, price=px("9.99"))
    modify(venue, "move", ts=2, price=px("10"))  # back at 10 behind the 6 displayed now
    venue.on_market(trade(3, "10", 4, Side.SELL))  # 2 ahead of keep, then keep's 2
    venue.on_market(trade(4, "10", 4, Side.SELL))
    reports = all_reports(venue)
    assert kinds(reports).count("OrderUpdated") == 3
    assert fills_of(reports) == [("keep", 2, px("10"), 3)]


def test_ioc_and_fok() -> None:
    venue = make_venue(L1)
    venue.on_market(quote(1, "9.99", 10, "10", 4))
    submit(venue, "ioc", BUY, 6 * Q, ts=1, tif=TimeInForce.IOC)
    submit(venue, "fok", BUY, 6 * Q, ts=1, order_type=LIMIT, price=px("10"), tif=TimeInForce.FOK)
    submit(
        venue, "fok_ok", SELL, 10 * Q, ts=1, order_type=LIMIT, price=px("9.99"), tif=TimeInForce.FOK
    )
    reports = all_reports(venue)
    assert fills_of(reports) == [("ioc", 4, px("10"), 1), ("fok_ok", 10, px("9.99"), 1)]
    canceled = [(r.client_order_id, r.reason) for r in reports if isinstance(r, OrderCanceled)]
    assert canceled == [("ioc", "ioc"), ("fok", "fok: not filled in full")]
    assert venue.open_orders() == []


def test_post_only_is_rejected_when_it_would_take() -> None:
    venue = make_venue(L1)
    venue.on_market(quote(1, "9.99", 10, "10", 4))
    submit(venue, "take", BUY, 1 * Q, ts=1, order_type=LIMIT, price=px("10"), post_only=True)
    submit(venue, "make", BUY, 1 * Q, ts=1, order_type=LIMIT, price=px("9.99"), post_only=True)
    modify(venue, "make", ts=1, price=px("10.01"))
    reports = all_reports(venue)
    assert kinds(reports) == ["OrderRejected", "OrderAccepted", "OrderCancelRejected"]
    assert isinstance(reports[0], OrderRejected) and reports[0].venue_code == "post_only"
    assert venue.open_orders()[0].price == px("9.99")


def test_stop_triggers_on_a_print_and_takes_the_offer() -> None:
    venue = make_venue(L1, slippage={"kind": "ticks", "ticks": 1})
    venue.on_market(quote(1, "9.99", 10, "10", 4))
    submit(venue, "stop", BUY, 2 * Q, ts=1, order_type=OrderType.STOP, trigger=px("10.05"))
    venue.on_market(quote(2, "10.02", 10, "10.04", 4))
    assert fills_of(all_reports(venue)) == []
    venue.on_market(trade(3, "10.05", 1))
    assert fills_of(all_reports(venue)) == [("stop", 2, px("10.05"), 3)]  # 10.04 + 1 tick
