"""The fan-out's pieces that need no Ray: chunk plans, replayed feeds, the equity sample times."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from backtest.config import load_config
from backtest.equity import _sample_times
from backtest.feed import Feed, load_feed
from backtest.research.fanout import plan_chunks
from backtest.research.replay import ReplayFeed, replay_feed
from backtest.research.trial import Trial, TrialSpec, run_trial
from tests.research.conftest import backtest_dict, write_bars_csv

OPTIONS = {"strategy": "sma", "objective": "sharpe", "n_blocks": 8}


@pytest.mark.parametrize(("n_jobs", "n_workers"), [(0, 2), (1, 2), (9, 2), (30, 2), (100, 2),
                                                   (100, 1), (1000, 8), (5000, 3)])  # fmt: skip
def test_chunk_plans_cover_every_job_large_first_single_at_the_end(
    n_jobs: int, n_workers: int
) -> None:
    sizes = plan_chunks(n_jobs, n_workers, max_chunk=64)
    assert sum(sizes) == n_jobs
    assert sizes == sorted(sizes, reverse=True) and all(1 <= s <= 64 for s in sizes)
    if n_jobs >= 2 * n_workers:
        assert sizes[-1] == 1 and len(sizes) >= n_workers  # every worker gets a chunk
    # the last chunk started on each worker is small: the workers finish close together
    assert all(s <= max(1, n_jobs // n_workers) for s in sizes)


@pytest.mark.parametrize("bad", [(-1, 2, 8), (5, 0, 8), (5, 2, 0)])
def test_a_chunk_plan_refuses_nonsense(bad: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="plan_chunks"):
        plan_chunks(bad[0], bad[1], max_chunk=bad[2])


def _feed(tmp_path: Path, n: int = 400) -> tuple[object, Feed]:
    data = write_bars_csv(tmp_path / "bars.csv", n, seed=4)
    raw = backtest_dict(data.name)
    raw["base_dir"] = str(tmp_path)
    config = load_config(raw)
    return config, load_feed(config)


def _same(a: Trial, b: Trial) -> None:
    assert a.status == b.status == "ok"
    assert str(asdict(a)) == str(asdict(b))  # NaN != NaN, but their reprs agree


def test_a_replayed_feed_gives_the_trials_of_the_lazy_feed(tmp_path: Path) -> None:
    config, feed = _feed(tmp_path)
    replayed = replay_feed(feed)
    assert isinstance(replayed, ReplayFeed) and len(replayed.replay) == feed.n_events
    ts = feed.timestamps()
    specs = [
        TrialSpec({"fast": 3, "slow": 13}),
        TrialSpec({"fast": 5, "slow": 21}),
        TrialSpec({"fast": 3, "slow": 13}, start_ns=int(ts[100]), end_ns=int(ts[300])),
        TrialSpec(
            {"fast": 3, "slow": 13}, start_ns=int(ts[50]) + 1, score_ns=int(ts[90]), keep_curve=True
        ),
        TrialSpec({"fast": 3, "slow": 13}, start_ns=None, end_ns=int(ts[250])),
    ]
    for spec in specs:
        for _ in range(2):  # the second run replays the very same message objects
            _same(run_trial(config, replayed, spec, **OPTIONS),  # type: ignore[arg-type]
                  run_trial(config, feed, spec, **OPTIONS))  # type: ignore[arg-type]  # fmt: skip


def test_a_feed_too_large_or_out_of_order_is_not_replayed(tmp_path: Path) -> None:
    _, feed = _feed(tmp_path, n=100)
    assert replay_feed(feed, max_events=99) is feed
    assert replay_feed(feed, max_events=100) is not feed
    table = next(iter(feed.tables.values()))
    shuffled = Feed(tables={("bars", "SIM"): table.take(np.arange(99, -1, -1))},
                    dataset_hash="reversed")  # fmt: skip
    shuffled.index()
    assert replay_feed(shuffled) is shuffled


def test_equity_sample_times_are_the_distinct_mark_times_in_order() -> None:
    rng = np.random.default_rng(3)
    a = np.sort(rng.integers(0, 1000, 500))
    b = np.sort(rng.integers(0, 1000, 300))
    marks = {"A": (a, a), "B": (b, b)}
    assert np.array_equal(_sample_times(marks, 10_000), np.unique(np.concatenate([a, b])))
    assert np.array_equal(_sample_times({"A": (a, a)}, 10_000), np.unique(a))
    one = np.array([7], dtype=np.int64)
    assert np.array_equal(_sample_times({"A": (one, one)}, 10), one)
