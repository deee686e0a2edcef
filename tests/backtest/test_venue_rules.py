"""Venue rules: checks, sessions, DAY expiry, latency scheduling, determinism, invariants."""

from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.instruments import Instrument, TradingSession
from runtime.messages import (
    OrderAccepted,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderType,
    TimeInForce,
)
from runtime.venue import VenuePort
from tests.backtest.test_venue_helpers import (
    AAA,
    MIN,
    Q,
    S,
    all_reports,
    bar,
    fills_of,
    kinds,
    make_venue,
    px,
    quote,
    submit,
)

BUY, SELL = OrderSide.BUY, OrderSide.SELL
BARS = {"kind": "bars", "price": "next_open", "path": "auto"}
L1 = {"kind": "l1"}
SAMPLED = {
    "kind": "sampled",
    "entry": {"kind": "lognormal", "median_ns": 2 * S, "sigma": 1.0},
    "response": {"kind": "empirical", "quantiles_ns": [S, 2 * S, 5 * S]},
}


def _utc(hour: int, minute: int = 0) -> int:
    return int(dt.datetime(2024, 1, 2, hour, minute, tzinfo=dt.UTC).timestamp()) * S


TAIPEI = Instrument(
    instrument_id="AAA",
    currency="TWD",
    sessions=(TradingSession(timezone="Asia/Taipei", open="09:00", close="13:30"),),
)


def test_venue_implements_the_port() -> None:
    assert isinstance(make_venue(BARS), VenuePort)


def test_rejects_off_tick_off_lot_missing_price_and_unknown_instrument() -> None:
    venue = make_venue(L1)
    submit(venue, "tick", BUY, 1 * Q, order_type=OrderType.LIMIT, price=px("10.005"))
    submit(venue, "lot", BUY, Q // 2, order_type=OrderType.LIMIT, price=px("10"))
    submit(venue, "noprice", BUY, 1 * Q, order_type=OrderType.LIMIT)
    submit(venue, "po", BUY, 1 * Q, post_only=True)
    submit(venue, "who", BUY, 1 * Q, instrument_id="ZZZ")
    submit(venue, "ok", BUY, 1 * Q, order_type=OrderType.LIMIT, price=px("10"))
    submit(venue, "ok", BUY, 1 * Q, order_type=OrderType.LIMIT, price=px("10"))
    reports = all_reports(venue)
    codes = [(r.client_order_id, r.venue_code) for r in reports if isinstance(r, OrderRejected)]
    assert codes == [
        ("tick", "tick_size"),
        ("lot", "lot_size"),
        ("noprice", "order_type"),
        ("po", "post_only"),
        ("who", "instrument"),
        ("ok", "duplicate"),
    ]
    assert "10.005" in next(r.reason for r in reports if isinstance(r, OrderRejected))
    assert [o.client_order_id for o in venue.open_orders()] == ["ok"]


def test_outside_session_is_rejected_and_day_order_expires_at_session_close() -> None:
    venue = make_venue(BARS, instruments=(TAIPEI,))
    submit(venue, "early", BUY, 1 * Q, ts=_utc(0, 30))  # 08:30 Taipei
    venue.on_market(bar(_utc(1, 1), "10", "10", "10", "10"))  # 09:00-09:01 Taipei
    submit(
        venue,
        "day",
        BUY,
        1 * Q,
        ts=_utc(1, 1),
        order_type=OrderType.LIMIT,
        price=px("5"),
        tif=TimeInForce.DAY,
    )
    submit(venue, "gtc", BUY, 1 * Q, ts=_utc(1, 1), order_type=OrderType.LIMIT, price=px("5"))
    close = _utc(5, 30)  # 13:30 Taipei
    venue.on_market(bar(close, "10", "10", "10", "10"))  # the last bar, stamped at the close
    assert [o.client_order_id for o in venue.open_orders()] == ["day", "gtc"]
    venue.on_market(bar(_utc(6), "10", "10", "10", "10"))
    reports = all_reports(venue)
    assert isinstance(reports[0], OrderRejected) and reports[0].venue_code == "session"
    expired = [r for r in reports if isinstance(r, OrderExpired)]
    assert [(r.client_order_id, r.ts_event) for r in expired] == [("day", close)]
    assert [o.client_order_id for o in venue.open_orders()] == ["gtc"]


def test_a_night_session_past_midnight_ends_at_its_last_close() -> None:
    """TAIFEX's night session is 15:00-24:00 and 00:00-05:00 Taipei (two sessions): a DAY order
    of the night session lives to 05:00, not to midnight; one of the day session to 13:45."""
    from backtest.venue import day_end_ns
    from runtime.taiwan import taifex_future

    txf = taifex_future("TXF", "202612")

    def taipei(day: int, hour: int, minute: int = 0) -> int:
        moment = dt.datetime(2026, 12, day, hour, minute, tzinfo=dt.timezone(dt.timedelta(hours=8)))
        return int(moment.timestamp()) * S

    assert day_end_ns(txf, taipei(7, 10)) == taipei(7, 13, 45)  # Monday's day session
    assert day_end_ns(txf, taipei(7, 16)) == taipei(8, 5)  # Monday night, to Tuesday 05:00
    assert day_end_ns(txf, taipei(8, 1)) == taipei(8, 5)  # after midnight, the same night
    assert day_end_ns(txf, taipei(11, 22)) == taipei(12, 5)  # Friday night, to Saturday 05:00


def test_day_order_without_sessions_expires_at_utc_midnight() -> None:
    venue = make_venue(L1)
    submit(
        venue,
        "day",
        BUY,
        1 * Q,
        ts=_utc(15),
        order_type=OrderType.LIMIT,
        price=px("5"),
        tif=TimeInForce.DAY,
    )
    venue.on_market(quote(_utc(16), "9", 10, "10", 10))
    venue.on_market(quote(_utc(23, 59), "9", 10, "10", 10))
    assert len(venue.open_orders()) == 1
    venue.on_market(quote(_utc(23, 59) + 2 * MIN, "9", 10, "10", 10))
    expired = [r for r in all_reports(venue) if isinstance(r, OrderExpired)]
    assert [r.ts_event for r in expired] == [_utc(0) + 86_400 * S]


def test_command_at_the_same_time_as_data_sees_that_data() -> None:
    venue = make_venue(L1, latency={"kind": "constant", "entry_ns": 5, "response_ns": 7})
    submit(venue, "o1", BUY, 1 * Q, ts=100)  # arrives at 105
    venue.on_market(quote(105, "9", 10, "10", 10))  # stamped at the arrival: applied first
    venue.on_market(quote(106, "10", 10, "11", 10))
    reports = all_reports(venue)
    assert fills_of(reports) == [("o1", 1, px("10"), 105)]
    assert [(r.ts_event, r.ts_init) for r in reports] == [(105, 112), (105, 112)]


def test_reports_wait_for_their_delivery_time() -> None:
    venue = make_venue(L1, latency={"kind": "constant", "entry_ns": 10, "response_ns": 50})
    venue.on_market(quote(0, "9", 10, "10", 10))
    submit(venue, "o1", BUY, 1 * Q, ts=0)
    assert venue.next_report_ts(before=5) is None  # the command has not even arrived
    assert venue.next_report_ts(before=100) == 60
    assert venue.pop_reports(59) == []
    assert kinds(venue.pop_reports(60)) == ["OrderAccepted", "OrderFilled"]


def _run_sampled(seed: int) -> list[tuple[str, int, int]]:
    venue = make_venue(L1, latency=SAMPLED, seed=seed)
    out = []
    for k in range(40):
        ts = k * S
        venue.on_market(quote(ts, f"{9 + k % 3}", 5, f"{10 + k % 3}", 5))
        if k % 4 == 0:
            submit(venue, f"o{k}", BUY if k % 8 else SELL, 3 * Q, ts=ts)
        while (d := venue.next_report_ts(before=ts + S)) is not None:
            out += [(type(r).__name__, r.ts_event, r.ts_init) for r in venue.pop_reports(d)]
    return out


def test_same_data_commands_and_seed_give_the_same_reports() -> None:
    first = _run_sampled(42)
    assert first == _run_sampled(42)
    assert first != _run_sampled(43)
    assert all(b[2] >= a[2] for a, b in itertools.pairwise(first))  # delivery order


order_spec = st.tuples(
    st.sampled_from([BUY, SELL]),
    st.integers(1, 30),
    st.sampled_from(list(OrderType)),
    st.integers(90, 110),
    st.integers(0, 8),
    st.sampled_from(list(TimeInForce)),
)


@settings(max_examples=60, deadline=None)
@given(
    orders=st.lists(order_spec, min_size=1, max_size=8),
    moves=st.lists(
        st.tuples(st.integers(-3, 3), st.integers(0, 20), st.integers(0, 20)),
        min_size=1,
        max_size=30,
    ),
    fills=st.sampled_from([BARS, {**BARS, "max_participation": "0.05", "path": "ohlc"}, L1]),
)
def test_filled_never_exceeds_ordered_and_position_is_the_sum_of_fills(
    orders: list[tuple[OrderSide, int, OrderType, int, int, TimeInForce]],
    moves: list[tuple[int, int, int]],
    fills: dict[str, object],
) -> None:
    venue = make_venue(fills)
    mid = 100
    for i, (side, qty, kind, level, trig, tif) in enumerate(orders):
        submit(
            venue,
            f"o{i}",
            side,
            qty * Q,
            ts=0,
            order_type=kind,
            price=px(level),
            trigger=px(level + (trig if side is BUY else -trig)),
            tif=tif,
        )
    for k, (step, size_a, size_b) in enumerate(moves, start=1):
        mid = max(mid + step, 5)
        if fills is L1:
            venue.on_market(quote(k * MIN, str(mid - 1), size_a, str(mid), size_b))
        else:
            venue.on_market(
                bar(
                    k * MIN,
                    str(mid),
                    str(mid + 2),
                    str(mid - 2),
                    str(mid + step),
                    volume=size_a + size_b,
                )
            )
    reports = all_reports(venue)
    quantity = {f"o{i}": o[1] * Q for i, o in enumerate(orders)}
    cum: dict[str, int] = {}
    position = 0
    for r in reports:
        if isinstance(r, OrderFilled):
            cum[r.client_order_id] = cum.get(r.client_order_id, 0) + r.last_qty
            assert r.cum_qty == cum[r.client_order_id] <= quantity[r.client_order_id]
            assert r.leaves_qty == quantity[r.client_order_id] - r.cum_qty
            assert r.last_price % AAA.tick_at(r.last_price) == 0
            position += r.last_qty * r.side.sign
    assert venue.positions().get("AAA", 0) == position
    accepted = {r.client_order_id for r in reports if isinstance(r, OrderAccepted)}
    assert {o.client_order_id for o in venue.open_orders()} <= accepted
