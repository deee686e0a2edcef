"""Memory stays flat: 1000 backtests in one sweep without the workers' RSS growing.

(A known peer leaks ~170 MB per run.) The trials run through the sweep's own Ray task; each
returns its worker's RSS after the run. After a warm-up (imports, the cached feed, allocator
pools), a worker's RSS over its last tasks stays within a few MB of where it was.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from backtest.config import load_config
from backtest.feed import load_feed
from backtest.research.fanout import TrialRunner
from backtest.research.trial import TrialSpec
from tests.research.conftest import backtest_dict, write_bars_csv

pytestmark = pytest.mark.ray

N_TRIALS = 1000
MAX_GROWTH_MB = 10.0


def test_a_thousand_backtests_keep_worker_rss_flat(ray_local: Any, tmp_path: Path) -> None:
    data = write_bars_csv(tmp_path / "bars.csv", 300, seed=11)
    raw = backtest_dict(data.name)
    raw["base_dir"] = str(tmp_path)
    backtest = load_config(raw)
    runner = TrialRunner(
        load_feed(backtest),
        backtest,
        options={"strategy": "sma", "objective": "sharpe", "n_blocks": 8},
    )
    jobs = [
        ("mem", TrialSpec({"fast": 2 + i % 7, "slow": 10 + (i // 7) % 140}))
        for i in range(N_TRIALS)
    ]
    by_pid: dict[int, list[float]] = defaultdict(list)
    ok = 0
    for _, trial in runner.run(jobs):
        by_pid[trial.pid].append(trial.rss_mb)
        ok += trial.status == "ok"
    assert ok == N_TRIALS
    busy = {pid: rss for pid, rss in by_pid.items() if len(rss) >= 200}
    assert busy, f"no worker ran 200 trials: {[len(v) for v in by_pid.values()]}"
    for pid, rss in busy.items():
        warm = statistics.median(rss[50:100])
        late = max(rss[-50:])
        print(
            f"worker {pid}: {len(rss)} runs, RSS {warm:.1f} MB after warm-up, "
            f"max {late:.1f} MB over the last 50"
        )
        assert late - warm < MAX_GROWTH_MB, (
            f"worker {pid}: RSS {warm:.1f} MB after warm-up, {late:.1f} MB after {len(rss)} runs"
        )
