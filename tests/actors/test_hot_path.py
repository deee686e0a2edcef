"""Real time over the step protocol (``actors.step``) and its carriers (``feed.transport``,
``actors.carriers``): config checks, the actors' call lock, the strategy host's pending
quantity, and real-time sessions on the shared local Ray cluster over each carrier (``auto``,
the default, is the node's sockets here) — one that runs to the end, one whose actors (and
feed) are SIGKILLed mid-session without an order sent twice or a fill lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import ConfigError
from tests.actors.paper_helpers import write_paper_config, write_sample
from tests.actors.test_paper_session import _assert_consistent, _kill, _until

REAL_TIME = {"lockstep": False}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("hot-data"))


# --- no Ray -------------------------------------------------------------------------------------
def test_transport_is_checked_at_load_time(data_dir: Path, tmp_path: Path) -> None:
    from actors.config import load_paper_config
    from actors.session import prepare_session

    # every transport carries lockstep and real time alike
    for k, transport in enumerate(("sockets", "calls")):
        config = load_paper_config(write_paper_config(
            tmp_path / f"a{k}", "mm", data_dir, feed={"transport": transport}))
        assert config.feed.lockstep and config.feed.transport == transport
    with pytest.raises(ConfigError, match="'auto', 'sockets' or 'calls'") as info:
        prepare_session(load_paper_config(write_paper_config(tmp_path / "c", "mm", data_dir)),
                        session_id="y", transport="fast")
    assert info.value.field == "feed.transport"
    # the default (auto) fits lockstep and real time alike
    default = load_paper_config(write_paper_config(tmp_path / "d", "mm", data_dir))
    assert default.feed.transport == "auto" and default.feed.lockstep
    # a config of the removed option says what replaced it
    path = write_paper_config(tmp_path / "e", "mm", data_dir,
                              feed=REAL_TIME | {"hot_path": "compiled"})
    with pytest.raises(ConfigError, match="hot_path was replaced by transport"):
        load_paper_config(path)
    for k, removed in enumerate([{"mode": "synthetic"}, {"synthetic_days": 2}]):
        path = write_paper_config(tmp_path / f"s{k}", "mm", data_dir, feed=REAL_TIME | removed)
        with pytest.raises(ConfigError, match="feed mode synthetic was replaced by a data "
                                              "source: give the trading config's data streams "
                                              "sample_days"):
            load_paper_config(path)


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
    from runtime.messages import (
        OrderDenied,
        OrderSide,
        OrderType,
        SubmitOrder,
        TimeInForce,
        TimerFired,
    )

    prepared = prepare_session(load_paper_config(write_paper_config(tmp_path, "sma", data_dir)),
                               session_id="pend")
    host = prepared.setup.strategy_host("sma")

    def intent(coid: str, qty: int) -> SubmitOrder:
        return SubmitOrder(0, 1, 1, client_order_id=coid, strategy_id="sma",
                           instrument_id="SIM-A", side=OrderSide.BUY,
                           order_type=OrderType.MARKET, quantity=qty)

    a, b = (host.context.submit("sma", instrument_id="SIM-A", side=OrderSide.BUY,
                                quantity=100, order_type=OrderType.MARKET, price=None,
                                trigger_price=None, time_in_force=TimeInForce.GTC,
                                post_only=False, reduce_only=False) for _ in range(2))
    sent = host.handle(TimerFired(seq=0, ts_event=1, ts_init=1, name=""))  # the next input
    assert [m.client_order_id for m in sent] == [a, b]  # they leave for risk
    assert host.context.pending("sma", "SIM-A") == 200
    assert {m.client_order_id for m in host.unanswered()} == {a, b}
    host.handle(OrderDenied(0, 2, 2, client_order_id=a, strategy_id="sma",
                            instrument_id="SIM-A", reason_code="limit", reason="too big"))
    assert host.context.pending("sma", "SIM-A") == 100
    assert host.handle(intent(b, 60)) == []  # approved, reduced by a close-only rule
    assert host.context.pending("sma", "SIM-A") == 60
    assert host.open[b].quantity == 60
    host.handle(OrderDenied(0, 3, 3, client_order_id=a, strategy_id="sma",
                            instrument_id="SIM-A", reason_code="limit", reason="again"))
    host.handle(intent(b, 60))
    assert host.context.pending("sma", "SIM-A") == 60  # a repeated answer changes nothing
    assert host.unanswered() == []


# --- on the local Ray cluster ---------------------------------------------------------------------
def _start(path: Path, session_id: str) -> Any:
    from actors.config import load_paper_config
    from actors.session import start_session

    return start_session(load_paper_config(path), session_id=session_id)


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize(("transport", "kind"), [("auto", "sockets"), ("calls", "calls")])
def test_real_time_session_trades_like_its_broker(data_dir: Path, tmp_path: Path,
                                                  transport: str, kind: str) -> None:
    import ray

    path = write_paper_config(tmp_path, "mm", data_dir, minutes=3,
                              feed=REAL_TIME | {"transport": transport})
    session = _start(path, f"hot1{transport[0]}")
    assert session.wait(120)
    status = ray.get(session.feed.status.remote())
    assert status["error"] is None and status["cursor"] == status["total"]
    carrier = status["transport"]
    assert carrier["kind"] == kind  # auto: every actor is on the feed's node here
    assert carrier["connections"] == 1 and carrier["failures"] == []
    assert len(carrier["warmup_s"]) == 1  # warmed up before the first tick
    submitted = ray.get(session.gateway.submitted.remote())
    assert submitted and len(submitted) == len(set(submitted))
    result = session.stop()
    _assert_consistent(session, result)
    assert result["orders"] >= len(submitted)


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("transport", ["auto", "calls"])
def test_sigkill_in_real_time_loses_and_doubles_nothing(data_dir: Path, tmp_path: Path,
                                                        transport: str) -> None:
    """Each actor of the chain, then the feed (the carrier's client), SIGKILLed while it
    runs: the sockets are connected anew (or Ray retries the calls on the restarted actor),
    the step in flight runs again, trading goes on after each, and when the session stops
    every order was sent once and every fill counted once. The data (two hours at 60×) outlasts
    the restarts however loaded the machine: the session is stopped after the last one, as
    ``--duration`` stops it."""
    import ray

    path = write_paper_config(tmp_path, "mm", data_dir, minutes=120,
                              feed=REAL_TIME | {"speed": 60, "transport": transport})
    session = _start(path, f"hot2{transport[0]}")
    kinds = ["risk", "gateway", "strategy:mm", "feed"]

    def moves_on() -> None:
        cursor = ray.get(session.feed.status.remote())["cursor"]
        _until(lambda: ray.get(session.feed.status.remote())["cursor"] > cursor + 5,
               timeout_s=120)

    for child in kinds:
        moves_on()
        _kill(session.children[child])
    moves_on()  # trading again after the last restart
    status = ray.get(session.feed.status.remote())
    assert status["error"] is None and status["cursor"] < status["total"]
    assert status["transport"]["connections"] >= 1
    submitted = ray.get(session.gateway.submitted.remote())
    assert len(submitted) == len(set(submitted))
    sup = ray.get(session.supervisor.status.remote())
    assert sup["restarts"] == len(kinds) and not sup["escalated"]
    result = session.stop()
    assert result["feed"]["error"] is None
    _assert_consistent(session, result)


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("transport", ["sockets", "calls"])
def test_a_carrier_warms_up_with_steps_that_change_nothing(data_dir: Path, tmp_path: Path,
                                                            transport: str) -> None:
    """Connecting runs no-op steps (index -1) through the chain: every actor answers them
    without taking anything, so no state changes and the journals hold nothing new."""
    import asyncio

    import ray

    from actors.carriers import open_carrier
    from actors.config import load_paper_config
    from actors.gateway import GatewayActor
    from actors.risk import RiskActor
    from actors.session import prepare_session
    from actors.strategy import StrategyActor

    prepared = prepare_session(load_paper_config(
        write_paper_config(tmp_path, "mm", data_dir, feed=REAL_TIME)), session_id="warm")
    setup = prepared.setup
    host = StrategyActor.remote(setup, "mm")
    risk, gateway = RiskActor.remote(setup), GatewayActor.remote(setup)
    actors = [host, risk, gateway]
    before = ray.get([a.state_hash.remote() for a in actors])

    async def connect() -> Any:
        hot = await open_carrier(transport, {"mm": host}, risk, gateway)  # type: ignore[arg-type]
        hot.close()
        return hot

    hot = asyncio.run(connect())
    assert hot.transport == transport and hot.connections == 1 and len(hot.warmup_s) == 1
    assert ray.get([a.state_hash.remote() for a in actors]) == before
    for handle in actors:
        ray.kill(handle)
