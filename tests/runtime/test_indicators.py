"""Indicators against numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.errors import InvariantError
from runtime.indicators import Ema, RollingStd, Sma
from runtime.values import Rounding

values = st.lists(st.integers(-(10**15), 10**15), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(values, st.integers(1, 10))
def test_sma_and_std_match_numpy_over_the_last_period_values(xs: list[int], period: int) -> None:
    sma, std0 = Sma(period), RollingStd(period)
    std1 = RollingStd(period, ddof=1) if period > 1 else None
    for i, x in enumerate(xs):
        sma.update(x)
        std0.update(x)
        if std1 is not None:
            std1.update(x)
        window = np.array(xs[max(0, i + 1 - period): i + 1], dtype=np.float64) / 1e9
        assert sma.ready == (i + 1 >= period)
        # the exact mean of the window (from its own integer sum), vs numpy's float mean
        exact = sum(xs[max(0, i + 1 - period): i + 1]) / (len(window) * 10**9)
        assert sma.value == pytest.approx(exact, rel=1e-15, abs=1e-15)
        scale = float(np.abs(window).max()) or 1.0
        assert sma.value == pytest.approx(window.mean(), rel=1e-12, abs=1e-12 * scale)
        assert std0.value == pytest.approx(window.std(), rel=1e-9, abs=1e-9)
        if std1 is not None and len(window) > 1:
            assert std1.value == pytest.approx(window.std(ddof=1), rel=1e-9, abs=1e-9)


def test_sma_exact_fixed_point_mean() -> None:
    sma = Sma(3)
    for x in (1, 2, 2):
        sma.update(x)
    assert sma.value_fixed(Rounding.FLOOR) == 1 and sma.value_fixed(Rounding.CEILING) == 2


def test_ema_matches_the_recursive_definition() -> None:
    xs = np.array([10, 11, 13, 12, 15, 14], dtype=np.float64)
    ema, alpha = Ema(3), 2 / 4
    expected = xs[0]
    for i, x in enumerate(xs):
        ema.update(int(x * 1e9))
        expected = x if i == 0 else expected + alpha * (x - expected)
        assert ema.value == pytest.approx(expected)
    assert ema.ready


def test_bad_period_is_refused() -> None:
    with pytest.raises(InvariantError):
        Sma(0)
