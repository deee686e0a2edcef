"""Carriers of the step protocol (:mod:`actors.step`): how one step travels from the feed
through the book actors, the strategies and risk to the gateway and back.

* ``sockets`` (:class:`actors.sockpath.SocketPath`): each actor serves its ``hot_step`` on a
  UNIX socket of the node and hands the step, its answer appended, straight to the next actor
  of the chain (the gateway back to the feed): 5 hand-offs a step with one book actor and one
  strategy; nothing polls and an idle session costs no CPU. One node only.
* ``calls`` (:class:`CallPath`): each stage is a Ray actor call carrying the step's bytes
  (the book actors in parallel, each its instrument's part of the step, then the strategies
  in parallel, then risk, then the gateway): it works across nodes, at the cost of four actor
  round trips per step.
* ``auto`` (the default): ``sockets`` when every actor of the chain runs on the feed's node,
  else ``calls``; :func:`open_carrier` asks the actors where they run.

Every carrier has the same small interface (:class:`Carrier`): :meth:`~Carrier.submit` a step,
:meth:`~Carrier.collect` its result, one step in flight at a time. Each encodes the step once
for the strategies, risk and the gateway, and routes each book actor its instrument's part
(:func:`actors.step.route`). The actors are :class:`actors.names.Named`: a crash of one is
survived by both carriers: the sockets carrier reconnects once its supervisor has started it
again and runs the step again; the calls carrier's call is sent again to the new actor under
the name. Either way the actors dedupe what they see twice (feed index, client order id, fill
id).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Literal, Protocol

from actors.step import (
    BOOK_PING,
    PING,
    HotInput,
    HotResult,
    decode_result,
    encode,
    join_views,
    route,
)

__all__ = ["TRANSPORTS", "CallPath", "Carrier", "Transport", "open_carrier"]

Transport = Literal["auto", "sockets", "calls"]
TRANSPORTS: tuple[Transport, ...] = ("auto", "sockets", "calls")

#: no-op steps after connecting: the first steps run the actors' code paths cold
WARM_STEPS = 20


class Carrier(Protocol):
    """What the feed's driver needs of a carrier (see the module docstring)."""

    transport: str
    connections: int  # connections made: 1, plus one after each failure
    failures: list[str]
    warmup_s: list[float]

    async def ready(self) -> None: ...
    async def submit(self, inp: HotInput) -> None: ...
    async def collect(self) -> HotResult | None: ...
    def close(self) -> None: ...


class CallPath:
    """The chain as Ray actor calls (see the module docstring)."""

    transport = "calls"

    def __init__(self, hosts: dict[str, Any], risk: Any, gateway: Any, *,
                 books: dict[str, Any]) -> None:
        self.hosts, self.risk, self.gateway, self.books = hosts, risk, gateway, books
        self.inflight: deque[tuple[bytes, list[bytes]]] = deque()  # the step, the books' parts
        self.connections = 0
        self.failures: list[str] = []
        self.warmup_s: list[float] = []

    async def ready(self) -> None:
        if self.connections:
            return
        self.connections = 1
        start = time.perf_counter()
        for _ in range(WARM_STEPS):
            await self._run(PING, [BOOK_PING] * len(self.books))
        self.warmup_s.append(time.perf_counter() - start)

    async def submit(self, inp: HotInput) -> None:
        await self.ready()
        self.inflight.append((encode(inp), route(inp, list(self.books))))

    async def collect(self) -> HotResult | None:
        if not self.inflight:
            return None
        data, parts = self.inflight[0]
        raw = await self._run(data, parts)
        self.inflight.popleft()
        return decode_result(raw)

    async def _run(self, data: bytes, parts: list[bytes]) -> bytes:
        """The step ``data`` through the chain, ``parts`` (:func:`actors.step.route`) to the
        book actors."""
        views = join_views(await asyncio.gather(*(b.hot_step.remote(part) for b, part
                                                  in zip(self.books.values(), parts,
                                                         strict=True))))
        answers = await asyncio.gather(*(h.hot_step.remote(data, views)
                                         for h in self.hosts.values()))
        out = await self.risk.hot_step.remote(data, views, *answers)
        raw: bytes = await self.gateway.hot_step.remote(data, out, *answers)
        return raw

    def close(self) -> None:
        self.inflight.clear()


async def open_carrier(transport: Transport, hosts: dict[str, Any], risk: Any,
                       gateway: Any, *, books: dict[str, Any]) -> Carrier:
    """The carrier for ``transport`` over these actors (``books``: instrument -> book
    actor), connected and warmed up."""
    from actors.sockpath import SocketPath

    if transport == "auto":
        everyone = [*books.values(), *hosts.values(), risk, gateway]
        transport = "sockets" if await _all_on_this_node(everyone) else "calls"
    carrier: Carrier = (SocketPath(hosts, risk, gateway, books=books) if transport == "sockets"
                        else CallPath(hosts, risk, gateway, books=books))
    await carrier.ready()
    return carrier


async def _all_on_this_node(actors: list[Any]) -> bool:
    import ray

    here = ray.get_runtime_context().get_node_id()
    nodes = await asyncio.gather(*(a.node.remote() for a in actors))
    return all(node == here for node in nodes)
