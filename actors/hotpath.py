"""The real-time hot path as a Ray Compiled Graph: feed → strategies → risk → gateway.

Real time only (``feed.hot_path: compiled`` with ``lockstep: false``); lockstep keeps the
ordered calls of :mod:`actors.lockstep`, which reproduce the backtest step for step.

Each step of the feed's driver executes the graph once with a :class:`HotInput` (the market
data whose time has come, risk's answers for each strategy, the venue reports not delivered
yet, the data clock): every strategy actor runs its messages and timers and answers its
intents; the risk actor takes the reports, the market data and those intents in that order,
journals them and answers; the gateway applies the market data to its venue, journals and
sends the approved commands, and returns the reports that are due. Each stage journals what it
took before it answers, as the plain calls do, so a restarted actor comes back from its journal
and an input executed twice (after a crash) changes nothing: market data dedupes by feed
index, intents by client order id, reports by fill id, commands by the gateway's send journal.

Instead of one RPC per hop the graph moves its values through shared-memory channels; what
crosses a channel is msgpack bytes (msgspec), not pickled message objects (a pickled order
costs ~30 µs each way with Ray's serializer, its msgpack ~1 µs). The cost: each actor of the
graph and the driver wait for their input by polling (Ray 2.60's channels spin with
``sched_yield``), ~0.6 CPU each while idle. That is why it is an option and not the default.

Failures: an actor of the graph that dies ends its ``watch()`` call; a thread of the driver
sees that and tears the graph down, which ends the driver's wait for the step's result; the
driver waits until every actor answers again (Ray restarts them from their journals), closes
the broken graph's channels on each (Ray retries the graph's loop on a restarted actor, where
it would wait for ever), compiles a new graph and executes the same input again. A graph whose
owner (the feed actor) died without a teardown would hold its actors' graph thread for ever:
each actor keeps its graph tasks (``Child.hold_graph``) and a new owner stops them first
(``Child.release_graph``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import msgspec

from runtime.messages import AnyMessage, Message

__all__ = ["CompiledPath", "HotAnswer", "HotInput", "HotResult", "decode_answer",
           "decode_input", "decode_messages", "encode", "encode_result"]


class HotInput(msgspec.Struct, array_like=True, frozen=True):
    """One execution of the graph (see the module docstring)."""

    index: int  # feed index of msgs[0] (the next index when msgs is empty); -1: a no-op
    msgs: list[AnyMessage]  # market data in feed order
    now_ns: int  # the data clock: timers due by then fire
    answers: dict[str, list[AnyMessage]]  # risk's earlier answers, per strategy
    reports: list[AnyMessage]  # venue reports the strategies and risk have not seen
    reports_seen: int  # how many reports the driver has taken from the gateway


class HotAnswer(msgspec.Struct, array_like=True, frozen=True):
    """A strategy actor's answer: its intents and its next timer (ns), or None."""

    intents: list[AnyMessage]
    timer: int | None


_ENCODER = msgspec.msgpack.Encoder()
_INPUT = msgspec.msgpack.Decoder(HotInput)
_MESSAGES = msgspec.msgpack.Decoder(list[AnyMessage])
_ANSWER = msgspec.msgpack.Decoder(HotAnswer)
_RESULT = msgspec.msgpack.Decoder(tuple[list[bytes], bytes, bytes, int])


def encode_result(answers: Sequence[bytes], out: bytes, reports: bytes, offset: int) -> bytes:
    """The graph's one output (the gateway's): the strategies' answers and risk's outputs as
    they came, and the reports from ``offset`` on, each still encoded."""
    return _ENCODER.encode((list(answers), out, reports, offset))


def encode(value: HotInput | HotAnswer | Sequence[Message]) -> bytes:
    return _ENCODER.encode(value)


def decode_input(data: bytes) -> HotInput:
    return _INPUT.decode(data)


def decode_messages(data: bytes) -> list[Any]:
    return _MESSAGES.decode(data)


def decode_answer(data: bytes) -> HotAnswer:
    return _ANSWER.decode(data)


_PING = encode(HotInput(-1, [], 0, {}, [], 0))  # a no-op step (:meth:`CompiledPath._warm`)


class HotResult(msgspec.Struct, frozen=True):
    """What one step gave back: each strategy's answer, risk's outputs, and the reports the
    gateway holds from ``offset`` on (the input's ``reports_seen``)."""

    answers: list[HotAnswer]
    out: list[Any]
    reports: list[Any]
    offset: int


class CompiledPath:
    """The hot path's graph over the session's actors, compiled at the start and again after
    a failure (see the module docstring).

    :meth:`submit` executes a step, :meth:`collect` waits for its result (spinning: the
    fast way; never with a timeout, after which Ray 2.60's channels can lose their place),
    one step in flight at a time (``depth``: two or four gave no lower latency here, the
    stages contending for the same two cores). A thread watches the actors' death watches and
    tears a graph down when one of them dies, which ends the wait."""

    depth = 1

    def __init__(self, hosts: dict[str, Any], risk: Any, gateway: Any, *,
                 restart_timeout_s: float = 60.0) -> None:
        self.hosts, self.risk, self.gateway = hosts, risk, gateway
        self.restart_timeout_s = restart_timeout_s
        self.graph: Any = None
        self.broken: str | None = None  # why the watcher tore the live graph down
        self._stop: threading.Event | None = None
        self.inflight: deque[tuple[bytes, Any]] = deque()  # (input, its ref) in order
        self.compiles = 0  # graphs built (1 + rebuilds after failures)
        self.failures: list[str] = []  # what broke each graph, for the session's status
        self.warmup_s: list[float] = []  # each graph's warm-up (:meth:`_warm`)

    def actors(self) -> list[Any]:
        return [*self.hosts.values(), self.risk, self.gateway]

    async def ready(self) -> None:
        """Compile now (~0.2–0.4 s) if no graph is live, so no tick waits for it."""
        if self.graph is None:
            await self._compile()

    async def submit(self, inp: HotInput) -> None:
        """Execute a step (its result: :meth:`collect`)."""
        data = encode(inp)
        await self.ready()
        try:
            ref = self.graph.execute(data)
        except Exception as exc:
            if not _is_ray_failure(exc):
                raise
            self.inflight.append((data, None))
            await self._recover(_describe(exc))
            return
        self.inflight.append((data, ref))

    async def collect(self) -> HotResult | None:
        """The oldest step's result (waiting for it), or None if nothing is in flight."""
        tries = 0
        while self.inflight:
            _, ref = self.inflight[0]
            try:
                data = self._result(ref)
            except Exception as exc:
                if not isinstance(exc, _Broken) and not _is_ray_failure(exc):
                    raise
                tries += 1
                if tries >= _TRIES:
                    raise RuntimeError(f"the hot path failed {_TRIES} times on one step: "
                                       f"{'; '.join(self.failures[-_TRIES:])}") from exc
                await self._recover(str(exc) if isinstance(exc, _Broken) else _describe(exc))
                continue
            self.inflight.popleft()
            answers, out, reports, offset = _RESULT.decode(data)
            return HotResult([decode_answer(a) for a in answers], decode_messages(out),
                             decode_messages(reports), offset)
        return None

    def close(self) -> None:
        """Tear the graph down (the end of the session, or the feed stopping)."""
        self._stop_watching()
        graph, self.graph = self.graph, None
        if graph is not None:
            graph.teardown()

    # --- internals -----------------------------------------------------------------------------
    async def _compile(self) -> None:
        from ray.dag import InputNode

        actors = self.actors()
        # a graph left behind by an owner that died holds the actors' graph thread: stop it
        await asyncio.gather(*(a.release_graph.remote() for a in actors))
        with InputNode() as inp:
            answers = [h.hot_step.bind(inp) for h in self.hosts.values()]
            out = self.risk.hot_step.bind(inp, *answers)
            # one output channel: reading several is not atomic under a timeout
            dag = self.gateway.hot_step.bind(inp, out, *answers)
        graph = dag.experimental_compile(_max_inflight_executions=self.depth)
        tasks = graph.actor_to_executable_tasks  # what teardown would send each actor
        await asyncio.gather(*(a.hold_graph.remote(tasks[a]) for a in actors if a in tasks))
        self.graph, self.broken = graph, None
        self.compiles += 1
        watches = [a.watch.options(max_task_retries=0).remote() for a in actors]
        self._stop = threading.Event()
        threading.Thread(target=self._watch, args=(graph, watches, self._stop), daemon=True,
                         name="hot-path-watch").start()
        self.warmup_s.append(self._warm(graph))

    def _warm(self, graph: Any) -> float:
        """Execute no-op steps (``HotInput.index`` -1: every actor answers at once, taking
        nothing) until the graph runs smoothly; the seconds it took. The first ~100
        executions after a graph replaced another stall for up to ~150 ms now and then
        (measured: 15–45 of the first 100 over 2 ms, none after), which would land on the
        first ticks of the session or after a restart. At least ``WARM_MIN_S``, then until
        ``WARM_RUN`` executions in a row took under ``WARM_FAST_S`` each, at most
        ``WARM_MAX_S``."""
        start = time.perf_counter()
        run = 0
        while True:
            t = time.perf_counter()
            try:
                graph.execute(_PING).get(timeout=-1)
            except Exception as exc:  # an actor died: the first step fails and recovers
                if self.broken is None and not _is_ray_failure(exc):
                    raise
                return time.perf_counter() - start
            now = time.perf_counter()
            run = run + 1 if now - t < WARM_FAST_S else 0
            if now - start >= WARM_MAX_S or (now - start >= WARM_MIN_S and run >= WARM_RUN):
                return now - start

    def _result(self, ref: Any) -> bytes:
        """Wait for a step's result, spinning (no timeout: a read that times out can lose its
        place in Ray 2.60's channels). A dead actor ends the wait: the watcher thread tears
        the graph down, which closes the channel being read."""
        if ref is None:
            raise _Broken("the step could not be executed")
        try:
            return ref.get(timeout=-1)  # type: ignore[no-any-return]
        except Exception:
            if self.broken is not None:
                raise _Broken(self.broken) from None
            raise

    def _watch(self, graph: Any, watches: list[Any], stop: threading.Event) -> None:
        """Thread: until ``stop``, wait for an actor of ``graph`` to die; then tear the graph
        down (the feed's read of the step in flight fails at once)."""
        import ray

        while not stop.is_set():
            done, _ = ray.wait(watches, timeout=0.2)
            if done and not stop.is_set():
                self.broken = f"an actor of the hot path died: {_why(done[0])}"
                with contextlib.suppress(Exception):
                    graph.teardown()
                return

    def _stop_watching(self) -> None:
        stop, self._stop = self._stop, None
        if stop is not None:
            stop.set()

    async def _recover(self, why: str) -> None:
        """Tear down the broken graph, wait for every actor to answer again, compile anew
        and execute again, in order, every step whose result was not taken."""
        self.failures.append(why)
        self._stop_watching()
        graph, self.graph = self.graph, None
        old: dict[Any, Any] = {}
        if graph is not None:
            old = dict(graph.actor_to_executable_tasks)
            with contextlib.suppress(Exception):  # a dead actor's part cannot be torn down
                graph.teardown()
        deadline = time.monotonic() + self.restart_timeout_s
        for actor in self.actors():
            # Ray restarts a dead actor (max_restarts=-1) and retries the ping meanwhile
            await asyncio.wait_for(actor.ping.remote(), max(deadline - time.monotonic(), 0.1))
        # the broken graph's loops, wherever they still run (or Ray restarts them), stop
        await asyncio.gather(*(a.release_graph.remote(old[a]) for a in self.actors()
                               if a in old))
        await self._compile()
        steps = [data for data, _ in self.inflight]
        self.inflight.clear()
        for data in steps:  # the actors dedupe what they had taken already
            self.inflight.append((data, self.graph.execute(data)))


WARM_MIN_S, WARM_MAX_S, WARM_FAST_S, WARM_RUN = 0.15, 1.0, 0.002, 50


def _describe(exc: BaseException) -> str:
    """One line naming a Ray failure (a task error by its cause, without Ray's colours)."""
    from ray.exceptions import RayTaskError

    cause = exc.cause if isinstance(exc, RayTaskError) and exc.cause is not None else exc
    text = re.sub(r"\x1b\[[0-9;]*m", "", (str(cause).splitlines() or [""])[-1])
    return f"{type(cause).__name__}: {text}"[:200]


_TRIES = 5  # graphs built for one step before its failure is the session's


class _Broken(Exception):
    """The graph cannot finish this step (an actor died)."""


def _why(watch: Any) -> str:
    import ray

    try:
        ray.get(watch, timeout=0)
    except Exception as exc:
        return type(exc).__name__
    return "its watch returned"


def _is_ray_failure(exc: BaseException) -> bool:
    """An actor or channel failure (rebuild and retry), not an error of the step itself."""
    from ray.exceptions import RayActorError, RayChannelError, RaySystemError, RayTaskError

    failures = (RayActorError, RayChannelError, RaySystemError)
    if isinstance(exc, RayTaskError):
        return isinstance(exc.cause, failures)
    return isinstance(exc, failures)
