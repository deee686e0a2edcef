"""The supervisor actor: Erlang/OTP supervision of the session's actors, carried out here.

A supervisor owns its children: it starts them itself, in the order of its
:class:`~runtime.supervision.SupervisorSpec`, as named Ray actors (``<prefix><child>``, e.g.
``tw.<session>.risk``) with Ray's own restarts off (``max_restarts=0``), each started only
once the one before it answers. Callers reach a child by its name (:class:`actors.names.Named`),
so a restarted child is found again. A child that is a supervisor itself starts its own subtree
(:attr:`ChildSpec.supervisor`); Ray ends an actor whose owner dies, so a subtree never outlives
its supervisor.

* **Exits**: each child's ``watch()`` call ends with the child: by raising (``ActorDiedError``:
  ``crash``), by raising an error of its own (the child reports that it failed, e.g. the
  feed's loop: a ``crash`` too, with the error as its ``why``, and the child is stopped), or
  by returning (the child finished its work: ``normal``); a child without ``watch`` is polled
  with ``ping``. A heartbeat (``ping``) unanswered within ``hang_timeout_s`` is a ``hang``.
  Each decision is an event naming the child's ``why`` when there is one; an escalation's
  reason carries it up the tree.
* **Decision**: :func:`runtime.supervision.decide` (pure, property-tested), carried out in
  order: stop (reverse start order; each child gets ``shutdown_timeout_s`` to finish what it is
  doing after its ``before_stop`` hooks, then it is killed), drop temporary children, wait the
  backoff, start (start order; ``on_start`` and then ``after_restart`` hooks once it answers).
  A child whose start fails has crashed, and counts.
* **Escalation**: a nested supervisor stops its children, tells its parent why, and is stopped
  by it: to the parent that is an abnormal exit of that child. The root has no parent: it
  halts trading through the ``halt(reason)`` of its ``halt_via`` actor, the feed (open orders
  cancelled, nothing new sent; a halt that fails is an event, ``halt failed``, and is tried
  again until it lands, ``halted``), and from then on only brings crashed children back, one
  by one and uncounted, so the halted session can still be inspected, flattened and stopped.
* **Stop**: :meth:`SupervisorActor.stop` stops every child in reverse start order, subtrees
  first stopping their own children.
* **Retired names**: a child stopped for good (the root stopping the tree, a child not
  restarted or removed) has its name retired (:func:`actors.names.retire`), so a caller
  waiting for a successor by that name fails at once instead of after ``restart_timeout_s``;
  starting a child under the name (and a root starting its tree) revives it.
* **The root** is the one actor Ray restarts (the session starts it with ``max_restarts=-1``):
  its children die with it, and the new root starts the whole tree again (its constructor
  starts the children; ``start()`` only waits for that).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import ActorAlreadyExistsError, RayActorError, RayError, RayTaskError

from actors.base import actor
from actors.names import Named, is_actor_gone, retire, revive
from runtime.errors import ChildStartError
from runtime.supervision import (
    ChildExited,
    ChildSpec,
    Escalate,
    ExitReason,
    NoRestart,
    Restart,
    SupervisorSpec,
    SupervisorState,
    decide,
    initial_state,
)

__all__ = ["SupervisorActor", "actor_name"]

HALT_RETRY_S, HALT_RETRY_MAX_S = 0.5, 10.0  # the root's halt, tried again until it lands


def actor_name(prefix: str, child_id: str) -> str:
    """The Ray name of a child: ``strategy:mm`` under ``tw.s1.`` is ``tw.s1.strategy.mm``."""
    return prefix + child_id.replace(":", ".")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _now_ns() -> int:
    return time.monotonic_ns()


def _why(why: str | None) -> dict[str, str]:
    return {"why": why} if why else {}


def _descendants(spec: SupervisorSpec, prefix: str) -> list[str]:
    """The Ray names of every child of the tree, subtrees' children included."""
    out: list[str] = []
    for child in spec.children:
        out.append(actor_name(prefix, child.child_id))
        if child.supervisor is not None:
            out.extend(_descendants(child.supervisor, prefix))
    return out


@dataclass
class _Child:
    spec: ChildSpec
    handle: Any = None
    generation: int = 0  # one per start: exits of an older start are not this child's
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@actor(num_cpus=0, max_restarts=0)
class SupervisorActor:
    """Starts and supervises the children of ``spec`` (see the module docstring)."""

    def __init__(self, spec: SupervisorSpec, *, prefix: str, namespace: str | None = None,
                 child_id: str = "supervisor", parent: str | None = None,
                 halt_via: str | None = None, heartbeat_s: float = 1.0,
                 hang_timeout_s: float = 10.0) -> None:
        self.spec, self.prefix, self.namespace = spec, prefix, namespace
        self.child_id, self.parent, self.halt_via = child_id, parent, halt_via
        self.heartbeat_s, self.hang_timeout_s = heartbeat_s, hang_timeout_s
        self.children = {c.child_id: _Child(c) for c in spec.children}
        self.state: SupervisorState = initial_state(spec, now_ns=_now_ns())
        self.events: list[dict[str, Any]] = []
        self.stops: list[dict[str, Any]] = []
        self.starts_failed: list[dict[str, Any]] = []
        self.escalation: str | None = None
        self.child_reasons: dict[str, str] = {}  # why a nested supervisor escalated
        self.stopping = False
        self.lock = asyncio.Lock()
        self.background: set[asyncio.Task[None]] = set()
        self.heartbeat: asyncio.Task[None] | None = None
        if parent is None:  # a new tree: names retired by an earlier run hold again
            for name in _descendants(spec, prefix):
                revive(name, namespace)
        self.started = asyncio.get_running_loop().create_task(self._start_all())

    # --- the tree ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Returns once every child was started (in order) and answers."""
        await asyncio.shield(self.started)

    async def _start_all(self) -> None:
        """Every child in order; the first that fails to start stops those before it and
        fails the supervisor's start (:class:`ChildStartError`), as OTP's start does."""
        async with self.lock:
            for child_id in self.children:
                try:
                    await self._start(child_id, restarted=False, first=True)
                except BaseException:
                    self.stopping = True
                    for started in reversed(self.spec.child_ids()):
                        await self._stop(started)
                    raise
            self.state = initial_state(self.spec, now_ns=_now_ns())
        self.heartbeat = asyncio.ensure_future(self._heartbeat())

    async def stop(self) -> list[dict[str, Any]]:
        """Stop every child, reverse start order; how each stopped (``shutdown``/``killed``)."""
        self.stopping = True
        if self.heartbeat is not None:
            self.heartbeat.cancel()
        if self.parent is None:  # the tree stops for good (a subtree's stop may be a restart)
            for name in _descendants(self.spec, self.prefix):
                retire(name, self.namespace, "the session's supervisor tree stopped")
        async with self.lock:
            for child_id in reversed(self.spec.child_ids()):
                await self._stop(child_id)
        return list(self.stops)

    async def status(self) -> dict[str, Any]:
        """Restarts and events of this supervisor and its subtrees (``supervisor`` names which
        supervisor decided each event), and whether this one escalated."""
        events = [e | {"supervisor": self.child_id} for e in self.events]
        subtrees: dict[str, Any] = {}
        for child_id, child in self.children.items():
            if child.spec.supervisor is None or child.handle is None:
                continue
            try:
                subtrees[child_id] = await asyncio.wait_for(child.handle.status.remote(), 30.0)
            except (TimeoutError, RayActorError):
                continue  # restarting: its counts start again with it
            events += subtrees[child_id]["events"]
        return {"restarts": len(events), "events": sorted(events, key=lambda e: e["t"]),
                "escalated": self.escalation is not None, "reason": self.escalation,
                "children": list(self.children), "subtrees": subtrees, "stops": self.stops,
                "starts_failed": self.starts_failed}

    async def child_escalated(self, child_id: str, reason: str) -> None:
        """A nested supervisor gave up: it is stopped, and its exit decided on here."""
        self.child_reasons[child_id] = reason
        child = self.children[child_id]
        self._spawn(self._exited(child_id, ExitReason.CRASH, child.generation))

    async def ping(self) -> float:
        return time.time()

    async def pid(self) -> int:
        return os.getpid()

    async def watch(self) -> None:
        await asyncio.Event().wait()

    # --- starting and stopping ----------------------------------------------------------------
    async def _start(self, child_id: str, *, restarted: bool, first: bool = False) -> None:
        child = self.children[child_id]
        child.generation += 1
        revive(actor_name(self.prefix, child_id), self.namespace)
        try:
            child.handle = await self._create(child.spec)
            await child.handle.ping.remote()
            if child.spec.supervisor is not None:
                await child.handle.start.remote()
            for call in child.spec.on_start + (child.spec.after_restart if restarted else ()):
                await getattr(child.handle, call.method).remote(*call.args, **call.kwargs)
        except RayError as exc:  # it died or failed starting: a crash, decided on as any other
            if first:
                raise ChildStartError(f"{self.child_id}: child {child_id!r} failed to start: "
                                      f"{_first_line(exc)}") from exc
            self.starts_failed.append({"child": child_id, "why": _first_line(exc),
                                       "t": time.time()})
            self._spawn(self._exited(child_id, ExitReason.CRASH, child.generation))
            return
        child.tasks = [asyncio.ensure_future(self._watch(child_id, child.generation))]

    async def _create(self, spec: ChildSpec) -> Any:
        name = actor_name(self.prefix, spec.child_id)
        options = {"name": name, "max_restarts": 0, "max_task_retries": 0, **spec.options}
        if self.namespace is not None:
            options["namespace"] = self.namespace
        if spec.supervisor is not None:
            cls: Any = SupervisorActor
            args: tuple[Any, ...] = (spec.supervisor,)
            kwargs = {"prefix": self.prefix, "namespace": self.namespace,
                      "child_id": spec.child_id, "parent": actor_name(self.prefix, self.child_id),
                      "heartbeat_s": self.heartbeat_s, "hang_timeout_s": self.hang_timeout_s}
        elif spec.factory is not None:
            module, _, attr = spec.factory.partition(":")
            cls, args, kwargs = getattr(importlib.import_module(module), attr), spec.args, \
                spec.kwargs
        else:
            raise ValueError(f"child {spec.child_id!r} has neither a factory nor a supervisor")
        deadline = time.monotonic() + 60.0
        while True:
            try:
                return cls.options(**options).remote(*args, **kwargs)
            except ActorAlreadyExistsError:  # the previous holder is still being cleaned up
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def _stop(self, child_id: str) -> None:
        """Stop the child: its ``before_stop`` hooks and the rest of its work within its
        ``shutdown_timeout_s``, killed after that; the name is free once this returns."""
        child = self.children[child_id]
        handle, child.handle = child.handle, None
        child.generation += 1  # its exit is the supervisor's own
        for task in child.tasks:
            if task is not asyncio.current_task():  # the watch deciding on its own child
                task.cancel()
        if handle is None:
            return
        timeout_s = child.spec.shutdown_timeout_s
        start = time.monotonic()
        how = "shutdown"
        try:
            await asyncio.wait_for(self._wind_down(child.spec, handle), timeout_s)
        except TimeoutError:
            how = "killed"
        except RayActorError:
            how = "dead"
        ray.kill(handle, no_restart=True)  # frees its name now
        self.stops.append({"child": child_id, "how": how,
                           "s": round(time.monotonic() - start, 3), "t": time.time()})

    @staticmethod
    async def _wind_down(spec: ChildSpec, handle: Any) -> None:
        if spec.supervisor is not None:
            await handle.stop.remote()
        for call in spec.before_stop:
            await getattr(handle, call.method).remote(*call.args, **call.kwargs)
        try:
            await handle.__ray_terminate__.remote()  # after the calls queued before it
        except RayActorError:
            return  # it exited

    # --- watching ------------------------------------------------------------------------------
    async def _watch(self, child_id: str, generation: int) -> None:
        handle = self.children[child_id].handle
        why = None
        try:
            if hasattr(handle, "watch"):
                reason = await handle.watch.remote()
                exit_reason = ExitReason(reason or "normal")
            else:
                while True:
                    await handle.ping.remote()
                    await asyncio.sleep(0.2)
        except RayTaskError as exc:  # the child reports its own failure: a crash, with why
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            exit_reason, why = ExitReason.CRASH, f"{type(cause).__name__}: {_first_line(cause)}"
        except RayActorError as exc:
            if not is_actor_gone(exc):
                raise
            exit_reason = ExitReason.CRASH
        await self._exited(child_id, exit_reason, generation, why=why)

    async def _heartbeat(self) -> None:
        while not self.stopping:
            await asyncio.sleep(self.heartbeat_s)
            for child_id, child in list(self.children.items()):
                handle, generation = child.handle, child.generation
                if handle is None:
                    continue
                try:
                    await asyncio.wait_for(handle.ping.remote(), self.hang_timeout_s)
                except TimeoutError:
                    await self._exited(child_id, ExitReason.HANG, generation)
                except RayActorError:
                    continue  # dead: the watch reports it

    # --- deciding ------------------------------------------------------------------------------
    async def _exited(self, child_id: str, reason: ExitReason, generation: int, *,
                      why: str | None = None) -> None:
        async with self.lock:
            child = self.children[child_id]
            if self.stopping or generation != child.generation:
                return  # stopped or restarted by the supervisor itself meanwhile
            if self.escalation is not None:
                if self.parent is not None:
                    return  # given up: the parent stops this supervisor
                self._log(child_id, reason, "after escalation", **_why(why))
                await self._stop(child_id)
                await asyncio.sleep(self.spec.backoff_max_s)
                await self._start(child_id, restarted=True)
                return
            if child_id not in self.state.running:
                return
            decision, self.state = decide(self.spec, self.state, ChildExited(
                child_id=child_id, reason=reason, now_ns=_now_ns()))
            await self._stop(child_id)  # dead already, or hung: its name is freed
            # a subtree's own escalation, or the child's own error
            given_up = self.child_reasons.pop(child_id, None) or why
            if isinstance(decision, Escalate):
                await self._escalate(child_id, reason, decision, given_up)
            elif isinstance(decision, NoRestart):
                retire(actor_name(self.prefix, child_id), self.namespace,
                       f"not restarted: {given_up or decision.why}")
                self._log(child_id, reason, "no restart", why=given_up or decision.why)
            else:
                await self._restart(child_id, reason, decision, given_up)

    async def _restart(self, child_id: str, reason: ExitReason, decision: Restart,
                       given_up: str | None) -> None:
        self._log(child_id, reason, "restart", stop=list(decision.stop),
                  start=list(decision.start), remove=list(decision.remove),
                  delay_s=decision.delay_s, **({"why": given_up} if given_up else {}))
        for other in decision.stop:
            await self._stop(other)
        for removed in decision.remove:
            await self._stop(removed)
            retire(actor_name(self.prefix, removed), self.namespace,
                   f"a temporary child removed by the restart of {child_id!r}")
        if decision.delay_ns:
            await asyncio.sleep(decision.delay_s)
        for start in decision.start:
            await self._start(start, restarted=True)

    async def _escalate(self, child_id: str, reason: ExitReason, decision: Escalate,
                        given_up: str | None) -> None:
        why = decision.reason + (f"; {child_id}: {given_up}" if given_up else "")
        self.escalation = why
        self._log(child_id, reason, "escalate", why=why)
        if self.parent is not None:  # give up: the parent decides
            for other in decision.stop:
                await self._stop(other)
            self._spawn(self._tell_parent(why))
            return
        await self._start(child_id, restarted=True)  # the root: halted, but reachable
        if self.halt_via is not None:
            self._spawn(self._halt(f"supervisor escalation: {why}"))

    async def _halt(self, reason: str) -> None:
        """Halt trading through ``halt_via`` until it answers: a failed halt (the feed
        raising, or gone beyond its restart timeout) is an event and is tried again, never
        dropped, while the tree runs."""
        assert self.halt_via is not None
        feed = Named(actor_name(self.prefix, self.halt_via), self.namespace)
        delay_s = HALT_RETRY_S
        while not self.stopping:
            try:
                await feed.halt.remote(reason)
            except Exception as exc:  # any failure: logged, tried again
                cause = getattr(exc, "cause", None) or exc  # a RayTaskError: the feed's own
                self._log(self.halt_via, "escalation", "halt failed",
                          why=f"{type(cause).__name__}: {_first_line(cause)}", retry_s=delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, HALT_RETRY_MAX_S)
                continue
            self._log(self.halt_via, "escalation", "halted", why=reason)
            return

    async def _tell_parent(self, why: str) -> None:
        assert self.parent is not None
        await Named(self.parent, self.namespace).child_escalated.remote(self.child_id, why)

    def _log(self, child_id: str, reason: ExitReason | str, action: str, **extra: Any) -> None:
        self.events.append({"child": child_id, "reason": str(reason), "action": action,
                            "t": time.time(), **extra})

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


