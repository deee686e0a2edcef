"""The control API: FastAPI routes over a :class:`~serve.controller.Controller`.

Read (scope ``read``): ``GET /health /status /positions /orders /fills /pnl /risk /strategies
/metrics /audit``. Act (scope ``operate``): ``POST /halt /resume /reduce-only /flatten /kill
/strategies/{id}/params /strategies/{id}/enable /strategies/{id}/disable``. Public: ``GET /``
(the status page; it reads its token from the URL fragment, which never reaches a server) and
the OpenAPI schema. No token or an unknown one: 401; a read token on an action: 403; a bad
request: 422 naming the field; an action that cannot run now: 409.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from actors.logs import correlation_id
from serve.auth import OPERATE, READ, fingerprint
from serve.controller import ActionError, Controller, ParamsInvalid
from serve.metrics import render, samples
from serve.page import STATUS_PAGE
from serve.views import STATE_CODES, health_view

__all__ = ["ActionBody", "ParamsBody", "build_app"]

_REQUEST_ID = re.compile(r"^[\w.:-]{1,64}$")
_STRATEGY_ID = r"^[A-Za-z0-9_.]{1,64}$"
_bearer = HTTPBearer(auto_error=False, description="read-only or operator token")


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=200, description="why, for the audit trail")


class ParamsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(min_length=1, description="changed params, human units")


class Caller(BaseModel):
    who: str
    scope: str


def build_app(controller: Controller) -> FastAPI:
    app = FastAPI(
        title="Tradewind control API",
        version="1",
        description="Control plane of one paper/live session (issue 4).",
    )
    reads = _snapshot_reads(controller)
    _middleware(app, controller, reads)
    read, operate = _auth(controller, READ), _auth(controller, OPERATE)
    _read_routes(app, controller, read, reads)
    _action_routes(app, controller, operate)
    _strategy_routes(app, controller, operate)
    return app


#: a read answered from the snapshot: () -> (body, content type)
SnapshotRead = Callable[[], tuple[bytes, bytes]]


class _Correlate:
    """Pure ASGI middleware (cheaper than ``@app.middleware``): the request's correlation id
    (``X-Request-ID`` when well formed, else generated) in a context variable and echoed in
    the answer; starts the controller's refresh loop on the first request.

    The fast path: a ``GET`` of a route answered from the snapshot (``reads``), with a known
    token and no query, is answered here from the rendered bytes, without FastAPI's routing,
    dependency solving and validation (the same routes stay declared in FastAPI for the
    OpenAPI schema and answer everything else: no or a bad token, queries, errors)."""

    def __init__(self, app: Any, controller: Controller, reads: dict[str, SnapshotRead]) -> None:
        self.app, self.controller, self.reads = app, controller, reads

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given, auth = "", b""
        for key, value in scope.get("headers", ()):
            if key == b"x-request-id":
                given = value.decode("latin-1")
            elif key == b"authorization":
                auth = value
        cid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        self.controller.ensure_started()
        read = self.reads.get(scope["path"]) if scope["method"] == "GET" else None
        if read is not None and not scope.get("query_string") and self._known(auth):
            body, media = read()
            headers = [
                (b"content-type", media),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", cid.encode()),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", cid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        token = correlation_id.set(cid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)

    def _known(self, auth: bytes) -> bool:
        scheme, _, credentials = auth.decode("latin-1").partition(" ")
        hashes = self.controller.info.token_hashes
        return scheme.lower() == "bearer" and hashes.scope_of(credentials.strip()) is not None


def _middleware(app: FastAPI, controller: Controller, reads: dict[str, SnapshotRead]) -> None:
    app.add_middleware(_Correlate, controller=controller, reads=reads)

    @app.exception_handler(ActionError)
    async def refused(_: Request, exc: ActionError) -> JSONResponse:
        return JSONResponse({"detail": controller.redactor.text(str(exc))}, status_code=exc.status)

    @app.exception_handler(TimeoutError)
    async def slow(_: Request, exc: TimeoutError) -> JSONResponse:
        return JSONResponse({"detail": "the session did not answer in time"}, status_code=503)

    from ray.exceptions import RayError

    @app.exception_handler(RayError)
    async def unavailable(_: Request, exc: RayError) -> JSONResponse:
        controller.log.warning("actor call failed: %s", type(exc).__name__)
        return JSONResponse(
            {"detail": f"session unavailable: {type(exc).__name__}"}, status_code=503
        )

    @app.exception_handler(ParamsInvalid)
    async def invalid(_: Request, exc: ParamsInvalid) -> JSONResponse:
        detail = [
            {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors
        ]
        return JSONResponse({"detail": detail}, status_code=422)


def _auth(controller: Controller, scope: str) -> Any:
    async def check(
        request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Caller:
        if creds is None or creds.scheme.lower() != "bearer":
            raise HTTPException(
                401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        has = controller.info.token_hashes.scope_of(creds.credentials)
        if has is None:
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        if scope == OPERATE and has != OPERATE:
            raise HTTPException(403, "this token may read, not act (operator scope needed)")
        user = request.headers.get("x-operator", "")
        who = f"{has}:{fingerprint(creds.credentials)}"
        if _REQUEST_ID.match(user):
            who += f"/{user}"
        client = request.client.host if request.client else "?"
        return Caller(who=f"{who}@{client}", scope=has)

    return Depends(check)


def _ok(controller: Controller, data: Any) -> JSONResponse:
    return JSONResponse(controller.redactor.value(data))


_JSON = b"application/json"
_PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"


def _json(c: Controller, data: Any) -> bytes:
    return bytes(JSONResponse(c.redactor.value(data)).body)


def _snapshot_reads(c: Controller) -> dict[str, SnapshotRead]:
    """The routes answered from the snapshot alone, each rendered once per snapshot (``/health``
    every time: it reports the snapshot's age)."""
    cfg = c.info.control

    def cached(key: str, render_body: Callable[[], bytes], media: bytes) -> SnapshotRead:
        def read() -> tuple[bytes, bytes]:
            stamp = c.snapshot.get("ts")
            hit = c.rendered.get(key)
            if hit is None or hit[0] != stamp:
                hit = c.rendered[key] = (stamp, render_body())
            return hit[1], media

        return read

    def metrics_text() -> bytes:
        text = render(c.info.session_id, samples(c.snapshot), c.snapshot.get("telemetry") or {})
        return c.redactor.text(text).encode()

    def health() -> tuple[bytes, bytes]:
        view = health_view(
            c.snapshot, feed_stale_s=cfg.feed_stale_s, recorder_lag_s=cfg.recorder_lag_s
        )
        return _json(c, view), _JSON

    return {
        "/status": cached("status", lambda: _json(c, _status(c)), _JSON),
        "/pnl": cached("pnl", lambda: _json(c, _pnl(c)), _JSON),
        "/risk": cached("risk", lambda: _json(c, c.snapshot.get("risk_view") or {}), _JSON),
        "/positions": cached("positions", lambda: _json(c, c.positions()), _JSON),
        "/strategies": cached("strategies", lambda: _json(c, _strategies(c)), _JSON),
        "/metrics": cached("metrics", metrics_text, _PROMETHEUS),
        "/health": health,
    }


def _pnl(c: Controller) -> dict[str, Any]:
    return (c.snapshot.get("pnl") or {}) | {"currency": c.info.currency}


def _strategies(c: Controller) -> dict[str, Any]:
    live = c.snapshot.get("strategies") or {}
    out = {
        sid: {
            "class": cls,
            "params": c.current_params(sid),
            "enabled": (live.get(sid) or {}).get(
                "enabled", c.overrides.get(sid, {}).get("enabled", True)
            ),
        }
        for sid, cls in c.info.strategies.items()
    }
    return {"strategies": out}


def _read_routes(app: FastAPI, c: Controller, read: Any, reads: dict[str, SnapshotRead]) -> None:
    def answer(path: str) -> Response:
        body, media = reads[path]()
        return Response(body, media_type=media.decode())

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(STATUS_PAGE)

    @app.get("/health", dependencies=[read], tags=["read"])
    async def health() -> Response:
        return answer("/health")

    @app.get("/status", dependencies=[read], tags=["read"])
    async def status() -> Response:
        return answer("/status")

    @app.get("/positions", dependencies=[read], tags=["read"])
    async def positions() -> Response:
        return answer("/positions")

    @app.get("/orders", dependencies=[read], tags=["read"])
    async def orders(recent: Annotated[int, Query(ge=1, le=1000)] = 50) -> JSONResponse:
        return _ok(c, await c.orders(recent))

    @app.get("/fills", dependencies=[read], tags=["read"])
    async def fills(recent: Annotated[int, Query(ge=1, le=1000)] = 50) -> JSONResponse:
        return _ok(c, await c.fills(recent))

    @app.get("/pnl", dependencies=[read], tags=["read"])
    async def pnl() -> Response:
        return answer("/pnl")

    @app.get("/risk", dependencies=[read], tags=["read"])
    async def risk() -> Response:
        return answer("/risk")

    @app.get("/metrics", dependencies=[read], tags=["read"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        return answer("/metrics")

    @app.get("/strategies", dependencies=[read], tags=["read"])
    async def strategies() -> Response:
        return answer("/strategies")

    @app.get("/audit", dependencies=[read], tags=["read"])
    async def audit(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> JSONResponse:
        return _ok(c, {"entries": c.audit.entries(limit)})


def _status(c: Controller) -> dict[str, Any]:
    snap = c.snapshot
    risk, feed, sup = snap.get("risk") or {}, snap.get("feed") or {}, snap.get("supervisor") or {}
    restarts = snap.get("restarts") or {}
    actors = {
        name: {
            "health": "up" if a["up"] else "down",
            "restarts": restarts.get(name.replace(".", ":", 1), 0),
        }
        for name, a in (snap.get("actors") or {}).items()
    }
    state = str(risk.get("state", "unknown"))
    return {
        "session_id": c.info.session_id,
        "mode": c.info.mode,
        "trading_state": state,
        "trading_state_code": STATE_CODES.get(state),
        "state_reason": risk.get("state_reason"),
        "actors": actors,
        "restarts": sum(restarts.values()),
        "escalated": bool(sup.get("escalated")),
        "feed": {
            k: feed.get(k)
            for k in (
                "cursor",
                "total",
                "events",
                "events_per_s",
                "finished",
                "running",
                "paused",
                "error",
            )
        }
        | {"lag_s": snap.get("feed_lag_s", 0.0)},
        "orders": risk.get("orders"),
        "open_orders": risk.get("open"),
        "fills": risk.get("fills"),
        "pnl": snap.get("pnl"),
        "snapshot_ts": snap.get("ts"),
        "uptime_s": time.time() - c.started_s,
    }


def _action_routes(app: FastAPI, c: Controller, operate: Any) -> None:
    def route(action: str, summary: str) -> None:
        async def handler(body: ActionBody | None = None, caller: Caller = operate) -> JSONResponse:
            args = {"reason": body.reason} if body and body.reason else {}
            return _ok(
                c,
                await c.act(
                    action,
                    who=caller.who,
                    scope=caller.scope,
                    correlation_id=correlation_id.get(),
                    args=args,
                ),
            )

        app.post(f"/{action}", tags=["act"], summary=summary, name=action)(handler)

    route("halt", "Halt: risk denies every new order (open orders stay)")
    route("resume", "Resume trading (ACTIVE)")
    route("reduce-only", "Close-only: orders that increase a position are denied")
    route("flatten", "Disable strategies, close-only, cancel open orders, close every position")
    route("kill", "Halt and cancel every open order")


def _strategy_routes(app: FastAPI, c: Controller, operate: Any) -> None:
    sid_path = Path(pattern=_STRATEGY_ID, description="strategy id")

    @app.post("/strategies/{strategy_id}/params", tags=["act"])
    async def params(
        body: ParamsBody, strategy_id: str = sid_path, caller: Caller = operate
    ) -> JSONResponse:
        c.validate_params(strategy_id, body.params)  # 404 / 422 before anything happens
        return _ok(
            c,
            await c.act(
                "params",
                who=caller.who,
                scope=caller.scope,
                correlation_id=correlation_id.get(),
                target=strategy_id,
                args={"params": body.params},
            ),
        )

    for action in ("enable", "disable"):
        app.post(f"/strategies/{{strategy_id}}/{action}", tags=["act"], name=action)(
            _toggle(c, action, operate, sid_path)
        )


def _toggle(c: Controller, action: str, operate: Any, sid_path: Any) -> Any:
    async def toggle(strategy_id: str = sid_path, caller: Caller = operate) -> JSONResponse:
        return _ok(
            c,
            await c.act(
                action,
                who=caller.who,
                scope=caller.scope,
                correlation_id=correlation_id.get(),
                target=strategy_id,
            ),
        )

    return toggle
