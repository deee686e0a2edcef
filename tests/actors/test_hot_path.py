"""The real-time hot paths (``feed.hot_path: compiled``, ``actors.hotpath``; ``sockets``,
``actors.sockpath``): config checks, the actors' call lock, the strategy host's pending
quantity, the socket transport's failures, and real-time sessions on the shared local Ray
cluster on each path — one that runs to the end, one whose hot-path actors (and feed) are
SIGKILLed mid-session without an order sent twice or a fill lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import ConfigError
from tests.actors.paper_helpers import write_paper_config, write_sample
from tests.actors.test_paper_session import _assert_consistent, _kill, _until

COMPILED = {"lockstep": False, "hot_path": "compiled"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("hot-data"))


# --- no Ray -------------------------------------------------------------------------------------
def test_compiled_needs_real_time(data_dir: Path, tmp_path: Path) -> None:
    from actors.config import load_paper_config
    from actors.session import prepare_session

    path = write_paper_config(tmp_path / "a", "mm", data_dir, feed={"hot_path": "compiled"})
    with pytest.raises(ConfigError, match="lockstep: false") as info:
        load_paper_config(path)
    assert info.value.field == "feed"
    path = write_paper_config(tmp_path / "b", "mm", data_dir, feed=COMPILED)
    config = load_paper_config(path)  # fine in real time
    with pytest.raises(ConfigError, match="real time only") as info:
        prepare_session(config, session_id="x", lockstep=True)  # --lockstep on top: refused
    assert info.value.field == "feed"
    with pytest.raises(ConfigError, match="'calls', 'compiled' or 'sockets'") as info:
        prepare_session(load_paper_config(write_paper_config(tmp_path / "c", "mm", data_dir)),
                        session_id="y", hot_path="fast")
    assert info.value.field == "feed.hot_path"


def test_serialized_calls_never_interleave() -> None:
    from actors.base import Child, serialized

    @serialized
    class Shell(Child):
        def __init__(self) -> None:
            self.inside = threading.Event()
            self.release = threading.Event()
            self.log: list[str] = []

        def slow(self) -> None:
            self.inside.set()
            self.release.wait(5)
            self.log.append("slow")

        def fast(self) -> None:
            self.log.append("fast")

    shell = Shell()
    slow = threading.Thread(target=shell.slow)
    slow.start()
    assert shell.inside.wait(5)
    fast = threading.Thread(target=shell.fast)
    fast.start()
    time.sleep(0.1)
    assert shell.log == []  # fast waits for slow's lock
    shell.release.set()
    slow.join(5)
    fast.join(5)
    assert shell.log == ["slow", "fast"]
    assert shell.pid() > 0  # the process facts never take the lock


def test_an_order_is_pending_from_its_intent_until_denied(data_dir: Path,
                                                         tmp_path: Path) -> None:
    """Strategies may run again before risk answers (the pipelined hot path): an order they
    sent counts as pending from the start, as in the backtest; a denial takes it back, an
    approval that reduced it counts the reduced quantity."""
    from actors.config import load_paper_config
    from actors.session import prepare_session
    from runtime.messages import OrderDenied, OrderSide, OrderType, SubmitOrder

    prepared = prepare_session(load_paper_config(write_paper_config(tmp_path, "sma", data_dir)),
                               session_id="pend")
    host = prepared.setup.strategy_host("sma")

    def intent(coid: str, qty: int) -> SubmitOrder:
        return SubmitOrder(0, 1, 1, client_order_id=coid, strategy_id="sma",
                           instrument_id="SIM-A", side=OrderSide.BUY,
                           order_type=OrderType.MARKET, quantity=qty)

    for coid in ("a", "b"):
        host._intents.append(intent(coid, 100))
    host._drain()
    assert host.pending("sma", "SIM-A") == 200
    assert {m.client_order_id for m in host.unanswered()} == {"a", "b"}
    host.handle(OrderDenied(0, 2, 2, client_order_id="a", strategy_id="sma",
                            instrument_id="SIM-A", reason_code="limit", reason="too big"))
    assert host.pending("sma", "SIM-A") == 100
    host.handle(intent("b", 60))  # approved, reduced by a close-only rule
    assert host.pending("sma", "SIM-A") == 60
    host.handle(OrderDenied(0, 3, 3, client_order_id="a", strategy_id="sma",
                            instrument_id="SIM-A", reason_code="limit", reason="again"))
    assert host.pending("sma", "SIM-A") == 60  # a repeated answer changes nothing
    assert host.unanswered() == []


# --- on the local Ray cluster ---------------------------------------------------------------------
def _start(path: Path, session_id: str) -> Any:
    from actors.config import load_paper_config
    from actors.session import start_session

    return start_session(load_paper_config(path), session_id=session_id)


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("hot_path", ["compiled", "sockets"])
def test_hot_path_session_trades_like_its_broker(data_dir: Path, tmp_path: Path,
                                                 hot_path: str) -> None:
    import ray

    path = write_paper_config(tmp_path, "mm", data_dir, minutes=3,
                              feed=COMPILED | {"hot_path": hot_path})
    session = _start(path, f"hot1{hot_path[0]}")
    assert session.wait(120)
    status = ray.get(session.feed.status.remote())
    assert status["error"] is None and status["cursor"] == status["total"]
    assert status["hot_path"]["compiles"] == 1 and status["hot_path"]["failures"] == []
    assert len(status["hot_path"]["warmup_s"]) == 1  # warmed up before the first tick
    submitted = ray.get(session.gateway.submitted.remote())
    assert submitted and len(submitted) == len(set(submitted))
    result = session.stop()
    _assert_consistent(session, result)
    assert result["orders"] >= len(submitted)


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("hot_path", ["compiled", "sockets"])
def test_sigkill_on_the_hot_path_loses_and_doubles_nothing(data_dir: Path, tmp_path: Path,
                                                          hot_path: str) -> None:
    """Each actor of the hot path, then the feed (the graph's owner; the sockets' client),
    SIGKILLed while it runs: the graph is rebuilt (a new feed first stops the loops the dead
    one left) or the sockets connected anew, the step in flight runs again, and the session
    ends with every order sent once and every fill once."""
    import ray

    path = write_paper_config(tmp_path, "mm", data_dir, minutes=6,
                              feed=COMPILED | {"speed": 30, "hot_path": hot_path})
    session = _start(path, f"hot2{hot_path[0]}")
    kinds = ["risk", "gateway", "strategy:mm", "feed"]
    for child in kinds:
        cursor = ray.get(session.feed.status.remote())["cursor"]
        _until(lambda c=cursor: ray.get(session.feed.status.remote())["cursor"] > c + 5)
        _kill(session.children[child])
    assert session.wait(180)
    status = ray.get(session.feed.status.remote())
    assert status["error"] is None and status["cursor"] == status["total"]
    assert status["hot_path"]["compiles"] >= 1
    submitted = ray.get(session.gateway.submitted.remote())
    assert len(submitted) == len(set(submitted))
    sup = ray.get(session.supervisor.status.remote())
    assert sup["restarts"] == len(kinds) and not sup["escalated"]
    result = session.stop()
    _assert_consistent(session, result)


@pytest.mark.usefixtures("ray_local")
def test_a_new_graph_is_warmed_up_with_steps_that_change_nothing(data_dir: Path,
                                                                   tmp_path: Path) -> None:
    """Compiling executes no-op steps (index -1) until the graph runs smoothly: every actor
    answers them without taking anything, so no state changes; the journals hold nothing
    new."""
    import asyncio

    import ray

    from actors.config import load_paper_config
    from actors.hotpath import _PING, WARM_MAX_S, WARM_MIN_S, CompiledPath
    from actors.session import prepare_session
    from actors.trading import GatewayActor, RiskActor, StrategyActor

    prepared = prepare_session(load_paper_config(
        write_paper_config(tmp_path, "mm", data_dir, feed=COMPILED)), session_id="warm")
    setup = prepared.setup
    host = StrategyActor.remote(setup, "mm")
    risk, gateway = RiskActor.remote(setup), GatewayActor.remote(setup)
    actors = [host, risk, gateway]
    before = ray.get([a.state_hash.remote() for a in actors])
    answer = ray.get(host.hot_step.remote(_PING))
    out = ray.get(risk.hot_step.remote(_PING, answer))
    ray.get(gateway.hot_step.remote(_PING, out, answer))
    hot = CompiledPath({"mm": host}, risk, gateway)
    asyncio.run(hot.ready())
    try:
        assert hot.compiles == 1 and len(hot.warmup_s) == 1
        assert WARM_MIN_S <= hot.warmup_s[0] <= WARM_MAX_S + 1.0
    finally:
        hot.close()
    assert ray.get([a.state_hash.remote() for a in actors]) == before
    for handle in actors:
        ray.kill(handle)
