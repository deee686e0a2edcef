"""Builders shared by the simulated venue's tests (no tests here)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import TypeAdapter

from backtest.models.config import FeeConfig, FillConfig, LatencyConfig, SlippageConfig
from backtest.venue import SimulatedVenue
from runtime.instruments import Instrument
from runtime.messages import (
    Bar,
    BookDeltas,
    BookSnapshot,
    CancelOrder,
    ModifyOrder,
    OrderEvent,
    OrderFilled,
    OrderSide,
    OrderType,
    QuoteTick,
    Side,
    SubmitOrder,
    TimeInForce,
    TradeTick,
)
from runtime.values import FIXED_SCALE, fixed

Q = FIXED_SCALE  # one share
S = 1_000_000_000  # one second in ns
MIN = 60 * S
END = 2**62

AAA = Instrument(instrument_id="AAA", price_precision=2)

_LATENCY: TypeAdapter[Any] = TypeAdapter(LatencyConfig)
_FILLS: TypeAdapter[Any] = TypeAdapter(FillConfig)
_SLIPPAGE: TypeAdapter[Any] = TypeAdapter(SlippageConfig)
_FEES: TypeAdapter[Any] = TypeAdapter(FeeConfig)


def px(value: str | int) -> int:
    return fixed(value)


def make_venue(
    fills: dict[str, Any],
    *,
    latency: dict[str, Any] | None = None,
    slippage: dict[str, Any] | None = None,
    fees: dict[str, Any] | None = None,
    instruments: tuple[Instrument, ...] = (AAA,),
    seed: int = 7,
    **kwargs: Any,
) -> SimulatedVenue:
    return SimulatedVenue(
        instruments,
        latency=_LATENCY.validate_python(
            latency or {"kind": "constant", "entry_ns": 0, "response_ns": 0}
        ),
        fills=_FILLS.validate_python(fills),
        slippage=_SLIPPAGE.validate_python(slippage or {"kind": "none"}),
        fees=_FEES.validate_python(fees or {"kind": "bps", "maker_bps": 0, "taker_bps": 0}),
        rng=np.random.default_rng(seed),
        **kwargs,
    )


_counter = iter(range(1, 10**9))


def submit(
    venue: SimulatedVenue,
    coid: str,
    side: OrderSide,
    qty: int,
    *,
    ts: int = 0,
    order_type: OrderType = OrderType.MARKET,
    price: int | None = None,
    trigger: int | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    post_only: bool = False,
    instrument_id: str = "AAA",
) -> None:
    venue.submit(
        SubmitOrder(
            seq=next(_counter),
            ts_event=ts,
            ts_init=ts,
            client_order_id=coid,
            strategy_id="s1",
            instrument_id=instrument_id,
            side=side,
            order_type=order_type,
            quantity=qty,
            price=price,
            trigger_price=trigger,
            time_in_force=tif,
            post_only=post_only,
        ),
        ts,
    )


def cancel(venue: SimulatedVenue, coid: str, *, ts: int = 0) -> None:
    venue.cancel(
        CancelOrder(
            seq=next(_counter),
            ts_event=ts,
            ts_init=ts,
            client_order_id=coid,
            strategy_id="s1",
            instrument_id="AAA",
        ),
        ts,
    )


def modify(
    venue: SimulatedVenue,
    coid: str,
    *,
    ts: int = 0,
    quantity: int | None = None,
    price: int | None = None,
    trigger: int | None = None,
) -> None:
    venue.modify(
        ModifyOrder(
            seq=next(_counter),
            ts_event=ts,
            ts_init=ts,
            client_order_id=coid,
            strategy_id="s1",
            instrument_id="AAA",
            quantity=quantity,
            price=price,
            trigger_price=trigger,
        ),
        ts,
    )


def bar(
    close_ts: int,
    o: str,
    h: str,
    low: str,
    c: str,
    volume: int = 10**6,
    interval_ns: int = MIN,
    instrument_id: str = "AAA",
) -> Bar:
    return Bar(
        seq=0,
        ts_event=close_ts,
        ts_init=close_ts,
        instrument_id=instrument_id,
        open=px(o),
        high=px(h),
        low=px(low),
        close=px(c),
        volume=volume * Q,
        interval_ns=interval_ns,
    )


def quote(ts: int, bid: str, bid_size: int, ask: str, ask_size: int) -> QuoteTick:
    return QuoteTick(
        seq=0,
        ts_event=ts,
        ts_init=ts,
        instrument_id="AAA",
        bid_price=px(bid),
        bid_size=bid_size * Q,
        ask_price=px(ask),
        ask_size=ask_size * Q,
    )


def trade(ts: int, price: str, size: int, aggressor: Side = Side.NONE) -> TradeTick:
    return TradeTick(
        seq=0,
        ts_event=ts,
        ts_init=ts,
        instrument_id="AAA",
        price=px(price),
        size=size * Q,
        aggressor=aggressor,
    )


def levels(*pairs: tuple[str, int]) -> tuple[tuple[int, int], ...]:
    return tuple((px(p), s * Q) for p, s in pairs)


def snapshot(
    ts: int, bids: tuple[tuple[str, int], ...], asks: tuple[tuple[str, int], ...]
) -> BookSnapshot:
    return BookSnapshot(
        seq=0, ts_event=ts, ts_init=ts, instrument_id="AAA", bids=levels(*bids), asks=levels(*asks)
    )


def deltas(
    ts: int, bids: tuple[tuple[str, int], ...] = (), asks: tuple[tuple[str, int], ...] = ()
) -> BookDeltas:
    return BookDeltas(
        seq=0, ts_event=ts, ts_init=ts, instrument_id="AAA", bids=levels(*bids), asks=levels(*asks)
    )


def all_reports(venue: SimulatedVenue) -> list[OrderEvent]:
    """Every report still to come, processing the venue's events to the end."""
    out: list[OrderEvent] = []
    while (ts := venue.next_report_ts()) is not None:
        out.extend(venue.pop_reports(ts))
    return out


def fills_of(reports: list[OrderEvent]) -> list[tuple[str, int, int, int]]:
    """(client order id, qty in shares, price as fixed, ts_event) of every fill."""
    return [
        (r.client_order_id, r.last_qty // Q, r.last_price, r.ts_event)
        for r in reports
        if isinstance(r, OrderFilled)
    ]


def kinds(reports: list[OrderEvent]) -> list[str]:
    return [type(r).__name__ for r in reports]
