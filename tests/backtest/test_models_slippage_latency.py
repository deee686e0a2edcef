"""Slippage on the tick grid against the taker; latency models and their seeded draws."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from backtest.models.config import (
    ConstantLatencyConfig,
    ParticipationSlippageConfig,
    SampledLatencyConfig,
    TickSlippageConfig,
    VolatilitySlippageConfig,
)
from backtest.models.latency import build_latency
from backtest.models.slippage import against_taker, build_slippage
from runtime.instruments import Instrument, twse_tick_ladder
from runtime.messages import Bar
from runtime.values import Rounding, fixed

TW = Instrument(instrument_id="TW", tick_ladder=twse_tick_ladder())
AAA = Instrument(instrument_id="AAA", price_precision=2)


def test_tick_slippage_crosses_ladder_bands_against_the_taker() -> None:
    model = build_slippage(TickSlippageConfig(kind="ticks", ticks=2))
    # 99.9 + 1 tick (0.1) = 100, + 1 tick (0.5) = 100.5
    assert model.adjust(TW, is_buy=True, price=fixed("99.9"), qty=1, volume=1) == fixed("100.5")
    assert model.adjust(TW, is_buy=False, price=fixed("100.5"), qty=1, volume=1) == fixed("99.9")
    assert model.adjust(AAA, is_buy=False, price=fixed("0.01"), qty=1, volume=1) == fixed("0.01")


def _bar(close: str) -> Bar:
    return Bar(
        seq=0,
        ts_event=0,
        ts_init=0,
        instrument_id="AAA",
        open=0,
        high=0,
        low=0,
        close=fixed(close),
        volume=0,
        interval_ns=1,
    )


def test_volatility_slippage_scales_with_recent_changes_and_rounds_up_to_ticks() -> None:
    model = build_slippage(VolatilitySlippageConfig(kind="volatility", k=Decimal("0.5"), window=3))
    assert model.observes
    for close in ("10", "10.1", "10", "10.1"):  # changes +0.1, -0.1, +0.1: std 0.11547
        model.observe(_bar(close))
    # 0.5 x 0.11547 = 0.0577 -> 0.06 against the taker
    assert model.adjust(AAA, is_buy=True, price=fixed("10.1"), qty=1, volume=1) == fixed("10.16")
    assert model.adjust(AAA, is_buy=False, price=fixed("10.1"), qty=1, volume=1) == fixed("10.04")
    assert model.adjust(TW, is_buy=True, price=fixed("10.1"), qty=1, volume=1) == fixed("10.1")


def test_participation_slippage_grows_with_the_share_of_volume() -> None:
    model = build_slippage(
        ParticipationSlippageConfig(kind="participation", impact_bps=Decimal(100), exponent=0.5)
    )
    price = fixed(100)
    # 1% x (25/100)^0.5 = 0.5% of 100 = 0.5
    assert model.adjust(AAA, is_buy=True, price=price, qty=25, volume=100) == fixed("100.5")
    assert model.adjust(AAA, is_buy=True, price=price, qty=1, volume=10**6) == fixed("100.01")
    assert model.adjust(AAA, is_buy=False, price=price, qty=400, volume=100) == fixed(99)


@given(price=st.integers(1, 10**13), ticks=st.integers(0, 5), is_buy=st.booleans())
def test_slipped_prices_stay_on_the_grid_and_against_the_taker(
    price: int, ticks: int, is_buy: bool
) -> None:
    model = build_slippage(TickSlippageConfig(kind="ticks", ticks=ticks))
    slipped = model.adjust(TW, is_buy=is_buy, price=price, qty=1, volume=1)
    assert slipped % TW.tick_at(slipped) == 0
    assert slipped >= price if is_buy else (slipped <= price or slipped == TW.tick_at(0))


def test_constant_latency() -> None:
    model = build_latency(
        ConstantLatencyConfig(kind="constant", entry_ns=5, response_ns=7), np.random.default_rng(0)
    )
    assert (model.entry_ns(), model.response_ns()) == (5, 7)


def test_sampled_latency_is_seeded_and_within_bounds() -> None:
    config = SampledLatencyConfig.model_validate(
        {
            "kind": "sampled",
            "entry": {
                "kind": "lognormal",
                "median_ns": 1000,
                "sigma": 0.8,
                "min_ns": 200,
                "max_ns": 5000,
            },
            "response": {"kind": "empirical", "quantiles_ns": [100, 300, 1000]},
        }
    )

    def draws(seed: int) -> list[tuple[int, int]]:
        model = build_latency(config, np.random.default_rng(seed))
        return [(model.entry_ns(), model.response_ns()) for _ in range(2000)]

    first = draws(1)
    assert first == draws(1) and first != draws(2)
    entries = sorted(e for e, _ in first)
    responses = sorted(r for _, r in first)
    assert entries[0] >= 200 and entries[-1] <= 5000
    assert 800 <= entries[1000] <= 1250  # the median
    assert responses[0] >= 100 and responses[-1] <= 1000
    assert 250 <= responses[1000] <= 350


@given(
    st.integers(-(10**12), 10**13),
    st.integers(0, 10**10),
    st.booleans(),
    st.sampled_from([AAA, TW]),
)
def test_against_taker_is_the_move_rounded_against_the_taker_on_the_grid(
    price: int, amount: int, is_buy: bool, instrument: Instrument
) -> None:
    """Whatever the shortcut taken (a one-tick-size grid, a price already on it)."""
    if is_buy:
        expected = instrument.quantize_price(price + amount, Rounding.CEILING)
    else:
        moved = instrument.quantize_price(price - amount, Rounding.FLOOR)
        expected = moved if moved > 0 else instrument.tick_at(0)
    assert against_taker(instrument, price, amount, is_buy=is_buy) == expected
