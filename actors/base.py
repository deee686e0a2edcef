"""What every actor of the tree answers: its process id, a heartbeat, and an exit watch.

The supervisor (``actors.supervisor``) awaits ``watch()`` on each child: the call ends with the
child, by raising (``ActorDiedError``: it crashed or was killed) or by returning ``"normal"``
when the child finished its work (:meth:`Child._finished`).
In synchronous actors ``watch`` runs in its own concurrency group so it never holds the
ordered, single-threaded default group; ``ping`` runs in the default group, behind the work,
so a child whose work hangs misses its heartbeats.

In real time over the sockets carrier (``actors.sockpath``) the steps of the step protocol
(``actors.step``) come on a thread of the actor's socket server (:meth:`Child.hot_listen`),
beside the normal calls: :func:`serialized` makes every call of the actor (and ``ping``, so a
hung step still misses heartbeats) take the actor's lock, so that a step and an operator's
call never interleave.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import ray

__all__ = ["ACTOR_OPTIONS", "RAYLET_CHECK_S", "WATCH_GROUPS", "Child", "actor",
           "exit_with_raylet", "serialized"]

C = TypeVar("C", bound=type)

#: calls that never take the lock: the exit watch and the process facts
_FREE = frozenset({"watch", "pid", "node", "health"})  # health: never waits behind a step

#: every actor: no CPU held (DESIGN: Ray pitfalls); not restarted by Ray: its supervisor
#: starts a new one under the same name (``actors.supervisor``), and callers retry their calls
#: on it (``actors.names``; receivers dedupe by index, client order id and fill id)
ACTOR_OPTIONS = {"num_cpus": 0, "max_restarts": 0, "max_task_retries": 0}
WATCH_GROUPS = {"watch": 4}


def actor(**options: Any) -> Callable[[type[Any]], Any]:
    """``ray.remote(**options)`` for an actor class: the class becomes a Ray actor class
    (``.remote()``, ``.options()``). Ray's stubs cannot match options given as a mapping, and
    a decorated class has no type of its own in them; its methods are still checked. Each
    actor's process ends when its raylet does (:func:`exit_with_raylet`). Its ``ping`` (the
    supervisors' liveness call, several a second per child) records no task event: Ray's GCS
    keeps up to 100,000 of them, and pings were most of a soak's ~6 MB a minute there."""
    remote: Callable[[type[Any]], Any] = cast(Any, ray.remote)(**options)

    def decorate(cls: type[Any]) -> Any:
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            exit_with_raylet()
            init(self, *args, **kwargs)

        cls.__init__ = __init__
        ping = getattr(cls, "ping", None)
        if ping is not None:
            cls.ping = ray.method(enable_task_events=False)(ping)
        return remote(cls)

    return decorate


#: how often an actor's process looks whether its raylet is still there
RAYLET_CHECK_S = 1.0
_raylet_watch = threading.Lock()  # held for good once this process watches


def exit_with_raylet(check_s: float = RAYLET_CHECK_S) -> bool:
    """In a Ray worker process (its parent is the raylet, ``RAY_RAYLET_PID``): a daemon thread
    that ends the process (``os._exit``) once the raylet is gone, i.e. the process's parent is
    no longer the raylet (it was re-parented). Once per process; False where it does not apply
    (not a worker, or already watching).

    Ray's own check of its raylet stops with the worker's core worker: a worker told to exit
    (``__ray_terminate__``, a supervisor winding a child down) shuts the core worker down, then
    Python's exit waits for the threads that are not daemons. A thread still busy there (a
    library's, or a call waiting for an actor that will never come back) kept such processes
    alive after their whole cluster was gone (parent PID 1). The parent's id, not the raylet's
    pid probed with a signal: a pid can be reused, and a zombie still answers."""
    raylet = os.environ.get("RAY_RAYLET_PID", "")
    if not raylet.isdigit() or int(raylet) != os.getppid():
        return False
    if not _raylet_watch.acquire(blocking=False):
        return False
    parent = int(raylet)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(check_s)
        os._exit(1)  # the cluster is gone: nothing is left to ask this process anything

    threading.Thread(target=watch, name="tw-raylet-watch", daemon=True).start()
    return True


def _lock_of(actor: Any) -> threading.RLock:
    lock = actor.__dict__.get("_call_lock")
    if lock is None:  # dict.setdefault is atomic: two threads get the same lock
        lock = actor.__dict__.setdefault("_call_lock", threading.RLock())
    return lock  # type: ignore[no-any-return]


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _lock_of(self):
            return method(self, *args, **kwargs)

    return call


def serialized(cls: C) -> C:
    """Every public method of ``cls`` and of its bases up to :class:`Child` (but the death
    watch and the process facts) runs under the instance's lock (see the module docstring)."""
    for klass in reversed(cls.__mro__):
        if klass is object or not issubclass(klass, Child):
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") or name in _FREE or not callable(member):
                continue
            if getattr(cls, name) is member:  # not overridden below
                setattr(cls, name, _locked(member))
    return cls


class Child:
    """Mixin of the synchronous actors."""

    #: each actor of the step protocol defines its own ``hot_step`` (``actors.step``)
    hot_step: Callable[..., bytes]

    def pid(self) -> int:
        return os.getpid()

    def ping(self) -> float:
        return time.time()

    def node(self) -> str:
        """The id of the Ray node this actor runs on (``actors.carriers`` picks by it)."""
        return str(ray.get_runtime_context().get_node_id())

    def hot_listen(self) -> tuple[str, str]:
        """Serve this actor's ``hot_step`` on a UNIX socket (``actors.sockpath``), once per
        process: (this node's id, the socket's address)."""
        server = self.__dict__.get("_hot_server")
        if server is None:
            from actors.sockpath import HotServer

            server = self.__dict__.setdefault(
                "_hot_server", HotServer(self.hot_step, type(self).__name__))
        return ray.get_runtime_context().get_node_id(), server.address

    @ray.method(concurrency_group="watch")
    def watch(self) -> str:
        """Ends with the actor: raises when it dies, returns ``"normal"`` once it finished."""
        _finish_event(self).wait()
        return "normal"

    def _finished(self) -> None:
        """The actor's work is done: its supervisor sees a normal exit and stops it."""
        _finish_event(self).set()


def _finish_event(actor: Any) -> threading.Event:
    event = actor.__dict__.get("_finish")
    if event is None:
        event = actor.__dict__.setdefault("_finish", threading.Event())
    return event  # type: ignore[no-any-return]
