"""Instrument rules: quantisation with explicit rounding, tick ladders, refusals that name
values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.errors import ConfigError
from runtime.instruments import FeeSchedule, Instrument, InstrumentRegistry, twse_tick_ladder
from runtime.values import Rounding, fixed

TWSE = Instrument(instrument_id="2330.TWSE", currency="TWD", tick_ladder=twse_tick_ladder(),
                  lot_size=fixed(1000), min_quantity=fixed(1000))
BTC = Instrument(instrument_id="BTCUSDT", price_precision=1, size_precision=3,
                 lot_size=fixed("0.001"), min_quantity=fixed("0.001"), min_notional=fixed(5))

prices = st.integers(1, 5_000 * 10**9)


@settings(max_examples=400, deadline=None)
@given(prices, st.sampled_from([r for r in Rounding if r is not Rounding.REJECT]))
def test_quantized_prices_are_on_the_grid_and_within_one_tick(price: int,
                                                              rounding: Rounding) -> None:
    for inst in (TWSE, BTC):
        q = inst.quantize_price(price, rounding)
        assert q % inst.tick_at(q) == 0, (price, q)
        assert abs(q - price) < inst.tick_at(price)
        if rounding in (Rounding.FLOOR, Rounding.DOWN):
            assert q <= price
        if rounding in (Rounding.CEILING, Rounding.UP):
            assert q >= price
        violation = inst.check_order(quantity=inst.min_quantity, price=q)
        if q > 0:  # (rounding a sub-tick price down gives 0, which is refused as a price)
            assert violation is None or violation.rule == "min_notional"


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**15))
def test_quantized_quantities_are_whole_lots_not_above(quantity: int) -> None:
    q = BTC.quantize_quantity(quantity)
    assert q % BTC.lot_size == 0 and 0 <= quantity - q < BTC.lot_size


@pytest.mark.parametrize(("price", "tick"), [("9.99", "0.01"), ("10", "0.05"), ("49.95", "0.05"),
                                             ("50", "0.1"), ("100", "0.5"), ("500", "1"),
                                             ("1000", "5")])
def test_twse_ladder(price: str, tick: str) -> None:
    assert TWSE.tick_at(fixed(price)) == fixed(tick)


def test_next_price_walks_the_ladder_across_bands() -> None:
    assert TWSE.next_price(fixed("49.95"), 1) == fixed(50)
    assert TWSE.next_price(fixed(50), -1) == fixed("49.95")
    assert TWSE.next_price(fixed("99.9"), 2) == fixed("100.5")


@pytest.mark.parametrize(("qty", "price", "rule", "text"), [
    ("1500", "600", "lot_size", "quantity 1500 is not a multiple of lot size 1000 for 2330.TWSE"),
    ("1000", "600.5", "tick_size", "price 600.5 is not a multiple of tick 1 for 2330.TWSE"),
    ("0", "600", "quantity", "quantity 0 must be positive"),
])
def test_violations_name_rule_and_values(qty: str, price: str, rule: str, text: str) -> None:
    violation = TWSE.check_order(quantity=fixed(qty), price=fixed(price))
    assert violation is not None and violation.rule == rule and violation.message == text


def test_min_notional_names_values() -> None:
    violation = BTC.check_order(quantity=fixed("0.001"), price=fixed(4000))
    assert violation is not None and violation.rule == "min_notional"
    assert violation.message == "notional 4 is below the minimum 5 USD for BTCUSDT"


def test_precision_beyond_nine_decimals_is_refused() -> None:
    with pytest.raises(ConfigError, match="exceeds 9"):
        Instrument(instrument_id="X", price_precision=6, size_precision=6)


def test_taiwan_fees_are_exact() -> None:
    fees = FeeSchedule(taker_rate=fixed("0.001425"), sell_tax_rate=fixed("0.003"),
                       minimum=fixed(20), rounding_unit=fixed(1), rounding=Rounding.DOWN)
    notional = TWSE.notional(fixed(600), fixed(1000))
    assert fees.fee(notional=notional, quantity=fixed(1000), is_maker=False, is_sell=False) == \
        fixed(855)
    assert fees.fee(notional=notional, quantity=fixed(1000), is_maker=False, is_sell=True) == \
        fixed(855 + 1800)
    small = TWSE.notional(fixed(10), fixed(1000))  # 14.25 TWD commission -> the 20 TWD minimum
    assert fees.fee(notional=small, quantity=fixed(1000), is_maker=False, is_sell=False) == \
        fixed(20)


def test_unknown_instrument_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError,
                       match=r"unknown instrument 'ETH' \(known: 2330\.TWSE, BTCUSDT\)"):
        InstrumentRegistry([TWSE, BTC]).get("ETH")
