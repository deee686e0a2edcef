"""The carriers of the step protocol on their own: the sockets carrier (``actors.sockpath``):
frames, a step's error, a peer that goes away, a stream out of step, retries that give up,
actors on another node; the calls carrier and ``auto``'s choice (``actors.carriers``). The
sessions that run over them (and SIGKILL their actors) are in test_hot_path.py."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import subprocess
import threading
from typing import Any

import pytest

from actors.carriers import CallPath, open_carrier
from actors.sockpath import (
    _HEAD,
    _TRIES,
    BOOK,
    GATEWAY,
    RISK,
    STRATEGY,
    HotServer,
    HotStepError,
    SocketPath,
    _call_result,
    _pack_args,
    _read_frame,
    _unpack_args,
    answer_of,
    chain_frame,
    link_frame,
)
from actors.step import HotAnswer, HotInput, encode, encode_result, encode_views, views_of


def _connect(server: HotServer) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(server.address)
    conn.settimeout(10)
    return conn


def test_arguments_round_trip_through_a_frame() -> None:
    args = [b"", b"x" * 70_000, bytes(range(256))]
    kind, body = _read_frame(_Bytes(_pack_args(args)))
    assert kind == 0 and _unpack_args(body) == args


def _linked(server: HotServer, role: str = BOOK, address: str = "", place: int = 0,
            books: int = 1) -> socket.socket:
    """A connection that linked ``server`` into a chain (as the feed does)."""
    conn = _connect(server)
    conn.sendall(link_frame(role, address, place, books))
    assert _call_result(conn) == b""  # acknowledged
    return conn


def test_a_linked_server_answers_each_step_to_the_feed_and_reports_a_steps_error() -> None:
    seen: list[tuple[bytes, ...]] = []

    def step(*args: bytes) -> bytes:
        seen.append(args)
        if args[0] == b"boom":
            raise ValueError("a bad step")
        return args[0] + b"!"

    server = HotServer(step, "t")
    assert server.address.startswith("\0tradewind-hot-t-")  # abstract: no file left behind
    with _linked(server) as conn:  # a book actor, the chain's end: its part, answered
        conn.sendall(chain_frame(1, [b"input", b"a"]))
        assert answer_of(1, _call_result(conn)) == b"a!"
        conn.sendall(chain_frame(2, [b"input", b"boom"]))
        with pytest.raises(HotStepError, match="ValueError: a bad step"):
            _call_result(conn)
        conn.sendall(chain_frame(3, [b"input", b"c"]))  # it still serves after an error
        body = _call_result(conn)
        assert answer_of(2, body) is None and answer_of(3, body) == b"c!"
    assert seen == [(b"a",), (b"boom",), (b"c",)]


def test_each_actor_of_a_chain_passes_the_step_on_to_the_next() -> None:
    """feed → book → strategy → risk → gateway → feed: each takes its arguments from the frame
    (a book its part; a strategy the input and the books' views; risk those and the answers;
    the gateway the input, risk's outputs and the answers), and only the gateway writes back."""
    seen: list[tuple[str, tuple[bytes, ...]]] = []

    def stage(name: str) -> Any:
        def step(*args: bytes) -> bytes:
            seen.append((name, args))
            return name.encode()
        return step

    names = ["book", "strategy", "risk", "gateway"]
    servers = [HotServer(stage(n), n) for n in names]
    after = [*(s.address for s in servers[1:]), ""]
    conns = [_linked(s, role, address, 0, 1) for s, role, address
             in zip(servers, [BOOK, STRATEGY, RISK, GATEWAY], after, strict=True)]
    try:
        conns[0].sendall(chain_frame(7, [b"input", b"part"]))
        assert answer_of(7, _call_result(conns[3])) == b"gateway"
        views = encode([b"book"])  # actors.step.join_views of the one book's answer
        assert seen == [("book", (b"part",)), ("strategy", (b"input", views)),
                        ("risk", (b"input", views, b"strategy")),
                        ("gateway", (b"input", b"risk", b"strategy"))]
        for conn in conns[:3]:  # nothing came back on the other actors' connections
            conn.setblocking(False)
            with pytest.raises(BlockingIOError):
                conn.recv(1)
    finally:
        for conn in conns:
            conn.close()


def test_an_unlinked_server_passes_over_a_step_and_hangs_up_on_a_frame_out_of_step() -> None:
    """A chain's frame before the link (a step of a chain the feed took down) runs nothing;
    a frame that is neither a link nor a chain's step ends the connection."""
    seen: list[bytes] = []
    server = HotServer(lambda *a: seen.append(a[0]) or b"ran", "u")
    with _connect(server) as conn:
        conn.sendall(chain_frame(1, [b"input", b"stale"]))
        conn.sendall(link_frame(BOOK, "", 0, 1))
        assert _call_result(conn) == b""  # the link's answer comes first: the step passed over
        conn.sendall(_pack_args([b"plain"]))  # not a chain's frame: out of step
        with pytest.raises(EOFError, match="closed its socket"):
            _call_result(conn)
    assert seen == []


def test_a_peer_that_goes_away_ends_the_read() -> None:
    server = HotServer(lambda *a: b"never", "gone")
    with _connect(server) as conn:
        conn.sendall(_HEAD.pack(0, 100) + b"half a frame")
        conn.shutdown(socket.SHUT_WR)  # the server reads EOF mid-frame and closes
        with pytest.raises(EOFError, match="closed its socket"):
            _call_result(conn)


_SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")  # one any user may run


@pytest.mark.skipif(os.getuid() != 0 or _SYSTEM_PYTHON is None,
                    reason="needs root (and a system python3) to connect as another user")
def test_a_peer_of_another_user_is_hung_up_on() -> None:
    """Only this user's processes may drive an actor (``SO_PEERCRED``): a process of another
    user connects (abstract sockets have no file permissions) and is closed on at once, its
    step never run."""
    seen: list[bytes] = []
    server = HotServer(lambda *a: seen.append(a[0]) or b"ran", "peer")
    probe = (
        "import socket, struct\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        f"s.connect({server.address!r})\n"
        "s.settimeout(10)\n"
        "try:\n"
        "    s.sendall(struct.pack('!BI', 0, 5) + struct.pack('!I', 1) + b'x')\n"
        "    print('answered' if s.recv(100) else 'closed')\n"
        "except (ConnectionResetError, BrokenPipeError):\n"
        "    print('closed')\n"
    )
    out = subprocess.run([_SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True,
                         timeout=60, user=65534, cwd="/", check=True)  # nobody
    assert out.stdout.strip() == "closed", out.stderr  # closed on, without an answer
    with _linked(server) as conn:  # this user is still served
        conn.sendall(chain_frame(1, [b"input", b"mine"]))
        assert answer_of(1, _call_result(conn)) == b"ran"
    assert seen == [b"mine"]


def test_a_frame_longer_than_the_limit_is_refused_as_out_of_step() -> None:
    with pytest.raises(EOFError, match="out of step"):
        _read_frame(_Bytes(struct.pack("!BI", 0, 2**31)))


# --- the driver's side, with stand-in actor handles ---------------------------------------------
class _Remote:
    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def remote(self, *args: Any) -> Any:
        async def call() -> Any:
            return self.fn(*args)

        return call()


class _Actor:
    """Answers ``hot_listen`` with a server of its own (on this node or a given one), ``node``,
    ``ping`` and ``hot_step`` (as a call)."""

    def __init__(self, step: Any, node: str | None = None, hang_up: bool = False) -> None:
        import ray

        self.node_id = node or ray.get_runtime_context().get_node_id()
        if hang_up:  # a listener that closes every connection at once
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(address := f"\0tradewind-test-{id(self)}")
            listener.listen(8)
            threading.Thread(target=lambda: [listener.accept()[0].close() for _ in iter(int, 1)],
                             daemon=True).start()
        else:
            address = HotServer(step, "fake").address
        self.hot_listen = _Remote(lambda: (self.node_id, address))
        self.node = _Remote(lambda: self.node_id)
        self.ping = _Remote(lambda: 1.0)
        self.hot_step = _Remote(step)


_INPUT = HotInput(0, [], 0, {}, [], 0)


def _chain(calls: list[str], *, offset: int) -> tuple[Any, Any, Any, Any]:
    """A book, strategy, risk and gateway step that record their calls in ``calls``."""
    answer = encode(HotAnswer([], None))

    def book(data: bytes) -> bytes:
        calls.append("book")
        return encode_views([])

    def host(data: bytes, views: bytes) -> bytes:
        calls.append(f"host({len(views_of(views))})")
        return answer

    def risk(data: bytes, views: bytes, *answers: bytes) -> bytes:
        calls.append(f"risk({len(answers)})")
        return encode([])

    def gateway(data: bytes, out: bytes, *answers: bytes) -> bytes:
        calls.append(f"gateway({len(answers)})")
        return encode_result(answers, out, encode([]), offset)

    return book, host, risk, gateway
_PING_BYTES = encode(HotInput(-1, [], 0, {}, [], 0))


@pytest.mark.usefixtures("ray_local")
def test_a_step_runs_books_then_strategies_then_risk_then_the_gateway() -> None:
    calls: list[str] = []
    book, host, risk, gateway = _chain(calls, offset=7)
    hot = SocketPath({"a": _Actor(host), "b": _Actor(host)}, _Actor(risk), _Actor(gateway),
                     books={"X": _Actor(book)})
    result = asyncio.run(_step(hot))
    hot.close()
    assert calls[-5:] == ["book", "host(0)", "host(0)", "risk(2)", "gateway(2)"]
    assert result is not None and result.offset == 7 and result.out == []
    assert hot.connections == 1 and len(hot.warmup_s) == 1 and hot.failures == []


@pytest.mark.usefixtures("ray_local")
def test_a_step_that_keeps_failing_gives_up_naming_the_failures() -> None:
    """Risk's socket ends on every step (as a process that dies each time would): the path
    connects again, retries the step, and after ``_TRIES`` connections ends the session."""

    answer = encode(HotAnswer([], None))
    risk = _Actor(lambda *a: b"", hang_up=True)
    hot = SocketPath({"a": _Actor(lambda *a: answer)}, risk, _Actor(lambda *a: b""),
                     books={})
    with pytest.raises(RuntimeError, match=f"failed {_TRIES} times on one step") as info:
        asyncio.run(_step(hot))
    hot.close()
    assert "an actor of the hot path is gone" in str(info.value)
    assert hot.connections == _TRIES and len(hot.failures) == _TRIES - 1


class _Restarting(_Actor):
    """Risk that dies on its first step, then answers ``hot_listen`` twice with the address
    of a process already gone (nothing listens: the connect is refused, as when an actor is
    killed again between its answer and the connect), then with its successor's server."""

    def __init__(self, step: Any) -> None:
        super().__init__(step, hang_up=True)
        first = self.hot_listen.fn()
        gone = (self.node_id, f"\0tradewind-test-gone-{id(self)}")
        live = (self.node_id, HotServer(step, "successor").address)
        answers = iter([first, gone, gone])
        self.hot_listen = _Remote(lambda: next(answers, live))


@pytest.mark.usefixtures("ray_local")
def test_a_connect_refused_while_recovering_waits_for_the_successor() -> None:
    """The soak's storm of SIGKILLs (one every 5 s) ended a feed's loop with
    ``ConnectionRefusedError`` from the reconnect itself: recovering now retries until the
    restart deadline, and the step goes through once every actor listens again."""
    calls: list[str] = []
    book, host, risk, gateway = _chain(calls, offset=3)
    hot = SocketPath({"a": _Actor(host)}, _Restarting(risk), _Actor(gateway),
                     books={"X": _Actor(book)}, restart_timeout_s=30)
    result = asyncio.run(_step(hot))
    hot.close()
    assert result is not None and result.offset == 3
    assert calls[-4:] == ["book", "host(0)", "risk(1)", "gateway(1)"]
    assert hot.connections == 2
    assert [f.split(":")[0] for f in hot.failures] == [
        "an actor of the hot path is gone", "reconnecting", "reconnecting"]
    assert "ConnectionRefusedError" in hot.failures[1]


@pytest.mark.usefixtures("ray_local")
def test_actors_on_another_node_are_refused_by_name() -> None:
    answer = encode(HotAnswer([], None))
    hot = SocketPath({"mm": _Actor(lambda *a: answer, node="f" * 56)},
                     _Actor(lambda *a: b""), _Actor(lambda *a: b""), books={})
    with pytest.raises(RuntimeError, match="needs the step's actors on the feed's node: "
                                           "mm runs on node ffffffffffff"):
        asyncio.run(hot.ready())
    assert hot.conns is None


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize(("node", "kind"), [(None, "sockets"), ("f" * 56, "calls")])
def test_auto_picks_sockets_on_one_node_and_calls_across_nodes(node: str | None,
                                                                kind: str) -> None:
    """``transport: auto``: the node's sockets when every actor of the chain shares the feed's
    node; Ray calls when one of them runs elsewhere (the sockets carrier would refuse it).
    Either way the chain runs in the same order and gives the same result."""
    calls: list[str] = []
    book, host, risk, gateway = _chain(calls, offset=3)

    async def run() -> Any:
        hot = await open_carrier("auto", {"a": _Actor(host, node=node), "b": _Actor(host)},
                                 _Actor(risk), _Actor(gateway), books={"X": _Actor(book)})
        try:
            return hot, await _step(hot)
        finally:
            hot.close()

    hot, result = asyncio.run(run())
    assert hot.transport == kind
    assert isinstance(hot, CallPath) == (kind == "calls")
    assert calls[-5:] == ["book", "host(0)", "host(0)", "risk(2)", "gateway(2)"]
    assert result is not None and result.offset == 3 and result.out == []
    assert hot.connections == 1 and len(hot.warmup_s) == 1 and hot.failures == []


@pytest.mark.usefixtures("ray_local")
def test_a_step_error_on_the_calls_carrier_is_the_sessions_error() -> None:
    """A step that raises in an actor is not retried as a transport failure: it ends the
    feed's step with that error, as on the sockets carrier."""
    def risk(data: bytes, views: bytes, *answers: bytes) -> bytes:
        if data != _PING_BYTES:
            raise ValueError("risk is broken")
        return encode([])

    answer = encode(HotAnswer([], None))
    hot = CallPath({"a": _Actor(lambda *a: answer)}, _Actor(risk),
                   _Actor(lambda data, out, *a: encode_result(a, out, encode([]), 0)), books={})
    with pytest.raises(ValueError, match="risk is broken"):
        asyncio.run(_step(hot))


async def _step(hot: Any) -> Any:
    await hot.submit(_INPUT)
    return await hot.collect()


class _Bytes:
    """A socket stand-in that reads from bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)

    def recv_into(self, view: memoryview) -> int:
        n = min(len(view), len(self.data))
        view[:n] = self.data[:n]
        self.data = self.data[n:]
        return n


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("transport", ["sockets", "calls"])
def test_each_book_gets_its_instruments_part_of_the_step(transport: str) -> None:
    """Both carriers route: a book actor gets its instrument's messages of the step (with
    their feed indices and the step's extent), not the other instruments'; the strategies
    get the whole step."""
    from actors.step import decode_book, decode_input
    from runtime.messages import QuoteTick

    def quote(seq: int, instrument: str) -> QuoteTick:
        return QuoteTick(seq=seq, ts_event=seq, ts_init=seq, instrument_id=instrument,
                         bid_price=1, bid_size=1, ask_price=2, ask_size=1)

    msgs = [quote(0, "X"), quote(1, "Y"), quote(2, "X"), quote(3, "Z")]
    taken: dict[str, list[Any]] = {"X": [], "Y": [], "host": []}
    answer = encode(HotAnswer([], None))

    def book(instrument: str) -> Any:
        def step(data: bytes) -> bytes:
            part = decode_book(data)
            if part.index >= 0:
                taken[instrument].append((part.index, part.count, part.at, part.msgs))
            return encode_views([])
        return step

    def host(data: bytes, views: bytes) -> bytes:
        inp = decode_input(data)
        if inp.index >= 0:
            taken["host"].append(inp.msgs)
        return answer

    gateway = _Actor(lambda data, out, *a: encode_result(a, out, encode([]), 0))
    args = ({"a": _Actor(host)}, _Actor(lambda *a: encode([])), gateway)
    books = {"X": _Actor(book("X")), "Y": _Actor(book("Y"))}
    hot = (SocketPath(*args, books=books) if transport == "sockets"
           else CallPath(*args, books=books))

    async def run() -> Any:
        await hot.submit(HotInput(10, msgs, 3, {}, [], 0))
        return await hot.collect()

    try:
        assert asyncio.run(run()) is not None
    finally:
        hot.close()
    assert taken["X"] == [(10, 4, [10, 12], [msgs[0], msgs[2]])]
    assert taken["Y"] == [(10, 4, [11], [msgs[1]])]
    assert taken["host"] == [msgs]
