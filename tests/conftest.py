"""Shared fixtures: the real market data beside the project, skipped clearly where absent."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# Property tests have no deadline: a timed example fails under load (the suite runs beside other
# work on 2 cores), and timing is measured by bench/, never by tests.
settings.register_profile("tradewind", deadline=None)
settings.load_profile("tradewind")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def shared_data_file(name: str) -> Path:
    """Path of a file in ../shared/data; skips the test with the reason when it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"needs ../shared/data/{name} (real market data beside the project): absent")
    return path


@pytest.fixture
def shared_data() -> object:
    return shared_data_file


@pytest.fixture(scope="session")
def ray_local() -> object:
    """One real local Ray cluster for the whole test session (never local_mode).

    2 CPUs, no dashboard, token auth disabled (DESIGN.md: Ray pitfalls). Tests that need Ray take
    this fixture; unit tests never start Ray.
    """
    import os

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from actors.logs import RAY_RUNTIME_ENV  # the sessions' actors log JSON (actors.logs)
    from backtest.research.fanout import init_local  # started again if it timed out

    if not ray.is_initialized():
        init_local(num_cpus=2, include_dashboard=False, log_to_driver=False,
                   runtime_env=RAY_RUNTIME_ENV)
    yield ray
    ray.shutdown()
