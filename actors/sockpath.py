"""The step over the node's UNIX sockets: feed → books → strategies → risk → gateway.

One carrier of the step protocol (:mod:`actors.step`, :mod:`actors.carriers`): the same
:class:`~actors.step.HotInput`, the same ``hot_step`` of each actor, the same result as the
calls carrier, over the node's sockets instead of Ray calls. Each actor serves its ``hot_step``
on a socket of its own from a thread that sleeps in ``recv`` until the feed writes a step:
nothing polls, an idle session costs no CPU, and a handoff is a kernel wake-up (tens of µs when
a core is free).

Each step the feed (the driver) writes each book actor its part of the input
(``actors.step.route``), reads their views,
writes the input and the views to every strategy, reads their answers, writes the input, the
views and the answers to risk, reads risk's outputs, writes the input, risk's outputs and the
answers to the gateway and reads the step's result: each stage journals before it answers, so
a restarted actor comes back from its journal and a step executed twice (after a crash)
changes nothing.

The sockets live in Linux's abstract namespace (no file to clean up; gone with the process)
under a random name that the actor hands to the feed through Ray (:meth:`Child.hot_listen`), and
an actor serves only a peer of its own user (``SO_PEERCRED``). They are local to the node: all
of the hot path's actors must run on the feed's node, which is checked.

Failures: a dead actor's socket ends (EOF or a reset) and so does the feed's read; the feed
waits until every actor answers a ping again (by name: its supervisor starts a new one, which
restores from its journal), connects anew (a restarted actor listens on a new name) and
executes the same step again from the start.
An actor that hangs in a step holds its lock and misses its heartbeats: the supervisor restarts
it, which ends its socket. An error raised by a step itself is not a transport failure: it ends
the session's feed with that error, as a failed call would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from actors.carriers import WARM_STEPS
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

__all__ = ["HotServer", "SocketPath"]

_HEAD = struct.Struct("!BI")  # kind (0: a result, 1: the step's error), payload length
_OK, _ERROR = 0, 1
_ARGS = struct.Struct("!I")  # each argument's length, before it
MAX_FRAME = 1 << 30


class HotServer:
    """An actor's side: a listening socket and a thread per connection, each calling
    ``step(*args)`` (the actor's locked ``hot_step``) for every frame it reads."""

    def __init__(self, step: Callable[..., bytes], label: str) -> None:
        self.step = step
        self.address = f"\0tradewind-hot-{label}-{os.getpid()}-{secrets.token_hex(8)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.address)
        self.sock.listen(8)
        threading.Thread(target=self._accept, daemon=True, name="hot-accept").start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            _, uid, _ = struct.unpack("3i", conn.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
            if uid != os.getuid():  # only this user's processes may drive the actor
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True,
                             name="hot-serve").start()

    def _serve(self, conn: socket.socket) -> None:
        _name_thread(b"tw-hot")
        with conn:
            while True:
                try:
                    args = _unpack_args(_read_frame(conn)[1])
                except (OSError, EOFError):
                    return  # the feed closed or died
                try:
                    kind, out = _OK, self.step(*args)
                except Exception as exc:  # the step's own error: the feed raises it
                    kind, out = _ERROR, f"{type(exc).__name__}: {exc}".encode()[:4000]
                try:
                    conn.sendall(_HEAD.pack(kind, len(out)) + out)
                except OSError:
                    return


class SocketPath:
    """The driver's side (an :class:`actors.carriers.Carrier`): :meth:`submit` writes a step
    to the book actors, :meth:`collect` runs it through the strategies, risk and the gateway
    and returns its result; one step in flight at a time."""

    transport = "sockets"

    def __init__(self, hosts: dict[str, Any], risk: Any, gateway: Any, *,
                 books: dict[str, Any], restart_timeout_s: float = 60.0) -> None:
        self.hosts, self.risk, self.gateway, self.books = hosts, risk, gateway, books
        self.restart_timeout_s = restart_timeout_s
        #: per actor: ``\0book:<instrument>``, the hosts' ids, ``\0risk``, ``\0gateway``
        self.conns: dict[str, socket.socket] | None = None
        #: (input, the books' parts, written to the books)
        self.inflight: deque[tuple[bytes, list[bytes], bool]] = deque()
        self.connections = 0  # connections made (1 + after failures)
        self.failures: list[str] = []
        self.warmup_s: list[float] = []

    def actors(self) -> list[Any]:
        return [*self.books.values(), *self.hosts.values(), self.risk, self.gateway]

    def _named(self) -> dict[str, Any]:
        return {**{f"\0book:{k}": v for k, v in self.books.items()}, **self.hosts,
                "\0risk": self.risk, "\0gateway": self.gateway}

    async def ready(self) -> None:
        """Connect now if not connected, so no tick waits for it."""
        if self.conns is None:
            await self._connect()

    async def submit(self, inp: HotInput) -> None:
        data, parts = encode(inp), route(inp, list(self.books))
        await self.ready()
        self.inflight.append((data, parts, self._start(parts)))

    async def collect(self) -> HotResult | None:
        tries = 0
        while self.inflight:
            data, parts, started = self.inflight[0]
            try:
                if not started:
                    raise _Broken("the step could not be written")
                raw = self._finish(data)
            except (OSError, EOFError, _Broken) as exc:
                tries += 1
                why = f"an actor of the hot path is gone: {type(exc).__name__}: {exc}"[:200]
                if tries >= _TRIES:
                    raise RuntimeError(f"the hot path failed {_TRIES} times on one step: "
                                       f"{'; '.join([*self.failures[-_TRIES + 1:], why])}") from exc
                await self._recover(why)
                self.inflight[0] = (data, parts, self._start(parts))
                continue
            self.inflight.popleft()
            return decode_result(raw)
        return None

    def close(self) -> None:
        conns, self.conns = self.conns, None
        for conn in (conns or {}).values():
            with contextlib.suppress(OSError):
                conn.close()

    # --- internals -----------------------------------------------------------------------------
    def _start(self, parts: list[bytes]) -> bool:
        """Write each book actor its part of the step; False if a socket is gone."""
        assert self.conns is not None
        try:
            for instrument, part in zip(self.books, parts, strict=True):
                self.conns[f"\0book:{instrument}"].sendall(_pack_args([part]))
        except OSError:
            return False
        return True

    def _finish(self, data: bytes) -> bytes:
        assert self.conns is not None
        conns = self.conns
        views = join_views([_call_result(conns[f"\0book:{i}"]) for i in self.books])
        frame = _pack_args([data, views])
        for sid in self.hosts:
            conns[sid].sendall(frame)
        answers = [_call_result(conns[sid]) for sid in self.hosts]
        risk = conns["\0risk"]
        risk.sendall(_pack_args([data, views, *answers]))
        out = _call_result(risk)
        gateway = self.conns["\0gateway"]
        gateway.sendall(_pack_args([data, out, *answers]))
        return _call_result(gateway)

    async def _connect(self) -> None:
        import ray

        here = ray.get_runtime_context().get_node_id()
        named = self._named()
        listening = await asyncio.gather(*(a.hot_listen.remote() for a in named.values()))
        conns: dict[str, socket.socket] = {}
        try:
            for key, (node, address) in zip(named, listening, strict=True):
                if node != here:
                    raise RuntimeError(
                        f"feed.transport: sockets needs the step's actors on the feed's node: "
                        f"{key.lstrip(chr(0))} runs on node {node[:12]}, the feed on {here[:12]} "
                        f"(use transport: auto or calls across nodes)")
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conns[key] = conn
                conn.connect(address)
        except BaseException:
            for conn in conns.values():
                conn.close()
            raise
        self.conns = conns
        self.connections += 1
        self.warmup_s.append(self._warm())

    def _warm(self) -> float:
        """A few no-op steps (every actor answers at once, taking nothing): the first
        steps after connecting run the actors' serving threads and the decoders cold."""
        start = time.perf_counter()
        for _ in range(WARM_STEPS):
            if not self._start([BOOK_PING] * len(self.books)):
                break
            try:
                self._finish(PING)
            except (OSError, EOFError):
                break  # an actor died: the first step fails and recovers
        return time.perf_counter() - start

    async def _recover(self, why: str) -> None:
        """Close every connection, wait until every actor answers again (a dead one's successor,
        under its name), and connect anew."""
        self.failures.append(why)
        deadline = time.monotonic() + self.restart_timeout_s
        while True:
            self.close()
            try:
                for actor in self.actors():
                    await asyncio.wait_for(actor.ping.remote(),
                                           max(deadline - time.monotonic(), 0.1))
                await self._connect()
                return
            except OSError as exc:
                # an actor answered, then died before we connected (a storm of restarts):
                # wait for its successor too, within the same deadline
                if time.monotonic() > deadline:
                    raise
                self.failures.append(f"reconnecting: {type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(0.05)


_TRIES = 5  # connections made for one step before its failure is the session's


class _Broken(Exception):
    """The step cannot finish on these connections."""


def _name_thread(name: bytes) -> None:
    """The OS's name of this thread (``top -H``, ``/proc/*/task/*/comm``), best effort."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(15, name, 0, 0, 0)  # PR_SET_NAME


def _read_exact(conn: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = conn.recv_into(view[got:])
        if k == 0:
            raise EOFError("the peer closed its socket")
        got += k
    return bytes(buf)


def _read_frame(conn: socket.socket) -> tuple[int, bytes]:
    kind, size = _HEAD.unpack(_read_exact(conn, _HEAD.size))
    if size > MAX_FRAME:
        raise EOFError(f"a frame of {size} bytes: the stream is out of step")
    return kind, _read_exact(conn, size)


def _pack_args(args: list[bytes]) -> bytes:
    body = b"".join(_ARGS.pack(len(a)) + a for a in args)
    return _HEAD.pack(_OK, len(body)) + body


def _unpack_args(body: bytes) -> list[bytes]:
    out, at = [], 0
    while at < len(body):
        (n,) = _ARGS.unpack_from(body, at)
        at += _ARGS.size
        out.append(body[at:at + n])
        at += n
    return out


def _call_result(conn: socket.socket) -> bytes:
    kind, body = _read_frame(conn)
    if kind == _ERROR:
        raise HotStepError(body.decode(errors="replace"))
    return body


class HotStepError(RuntimeError):
    """A step raised in an actor (not a transport failure): the session's error."""
