"""The hot path's socket transport (``actors.sockpath``) on its own: frames, a step's error,
a peer that goes away, a stream out of step, retries that give up, and actors on another
node. The sessions that run over it (and SIGKILL its actors) are in test_hot_path.py."""

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

from actors.hotpath import HotAnswer, HotInput, encode, encode_result
from actors.sockpath import (
    _HEAD,
    _TRIES,
    HotServer,
    HotStepError,
    SocketPath,
    _call_result,
    _pack_args,
    _read_frame,
    _unpack_args,
)


def _connect(server: HotServer) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(server.address)
    conn.settimeout(10)
    return conn


def test_arguments_round_trip_through_a_frame() -> None:
    args = [b"", b"x" * 70_000, bytes(range(256))]
    kind, body = _read_frame(_Bytes(_pack_args(args)))
    assert kind == 0 and _unpack_args(body) == args


def test_a_server_answers_each_frame_with_its_step_and_reports_a_steps_error() -> None:
    seen: list[tuple[bytes, ...]] = []

    def step(*args: bytes) -> bytes:
        seen.append(args)
        if args[0] == b"boom":
            raise ValueError("a bad step")
        return b"|".join(args)

    server = HotServer(step, "t")
    assert server.address.startswith("\0tradewind-hot-t-")  # abstract: no file left behind
    with _connect(server) as conn:
        conn.sendall(_pack_args([b"a", b"b"]))
        assert _call_result(conn) == b"a|b"
        conn.sendall(_pack_args([b"boom"]))
        with pytest.raises(HotStepError, match="ValueError: a bad step"):
            _call_result(conn)
        conn.sendall(_pack_args([b"c"]))  # the connection still serves after a step's error
        assert _call_result(conn) == b"c"
    assert seen == [(b"a", b"b"), (b"boom",), (b"c",)]


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
    with _connect(server) as conn:  # this user is still served
        conn.sendall(_pack_args([b"mine"]))
        assert _call_result(conn) == b"ran"
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
    """Answers ``hot_listen`` with a server of its own (on this node or a given one) and
    ``ping``."""

    def __init__(self, step: Any, node: str | None = None, hang_up: bool = False) -> None:
        import ray

        self.node = node or ray.get_runtime_context().get_node_id()
        if hang_up:  # a listener that closes every connection at once
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(address := f"\0tradewind-test-{id(self)}")
            listener.listen(8)
            threading.Thread(target=lambda: [listener.accept()[0].close() for _ in iter(int, 1)],
                             daemon=True).start()
        else:
            address = HotServer(step, "fake").address
        self.hot_listen = _Remote(lambda: (self.node, address))
        self.ping = _Remote(lambda: 1.0)


_INPUT = HotInput(0, [], 0, {}, [], 0)


@pytest.mark.usefixtures("ray_local")
def test_a_step_runs_strategies_then_risk_then_the_gateway() -> None:
    calls: list[str] = []
    answer = encode(HotAnswer([], None))

    def host(data: bytes) -> bytes:
        calls.append("host")
        return answer

    def risk(data: bytes, *answers: bytes) -> bytes:
        calls.append(f"risk({len(answers)})")
        return encode([])

    def gateway(data: bytes, out: bytes, *answers: bytes) -> bytes:
        calls.append(f"gateway({len(answers)})")
        return encode_result(answers, out, encode([]), 7)

    hot = SocketPath({"a": _Actor(host), "b": _Actor(host)}, _Actor(risk), _Actor(gateway))
    result = asyncio.run(_step(hot))
    hot.close()
    assert calls[-4:] == ["host", "host", "risk(2)", "gateway(2)"]
    assert result is not None and result.offset == 7 and result.out == []
    assert hot.compiles == 1 and len(hot.warmup_s) == 1 and hot.failures == []


@pytest.mark.usefixtures("ray_local")
def test_a_step_that_keeps_failing_gives_up_naming_the_failures() -> None:
    """Risk's socket ends on every step (as a process that dies each time would): the path
    connects again, retries the step, and after ``_TRIES`` connections ends the session."""

    answer = encode(HotAnswer([], None))
    risk = _Actor(lambda *a: b"", hang_up=True)
    hot = SocketPath({"a": _Actor(lambda data: answer)}, risk, _Actor(lambda *a: b""))
    with pytest.raises(RuntimeError, match=f"failed {_TRIES} times on one step") as info:
        asyncio.run(_step(hot))
    hot.close()
    assert "an actor of the hot path is gone" in str(info.value)
    assert hot.compiles == _TRIES and len(hot.failures) == _TRIES - 1


@pytest.mark.usefixtures("ray_local")
def test_actors_on_another_node_are_refused_by_name() -> None:
    answer = encode(HotAnswer([], None))
    hot = SocketPath({"mm": _Actor(lambda data: answer, node="f" * 56)},
                     _Actor(lambda *a: b""), _Actor(lambda *a: b""))
    with pytest.raises(RuntimeError, match="needs the hot path's actors on the feed's node: "
                                           "mm runs on node ffffffffffff"):
        asyncio.run(hot.ready())
    assert hot.conns is None


async def _step(hot: SocketPath) -> Any:
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
