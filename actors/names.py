"""Reaching a supervised actor by its name, across its restarts.

A supervisor starts its children as named Ray actors (``tw.<session>.<child>``) with Ray's own
restarts off: when a child dies, its handle is dead for good and the supervisor starts a new
actor under the same name. A :class:`Named` holds the name instead of a handle:

* **In an actor's event loop** (the feed's driver, the carriers, the reconciler, a book
  pushing to strategies) ``named.method.remote(...)`` submits the call at once and returns an
  awaitable task: when the actor dies before answering (``ActorDiedError``), the task looks the
  name up again, waits until a *new* actor holds it, and sends the same call again. Every call
  between the session's actors may be sent twice: receivers dedupe by feed index, client
  order id and fill id. An error raised by the method itself is never retried.
* **Outside an event loop** (the session's process, tests, the command line)
  ``named.method.remote(...)`` returns a plain ``ObjectRef`` of the actor that holds the name
  now (looked up afresh; waiting while the name is free between a death and a restart);
  :meth:`Named.get` is ``ray.get`` with the same re-resolve-and-retry, for idempotent calls.

A caller waits for a successor at most ``restart_timeout_s``, and only while one can come: a
supervisor that stops a child for good (it stops, or its decision is not to restart the child)
retires the name (:func:`retire`, a record in the cluster's key-value store); a lookup that
finds the name free and retired raises :class:`ActorRetired` at once with the supervisor's
reason, so a session's stop never waits minutes on an actor that is gone for good. Starting an
actor under the name revives it (:func:`revive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError
from ray.experimental import internal_kv

from runtime.errors import SupervisionError

__all__ = ["ActorRetired", "Named", "is_actor_gone", "retire", "revive"]

#: how long a caller waits for a dead actor's successor before it gives up
RESTART_TIMEOUT_S = 300.0


class ActorRetired(SupervisionError):
    """No actor holds the name, and none will: its supervisor stopped it for good."""


_KV_NAMESPACE = "tradewind.retired"


def _key(name: str, namespace: str | None) -> bytes:
    return f"{namespace or ''}/{name}".encode()


def retire(name: str, namespace: str | None, why: str) -> None:
    """The actor under ``name`` is stopped for good (``why``): lookups fail instead of waiting."""
    internal_kv._internal_kv_put(_key(name, namespace), why.encode(), namespace=_KV_NAMESPACE)


def revive(name: str, namespace: str | None) -> None:
    """An actor is (about to be) started under ``name``: lookups wait for it again."""
    internal_kv._internal_kv_del(_key(name, namespace), namespace=_KV_NAMESPACE)


def retired(name: str, namespace: str | None) -> str | None:
    """Why ``name`` is retired, or None."""
    why = internal_kv._internal_kv_get(_key(name, namespace), namespace=_KV_NAMESPACE)
    return None if why is None else bytes(why).decode()


def is_actor_gone(exc: BaseException) -> bool:
    """The actor died (or is unreachable), as opposed to its method raising."""
    return isinstance(exc, RayActorError) and not isinstance(exc, RayTaskError)


class Named:
    """An actor of the session by its Ray name (see the module docstring)."""

    def __init__(self, name: str, namespace: str | None = None, *,
                 restart_timeout_s: float = RESTART_TIMEOUT_S) -> None:
        self.name, self.namespace, self.restart_timeout_s = name, namespace, restart_timeout_s
        self._handle: Any = None
        self._resolving: asyncio.Future[Any] | None = None  # the first lookup, in a loop
        self._tasks: set[asyncio.Task[Any]] = set()  # calls nobody awaits still run to the end

    def __reduce__(self) -> tuple[Any, ...]:
        return (Named, (self.name, self.namespace), {"restart_timeout_s": self.restart_timeout_s})

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.restart_timeout_s = state["restart_timeout_s"]

    def __repr__(self) -> str:
        return f"Named({self.name!r})"

    def __getattr__(self, method: str) -> _Method:
        if method.startswith("_"):
            raise AttributeError(method)
        if self._handle is not None or _running_loop() is None:  # never blocks an event loop
            getattr(self.handle(), method)  # an unknown method: AttributeError, as on a handle
        return _Method(self, method, {})

    # --- resolving -----------------------------------------------------------------------------
    def handle(self) -> Any:
        """The handle last resolved (resolved now, waiting for the name, if none yet)."""
        if self._handle is None:
            self._handle = self._lookup(avoid=None)
        return self._handle

    def fresh(self) -> Any:
        """The actor that holds the name now (looked up again)."""
        self._handle = self._lookup(avoid=None)
        return self._handle

    def _lookup(self, avoid: Any) -> Any:
        """Wait until the name is held by an actor other than ``avoid`` (an actor id), unless
        the name is retired (:class:`ActorRetired`)."""
        deadline = time.monotonic() + self.restart_timeout_s
        while True:
            handle = self._try_lookup()
            if handle is not None and handle._actor_id != avoid:
                return handle
            why = retired(self.name, self.namespace)
            if why is not None and (handle is None or handle._actor_id == avoid):
                raise ActorRetired(f"actor {self.name!r} is gone for good: {why}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"actor {self.name!r}: no live actor holds the name after "
                                   f"{self.restart_timeout_s:.0f}s")
            time.sleep(0.05)

    def _try_lookup(self) -> Any:
        try:
            return ray.get_actor(self.name, namespace=self.namespace)
        except ValueError:  # free: between a death and the restart
            return None

    async def _resolved(self) -> Any:
        """The first lookup, shared by the calls made before it ended (they then go in the
        order they were made)."""
        if self._resolving is None:
            self._resolving = asyncio.ensure_future(_off_loop(self._lookup, None))
        handle = await asyncio.shield(self._resolving)
        if self._handle is None:
            self._handle = handle
        return self._handle

    async def _relookup(self, dead: Any) -> Any:
        if self._handle is not None and self._handle._actor_id != dead:
            return self._handle  # another call found the successor already
        self._handle = await _off_loop(self._lookup, dead)
        return self._handle

    # --- calling -------------------------------------------------------------------------------
    def get(self, method: str, *args: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
        """``ray.get`` of an idempotent call, sent again to the successor if the actor dies."""
        deadline = time.monotonic() + self.restart_timeout_s
        while True:
            handle = self.fresh()
            try:
                return ray.get(getattr(handle, method).remote(*args, **kwargs), timeout=timeout_s)
            except RayActorError as exc:
                if not is_actor_gone(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _submit(self, method: str, options: dict[str, Any], args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        loop = _running_loop()
        if loop is None:
            return _send(self.fresh(), method, options, args, kwargs)
        handle, ref = self._handle, None
        if handle is not None:  # sent now: calls keep their order
            ref = _send(handle, method, options, args, kwargs)
        task = loop.create_task(self._await(handle, ref, method, options, args, kwargs))
        self._tasks.add(task)
        task.add_done_callback(_forget(self._tasks))
        return task

    async def _await(self, handle: Any, ref: Any, method: str, options: dict[str, Any],
                     args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if handle is None or ref is None:  # the first call: look the name up off the loop
            handle = await self._resolved()
            ref = _send(handle, method, options, args, kwargs)
        deadline = time.monotonic() + self.restart_timeout_s
        while True:
            try:
                return await ref
            except RayActorError as exc:
                if not is_actor_gone(exc) or time.monotonic() > deadline:
                    raise
            handle = await self._relookup(handle._actor_id)
            ref = _send(handle, method, options, args, kwargs)


def _send(handle: Any, method: str, options: dict[str, Any], args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> Any:
    remote = getattr(handle, method)
    return (remote.options(**options) if options else remote).remote(*args, **kwargs)


class _Method:
    def __init__(self, named: Named, method: str, options: dict[str, Any]) -> None:
        self.named, self.method, self._options = named, method, options

    def options(self, **options: Any) -> _Method:
        return _Method(self.named, self.method, self._options | options)

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self.named._submit(self.method, self._options, args, kwargs)


async def _off_loop(lookup: Callable[[Any], Any], avoid: Any) -> Any:
    """``lookup(avoid)`` on a daemon thread of its own, awaited. Not ``asyncio.to_thread``:
    its executor's threads are joined when the interpreter exits, and a lookup waiting for a
    successor that never comes (the session stopping: up to ``restart_timeout_s``, in blocking
    Ray calls) then kept the actor's process alive after Ray had shut its worker down, with
    nothing left to end it: it outlived its cluster."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # the caller was cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        result, error = None, None
        try:
            result = lookup(avoid)
        except BaseException as exc:  # handed to the awaiting task, which raises it
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="tw-named-lookup", daemon=True).start()
    return await future


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _forget(tasks: set[asyncio.Task[Any]]) -> Any:
    def done(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a fire-and-forget call's failure is not an error log

    return done
