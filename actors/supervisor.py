"""The supervisor actor: Erlang/OTP restart policy over the session's actors.

Children are Ray actors started with ``max_restarts=-1``: when a child's process dies, Ray runs
its constructor again (which restores it from its journal) and keeps its handle valid, so
callers' retried calls reach the new process. The supervisor's job is the policy around that:

* **Death**: it awaits a never-returning ``watch()`` call on each child. ``ActorUnavailableError``
  or ``ActorDiedError`` ends the call: the child exited (``crash``).
* **Hangs**: a heartbeat (``ping()``) every ``heartbeat_s``; no answer within ``hang_timeout_s``
  is a ``hang``: the child is killed so that Ray restarts it.
* **Decision**: :func:`runtime.supervision.decide` (pure, property-tested). ``one_for_all`` and
  ``rest_for_one`` kill the other children of the group (Ray restarts them too); the backoff
  delay holds the child's ``after_restart`` hook (the feed resumes only then).
* **Escalation**: more restarts than ``intensity`` within ``period_s`` halts trading through the
  feed actor (open orders cancelled, nothing new sent), with the reason recorded; restarts are
  no longer counted after that (Ray still brings processes back, trading stays halted).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from actors.base import actor
from runtime.supervision import (
    ChildExited,
    Escalate,
    ExitReason,
    NoRestart,
    Restart,
    SupervisorSpec,
    decide,
    initial_state,
)

__all__ = ["SupervisorActor"]


def _now_ns() -> int:
    return time.monotonic_ns()


@actor(num_cpus=0, max_restarts=0)
class SupervisorActor:
    """Watches ``children`` (id -> handle, in start order) under ``spec``."""

    def __init__(self, spec: SupervisorSpec, children: dict[str, Any], *, feed: Any,
                 heartbeat_s: float = 1.0, hang_timeout_s: float = 10.0,
                 reconcile_every_s: float | None = None, reconcile_act: bool = False) -> None:
        self.reconcile_every_s, self.reconcile_act = reconcile_every_s, reconcile_act
        self.spec, self.children, self.feed = spec, dict(children), feed
        self.heartbeat_s, self.hang_timeout_s = heartbeat_s, hang_timeout_s
        self.state = initial_state(spec, now_ns=_now_ns())
        self.restarts: list[dict[str, Any]] = []
        self.escalation: str | None = None
        self.expected: set[str] = set()  # children the supervisor itself stopped
        self.known: dict[str, int | None] = {}  # incarnations accounted for, per child
        self.tasks: list[asyncio.Task[None]] = []
        self.background: set[asyncio.Task[None]] = set()
        self.lock = asyncio.Lock()

    async def start(self) -> None:
        if self.tasks:
            return
        for child_id in self.children:
            self.known[child_id] = await self._incarnation(child_id)
        self.tasks = [asyncio.ensure_future(self._watch(c)) for c in self.children]
        self.tasks.append(asyncio.ensure_future(self._heartbeat()))

    async def status(self) -> dict[str, Any]:
        return {"restarts": len(self.restarts), "events": list(self.restarts),
                "escalated": self.escalation is not None, "reason": self.escalation,
                "children": list(self.children)}

    async def ping(self) -> float:
        return time.time()

    # --- watching --------------------------------------------------------------------------
    async def _wait_exit(self, handle: Any) -> None:
        """Returns only by raising the child's death (a ``watch()`` call, else a ping poll)."""
        try:
            watch = handle.watch
        except AttributeError:
            watch = None
        if watch is not None:
            await watch.options(max_task_retries=0).remote()
        while True:
            await handle.ping.options(max_task_retries=0).remote()
            await asyncio.sleep(0.2)

    async def _watch(self, child_id: str) -> None:
        handle = self.children[child_id]
        while True:
            try:
                await self._wait_exit(handle)
            except (ActorUnavailableError, ActorDiedError, RayActorError) as exc:
                if isinstance(exc, ActorDiedError) and not await self._answers(child_id, 30.0):
                    return  # gone for good
                await self._answers(child_id, 60.0)
                if child_id in self.expected:
                    self.expected.discard(child_id)
                    self._account(child_id)
                else:
                    now = await self._incarnation(child_id)
                    await self._exited(child_id, ExitReason.CRASH, upto=now)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            for child_id, handle in list(self.children.items()):
                if child_id in self.expected:
                    continue
                try:
                    await asyncio.wait_for(handle.ping.options(max_task_retries=0).remote(),
                                           self.hang_timeout_s)
                except TimeoutError:
                    await self._exited(child_id, ExitReason.HANG)
                    continue
                except RayActorError:
                    continue  # dead or restarting: the watch reports it
                await self._missed(child_id)

    async def _incarnation(self, child_id: str) -> int | None:
        try:
            method = self.children[child_id].incarnation
        except AttributeError:
            return None
        try:
            return int(await asyncio.wait_for(method.remote(), 5.0))
        except (TimeoutError, RayActorError):
            return None

    def _account(self, child_id: str) -> None:
        known = self.known.get(child_id)
        if known is not None:
            self.known[child_id] = known + 1

    async def _missed(self, child_id: str) -> None:
        """Restarts the watch did not see (a crash between two watches) count too."""
        known = self.known.get(child_id)
        if known is None or child_id in self.expected:
            return
        now = await self._incarnation(child_id)
        if now is not None and now > known:
            await self._exited(child_id, ExitReason.CRASH, upto=now)

    async def _answers(self, child_id: str, timeout_s: float) -> bool:
        """Wait until a restarted child answers a ping."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self.children[child_id].ping.remote(), 5.0)
                return True
            except (TimeoutError, RayActorError):
                await asyncio.sleep(0.05)
        return False

    # --- deciding --------------------------------------------------------------------------
    async def _exited(self, child_id: str, reason: ExitReason, *,
                      upto: int | None = None) -> None:
        """One exit (a hang; a crash of a child that does not count its starts), or the crashes
        that bring the child's accounted starts up to ``upto`` (none if another path already
        counted them: the watch and the heartbeat may both see the same restart)."""
        async with self.lock:
            known = self.known.get(child_id)
            n = 1 if upto is None or known is None else upto - known
            for _ in range(n):
                await self._exit_locked(child_id, reason)

    async def _exit_locked(self, child_id: str, reason: ExitReason) -> None:
        if reason is ExitReason.CRASH:
            self._account(child_id)  # a hung child is accounted when it is killed
        if self.state.escalated:
            self.restarts.append({"child": child_id, "reason": str(reason),
                                  "action": "after escalation", "t": time.time()})
            self._spawn(self._after_restart(child_id))
            return
        decision, self.state = decide(
            self.spec, self.state, ChildExited(child_id=child_id, reason=reason,
                                               now_ns=_now_ns()))
        await self._carry_out(child_id, reason, decision)

    async def _carry_out(self, child_id: str, reason: ExitReason,
                         decision: Restart | NoRestart | Escalate) -> None:
        entry = {"child": child_id, "reason": str(reason), "t": time.time()}
        if isinstance(decision, Escalate):
            self.escalation = decision.reason
            self.restarts.append(entry | {"action": "escalate", "why": decision.reason})
            await self.feed.halt.remote(f"supervisor escalation: {decision.reason}")
            self._spawn(self._after_restart(child_id))  # processes still come back
            return
        if isinstance(decision, NoRestart):
            self.restarts.append(entry | {"action": "no restart", "why": decision.why})
            for stop in decision.stop:
                self._kill(stop)
            return
        self.restarts.append(entry | {"action": "restart", "stop": list(decision.stop),
                                      "start": list(decision.start),
                                      "delay_s": decision.delay_s})
        killed: dict[str, int | None] = {}
        for stop in decision.stop:
            if stop != child_id or reason is ExitReason.HANG:
                killed[stop] = await self._incarnation(stop)
                self._kill(stop)
        self._spawn(self._after_restart(*decision.start, delay_s=decision.delay_s,
                                        killed=killed))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def _kill(self, child_id: str) -> None:
        self.expected.add(child_id)
        ray.kill(self.children[child_id], no_restart=False)

    async def _after_restart(self, *child_ids: str, delay_s: float = 0.0,
                             killed: dict[str, int | None] | None = None) -> None:
        """Each child's hook once it answers from its new process: a child the supervisor
        killed (``killed``: its incarnation then) may still answer from the old one for a
        while, so its hook waits for a later incarnation."""
        if delay_s:
            await asyncio.sleep(delay_s)
        for child_id in child_ids:
            before = (killed or {}).get(child_id)
            if await self._answers(child_id, 60.0) and await self._reborn(child_id, before):
                with contextlib.suppress(RayActorError):
                    await self._hook(child_id)

    async def _reborn(self, child_id: str, before: int | None, timeout_s: float = 60.0) -> bool:
        """True once the child runs an incarnation after ``before`` (at once if None)."""
        deadline = time.monotonic() + timeout_s
        while before is not None and time.monotonic() < deadline:
            now = await self._incarnation(child_id)
            if now is not None and now > before:
                return True
            await asyncio.sleep(0.05)
        return before is None

    async def _hook(self, child_id: str) -> None:
        handle = self.children[child_id]
        if child_id == "reconciler" and self.reconcile_every_s is not None:
            await handle.start.remote(self.children["gateway"], self.children["risk"],
                                      self.reconcile_every_s, act=self.reconcile_act)
            return
        try:
            hook = handle.after_restart
        except AttributeError:
            return
        await hook.remote()
