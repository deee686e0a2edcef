"""Stochastic, ADX and rolling z-score, updated one bar at a time, against pandas written out
from the textbook definitions (and a few values worked by hand)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from runtime.errors import InvariantError
from runtime.indicators import Adx, Stochastic, ZScore
from runtime.values import FIXED_SCALE, fixed
from tests.runtime.test_indicators_ta import _close, _wilder

CENT = FIXED_SCALE // 100


def _bars(n: int = 300, seed: int = 9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """High, low, close in cents of a random walk, as fixed-point ints (with flat stretches)."""
    rng = np.random.default_rng(seed)
    close = 10_000 + np.cumsum(rng.integers(-40, 41, size=n))
    close[50:60] = close[49]  # a flat range: the stochastic's range is 0 there
    high = close + rng.integers(0, 30, size=n)
    low = close - rng.integers(0, 30, size=n)
    high[50:60], low[50:60] = close[49], close[49]
    return high * CENT, low * CENT, close * CENT


@pytest.mark.parametrize(("k", "d", "smooth"), [(14, 3, 1), (14, 3, 3), (5, 5, 2), (1, 1, 1)])
def test_stochastic_matches_its_definition(k: int, d: int, smooth: int) -> None:
    high, low, close = _bars()
    h, lo, c = (pd.Series(x / FIXED_SCALE) for x in (high, low, close))
    hh, ll = h.rolling(k).max(), lo.rolling(k).min()
    rng = hh - ll
    raw = (100 * (c - ll) / rng).where(rng != 0, 50.0).where(hh.notna())
    expected_k = raw.rolling(smooth).mean()
    expected_d = expected_k.rolling(d).mean()
    stoch = Stochastic(k, d, smooth)
    for i in range(len(close)):
        stoch.update(int(high[i]), int(low[i]), int(close[i]))
        assert stoch.ready == (i >= k + smooth + d - 3), i
        assert _close(stoch.k, expected_k.iloc[i]), i
        assert _close(stoch.d, expected_d.iloc[i]), i
        assert _close(stoch.value, stoch.k)


def test_stochastic_by_hand() -> None:
    stoch = Stochastic(3, 2)
    seen = []
    for hi, lo, cl in [(10, 8, 9), (12, 9, 11), (11, 7, 8), (13, 10, 13)]:
        stoch.update(fixed(hi), fixed(lo), fixed(cl))
        seen.append((stoch.k, stoch.d))
    # bar 3: range 7..12, close 8 → 20; bar 4: range 7..13, close 13 → 100; %D (20+100)/2
    assert math.isnan(seen[1][0])
    assert seen[2][0] == pytest.approx(20.0) and math.isnan(seen[2][1])
    assert seen[3] == (pytest.approx(100.0), pytest.approx(60.0))


@pytest.mark.parametrize("period", [2, 5, 14])
def test_adx_matches_wilders_definition(period: int) -> None:
    high, low, close = _bars()
    h, lo, c = (pd.Series(x / FIXED_SCALE) for x in (high, low, close))
    up, down = h.diff(), -lo.diff()
    plus = up.where((up > down) & (up > 0), 0.0).iloc[1:].reset_index(drop=True)
    minus = down.where((down > up) & (down > 0), 0.0).iloc[1:].reset_index(drop=True)
    prev = c.shift()
    tr = pd.concat([h - lo, (h - prev).abs(), (lo - prev).abs()], axis=1).max(axis=1)
    tr = tr.iloc[1:].reset_index(drop=True)
    s_tr, s_plus, s_minus = (_wilder(x, period) for x in (tr, plus, minus))
    plus_di = (100 * s_plus / s_tr).where(s_tr != 0, 0.0).where(s_tr.notna())
    minus_di = (100 * s_minus / s_tr).where(s_tr != 0, 0.0).where(s_tr.notna())
    total = plus_di + minus_di
    dx = (100 * (plus_di - minus_di).abs() / total).where(total != 0, 0.0).where(total.notna())
    adx = _wilder(dx.iloc[period - 1 :].reset_index(drop=True), period)
    expected_adx = [math.nan] * (period - 1) + adx.tolist()
    indicator = Adx(period)
    for i in range(len(close)):
        indicator.update(int(high[i]), int(low[i]), int(close[i]))
        assert indicator.ready == (i >= 2 * period - 1), i
        if i == 0:
            assert math.isnan(indicator.plus_di)
            continue
        assert _close(indicator.plus_di, plus_di.iloc[i - 1]), i
        assert _close(indicator.minus_di, minus_di.iloc[i - 1]), i
        assert _close(indicator.value, expected_adx[i - 1]), i


def test_adx_of_a_steady_climb_is_100() -> None:
    adx = Adx(3)
    for i in range(10):
        adx.update(fixed(101 + i), fixed(99 + i), fixed(100 + i))
    assert adx.ready and adx.value == pytest.approx(100.0)
    # +DM 1 a bar, true range 2 (high − previous close): +DI 50
    assert adx.plus_di == pytest.approx(50.0) and adx.minus_di == 0.0
    flat = Adx(2)
    for _ in range(6):
        flat.update(fixed(10), fixed(10), fixed(10))
    assert flat.ready and flat.value == 0.0 and flat.plus_di == 0.0


@pytest.mark.parametrize(("period", "ddof"), [(2, 0), (20, 0), (20, 1), (60, 1)])
def test_zscore_matches_pandas(period: int, ddof: int) -> None:
    _, _, close = _bars()
    c = pd.Series(close / FIXED_SCALE)
    mean, std = c.rolling(period).mean(), c.rolling(period).std(ddof=ddof)
    expected = ((c - mean) / std).where(std != 0, 0.0).where(std.notna())
    z = ZScore(period, ddof=ddof)
    for i, x in enumerate(close):
        z.update(int(x))
        assert z.ready == (i >= period - 1)
        assert _close(z.value, expected.iloc[i]) or z.value == pytest.approx(
            expected.iloc[i], rel=1e-7, abs=1e-7
        ), i


def test_zscore_by_hand() -> None:
    z = ZScore(4)
    for x in ("1", "2", "3", "6"):
        z.update(fixed(x))
    # mean 3, std sqrt((4 + 1 + 0 + 9)/4) = sqrt(3.5): (6 - 3)/1.8708
    assert z.value == pytest.approx(3 / math.sqrt(3.5))


@pytest.mark.parametrize(
    "make",
    [lambda: Stochastic(0), lambda: Stochastic(14, 0), lambda: Stochastic(14, 3, 0),
     lambda: Adx(0), lambda: ZScore(0), lambda: ZScore(3, ddof=3)],
)
def test_bad_periods_are_refused(make: object) -> None:
    with pytest.raises(InvariantError):
        make()  # type: ignore[operator]
