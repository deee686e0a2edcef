"""Study configs, parameter sets and walk-forward windows (no Ray)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtest.research.config import WindowConfig, load_study
from backtest.research.grid import expand, param_hash
from backtest.research.walkforward import make_windows
from runtime.errors import ConfigError
from tests.research.conftest import write_study


def test_grid_expands_in_order_with_constraints(study_file: Path) -> None:
    config = load_study(study_file, "sweep")
    sets = expand(config)
    assert len(sets) == 9 and sets[0] == {"fast": 3, "slow": 13}
    assert all(p["fast"] < p["slow"] for p in sets)
    strict = config.model_copy(update={"constraints": ("slow <= 21", "fast != 5")})
    assert expand(strict) == [
        {"fast": 3, "slow": 13},
        {"fast": 3, "slow": 21},
        {"fast": 8, "slow": 13},
        {"fast": 8, "slow": 21},
    ]


def test_param_hash_ignores_key_order() -> None:
    assert param_hash({"a": 1, "b": 2}) == param_hash({"b": 2, "a": 1})
    assert param_hash({"a": 1}) != param_hash({"a": 1.5})


def test_random_sample_is_seeded_and_distinct(tmp_path: Path) -> None:
    sample = {"n": 12, "seed": 4, "space": {"fast": {"low": 2, "high": 10}, "slow": [20, 30, 40]}}
    path = write_study(tmp_path, grid=None, sample=sample)
    first, again = expand(load_study(path, "sweep")), expand(load_study(path, "sweep"))
    assert first == again and len(first) == 12
    assert len({param_hash(p) for p in first}) == 12
    assert all(2 <= p["fast"] <= 10 and p["slow"] in (20, 30, 40) for p in first)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"grid": None}, "grid"),
        ({"constraints": ["fast << slow"]}, "constraints"),
        ({"constraints": ["fast < size2"]}, "constraints"),
        ({"heatmap": ["fast", "nope"]}, "heatmap"),
        ({"strategy": "other"}, "strategy"),
        ({"stats": {"pbo_blocks": 7}}, "stats.pbo_blocks"),
        ({"objective": {"metric": "sharpe", "goal": "up"}}, "objective.goal"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_study_configs_name_file_and_field(tmp_path: Path, override: dict, field: str) -> None:
    path = write_study(tmp_path, **override)
    with pytest.raises(ConfigError) as info:
        load_study(path, "sweep")
    assert str(path) in str(info.value) and field in str(info.value)


def test_rolling_windows_with_purge_embargo_and_warmup() -> None:
    ts = np.arange(100, dtype=np.int64) * 60 * 10**9
    spec = WindowConfig(mode="rolling", train=40, test=20, purge=2, embargo=3, warmup=5)
    windows = make_windows(ts, spec)
    assert [
        (w.train_start, w.fit_end, w.test_start, w.test_end, w.warm_start) for w in windows
    ] == [(0, 38, 43, 63, 38), (20, 58, 63, 83, 58), (40, 78, 83, 100, 78)]
    for w in windows:  # the fit never sees the purge/embargo gap or the test window
        assert w.fit_end <= w.test_start - 5


def test_anchored_windows_start_at_the_first_point_and_durations_work() -> None:
    ts = np.arange(100, dtype=np.int64) * 60 * 10**9
    windows = make_windows(ts, WindowConfig(mode="anchored", train="30min", test="20min"))
    assert [(w.train_start, w.fit_end, w.test_start, w.test_end) for w in windows] == [
        (0, 30, 30, 50),
        (0, 50, 50, 70),
        (0, 70, 70, 90),
        (0, 90, 90, 100),
    ]


def test_too_little_data_for_a_window_is_a_config_error() -> None:
    ts = np.arange(10, dtype=np.int64)
    with pytest.raises(ConfigError, match="too short"):
        make_windows(ts, WindowConfig(train=20, test=5))
