"""An operator's change to a strategy's params is in the strategy's own journal: a SIGKILLed
strategy actor comes back with the changed params by itself (no control plane re-applying
them), with the same state hash, and trades with them afterwards."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.actors.paper_helpers import write_paper_config, write_sample

pytestmark = pytest.mark.usefixtures("ray_local")

_FIXED = 1_000_000_000


def _until(check: Any, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def _sigkill(handle: Any) -> None:
    import ray

    pid = ray.get(handle.pid.remote())
    os.kill(pid, signal.SIGKILL)
    _until(lambda: _pid_or_none(handle) not in (None, pid))


def _pid_or_none(handle: Any) -> int | None:
    import ray

    try:
        return int(ray.get(handle.pid.remote(), timeout=5))
    except (ray.exceptions.RayError, TimeoutError):
        return None


def test_params_change_survives_a_sigkill_of_the_strategy(tmp_path: Path) -> None:
    import ray

    from actors.config import load_paper_config
    from actors.session import start_session

    path = write_paper_config(tmp_path, "mm", write_sample(tmp_path / "data"), minutes=6)
    session = start_session(load_paper_config(path), session_id="params1")
    strategy = session.children["strategy:mm"]
    _until(lambda: ray.get(session.feed.status.remote())["cursor"] > 20)
    ray.get(session.feed.pause.remote())
    changed = ray.get(
        strategy.operate.remote("params", {"params": {"size": 3 * _FIXED, "levels": 1}})
    )
    assert changed["params"]["levels"] == 1
    before = ray.get(strategy.state_hash.remote())
    refused = {  # each refused before anything is journaled, naming what was wrong
        "unknown params \\['nope'\\]": {"params": {"nope": 1}},
        "levels: Input should be a valid integer": {"params": {"levels": "2"}},
        "size: .*expected an integer in fixed-point": {"params": {"size": 1.5}},
        "levels: Input should be greater than or equal to 1": {"params": {"levels": 0}},
        "Expected `bool": {"enabled": "yes"},
    }
    for match, args in refused.items():
        action = "enable" if "enabled" in args else "params"
        with pytest.raises(ray.exceptions.RayTaskError, match=match):
            ray.get(strategy.operate.remote(action, args))
    assert ray.get(strategy.state_hash.remote()) == before  # nothing of them was applied
    assert ray.get(strategy.operate.remote("params", {}))["params"] == changed["params"]
    orders_before = {o["id"] for o in ray.get(session.risk.records.remote())["orders"]}

    _sigkill(strategy)  # its journal replays: a refused change would fail the replay

    after = ray.get(strategy.operate.remote("params", {}))
    assert after["params"] == changed["params"]
    assert ray.get(strategy.state_hash.remote()) == before
    ray.get(session.feed.resume.remote())
    assert session.wait(600)
    orders = ray.get(session.risk.records.remote())["orders"]
    new = [o for o in orders if o["id"] not in orders_before and o["strategy"] == "mm"]
    assert new and all(int(o["qty"]) == 3 * _FIXED for o in new)
    result = session.stop()
    assert result["positions_match"]


def test_disable_survives_a_sigkill_of_the_strategy(tmp_path: Path) -> None:
    import ray

    from actors.config import load_paper_config
    from actors.session import start_session

    path = write_paper_config(
        tmp_path, "mm", write_sample(tmp_path / "data"), minutes=6, cancel_on_stop=True
    )
    session = start_session(load_paper_config(path), session_id="params2")
    strategy = session.children["strategy:mm"]
    _until(lambda: ray.get(session.feed.status.remote())["cursor"] > 20)
    ray.get(session.feed.pause.remote())
    assert ray.get(strategy.operate.remote("enable", {"enabled": False}))["enabled"] is False
    _sigkill(strategy)
    assert ray.get(strategy.operate.remote("params", {}))["enabled"] is False
    ray.get(strategy.operate.remote("enable", {"enabled": True}))
    _sigkill(strategy)
    assert ray.get(strategy.operate.remote("params", {}))["enabled"] is True
    session.stop(write=False)
