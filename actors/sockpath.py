"""The step over the node's UNIX sockets, as a chain: feed → books → strategies → risk →
gateway → feed.

One carrier of the step protocol (:mod:`actors.step`, :mod:`actors.carriers`): the same
:class:`~actors.step.HotInput`, the same ``hot_step`` of each actor, the same result as the
calls carrier, over the node's sockets instead of Ray calls. Each actor serves its ``hot_step``
on a socket of its own from threads that sleep in ``recv`` until a step comes: nothing polls,
an idle session costs no CPU, and a hand-off is a kernel wake-up (tens of µs when a core is
free).

The feed links the actors into a chain once it has connected (a link frame to each: its role
in the chain and the address of the next actor, which it connects to): the book actors (one
after another), the strategies (one after another), risk, the gateway. Each step the feed
writes the input and each book actor's part of it (``actors.step.route``) to the first actor;
each actor takes its arguments from the frame (a book actor its part; a strategy the input and
the books' views; risk those and the strategies' answers; the gateway the input, risk's
outputs and the answers), runs its ``hot_step`` and passes the frame with its answer appended
straight to the next actor; the gateway writes the step's result back to the feed. One book
and one strategy make 5 hand-offs a step (the feed's round trips to each stage made 8). Each
stage journals before it answers, so a restarted actor comes back from its journal and a step
executed twice (after a crash) changes nothing (``actors.step.Replies``).

The sockets live in Linux's abstract namespace (no file to clean up; gone with the process)
under a random name that the actor hands to the feed through Ray (:meth:`Child.hot_listen`), and
an actor serves only a peer of its own user (``SO_PEERCRED``). They are local to the node: all
of the hot path's actors must run on the feed's node, which is checked.

Failures: the feed keeps its own connection to every actor of the chain (the one it linked it
over) and, while a step is under way, waits on all of them: a dead actor's connection ends (EOF
or a reset), and the feed waits until every actor answers a ping again (by name: its supervisor
starts a new one, which restores from its journal), connects and links anew (a restarted actor
listens on a new name) and executes the same step again from the start. The actors after a dead
one see their upstream connection end and drop it; an actor whose feed connection ends drops
its link. An actor that hangs in a step holds its lock and misses its heartbeats: the
supervisor restarts it, which ends its socket. An error raised by a step itself is not a
transport failure: the actor writes it to the feed, which raises it, as a failed call would.
Either error (a step's own, or ``_TRIES`` connections failing on one step) fails the feed's
loop: the feed's supervisor decides on it as on a crash (``actors.feed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

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

__all__ = ["BOOK", "GATEWAY", "RISK", "STRATEGY", "HotServer", "SocketPath", "answer_of",
           "chain_frame", "link_frame"]

_HEAD = struct.Struct("!BI")  # kind, payload length
#: a frame's kind: an answer (to the feed); a step's error; a link (the feed's); a chain's step
_OK, _ERROR, _LINK, _CHAIN = 0, 1, 2, 3
_ARGS = struct.Struct("!I")  # each argument's length, before it
_TICKET = struct.Struct("!Q")
MAX_FRAME = 1 << 30
_LINKS = msgspec.msgpack.Decoder(tuple[str, str, int, int])

#: roles in the chain (a link's): what each takes from a chain's frame ``[ticket, input, *the
#: books' parts, *the books' views, *the strategies' answers, risk's outputs]`` (the ticket:
#: the feed's number of this attempt at the step, which the gateway's result starts with)
BOOK, STRATEGY, RISK, GATEWAY = "book", "strategy", "risk", "gateway"


class HotServer:
    """An actor's side: a listening socket and a thread per connection, each calling
    ``step(*args)`` (the actor's locked ``hot_step``) for every chain's frame it reads.

    The feed links it (:func:`link_frame`: its role, its place among the book actors, how many
    book actors there are, the next actor's address); then it takes its arguments from each
    chain's frame (:func:`chain_frame`) and passes the frame with its answer appended on to the
    next actor, or, the chain's last (no next address), writes its answer to the feed, after
    the frame's ticket. A step's error goes to the feed. Until it is linked (and once the
    feed's connection ends) it passes over the chain's frames."""

    def __init__(self, step: Callable[..., bytes], label: str) -> None:
        self.step = step
        self.address = f"\0tradewind-hot-{label}-{os.getpid()}-{secrets.token_hex(8)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.address)
        self.sock.listen(8)
        self.feed: socket.socket | None = None  # the connection the latest link came over
        self.next: socket.socket | None = None  # the next actor of the chain; None: the feed
        self.role, self.place, self.books = "", 0, 0
        self._link_lock = threading.Lock()
        self._send_lock = threading.Lock()  # whole frames to the feed's connection
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
                    kind, body = _read_frame(conn)
                    if kind == _LINK:
                        self._link(conn, body)
                        continue
                except (OSError, EOFError):
                    self._unlink(conn)
                    return  # the feed (or the actor before this one) closed or died
                if kind != _CHAIN:
                    self._unlink(conn)
                    return  # out of step: only the feed links, only a chain steps
                role = self.role
                if not role:
                    continue  # a step of a chain the feed has taken down: it runs it again
                args = _unpack_args(body)
                try:
                    out = self.step(*_arguments(role, self.place, self.books, args))
                except Exception as exc:  # the step's own error: the feed raises it
                    self._to_feed(_ERROR, f"{type(exc).__name__}: {exc}".encode()[:4000])
                    continue
                after = self.next
                if after is None:  # the chain's end
                    self._to_feed(_OK, args[0] + out)
                    continue
                with contextlib.suppress(OSError):  # the next actor gone: the feed sees it
                    after.sendall(_pack_args([*args, out], _CHAIN))

    def _to_feed(self, kind: int, payload: bytes) -> None:
        feed = self.feed
        if feed is None:
            return  # the feed took the chain down: it runs the step again
        with contextlib.suppress(OSError), self._send_lock:  # the feed gone: so is the chain
            feed.sendall(_HEAD.pack(kind, len(payload)) + payload)

    def _link(self, conn: socket.socket, body: bytes) -> None:
        """The feed's link over ``conn``: this actor's role and place in the chain and the
        next actor's address (empty: the last, it answers the feed); acknowledged."""
        role, address, place, books = _LINKS.decode(body)
        after = None
        if address:
            after = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                after.connect(address)
            except OSError:
                after.close()
                raise
        with self._link_lock:
            old, self.next, self.feed = self.next, after, conn
            self.role, self.place, self.books = role, place, books
        if old is not None:
            old.close()
        with self._send_lock:
            conn.sendall(_HEAD.pack(_OK, 0))

    def _unlink(self, conn: socket.socket) -> None:
        """``conn`` ended: if the feed linked over it, the link goes (the actors after this
        one see their connection end)."""
        with self._link_lock:
            if self.feed is not conn:
                return
            old, self.next, self.feed, self.role = self.next, None, None, ""
        if old is not None:
            old.close()


def link_frame(role: str, address: str, place: int, books: int) -> bytes:
    """The feed's link of an actor (:class:`HotServer`): its ``role``, the ``address`` of the
    next actor (empty: it answers the feed), its ``place`` among the ``books`` book actors."""
    link = msgspec.msgpack.encode((role, address, place, books))
    return _HEAD.pack(_LINK, len(link)) + link


def chain_frame(ticket: int, args: list[bytes]) -> bytes:
    """A step into the chain: the input and the books' parts (see :data:`BOOK`)."""
    return _pack_args([_TICKET.pack(ticket), *args], _CHAIN)


def answer_of(ticket: int, body: bytes) -> bytes | None:
    """The chain's answer in a result's ``body`` if it answers ``ticket``, else None (an
    earlier attempt's)."""
    if body[:_TICKET.size] == _TICKET.pack(ticket):
        return body[_TICKET.size:]
    return None


def _arguments(role: str, place: int, books: int, args: list[bytes]) -> list[bytes]:
    """A linked actor's ``hot_step`` arguments from a chain's frame (see :data:`BOOK`)."""
    if role == BOOK:
        return [args[2 + place]]
    data, views = args[1], join_views(args[2 + books:2 + 2 * books])
    if role == STRATEGY:
        return [data, views]
    if role == RISK:
        return [data, views, *args[2 + 2 * books:]]
    return [data, args[-1], *args[2 + 2 * books:-1]]  # the gateway


class SocketPath:
    """The driver's side (an :class:`actors.carriers.Carrier`): :meth:`submit` writes a step
    to the first actor of the chain, :meth:`collect` waits for its result from the gateway;
    one step in flight at a time."""

    transport = "sockets"

    def __init__(self, hosts: dict[str, Any], risk: Any, gateway: Any, *,
                 books: dict[str, Any], restart_timeout_s: float = 60.0) -> None:
        self.hosts, self.risk, self.gateway, self.books = hosts, risk, gateway, books
        self.restart_timeout_s = restart_timeout_s
        #: per actor, in the chain's order: ``\0book:<instrument>``, the hosts' ids,
        #: ``\0risk``, ``\0gateway``
        self.conns: dict[str, socket.socket] | None = None
        self.linked = False  # every actor acknowledged its link
        self.ticket = 0  # the latest attempt at a step written to the chain
        self.selector: selectors.BaseSelector | None = None  # over conns: what the feed awaits
        #: (input, the books' parts, written to the chain)
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
        self.inflight.append((data, parts, self._start(data, parts)))

    async def collect(self) -> HotResult | None:
        tries = 0
        while self.inflight:
            data, parts, started = self.inflight[0]
            try:
                if not started:
                    raise _Broken("the step could not be written")
                raw = self._finish()
            except (OSError, EOFError, _Broken) as exc:
                tries += 1
                why = f"an actor of the hot path is gone: {type(exc).__name__}: {exc}"[:200]
                if tries >= _TRIES:
                    raise RuntimeError(f"the hot path failed {_TRIES} times on one step: "
                                       f"{'; '.join([*self.failures[-_TRIES + 1:], why])}") from exc
                await self._recover(why)
                self.inflight[0] = (data, parts, self._start(data, parts))
                continue
            self.inflight.popleft()
            return decode_result(raw)
        return None

    def close(self) -> None:
        conns, self.conns, self.linked = self.conns, None, False
        if self.selector is not None:
            self.selector.close()
            self.selector = None
        for conn in (conns or {}).values():
            with contextlib.suppress(OSError):
                conn.close()

    # --- internals -----------------------------------------------------------------------------
    def _start(self, data: bytes, parts: list[bytes]) -> bool:
        """Write the step to the first actor of the chain; False if it cannot go."""
        assert self.conns is not None
        if not self.linked:
            return False
        self.ticket += 1
        try:
            next(iter(self.conns.values())).sendall(chain_frame(self.ticket, [data, *parts]))
        except OSError:
            return False
        return True

    def _finish(self) -> bytes:
        """The step's result from the gateway, watching every actor's connection meanwhile:
        one that ends is an actor gone; a step's error comes from the actor that raised."""
        assert self.conns is not None and self.selector is not None
        gateway = self.conns["\0gateway"]
        while True:
            for key, _ in self.selector.select():
                conn = key.data
                body = _call_result(conn)
                if conn is not gateway:
                    raise _Broken("an actor wrote the feed out of turn")
                answer = answer_of(self.ticket, body)
                if answer is not None:  # else an earlier attempt's, which the feed gave up
                    return answer

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
        self.selector = selectors.DefaultSelector()
        for conn in conns.values():
            self.selector.register(conn, selectors.EVENT_READ, conn)
        self.connections += 1
        self.linked = self._link([address for _, address in listening])
        self.warmup_s.append(self._warm())

    def _link(self, addresses: list[str]) -> bool:
        """Link each actor to the next (the gateway to the feed); False if one is gone (the
        first step fails and recovers)."""
        assert self.conns is not None
        roles = [*[BOOK] * len(self.books), *[STRATEGY] * len(self.hosts), RISK, GATEWAY]
        after = [*addresses[1:], ""]
        try:
            for k, (conn, role, address) in enumerate(zip(self.conns.values(), roles, after,
                                                          strict=True)):
                conn.sendall(link_frame(role, address, k, len(self.books)))
            for conn in self.conns.values():
                _call_result(conn)
        except (OSError, EOFError, HotStepError):
            return False
        return True

    def _warm(self) -> float:
        """A few no-op steps (every actor answers at once, taking nothing): the first
        steps after connecting run the actors' serving threads and the decoders cold."""
        start = time.perf_counter()
        for _ in range(WARM_STEPS):
            if not self._start(PING, [BOOK_PING] * len(self.books)):
                break
            try:
                self._finish()
            except (OSError, EOFError, _Broken):
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


_TRIES = 5  # connections made for one step before its failure is the feed's (its supervisor's)


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


def _pack_args(args: list[bytes], kind: int = _OK) -> bytes:
    body = b"".join(_ARGS.pack(len(a)) + a for a in args)
    return _HEAD.pack(kind, len(body)) + body


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
