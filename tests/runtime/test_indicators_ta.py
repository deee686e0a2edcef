"""RSI, ATR, Bollinger bands and MACD, updated one value at a time, against pandas written out
from the textbook definitions (and a few values worked by hand)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from runtime.errors import InvariantError
from runtime.indicators import Atr, Bollinger, Macd, Rsi
from runtime.values import FIXED_SCALE, fixed


def _prices(n: int = 300, seed: int = 5) -> np.ndarray:
    """A random walk in cents, as fixed-point ints (bars of a two-decimal instrument)."""
    steps = np.random.default_rng(seed).integers(-40, 41, size=n)
    return (10_000 + np.cumsum(steps)) * (FIXED_SCALE // 100)


def _wilder(x: pd.Series, n: int) -> pd.Series:
    """Wilder smoothing: the mean of the first n values, then avg = (avg·(n−1) + x) / n."""
    seeded = pd.concat([pd.Series([x.iloc[:n].mean()]), x.iloc[n:]], ignore_index=True)
    smooth = seeded.ewm(alpha=1 / n, adjust=False).mean()
    return pd.concat([pd.Series([math.nan] * (n - 1)), smooth], ignore_index=True)


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("period", [2, 5, 14])
def test_rsi_matches_wilders_definition(period: int) -> None:
    raw = _prices()
    close = pd.Series(raw / FIXED_SCALE)
    change = close.diff().iloc[1:].reset_index(drop=True)
    gain, loss = _wilder(change.clip(lower=0), period), _wilder(-change.clip(upper=0), period)
    expected = [math.nan, *(100 - 100 / (1 + gain / loss)).tolist()]
    rsi = Rsi(period)
    for i, x in enumerate(raw):
        rsi.update(int(x))
        assert rsi.ready == (i >= period)
        assert _close(rsi.value, expected[i]), i


def test_rsi_by_hand() -> None:
    rsi = Rsi(2)
    seen = []
    for price in ("1", "2", "3", "2", "2"):
        rsi.update(fixed(price))
        seen.append(rsi.value)
    # gains 1, 1 → 100; then avg gain (1·1 + 0)/2 = 0.5, avg loss (0·1 + 1)/2 = 0.5 → 50;
    # then 0.25 / 0.25 → 50
    assert all(math.isnan(v) for v in seen[:2])
    assert seen[2:] == [100.0, 50.0, 50.0]
    flat = Rsi(3)
    for _ in range(5):
        flat.update(fixed(10))
    assert flat.value == 50.0


def test_atr_matches_wilders_definition() -> None:
    raw = _prices()
    rng = np.random.default_rng(9)
    high = raw + rng.integers(0, 30, size=len(raw)) * (FIXED_SCALE // 100)
    low = raw - rng.integers(0, 30, size=len(raw)) * (FIXED_SCALE // 100)
    h, lo, c = (pd.Series(a / FIXED_SCALE) for a in (high, low, raw))
    prev = c.shift()
    tr = pd.concat([h - lo, (h - prev).abs(), (lo - prev).abs()], axis=1).max(axis=1)
    expected = _wilder(tr, 14).tolist()
    atr = Atr(14)
    for i in range(len(raw)):
        atr.update(int(high[i]), int(low[i]), int(raw[i]))
        assert atr.ready == (i >= 13)
        assert _close(atr.value, expected[i]), i


def test_atr_by_hand() -> None:
    atr = Atr(2)
    atr.update(fixed(11), fixed(9), fixed(10))  # tr 2
    assert math.isnan(atr.value)
    atr.update(fixed(14), fixed(12), fixed(13))  # tr max(2, 4, 2) = 4 → mean 3
    assert atr.value == 3.0
    atr.update(fixed(13), fixed(12), fixed(12))  # tr max(1, 0, 1) = 1 → (3 + 1) / 2 = 2
    assert atr.value == 2.0


@pytest.mark.parametrize("ddof", [0, 1])
def test_bollinger_matches_rolling_mean_and_std(ddof: int) -> None:
    raw = _prices()
    close = pd.Series(raw / FIXED_SCALE)
    mid, std = close.rolling(20).mean(), close.rolling(20).std(ddof=ddof)
    bands = Bollinger(20, 2.5, ddof=ddof)
    for i, x in enumerate(raw):
        bands.update(int(x))
        assert bands.ready == (i >= 19)
        assert _close(bands.middle, mid[i]) and _close(bands.upper, mid[i] + 2.5 * std[i])
        assert _close(bands.lower, mid[i] - 2.5 * std[i])
    assert bands.percent_b(int(raw[-1])) == pytest.approx(
        (close.iloc[-1] - (mid.iloc[-1] - 2.5 * std.iloc[-1])) / (5 * std.iloc[-1]))


def test_macd_matches_pandas_ewm() -> None:
    raw = _prices()
    close = pd.Series(raw / FIXED_SCALE)
    macd = close.ewm(span=12, adjust=False).mean() - close.ewm(span=26, adjust=False).mean()
    signal = macd.ewm(span=9, adjust=False).mean()
    m = Macd(12, 26, 9)
    for i, x in enumerate(raw):
        m.update(int(x))
        assert m.ready == (i >= 26 + 9 - 2)
        assert _close(m.macd, macd[i]) and _close(m.signal, signal[i])
        assert _close(m.histogram, macd[i] - signal[i])


def test_macd_needs_fast_below_slow() -> None:
    with pytest.raises(InvariantError, match="fast < slow"):
        Macd(26, 12)
