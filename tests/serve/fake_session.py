"""The control API without Ray: the real app and controller over fake actors, and a bare ASGI
client (the app is called directly: no server, no socket).

``FakeSession`` answers the calls the controller makes (``ping``, ``status``, ``operate``…)
the way the session's actors do; a test adds, removes or breaks actors to play a session that
is starting, running or failing."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from runtime.values import FIXED_SCALE

__all__ = ["OPERATOR", "READER", "Answer", "FakeSession", "call", "make_app"]

OPERATOR = "fake-operator-token-0123456789"
READER = "fake-read-token-0123456789"
MM = "backtest.strategies.market_maker:MarketMaker"


class _Method:
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def options(self, **_: Any) -> _Method:
        return self

    def remote(self, *args: Any) -> Any:
        async def run() -> Any:
            out = self.fn(*args)
            return await out if inspect.isawaitable(out) else out

        return run()


class _Handle:
    def __init__(self, methods: dict[str, Callable[..., Any]]) -> None:
        self.methods = methods

    def __getattr__(self, name: str) -> _Method:
        try:
            return _Method(self.methods[name])
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class FakeSession:
    """A feed and one market-maker strategy actor, ``mm``."""

    running: bool = True
    feed_up: bool = True
    strategy_up: bool = True
    # the other core actors: absent unless a test starts them; a handle kept from before stops
    # answering its ping when set back to False (a dead actor)
    risk_up: bool = False
    gateway_up: bool = False
    params: dict[str, Any] = field(
        default_factory=lambda: {
            "size": 10 * FIXED_SCALE,
            "max_inventory": 150 * FIXED_SCALE,
            "levels": 1,
            "level_spacing_ticks": 1,
            "half_spread_ticks": 1,
            "vol_mult": 0.0,
            "skew_ticks": 1.0,
            "requote_ms": 100,
        }
    )
    enabled: bool = True
    feed_actions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    strategy_changes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_strategy: BaseException | None = None
    finished: bool = False
    strategy_delay_s: float = 0.0

    def lookup(self, name: str) -> Any:
        if name == "feed" and self.feed_up:
            return _Handle(
                {"status": self._feed_status, "operate": self._feed_operate, "ping": _ping}
            )
        if name == "strategy.mm" and self.strategy_up:
            return _Handle(
                {"operate": self._strategy_operate, "ping": lambda: self._ping("strategy")}
            )
        if name in ("risk", "gateway") and getattr(self, f"{name}_up"):
            return _Handle({"ping": lambda: self._ping(name)})
        return None

    def _ping(self, name: str) -> float:
        if not getattr(self, f"{name}_up"):
            raise TimeoutError(f"the {name} actor does not answer")
        return 1.0

    def _feed_status(self) -> dict[str, Any]:
        return {"running": self.running, "finished": self.finished, "error": None, "cursor": 1}

    def _feed_operate(self, name: str, args: dict[str, Any]) -> Any:
        if name == "telemetry":
            return {}
        if name == "close_positions":
            return {"flat": True, "sent": [], "denied": []}
        self.feed_actions.append((name, args))
        return {"state": args.get("state", "halted")}

    def _strategy_operate(self, name: str, args: dict[str, Any]) -> Any:
        if not self.strategy_up:  # a handle kept from before: the actor does not answer
            raise TimeoutError("the strategy actor does not answer")
        if self.fail_strategy is not None:
            raise self.fail_strategy
        if self.strategy_delay_s and name == "enable":
            return self._slowly(name, args)
        return self._operate(name, args)

    async def _slowly(self, name: str, args: dict[str, Any]) -> Any:
        await asyncio.sleep(self.strategy_delay_s)
        return self._operate(name, args)

    def _operate(self, name: str, args: dict[str, Any]) -> Any:
        if name == "params" and args.get("params"):
            msgspec.msgpack.encode((name, args))  # what the actor journals: int64 at most
            self.strategy_changes.append((name, args))
            self.params.update(args["params"])
        elif name == "enable":
            self.strategy_changes.append((name, args))
            self.enabled = args["enabled"]
        return {"strategy_id": "mm", "params": dict(self.params), "enabled": self.enabled}


def _ping() -> float:
    return 1.0


def make_app(tmp: Path, session: FakeSession, *, refresh_s: float = 60.0) -> tuple[Any, Any]:
    """(the FastAPI app, its controller) over ``session``."""
    from actors.control_config import ControlConfig
    from serve.app import build_app
    from serve.auth import Tokens
    from serve.controller import Controller, SessionInfo

    info = SessionInfo(
        session_id="u1",
        namespace=None,
        journal_dir=str(tmp / "u1"),
        strategies={"mm": MM},
        instruments=(),
        control=ControlConfig(refresh_s=refresh_s),
        token_hashes=Tokens(operator=OPERATOR, read=READER).hashes(),
    )
    controller = Controller(info, lookup=session.lookup)
    return build_app(controller), controller


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> list[str]:
        key = name.lower().encode()
        return [v.decode("latin-1") for k, v in self.headers if k.lower() == key]


async def call(
    app: Any,
    method: str,
    path: str,
    *,
    token: str | None = OPERATOR,
    body: bytes | Any = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Answer:
    """One request through ``app`` (any ASGI app): ``body`` bytes as they are, else as JSON."""
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    sent = [(b"content-type", b"application/json"), *(headers or [])]
    if token:
        sent.append((b"authorization", f"Bearer {token}".encode()))
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": sent,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    chunks = [{"type": "http.request", "body": raw, "more_body": False}]
    out: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            return chunks.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        out.append(message)

    try:
        await app(scope, receive, send)
    except Exception:  # Starlette answers 500, then raises: the 500 is what a caller sees
        if not out:
            raise
    start = next(m for m in out if m["type"] == "http.response.start")
    data = b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body")
    return Answer(start["status"], list(start.get("headers", [])), data)
