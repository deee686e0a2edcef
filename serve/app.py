"""The control API: FastAPI routes over a :class:`~serve.controller.Controller`.

Read (scope ``read``): ``GET /health /status /positions /orders /fills /pnl /risk /strategies
/metrics /audit``. Act (scope ``operate``): ``POST /halt /resume /reduce-only /flatten /kill
/strategies/{id}/params /strategies/{id}/enable /strategies/{id}/disable``. Public: ``GET /``
(the status page; it reads its token from the URL fragment, which never reaches a server) and
the OpenAPI schema. No token or an unknown one: 401; a read token on an action: 403 (both
before the body is read); a bad request: 422 naming the field or header; an action that cannot
run now (the session is not ready, or has finished): 409.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from actors.logs import correlation_id
from serve.auth import OPERATE, READ, fingerprint
from serve.controller import ActionError, Controller, ParamsInvalid
from serve.ids import NAME_PATTERN, request_id
from serve.metrics import render, samples
from serve.page import STATUS_PAGE
from serve.views import HEALTHY, STATE_CODES, health_view

__all__ = ["ActionBody", "ParamsBody", "build_app"]

_STRATEGY_ID = r"^[A-Za-z0-9_.]{1,64}$"
_PUBLIC = frozenset({"/", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
_bearer = HTTPBearer(auto_error=False, description="read-only or operator token")


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=200, description="why, for the audit trail")


def _finite(value: Any) -> Any:
    """NaN and ±Infinity (which Python's JSON parser lets through) are never a param."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number (NaN and Infinity are refused)")
    if isinstance(value, list):
        for item in value:
            _finite(item)
    elif isinstance(value, dict):
        for item in value.values():
            _finite(item)
    return value


class ParamsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Annotated[Any, AfterValidator(_finite)]] = Field(
        min_length=1, description="changed params, human units"
    )


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


#: a read answered from the snapshot: () -> (HTTP status, body, content type)
SnapshotRead = Callable[[], tuple[int, bytes, bytes]]


class _Correlate:
    """Pure ASGI middleware (cheaper than ``@app.middleware``), in front of FastAPI:

    * the request's correlation id (``X-Request-ID`` when it obeys :mod:`serve.ids`' rule,
      else generated) in a context variable, and echoed once in the answer;
    * the token, checked before anything else — before FastAPI reads or validates a body: no
      or an unknown token is 401, a read token on anything but ``GET``/``HEAD`` is 403
      (public: the status page and the OpenAPI schema and docs);
    * the fast path: a ``GET`` of a route answered from the snapshot (``reads``) with no
      query is answered here from the rendered bytes, without FastAPI's routing, dependency
      solving and validation (the same routes stay declared in FastAPI for the OpenAPI
      schema and answer everything else: queries, actions, errors);
    * starts the controller's refresh loop on the first request."""

    def __init__(self, app: Any, controller: Controller, reads: dict[str, SnapshotRead]) -> None:
        self.app, self.controller, self.reads = app, controller, reads

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers", ()))
        cid = request_id(headers)
        id_header = (b"x-request-id", cid.encode())
        self.controller.ensure_started()
        if scope["path"] not in _PUBLIC:
            auth = next((v for k, v in headers if k == b"authorization"), b"")
            need = READ if scope["method"] in ("GET", "HEAD") else OPERATE
            refused = _refusal(self.controller, auth.decode("latin-1"), need)
            if refused is not None:
                status, detail, extra = refused
                await _answer(
                    send,
                    status,
                    json.dumps({"detail": detail}).encode(),
                    [(b"content-type", b"application/json"), id_header, *extra],
                )
                return
            read = self.reads.get(scope["path"]) if scope["method"] == "GET" else None
            if read is not None and not scope.get("query_string"):
                status, body, media = read()
                await _answer(send, status, body, [(b"content-type", media), id_header])
                return

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", ()) if k != b"x-request-id"]
                message = {**message, "headers": [*kept, id_header]}
            await send(message)

        token = correlation_id.set(cid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)


async def _answer(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_CHALLENGE = [(b"www-authenticate", b"Bearer")]


def _scope_of(controller: Controller, authorization: str) -> str | None:
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return controller.info.token_hashes.scope_of(credentials.strip())


def _refusal(
    controller: Controller, authorization: str, need: str
) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
    """Why a request with this ``Authorization`` may not do what ``need`` allows, or None."""
    if not authorization.strip():
        return 401, "a bearer token is required", _CHALLENGE
    has = _scope_of(controller, authorization)
    if has is None:
        return 401, "unknown token", _CHALLENGE
    if need == OPERATE and has != OPERATE:
        return 403, "this token may read, not act (operator scope needed)", []
    return None


def _middleware(app: FastAPI, controller: Controller, reads: dict[str, SnapshotRead]) -> None:
    app.add_middleware(_Correlate, controller=controller, reads=reads)

    @app.exception_handler(RequestValidationError)
    async def malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        """Which field, and why; never the input itself (it may be NaN, which JSON cannot
        carry, 60 KB, or a secret pasted in the wrong place)."""
        return JSONResponse({"detail": _errors(exc.errors())}, status_code=422)

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
        return JSONResponse({"detail": _errors(exc.errors, prefix=("body",))}, status_code=422)


def _errors(errors: Any, prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"loc": [*prefix, *e["loc"]], "msg": str(e["msg"]), "type": str(e["type"])} for e in errors
    ]


def _auth(controller: Controller, scope: str) -> Any:
    """The caller (token scope and fingerprint, ``X-Operator`` on actions, address). The
    middleware has refused a missing, unknown or under-scoped token already; this names the
    caller, and declares the bearer scheme and ``X-Operator`` in the OpenAPI schema."""

    def caller(request: Request, creds: HTTPAuthorizationCredentials | None, name: str) -> Caller:
        header = request.headers.get("authorization", "")
        refused = _refusal(controller, header, scope)
        if refused is not None or creds is None:  # not reached: the middleware answered
            raise ActionError(refused[1] if refused else "a bearer token is required", status=401)
        has = _scope_of(controller, header) or READ
        who = f"{has}:{fingerprint(creds.credentials.strip())}" + (f"/{name}" if name else "")
        client = request.client.host if request.client else "?"
        return Caller(who=f"{who}@{client}", scope=has)

    async def reader(
        request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Caller:
        return caller(request, creds, "")

    async def operator(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        x_operator: Annotated[
            str | None,
            Header(
                pattern=NAME_PATTERN,
                description="your name in the audit trail: 1-64 of A-Z a-z 0-9 . _ : - "
                "(anything else: 422)",
            ),
        ] = None,
    ) -> Caller:
        return caller(request, creds, x_operator or "")

    return Depends(operator if scope == OPERATE else reader)


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
        def read() -> tuple[int, bytes, bytes]:
            stamp = c.snapshot.get("ts")
            hit = c.rendered.get(key)
            if hit is None or hit[0] != stamp:
                hit = c.rendered[key] = (stamp, render_body())
            return 200, hit[1], media

        return read

    def metrics_text() -> bytes:
        text = render(c.info.session_id, samples(c.snapshot), c.snapshot.get("telemetry") or {})
        return c.redactor.text(text).encode()

    def health() -> tuple[int, bytes, bytes]:
        """Liveness and readiness in one: 200 while ``ok`` or ``degraded`` (trading works), 503
        while ``starting`` (the session's core actors are not all there yet) or ``down``."""
        view = health_view(
            c.snapshot, feed_stale_s=cfg.feed_stale_s, recorder_lag_s=cfg.recorder_lag_s
        )
        return (200 if view["status"] in HEALTHY else 503), _json(c, view), _JSON

    return {
        "/status": cached("status", lambda: _json(c, _status(c)), _JSON),
        "/pnl": cached("pnl", lambda: _json(c, _pnl(c)), _JSON),
        "/risk": cached("risk", lambda: _json(c, c.snapshot.get("risk_view") or {}), _JSON),
        "/positions": cached("positions", lambda: _json(c, c.positions()), _JSON),
        "/strategies": cached("strategies", lambda: _json(c, c.strategies_view()), _JSON),
        "/metrics": cached("metrics", metrics_text, _PROMETHEUS),
        "/health": health,
    }


def _pnl(c: Controller) -> dict[str, Any]:
    return (c.snapshot.get("pnl") or {}) | {"currency": c.info.currency}


def _read_routes(app: FastAPI, c: Controller, read: Any, reads: dict[str, SnapshotRead]) -> None:
    def answer(path: str) -> Response:
        status, body, media = reads[path]()
        return Response(body, status_code=status, media_type=media.decode())

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
                "conflated",
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
