"""The two names a caller may give the control API, and the one rule each obeys.

``X-Request-ID`` (the correlation id): 1–64 characters of ``A-Z a-z 0-9 . _ : -``, sent once.
Anything else — absent, longer, other characters (CR/LF included), or the header sent twice —
is replaced by a generated id: a correlation id is never refused, and never carried further
(logs, audit, answer) than it is safe to. The answer carries exactly one ``X-Request-ID``.

``X-Operator`` (a name for the audit trail): the same characters and length; an action sent
with anything else is refused (422 naming the header) rather than recorded under a name the
caller did not send.

Behind Ray Serve, Serve's proxy echoes the request's ``X-Request-ID`` itself (its built-in
``RequestIdMiddleware``, which the app cannot turn off): :func:`proxy_middlewares` puts
:class:`RequestIdGuard` in front of it in the proxy (``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``,
:data:`serve.deploy.SERVE_ENV`), so what Serve echoes obeys the rule too, and the answer keeps
one header. Light on purpose: the proxy process imports this module.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "NAME_PATTERN",
    "RequestIdGuard",
    "proxy_middlewares",
    "request_id",
    "valid_name",
]

#: what an ``X-Request-ID`` or an ``X-Operator`` may be (ASCII; no CR/LF, no spaces)
NAME_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
_NAME = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_HEADER = b"x-request-id"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def valid_name(value: str) -> bool:
    return _NAME.fullmatch(value) is not None


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The request's correlation id: its ``X-Request-ID`` when it obeys the rule, else a new
    one (16 hex digits)."""
    given = [value for key, value in headers if key.lower() == _HEADER]
    if len(given) == 1:
        text = given[0].decode("latin-1")
        if valid_name(text):
            return text
    return uuid.uuid4().hex[:16]


class RequestIdGuard:
    """Proxy-side ASGI middleware: the request goes on with exactly one valid ``X-Request-ID``
    (the caller's, or a generated one), and the answer leaves with exactly one."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers", ()))
        cid = request_id(headers).encode()
        scope = dict(scope)
        scope["headers"] = [(k, v) for k, v in headers if k.lower() != _HEADER]
        scope["headers"].append((_HEADER, cid))

        async def send_one(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _HEADER]
                message = {**message, "headers": [*kept, (_HEADER, cid)]}
            await send(message)

        await self.app(scope, receive, send_one)


def proxy_middlewares() -> list[Any]:
    """What Serve's proxy calls (``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``)."""
    from starlette.middleware import Middleware

    return [Middleware(RequestIdGuard)]
