"""Bar fills: next open / cheat-on-close, intrabar paths, stops, participation cap, TIF."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.venue import SimulatedVenue
from runtime.instruments import Instrument, twse_tick_ladder
from runtime.messages import (
    Liquidity,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderSide,
    OrderType,
    TimeInForce,
)
from tests.backtest.test_venue_helpers import (
    MIN,
    Q,
    all_reports,
    bar,
    cancel,
    fills_of,
    kinds,
    make_venue,
    modify,
    px,
    submit,
)

BUY, SELL = OrderSide.BUY, OrderSide.SELL
LIMIT, STOP, STOP_LIMIT = OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT
BARS = {"kind": "bars", "price": "next_open", "path": "auto"}


def test_market_order_fills_at_next_bar_open_at_its_open_time() -> None:
    venue = make_venue(BARS)
    venue.on_market(bar(MIN, "10", "11", "9", "10.5"))
    submit(venue, "o1", BUY, 10 * Q, ts=MIN)
    venue.on_market(bar(2 * MIN, "10.6", "11", "10", "10.8"))
    reports = all_reports(venue)
    assert kinds(reports) == ["OrderAccepted", "OrderFilled"]
    fill = reports[1]
    assert isinstance(fill, OrderFilled)
    assert (fill.last_qty, fill.last_price, fill.cum_qty, fill.leaves_qty) == (
        10 * Q,
        px("10.6"),
        10 * Q,
        0,
    )
    assert fill.ts_event == MIN  # the bar's open time
    assert fill.ts_init == 2 * MIN  # known once the bar closes
    assert fill.liquidity is Liquidity.TAKER
    assert venue.positions() == {"AAA": 10 * Q}


def test_close_mode_fills_at_the_close_of_the_bar_the_decision_was_made_on() -> None:
    venue = make_venue({**BARS, "price": "close"})
    venue.on_market(bar(MIN, "10", "11", "9", "10.5"))
    submit(venue, "o1", SELL, 5 * Q, ts=MIN)
    assert fills_of(all_reports(venue)) == [("o1", 5, px("10.5"), MIN)]
    assert venue.positions() == {"AAA": -5 * Q}


def test_entry_latency_past_the_open_waits_for_the_following_bar() -> None:
    venue = make_venue(
        BARS, latency={"kind": "constant", "entry_ns": MIN // 2, "response_ns": 1000}
    )
    venue.on_market(bar(MIN, "10", "11", "9", "10.5"))
    submit(venue, "o1", BUY, 1 * Q, ts=MIN)  # arrives mid-bar 2
    venue.on_market(bar(2 * MIN, "10.6", "11", "10", "10.8"))
    venue.on_market(bar(3 * MIN, "10.9", "11", "10", "10.8"))
    reports = all_reports(venue)
    assert reports[0].ts_event == MIN + MIN // 2 and reports[0].ts_init == MIN + MIN // 2 + 1000
    assert fills_of(reports) == [("o1", 1, px("10.9"), 2 * MIN)]


def test_limit_buy_fills_at_limit_when_reached_and_at_open_on_a_gap() -> None:
    venue = make_venue(BARS)
    venue.on_market(bar(MIN, "10", "11", "9", "10.5"))
    submit(venue, "reach", BUY, 1 * Q, ts=MIN, order_type=LIMIT, price=px("10.2"))
    submit(venue, "gap", BUY, 1 * Q, ts=MIN, order_type=LIMIT, price=px("10.6"))
    submit(venue, "miss", BUY, 1 * Q, ts=MIN, order_type=LIMIT, price=px("9.9"))
    venue.on_market(bar(2 * MIN, "10.4", "10.8", "10", "10.7"))
    reports = all_reports(venue)
    assert fills_of(reports) == [("gap", 1, px("10.4"), MIN), ("reach", 1, px("10.2"), 2 * MIN)]
    assert all(r.liquidity is Liquidity.MAKER for r in reports if isinstance(r, OrderFilled))
    assert [o.client_order_id for o in venue.open_orders()] == ["miss"]


def test_stop_triggers_inside_the_bar_or_gaps_through_at_the_open() -> None:
    venue = make_venue(BARS)
    venue.on_market(bar(MIN, "10", "11", "9", "10.5"))
    submit(venue, "inside", BUY, 1 * Q, ts=MIN, order_type=STOP, trigger=px("11"))
    submit(venue, "gap", SELL, 1 * Q, ts=MIN, order_type=STOP, trigger=px("10"))
    venue.on_market(bar(2 * MIN, "9.5", "11.5", "9.2", "11.2"))
    fills = fills_of(all_reports(venue))
    assert ("gap", 1, px("9.5"), MIN) in fills  # opened through the trigger: fills at the open
    assert ("inside", 1, px("11"), 2 * MIN) in fills


def test_stop_limit_depends_on_the_intrabar_path() -> None:
    # O=100 H=106 L=99 C=104; stop buy 105, limit 102
    def run(path: str) -> list[tuple[str, int, int, int]]:
        venue = make_venue({**BARS, "path": path})
        venue.on_market(bar(MIN, "100", "100", "100", "100"))
        submit(
            venue,
            "sl",
            BUY,
            1 * Q,
            ts=MIN,
            order_type=STOP_LIMIT,
            trigger=px("105"),
            price=px("102"),
        )
        venue.on_market(bar(2 * MIN, "100", "106", "99", "104"))
        return fills_of(all_reports(venue))

    assert run("ohlc") == [("sl", 1, px("102"), 2 * MIN)]  # up to 106, then down through 102
    assert run("olhc") == []  # low first: triggered on the way up, never back to 102
    assert run("auto") == []  # up bar: low first


def test_participation_cap_spreads_a_large_order_over_bars() -> None:
    venue = make_venue({**BARS, "max_participation": "0.1"})
    venue.on_market(bar(MIN, "10", "10", "10", "10", volume=1000))
    submit(venue, "big", BUY, 250 * Q, ts=MIN)
    submit(venue, "second", BUY, 20 * Q, ts=MIN)
    for k in (2, 3, 4, 5):
        venue.on_market(bar(k * MIN, f"1{k}", f"1{k}", f"1{k}", f"1{k}", volume=1000))
    reports = all_reports(venue)
    assert fills_of(reports) == [
        ("big", 100, px("12"), 1 * MIN),
        ("big", 100, px("13"), 2 * MIN),
        ("big", 50, px("14"), 3 * MIN),
        ("second", 20, px("14"), 3 * MIN),
    ]
    last = [r for r in reports if isinstance(r, OrderFilled)][2]
    assert (last.cum_qty, last.leaves_qty) == (250 * Q, 0)


def test_ioc_fills_in_one_bar_and_cancels_the_rest() -> None:
    venue = make_venue({**BARS, "max_participation": "0.1"})
    venue.on_market(bar(MIN, "10", "10", "10", "10", volume=100))
    submit(venue, "ioc", BUY, 25 * Q, ts=MIN, tif=TimeInForce.IOC)
    submit(venue, "fok", BUY, 25 * Q, ts=MIN, tif=TimeInForce.FOK)
    venue.on_market(bar(2 * MIN, "11", "11", "11", "11", volume=100))
    venue.on_market(bar(3 * MIN, "12", "12", "12", "12", volume=1000))
    reports = all_reports(venue)
    assert fills_of(reports) == [("ioc", 10, px("11"), MIN)]
    canceled = {r.client_order_id: r.reason for r in reports if isinstance(r, OrderCanceled)}
    assert canceled == {"ioc": "ioc", "fok": "fok: not filled in full"}
    assert venue.open_orders() == []


def test_modify_price_then_fill_and_cancel_of_closed_order_is_rejected() -> None:
    venue = make_venue(BARS)
    venue.on_market(bar(MIN, "10", "11", "9", "10.5"))
    submit(venue, "o1", BUY, 1 * Q, ts=MIN, order_type=LIMIT, price=px("9"))
    modify(venue, "o1", ts=MIN, price=px("10"))
    venue.on_market(bar(2 * MIN, "10.2", "10.4", "9.9", "10.1"))
    cancel(venue, "o1", ts=2 * MIN)
    cancel(venue, "nope", ts=2 * MIN)
    reports = all_reports(venue)
    assert kinds(reports) == [
        "OrderAccepted",
        "OrderUpdated",
        "OrderFilled",
        "OrderCancelRejected",
        "OrderCancelRejected",
    ]
    assert fills_of(reports) == [("o1", 1, px("10"), 2 * MIN)]


def test_sell_stop_after_buy_flattens_position_and_fills_since_pages() -> None:
    venue = make_venue(BARS)
    venue.on_market(bar(MIN, "10", "11", "9", "10.5"))
    submit(venue, "b", BUY, 3 * Q, ts=MIN)
    venue.on_market(bar(2 * MIN, "10", "10", "10", "10"))
    submit(venue, "s", SELL, 3 * Q, ts=2 * MIN, order_type=STOP, trigger=px("9.5"))
    venue.on_market(bar(3 * MIN, "10", "10", "9", "9.2"))
    all_reports(venue)
    assert venue.positions() == {}
    fills = venue.fills_since(0)
    assert [f.client_order_id for f in fills] == ["b", "s"]
    assert venue.fills_since(fills[0].seq) == [fills[1]]
    assert fills[0].fill_id != fills[1].fill_id


def test_taker_fills_slip_on_the_grid_makers_do_not_and_fees_are_charged() -> None:
    tw = Instrument(
        instrument_id="AAA",
        currency="TWD",
        tick_ladder=twse_tick_ladder(),
        lot_size=1000 * Q,
        min_quantity=1000 * Q,
    )
    venue = make_venue(
        BARS,
        slippage={"kind": "ticks", "ticks": 1},
        fees={"kind": "taiwan_stock"},
        instruments=(tw,),
    )
    venue.on_market(bar(MIN, "99", "99.9", "98", "99.9"))
    submit(venue, "mkt", BUY, 1000 * Q, ts=MIN)
    submit(venue, "lim", BUY, 1000 * Q, ts=MIN, order_type=LIMIT, price=px("99"))
    submit(
        venue,
        "sl",
        BUY,
        1000 * Q,
        ts=MIN,
        order_type=STOP_LIMIT,
        trigger=px("100"),
        price=px("100"),
    )
    venue.on_market(bar(2 * MIN, "99.9", "101", "98.5", "100.5"))
    fills = [r for r in all_reports(venue) if isinstance(r, OrderFilled)]
    by_id = {f.client_order_id: f for f in fills}
    # 99.9 + 1 tick crosses into the 0.5 band: 100; a stop-limit's slip stops at its limit
    assert by_id["mkt"].last_price == px("100") and by_id["mkt"].liquidity is Liquidity.TAKER
    assert by_id["sl"].last_price == px("100")
    assert by_id["lim"].last_price == px("99") and by_id["lim"].liquidity is Liquidity.MAKER
    assert by_id["mkt"].fee == px(142)  # 100000 x 0.1425% = 142.5 -> 142
    assert by_id["mkt"].currency == "TWD"


_ORDER = st.tuples(
    st.sampled_from([BUY, SELL]),
    st.integers(1, 30),
    st.sampled_from([OrderType.MARKET, OrderType.MARKET, LIMIT]),
    st.sampled_from(list(TimeInForce)),
    st.booleans(),  # sent mid-bar (arrives after the next bar's open)
)


_Step = tuple[int, list[tuple[OrderSide, int, OrderType, TimeInForce, bool]]]


def _replay(venue: SimulatedVenue, steps: list[_Step]) -> list[OrderEvent]:
    venue.on_market(bar(MIN, "10", "11", "9", "10.5"))
    n = 0
    for k, (move, orders) in enumerate(steps, start=2):
        for side, qty, kind, tif, late in orders:
            n += 1
            price = px("10") if kind is LIMIT else None
            ts = (k - 1) * MIN + (MIN // 2 if late else 0)
            submit(venue, f"o{n}", side, qty * Q, ts=ts, order_type=kind, price=price, tif=tif)
        o = 10 + move / 10
        venue.on_market(bar(k * MIN, f"{o}", f"{o + 1}", f"{o - 1}", f"{o + 0.5}", volume=200))
    return all_reports(venue)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-5, 5), st.lists(_ORDER, max_size=3)), max_size=8),
    st.sampled_from([None, "0.1"]),
)
def test_the_lone_market_order_shortcut_fills_as_the_intrabar_path_does(
    steps: list[_Step],
    cap: str | None,
) -> None:
    """A bar's only order, a market order there since the open, takes a short path: the same
    reports (fills, prices, times, cancels) as the general intrabar path gives it."""
    config = {**BARS, "max_participation": cap} if cap else BARS
    latency = {"kind": "constant", "entry_ns": 0, "response_ns": 1000}
    short = make_venue(config, latency=latency)
    general = make_venue(config, latency=latency)
    general._fill_model._fill_lone_market = lambda *_: False  # type: ignore[attr-defined]
    assert _replay(short, steps) == _replay(general, steps)
