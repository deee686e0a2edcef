"""DSR and PBO against the papers' worked numbers and against their defining properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.research.analysis import analyse
from backtest.research.stats import (
    block_stats,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    norm_cdf,
    norm_ppf,
    pbo_cscv,
    probabilistic_sharpe_ratio,
    return_moments,
)
from backtest.research.trial import Trial


def test_dsr_matches_the_papers_numerical_example() -> None:
    """Bailey & López de Prado (2014), "A numerical example": N = 100 trials whose annualised
    Sharpe ratios have variance 1/2; the selected strategy has annualised SR 2.5 over 5 years of
    daily returns (T = 1250, 250 per year), skewness -3, kurtosis 10. The paper finds
    SR₀ ≈ 0.1132 per period and DSR ≈ 0.9004 (not significant at 95%)."""
    per_year = 250
    variance = 0.5 / per_year
    sr0 = expected_max_sharpe(100, variance)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated_sharpe_ratio(
        2.5 / math.sqrt(per_year),
        n_obs=1250,
        n_trials=100,
        sharpe_variance=variance,
        skew=-3.0,
        kurtosis=10.0,
    )
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_psr_and_dsr_move_the_right_way() -> None:
    base = {"n_obs": 1000, "skew": 0.0, "kurtosis": 3.0}
    psr = probabilistic_sharpe_ratio
    assert psr(0.1, 0.0, **base) > psr(0.05, 0.0, **base)
    assert probabilistic_sharpe_ratio(
        0.1, 0.0, n_obs=1000, skew=-2.0, kurtosis=3.0
    ) < probabilistic_sharpe_ratio(0.1, 0.0, **base)
    assert probabilistic_sharpe_ratio(0.0, 0.0, **base) == pytest.approx(0.5)
    # more trials, higher bar
    assert expected_max_sharpe(1000, 0.01) > expected_max_sharpe(10, 0.01) > 0
    assert expected_max_sharpe(1, 0.01) == 0.0


def test_normal_quantiles_are_exact_enough() -> None:
    for p in (1e-9, 0.001, 0.025, 0.3, 0.5, 0.9, 0.99, 1 - 1e-7):
        assert norm_cdf(norm_ppf(p)) == pytest.approx(p, rel=1e-9, abs=1e-15)
    assert norm_ppf(0.975) == pytest.approx(1.959963984540054, abs=1e-12)


def _trials_from_returns(returns: np.ndarray, n_blocks: int = 16) -> list[Trial]:
    out = []
    for j in range(returns.shape[1]):
        r = returns[:, j]
        m = return_moments(r)
        b = block_stats(r, n_blocks)
        out.append(
            Trial(
                param_hash=f"{j:04d}",
                params={"j": j},
                status="ok",
                objective=m.sharpe,
                sharpe_pp=m.sharpe,
                n_obs=m.n_obs,
                skew=m.skew,
                kurtosis=m.kurtosis,
                block_n=b.n.tolist(),
                block_sum=b.total.tolist(),
                block_sumsq=b.sumsq.tolist(),
            )
        )
    return out


def test_pure_noise_strategies_give_pbo_near_half_and_dsr_near_zero() -> None:
    """100 skill-less strategies: PBO ≈ 0.5; the best Sharpe is what selection alone explains,
    so the deflated excess SR − SR₀ is ≈ 0 and DSR (the probability that the best has skill,
    a coin flip around SR₀) stays far below 0.95 — flagged. Note: DSR as a probability is ≈ 0.5
    on average under the null by construction; it is the *deflated Sharpe* SR − SR₀ that is ≈ 0."""
    rng = np.random.default_rng(42)
    pbos, dsrs, excess = [], [], []
    for _ in range(6):
        returns = rng.standard_normal((1000, 100)) * 0.01
        stats = analyse(_trials_from_returns(returns), "maximize")
        assert stats.best is not None and not stats.trustworthy
        pbos.append(stats.pbo)
        dsrs.append(stats.dsr)
        excess.append((stats.best.sharpe_pp - stats.sr0) / stats.best.sharpe_pp)
    assert np.mean(pbos) == pytest.approx(0.5, abs=0.1)
    assert max(dsrs) < 0.95 and np.mean(dsrs) == pytest.approx(0.5, abs=0.2)
    assert abs(float(np.mean(excess))) < 0.15  # SR − SR₀ ≈ 0: nothing left after deflation


def test_a_real_edge_gives_pbo_near_zero_and_a_high_dsr() -> None:
    rng = np.random.default_rng(7)
    returns = rng.standard_normal((2000, 50)) * 0.01
    returns[:, 17] += 0.004  # one strategy with a per-period Sharpe of ~0.4
    stats = analyse(_trials_from_returns(returns), "maximize")
    assert stats.best is not None and stats.best.params == {"j": 17}
    assert stats.pbo < 0.05
    assert stats.dsr > 0.99
    assert stats.trustworthy


def test_block_statistics_reproduce_the_sharpe_of_any_union() -> None:
    rng = np.random.default_rng(1)
    r = rng.standard_normal(1003) * 0.01 + 0.001
    b = block_stats(r, 8)
    assert b.n.sum() == 1003
    n, s, q = b.n.sum(), b.total.sum(), b.sumsq.sum()
    mean = s / n
    sr = mean / math.sqrt((q - n * mean * mean) / (n - 1))
    assert sr == pytest.approx(return_moments(r).sharpe, rel=1e-9)


def test_cscv_by_hand_with_two_trials_and_two_blocks() -> None:
    """S = 2: two splits. Trial A wins block 0 and loses block 1; trial B the opposite, so the
    in-sample winner is always the out-of-sample loser: every logit is negative, PBO = 1."""
    a = np.array([[0.02, 0.01, 0.03], [-0.01, -0.02, 0.0]])  # blocks of trial A
    b = a[::-1]
    n = np.array([[3.0, 3.0], [3.0, 3.0]])
    total = np.array([[x.sum() for x in a], [x.sum() for x in b]])
    sumsq = np.array([[(x * x).sum() for x in a], [(x * x).sum() for x in b]])
    result = pbo_cscv(n, total, sumsq)
    assert result.n_combinations == 2
    # rank of the OOS loser among 2 is 1: ω = 1/3, logit = ln(1/2)
    assert result.logits.tolist() == pytest.approx([math.log(0.5)] * 2)
    assert result.pbo == 1.0


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 12), st.integers(0, 2**32 - 1))
def test_pbo_is_a_probability_and_ignores_trial_order(trials: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    returns = rng.standard_normal((200, trials)) * 0.01
    blocks = [block_stats(returns[:, j], 6) for j in range(trials)]
    arrays = [np.array([getattr(b, k) for b in blocks]) for k in ("n", "total", "sumsq")]
    first = pbo_cscv(*arrays)
    perm = rng.permutation(trials)
    second = pbo_cscv(*(a[perm] for a in arrays))
    assert 0.0 <= first.pbo <= 1.0
    assert first.n_combinations == math.comb(6, 3)
    assert first.pbo == pytest.approx(second.pbo)
