"""What every actor of the tree answers: its process id, a heartbeat, and a death watch.

The supervisor awaits ``watch()`` on each child: the call never returns, so it ends only with
the child's death (``ActorUnavailableError``: Ray is restarting it; ``ActorDiedError``: gone).
In synchronous actors ``watch`` runs in its own concurrency group so it never holds the
ordered, single-threaded default group; ``ping`` runs in the default group, behind the work,
so a child whose work hangs misses its heartbeats.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import ray

__all__ = ["ACTOR_OPTIONS", "WATCH_GROUPS", "Child", "incarnate"]

#: every actor: no CPU held (DESIGN: Ray pitfalls), restarted by Ray, calls retried after a
#: restart (receivers dedupe by index, client order id and fill id)
ACTOR_OPTIONS = {"num_cpus": 0, "max_restarts": -1, "max_task_retries": -1}
WATCH_GROUPS = {"watch": 4}


def incarnate(path: Path) -> int:
    """Count this start of a component (1 = the first): the supervisor compares the count with
    the exits it saw, so a restart it did not see (a crash while it was not watching) still
    counts toward the restart intensity."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = int(path.read_text() or 0) + 1 if path.exists() else 1
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(count))
    tmp.replace(path)
    return count


class Child:
    """Mixin of the synchronous actors."""

    _incarnation: int = 0

    def incarnation(self) -> int:
        return self._incarnation

    def pid(self) -> int:
        return os.getpid()

    def ping(self) -> float:
        return time.time()

    @ray.method(concurrency_group="watch")  # type: ignore[misc]
    def watch(self) -> None:
        threading.Event().wait()  # never returns: only the actor's death ends the call
