"""Helpers of the control-plane tests: an HTTP client that keeps every answer (the planted
secret must appear in none), free ports, waiting, and a tiny Chrome DevTools Protocol driver."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Api", "Cdp", "free_port", "until"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def until(check: Any, timeout_s: float = 60.0, step_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step_s)
    raise AssertionError("condition not reached")


@dataclass
class Api:
    url: str
    token: str
    seen: list[str] = field(default_factory=list)  # every body received

    def call(
        self, path: str, *, method: str = "GET", body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        use = self.token if token is None else token
        if use:
            headers["Authorization"] = f"Bearer {use}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=90) as resp:
                status, raw = resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read().decode()
        self.seen.append(raw)
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def get(self, path: str, **kw: Any) -> Any:
        status, body = self.call(path, **kw)
        assert status == 200, (path, status, body)
        return body

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        status, out = self.call(path, method="POST", body=body, **kw)
        assert status == 200, (path, status, out)
        return out


class Cdp:
    """Just enough of the Chrome DevTools Protocol: evaluate, and accept dialogs."""

    def __init__(self, ws: Any) -> None:
        self.ws, self.next_id = ws, 0

    async def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.next_id += 1
        ident = self.next_id
        await self.ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if message.get("method") == "Page.javascriptDialogOpening":
                self.next_id += 1
                await self.ws.send(
                    json.dumps(
                        {
                            "id": self.next_id,
                            "method": "Page.handleJavaScriptDialog",
                            "params": {"accept": True},
                        }
                    )
                )
            if message.get("id") == ident:
                return message.get("result")

    async def eval(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        return result["result"].get("value")

    async def until(self, expression: str, timeout_s: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = await self.eval(expression)
            if value:
                return value
            await asyncio.sleep(0.2)
        raise AssertionError(f"page never satisfied {expression}")
