"""Paper sessions on the shared local Ray cluster: lockstep parity with the backtest, SIGKILL
of each kind of actor (restored state hash, nothing lost or doubled), a restart storm that
halts trading, the kill file, and resuming a session by its id."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.actors.paper_helpers import backtest_fills, paper_fills, write_paper_config, write_sample

pytestmark = pytest.mark.usefixtures("ray_local")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("paper-data"))


def _start(path: Path, session_id: str, **kwargs: Any) -> Any:
    from actors.config import load_paper_config
    from actors.session import start_session

    return start_session(load_paper_config(path), session_id=session_id, **kwargs)


def _kill(handle: Any, timeout_s: float = 60.0) -> float:
    """SIGKILL the actor's worker process; seconds until a new process answers by its name
    (its supervisor started it again)."""
    import ray

    pid = handle.get("pid")
    start = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    while time.monotonic() - start < timeout_s:
        try:
            if handle.get("pid", timeout_s=5) != pid:
                return time.monotonic() - start
        except (ray.exceptions.RayError, TimeoutError):
            time.sleep(0.05)
    raise AssertionError("the actor did not come back")


def _until(check: Any, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def _assert_consistent(session: Any, result: dict[str, Any]) -> None:
    """No fill lost or doubled, positions equal the broker's (orders: checked by the callers
    before the tree stops)."""
    fills = result["fill_records"]
    assert len({f.fill_id for f in fills}) == len(fills) == result["fills"]
    assert result["positions_match"]


def _check_parity(config_path: Path, result: dict[str, Any]) -> None:
    from actors.config import load_paper_config
    from backtest.api import run_backtest

    expected = run_backtest(load_paper_config(config_path).trading_config(), write=False)
    assert paper_fills(result["fill_records"]) == backtest_fills(expected)
    assert result["orders"] == len(expected.orders)


@pytest.mark.parametrize(("transport", "carried"), [("auto", "sockets"), ("calls", "calls")])
def test_lockstep_session_equals_the_backtest_and_writes_its_files(
        data_dir: Path, tmp_path: Path, transport: str, carried: str) -> None:
    """Lockstep runs the step protocol over either carrier, with the backtest's fills."""
    path = write_paper_config(tmp_path, "mm", data_dir, minutes=3,
                              feed={"transport": transport})
    session = _start(path, "parity1")
    assert session.wait(600)
    result = session.stop()
    assert result["feed"]["transport"]["kind"] == carried
    assert result["feed"]["transport"]["lockstep"] is True
    _check_parity(path, result)
    _assert_consistent(session, result)
    out = tmp_path / "runs" / "parity1"
    for name in ("orders.csv", "fills.csv", "positions.csv", "account.csv", "session.md"):
        assert (out / name).exists(), name
    text = (out / "session.md").read_text()
    assert result["config_hash"] in text and "seed: 11" in text


def test_a_strategy_beside_the_config_runs_in_the_actors(data_dir: Path,
                                                        tmp_path: Path) -> None:
    """A strategy module in the trading config's folder (not installed, not on PYTHONPATH) is
    found by every actor's process, as a backtest finds it, and trades like the backtest."""
    import yaml

    path = write_paper_config(tmp_path, "sma", data_dir, minutes=60)
    (tmp_path / "beside_sma.py").write_text(
        "from backtest.strategies.sma_cross import SmaCross\n\n\n"
        "class BesideSma(SmaCross):\n    pass\n")
    trading = yaml.safe_load((tmp_path / "trading.yaml").read_text())
    trading["strategies"][0]["class"] = "beside_sma:BesideSma"
    (tmp_path / "trading.yaml").write_text(yaml.safe_dump(trading))
    session = _start(path, "beside1")
    assert session.wait(600)
    result = session.stop()
    assert result["feed"]["error"] is None and result["orders"] > 0
    _check_parity(path, result)


def test_sigkill_each_actor_restores_its_state_and_loses_nothing(data_dir: Path,
                                                                 tmp_path: Path) -> None:
    import ray

    path = write_paper_config(tmp_path, "mm", data_dir, minutes=6)
    session = _start(path, "kill1")
    kinds = ["risk", "gateway", "strategy:mm", "book:SIM-A", "reconciler", "feed"]
    restarts: dict[str, float] = {}
    for child in kinds:
        _until(lambda: ray.get(session.feed.status.remote())["cursor"] > 20)
        handle = session.children[child]
        ray.get(session.feed.pause.remote())
        hashed = hasattr(handle, "state_hash") and child != "feed"
        before = ray.get(handle.state_hash.remote()) if hashed else None
        restarts[child] = _kill(handle)
        if hashed:
            assert ray.get(handle.state_hash.remote()) == before, child
        ray.get(session.feed.resume.remote())
    assert session.wait(600)
    submitted = ray.get(session.gateway.submitted.remote())
    assert len(submitted) == len(set(submitted))
    # the supervisor accounts for a restart once the child answers again: the session may
    # end first
    def accounted() -> dict[str, Any] | None:
        status: dict[str, Any] = ray.get(session.supervisor.status.remote())
        return status if status["restarts"] >= len(kinds) else None

    status = _until(accounted)
    assert status["restarts"] == len(kinds) and not status["escalated"], status["events"]
    # fills on their way while an actor restarted are no inventory desync
    trips = ray.get(session.children["reconciler"].trips.remote())
    assert [t for t in trips if t["watchdog"] == "inventory_desync"] == [], trips
    result = session.stop()
    _assert_consistent(session, result)
    _check_parity(path, result)
    assert set(restarts) == set(kinds)  # each came back (``_kill`` waits at most a minute)


def test_sigkill_mid_flight_changes_no_fill(data_dir: Path, tmp_path: Path) -> None:
    import ray

    path = write_paper_config(tmp_path, "mm", data_dir, minutes=6)
    session = _start(path, "kill2")
    for child in ["book:SIM-A", "risk", "gateway", "strategy:mm"]:
        _until(lambda: ray.get(session.feed.status.remote())["reports"] > 0)
        time.sleep(0.3)
        _kill(session.children[child])
    assert session.wait(600)
    submitted = ray.get(session.gateway.submitted.remote())
    assert len(submitted) == len(set(submitted))
    result = session.stop()
    _assert_consistent(session, result)
    _check_parity(path, result)


@pytest.mark.parametrize("tree", ["flat", "default"])
def test_restart_storm_halts_trading_and_cancels_open_orders(tree: str, data_dir: Path,
                                                             tmp_path: Path) -> None:
    """``flat``: one supervisor over every actor, whose restarts beyond its intensity (2)
    halt. ``default``: the tree users run (a trading and a market-data subtree under the
    root, intensity 1 everywhere): the trading subtree gives up on the strategy's second
    crash, the root restarts the subtree, and on the subtree's second escalation the root
    halts."""
    import ray

    kinds = ["risk", "gateway", "strategy", "reconciler", "book", "store", "recorder", "feed"]
    supervisor: dict[str, Any] = {"intensity": 2, "period_s": 60, "hang_timeout_s": 60,
                                  "children": [{"child_id": k} for k in kinds]}
    if tree == "default":
        supervisor = {"intensity": 1, "period_s": 120, "hang_timeout_s": 60}
    path = write_paper_config(tmp_path, "mm", data_dir, minutes=10, supervisor=supervisor)
    session = _start(path, "storm1")
    _until(lambda: ray.get(session.gateway.view.remote())["open_orders"])
    kills = 0
    while not ray.get(session.supervisor.status.remote())["escalated"]:
        assert kills < 6, ray.get(session.supervisor.status.remote())
        _kill(session.children["strategy:mm"], timeout_s=120)
        kills += 1
    status = ray.get(session.supervisor.status.remote())
    if tree == "flat":
        assert kills == 3 and "intensity 2" in status["reason"]
    else:
        assert kills == 4 and "intensity 1 (last: trading crash)" in status["reason"]
        assert "trading: " in status["reason"]  # why the subtree gave up, too
        assert [e["action"] for e in status["events"]][:2] == ["restart", "escalate"]
    _until(lambda: ray.get(session.risk.summary.remote())["state"] == "halted")
    _until(lambda: not ray.get(session.gateway.view.remote())["open_orders"])
    orders_at_halt = len(ray.get(session.gateway.submitted.remote()))
    time.sleep(1.0)
    assert len(ray.get(session.gateway.submitted.remote())) == orders_at_halt  # nothing new
    assert ray.get(session.feed.status.remote())["denials"] > 0  # the strategy kept trying
    result = session.stop()
    assert result["trading_state"] == "halted"
    assert "escalat" in (tmp_path / "runs" / "storm1" / "session.md").read_text()


def test_kill_file_halts_while_present(data_dir: Path, tmp_path: Path) -> None:
    import ray

    path = write_paper_config(tmp_path, "mm", data_dir, minutes=6)
    session = _start(path, "killfile1")
    kill_file = tmp_path / "var" / "KILL"
    _until(lambda: ray.get(session.feed.status.remote())["cursor"] > 10)
    kill_file.write_text("stop")
    _until(lambda: ray.get(session.risk.summary.remote())["state"] == "halted")
    _until(lambda: not ray.get(session.gateway.view.remote())["open_orders"])
    kill_file.unlink()
    _until(lambda: ray.get(session.risk.summary.remote())["state"] == "active")
    session.stop()


def test_same_session_id_resumes_without_duplicates(data_dir: Path, tmp_path: Path) -> None:
    import ray

    path = write_paper_config(tmp_path, "mm", data_dir, minutes=3)
    first = _start(path, "resume1")
    _until(lambda: ray.get(first.feed.status.remote())["cursor"] > 60)
    ray.get(first.feed.pause.remote())  # the stop lands before the end, however fast it runs
    partial = first.stop()
    assert partial["feed"]["cursor"] < partial["feed"]["total"]
    assert partial["resumed"] is False
    second = _start(path, "resume1")
    assert second.wait(600)
    submitted = ray.get(second.gateway.submitted.remote())
    assert len(submitted) == len(set(submitted))
    result = second.stop()
    assert result["resumed"] is True  # and its record says so
    assert "- resumed: yes, resume 1 of the session first started" in (
        Path(result["output_dir"]) / "resume1" / "session.md").read_text()
    _assert_consistent(second, result)
    _check_parity(path, result)


def test_recorder_killed_mid_session_every_fill_lands_once(data_dir: Path,
                                                          tmp_path: Path) -> None:
    import ray

    pytest.importorskip("actors.recorder")
    path = write_paper_config(tmp_path, "mm", data_dir, minutes=3, record=True,
                              store_dsn=f"chdb://{tmp_path / 'store'}")
    session = _start(path, "rec1")
    _until(lambda: ray.get(session.feed.status.remote())["fills"] > 0, timeout_s=120)
    _kill(session.children["recorder"])
    assert session.wait(600)
    ray.get(session.feed.stop.remote())
    ray.get(session.children["recorder"].flush.remote())
    table = ray.get(session.children["store"].query_arrow.remote(
        "SELECT fill_id FROM fills FINAL WHERE session_id = {s:String}", {"s": "rec1"}))
    result = session.stop()
    recorded = table.column("fill_id").to_pylist()
    assert sorted(recorded) == sorted(f.fill_id for f in result["fill_records"])
    assert len(recorded) == len(set(recorded)) > 0
