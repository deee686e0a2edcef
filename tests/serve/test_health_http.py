"""``GET /health`` over real HTTP (uvicorn on 127.0.0.1, the real app and controller over the fake
session's actors): 503 while the session is starting or down, 200 while ok or degraded, so a
load balancer, systemd or an orchestrator can probe it."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve.fake_session import READER, FakeSession, make_app

uvicorn = pytest.importorskip("uvicorn")


class Served:
    """The app behind a real socket, on its own event loop in a thread."""

    def __init__(self, app: Any, controller: Any) -> None:
        self.controller = controller
        self.loop = asyncio.new_event_loop()
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.loop.run_until_complete,
                                       args=(self.server.serve(),), daemon=True)
        self.thread.start()
        while not self.server.started:
            self.thread.join(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def health(self) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/health", headers={"Authorization": f"Bearer {READER}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def refresh(self) -> None:
        asyncio.run_coroutine_threadsafe(self.controller.refresh(), self.loop).result(10)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def session() -> FakeSession:
    return FakeSession(feed_up=False)  # nothing of the session exists yet


@pytest.fixture
def served(tmp_path: Path, session: FakeSession,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    import serve.controller

    monkeypatch.setattr(serve.controller, "_ABSENT_RECHECK_S", 0.0)  # see new actors at once
    app, controller = make_app(tmp_path, session)
    server = Served(app, controller)
    yield server
    server.close()


def test_health_is_503_until_the_session_is_ready_then_200(
    served: Served, session: FakeSession
) -> None:
    served.refresh()
    status, body = served.health()
    assert (status, body["status"]) == (503, "starting")
    assert "not started yet: feed" in body["reasons"]
    session.feed_up = True  # the feed exists, risk and gateway not yet
    served.refresh()
    status, body = served.health()
    assert (status, body["status"]) == (503, "starting")
    assert body["reasons"] == ["not started yet: risk", "not started yet: gateway"]
    session.risk_up = session.gateway_up = True
    served.refresh()
    status, body = served.health()
    assert status == 200 and body["status"] in ("ok", "degraded"), body


def test_health_is_503_while_down_and_200_while_degraded(
    served: Served, session: FakeSession
) -> None:
    session.feed_up = session.risk_up = session.gateway_up = True
    served.refresh()
    session.strategy_up = False  # a strategy dies; it is not core: degraded, still trading
    served.refresh()
    status, body = served.health()
    assert (status, body["status"]) == (200, "degraded"), body
    session.risk_up = False  # the risk actor stops answering: the session cannot trade
    served.refresh()
    status, body = served.health()
    assert (status, body["status"]) == (503, "down")
    assert "actor down: risk" in body["reasons"]
