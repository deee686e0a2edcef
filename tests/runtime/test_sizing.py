"""Position sizing (runtime/sizing.py): worked values, pandas references for the estimators,
and properties over random inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.errors import InvariantError
from runtime.sizing import (
    ReturnVol,
    RollingCorrelation,
    cap_correlated_exposure,
    correlated_exposure,
    kelly_binary,
    kelly_fraction,
    vol_target_notional,
)
from runtime.values import FIXED_SCALE

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).filter(
    lambda x: x == 0 or abs(x) > 1e-6  # no underflow to 0 when scaled
)
positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False)


def test_vol_target_worked_values() -> None:
    # 10 % target on 100k equity, an instrument at 20 % vol: 50k notional
    assert vol_target_notional(100_000, 0.20, target_vol=0.10) == pytest.approx(50_000)
    # at 2 % vol it would be 500k: capped at 2x leverage
    assert vol_target_notional(100_000, 0.02, target_vol=0.10, max_leverage=2) == 200_000
    assert vol_target_notional(100_000, 0.0, target_vol=0.10, max_leverage=1.5) == 150_000
    assert vol_target_notional(100_000, math.nan, target_vol=0.10) == 0.0
    assert vol_target_notional(-5.0, 0.2, target_vol=0.10) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"equity": 1.0, "vol": 0.1, "target_vol": 0.0}, "target_vol"),
        ({"equity": 1.0, "vol": 0.1, "target_vol": 0.1, "max_leverage": -1}, "max_leverage"),
        ({"equity": 1.0, "vol": -0.1, "target_vol": 0.1}, "vol must not be negative"),
        ({"equity": math.inf, "vol": 0.1, "target_vol": 0.1}, "equity"),
    ],
)
def test_vol_target_refuses_bad_input(kwargs: dict[str, float], message: str) -> None:
    equity, vol = kwargs.pop("equity"), kwargs.pop("vol")
    with pytest.raises(InvariantError, match=message):
        vol_target_notional(equity, vol, **kwargs)


@given(equity=positive, vol=positive, target=positive, leverage=positive)
def test_vol_target_never_over_the_cap_and_hits_the_target_under_it(
    equity: float, vol: float, target: float, leverage: float
) -> None:
    notional = vol_target_notional(equity, vol, target_vol=target, max_leverage=leverage)
    assert 0 <= notional <= leverage * equity * (1 + 1e-12)
    if notional < leverage * equity * (1 - 1e-9):
        # under the cap, the position's volatility is the target's share of the equity
        assert notional * vol == pytest.approx(equity * target, rel=1e-9)


@given(equity=positive, vol=positive, target=positive)
def test_vol_target_halves_when_vol_doubles(equity: float, vol: float, target: float) -> None:
    big = 1e30  # no cap in play
    a = vol_target_notional(equity, vol, target_vol=target, max_leverage=big)
    b = vol_target_notional(equity, 2 * vol, target_vol=target, max_leverage=big)
    assert b == pytest.approx(a / 2, rel=1e-12)


def test_kelly_worked_values() -> None:
    # mean 1 %, variance 0.04 %: full Kelly 25x, half 12.5x, capped at 2
    assert kelly_fraction(0.01, 0.0004, fraction=1.0, cap=100) == pytest.approx(25.0)
    assert kelly_fraction(0.01, 0.0004, fraction=0.5, cap=100) == pytest.approx(12.5)
    assert kelly_fraction(0.01, 0.0004, fraction=0.5, cap=2) == 2.0
    assert kelly_fraction(-0.01, 0.0004, fraction=0.5, cap=2) == -2.0
    assert kelly_fraction(0.01, 0.0) == 0.0
    assert kelly_fraction(math.nan, 0.1) == 0.0
    # a coin paying 2:1 won 50 %: p - q/b = 0.25; half Kelly 0.125
    assert kelly_binary(0.5, 2.0, fraction=1.0) == pytest.approx(0.25)
    assert kelly_binary(0.5, 2.0) == pytest.approx(0.125)
    assert kelly_binary(0.3, 1.0) == 0.0  # no edge, no bet


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: kelly_fraction(0.1, 0.1, fraction=0.0), "fraction"),
        (lambda: kelly_fraction(0.1, 0.1, fraction=1.5), "fraction"),
        (lambda: kelly_fraction(0.1, 0.1, cap=0.0), "cap"),
        (lambda: kelly_fraction(0.1, -0.1), "variance"),
        (lambda: kelly_fraction(math.inf, 0.1), "mean"),
        (lambda: kelly_binary(1.5, 1.0), "probability"),
        (lambda: kelly_binary(0.5, 0.0), "payoff"),
        (lambda: kelly_binary(0.5, 1.0, fraction=2.0), "fraction"),
        (lambda: kelly_binary(0.5, 1.0, cap=-1.0), "cap"),
    ],
)
def test_kelly_refuses_bad_input(call: object, message: str) -> None:
    with pytest.raises(InvariantError, match=message):
        call()  # type: ignore[operator]


@given(
    mean=finite,
    variance=positive,
    fraction=st.floats(min_value=0.01, max_value=1.0),
    cap=positive,
)
def test_kelly_is_capped_signed_and_monotone_in_the_fraction(
    mean: float, variance: float, fraction: float, cap: float
) -> None:
    f = kelly_fraction(mean, variance, fraction=fraction, cap=cap)
    assert abs(f) <= cap
    assert f * mean >= 0  # never against the edge
    full = kelly_fraction(mean, variance, fraction=1.0, cap=cap)
    assert abs(f) <= abs(full) + 1e-12


@given(p=st.floats(0, 1), payoff=positive, fraction=st.floats(0.01, 1.0))
def test_kelly_binary_bets_only_with_an_edge(p: float, payoff: float, fraction: float) -> None:
    f = kelly_binary(p, payoff, fraction=fraction, cap=1.0)
    assert 0.0 <= f <= 1.0
    if p * payoff <= 1 - p:  # expected value of the bet <= 0
        assert f == 0.0


def test_correlated_exposure_worked_values() -> None:
    same = [[1.0, 1.0], [1.0, 1.0]]
    none = [[1.0, 0.0], [0.0, 1.0]]
    hedge = [[1.0, 1.0], [1.0, 1.0]]
    assert correlated_exposure([3.0, 4.0], same) == pytest.approx(7.0)  # one bet, twice
    assert correlated_exposure([3.0, 4.0], none) == pytest.approx(5.0)  # root of squares
    assert correlated_exposure([4.0, -4.0], hedge) == pytest.approx(0.0)  # a perfect hedge
    capped = cap_correlated_exposure([3.0, 4.0], same, 3.5)
    assert capped == pytest.approx((1.5, 2.0))
    assert cap_correlated_exposure([3.0, 4.0], none, 6.0) == (3.0, 4.0)


@pytest.mark.parametrize(
    ("corr", "message"),
    [
        ([[1.0]], r"is \(1, 1\), expected \(2, 2\)"),
        ([[1.0, 2.0], [2.0, 1.0]], "not a correlation matrix"),
        ([[0.5, 0.0], [0.0, 1.0]], "not a correlation matrix"),
        ([[1.0, 0.3], [0.1, 1.0]], "not symmetric"),
        ([[1.0, math.nan], [math.nan, 1.0]], "non-finite"),
    ],
)
def test_correlated_exposure_refuses_a_bad_matrix(corr: list[list[float]], message: str) -> None:
    with pytest.raises(InvariantError, match=message):
        correlated_exposure([1.0, 1.0], corr)


def test_cap_refuses_a_negative_cap() -> None:
    with pytest.raises(InvariantError, match="cap"):
        cap_correlated_exposure([1.0], [[1.0]], -1.0)


@st.composite
def _book(draw: st.DrawFn) -> tuple[list[float], np.ndarray]:
    """Exposures and a valid correlation matrix (the sample correlation of random returns)."""
    k = draw(st.integers(1, 5))
    exposures = draw(st.lists(finite, min_size=k, max_size=k))
    seed = draw(st.integers(0, 2**32 - 1))
    returns = np.random.default_rng(seed).normal(size=(k + 3, k))
    returns[:, 0] += returns[:, -1] * draw(st.floats(0, 3))  # some correlation
    corr = np.atleast_2d(np.corrcoef(returns, rowvar=False))
    corr = (corr + corr.T) / 2
    np.fill_diagonal(corr, 1.0)
    return exposures, corr


@settings(max_examples=200)
@given(book=_book(), cap=st.floats(0, 1e6))
def test_capped_exposure_is_under_the_cap_and_keeps_the_shape(
    book: tuple[list[float], np.ndarray], cap: float
) -> None:
    exposures, corr = book
    capped = cap_correlated_exposure(exposures, corr, cap)
    assert correlated_exposure(capped, corr) <= cap * (1 + 1e-9) + 1e-9
    scale = None
    for before, after in zip(exposures, capped, strict=True):
        assert abs(after) <= abs(before) + 1e-12
        assert before * after >= 0
        if before != 0:
            ratio = after / before
            scale = ratio if scale is None else scale
            assert ratio == pytest.approx(scale, rel=1e-9, abs=1e-12)
    # never more than the plain gross exposure, never less than the largest single one
    gross = sum(abs(x) for x in exposures)
    assert correlated_exposure(exposures, corr) <= gross * (1 + 1e-9) + 1e-9


def _walk(n: int, seed: int, k: int = 1) -> np.ndarray:
    steps = np.random.default_rng(seed).normal(0, 0.01, size=(n, k))
    return np.round(100 * np.exp(np.cumsum(steps, axis=0)), 2)


@pytest.mark.parametrize("period", [2, 5, 30])
def test_return_vol_matches_pandas(period: int) -> None:
    prices = _walk(400, 3)[:, 0]
    expected = np.log(pd.Series(prices)).diff().rolling(period).std(ddof=1)
    vol = ReturnVol(period)
    for i, price in enumerate(prices):
        vol.update(round(price * 100) * (FIXED_SCALE // 100))
        assert vol.ready == (i >= period)
        if vol.ready:
            assert vol.value == pytest.approx(expected.iloc[i], rel=1e-9), i


def test_return_vol_refuses_bad_input() -> None:
    with pytest.raises(InvariantError, match="period"):
        ReturnVol(1)
    with pytest.raises(InvariantError, match="positive prices"):
        ReturnVol(5).update(0)
    vol = ReturnVol(3)
    assert math.isnan(vol.value)
    vol.update(FIXED_SCALE)
    vol.update(FIXED_SCALE)
    assert math.isnan(vol.value)  # one return: no deviation yet


@pytest.mark.parametrize("window", [3, 20, 60])
def test_rolling_correlation_matches_pandas(window: int) -> None:
    prices = _walk(200, 11, k=3)
    prices[:, 1] = np.round(prices[:, 0] * 0.5 + prices[:, 1] * 0.5, 2)  # correlated with 0
    frame = np.log(pd.DataFrame(prices, columns=["A", "B", "C"])).diff()
    corr = RollingCorrelation(["A", "B", "C"], window)
    for i, row in enumerate(prices):
        corr.update([round(x * 100) * (FIXED_SCALE // 100) for x in row])
        assert corr.ready == (i >= window)
        if corr.ready and i % 7 == 0:
            expected = frame.iloc[i - window + 1 : i + 1].corr().to_numpy()
            np.testing.assert_allclose(corr.matrix(), expected, rtol=1e-9, atol=1e-12)


def test_rolling_correlation_edge_cases() -> None:
    corr = RollingCorrelation(["A", "B"], 3)
    np.testing.assert_array_equal(corr.matrix(), np.eye(2))
    for a in (100, 101, 102, 101):
        corr.update([a * FIXED_SCALE, 50 * FIXED_SCALE])  # B never moves
    m = corr.matrix()
    assert m[0, 1] == 0.0 and m[0, 0] == m[1, 1] == 1.0
    with pytest.raises(InvariantError, match="expected 2 prices"):
        corr.update([FIXED_SCALE])
    with pytest.raises(InvariantError, match="positive"):
        corr.update([FIXED_SCALE, 0])
    with pytest.raises(InvariantError, match="distinct"):
        RollingCorrelation(["A", "A"], 5)
    with pytest.raises(InvariantError, match="window"):
        RollingCorrelation(["A"], 2)
