"""The equity curve from fills and marks agrees with the portfolio, fees in kind included."""

from __future__ import annotations

import numpy as np
import pytest

from backtest.equity import equity_curve
from runtime.instruments import Instrument, InstrumentRegistry
from runtime.messages import Liquidity, OrderFilled, OrderSide
from runtime.portfolio import Portfolio
from runtime.values import FIXED_SCALE, fixed

BTC = Instrument(instrument_id="BTC-USDT", currency="USDT", price_precision=2,
                 size_precision=5, lot_size=fixed("0.00001"), min_quantity=fixed("0.00001"))
REG = InstrumentRegistry([BTC])


def _fill(n: int, side: OrderSide, qty: str, price: str, fee: str, fee_qty: str = "0"
          ) -> OrderFilled:
    return OrderFilled(seq=n, ts_event=n * 10, ts_init=n * 10, client_order_id=f"c{n}",
                       strategy_id="s", instrument_id=BTC.instrument_id, venue_order_id="v",
                       fill_id=f"f{n}", side=side, last_qty=fixed(qty), last_price=fixed(price),
                       cum_qty=fixed(qty), leaves_qty=0, fee=fixed(fee), currency="USDT",
                       liquidity=Liquidity.TAKER, fee_qty=fixed(fee_qty))


def test_a_fee_in_kind_is_not_held_in_the_equity_curve() -> None:
    fills = [_fill(1, OrderSide.BUY, "0.01", "60000", "0.6", fee_qty="0.00001"),
             _fill(2, OrderSide.SELL, "0.004", "61000", "0.244")]
    marks = {BTC.instrument_id: (np.array([15, 25], dtype=np.int64),
                                 np.array([fixed(60500), fixed(61500)], dtype=np.int64))}
    curve = equity_curve(fills=fills, marks=marks, registry=REG, initial_cash=fixed(1000))
    book = Portfolio(REG, initial_cash=fixed(1000), currency="USDT")
    for fill, mark in zip(fills, (60500, 61500), strict=True):
        book.apply_fill(fill)
        book.mark(BTC.instrument_id, fixed(mark))
    last = curve.iloc[-1]
    assert book.quantity(BTC.instrument_id) == fixed("0.00599")
    assert last["cash"] == pytest.approx(book.cash / FIXED_SCALE)  # 1000 - 600 + 244 - 0.244
    assert last["position_value"] == pytest.approx(0.00599 * 61500)
    assert last["equity"] == pytest.approx(book.equity() / FIXED_SCALE)
