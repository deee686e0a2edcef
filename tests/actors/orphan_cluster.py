"""A driver run as a subprocess by ``test_orphans``: it starts a private local Ray cluster,
leaves in it the two kinds of actor process that outlived their clusters, prints their pids
as one JSON line, and then waits to be killed (its raylet and GCS go with it).

* ``stuck``: an actor told to exit (``__ray_terminate__``, as a supervisor winds a child
  down) while a thread that is not a daemon still runs: Ray shuts the worker down, then
  Python's exit waits for that thread;
* ``reconciler``: a :class:`~actors.reconciler.ReconcilerActor` reaching its sides by name, the
  sides killed (its calls wait for successors that never come, as when a session stops),
  then told to exit the same way."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time

import ray

from actors.base import ACTOR_OPTIONS, actor


@actor(**ACTOR_OPTIONS)
class Stuck:
    """Holds a thread that is not a daemon and never ends (a library's, say)."""

    def __init__(self) -> None:
        threading.Thread(target=threading.Event().wait, name="never-ends").start()

    def pid(self) -> int:
        return os.getpid()


@ray.remote(num_cpus=0)
class Side:
    def reports_delivered(self) -> int:
        return 0

    def view(self, *args: object) -> dict[str, object]:
        return {"positions": {}, "open_orders": [], "fills": []}

    def health(self) -> dict[str, object]:
        return {"connected": True}

    def market_health(self) -> dict[str, object]:
        return {}


def main() -> None:
    from actors.names import Named
    from actors.reconciler import ReconcilerActor
    from backtest.research.fanout import init_local

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    init_local(num_cpus=1, include_dashboard=False, log_to_driver=False)
    kinds = ("gateway", "risk", "feed")
    sides = [Side.options(name=f"tw.orphans.{k}").remote() for k in kinds]
    ray.get([s.__ray_ready__.remote() for s in sides])
    reconciler = ReconcilerActor.remote("orphans", watch_every_s=0.1)
    ray.get(reconciler.start.remote(*(Named(f"tw.orphans.{k}") for k in kinds), 0.1))
    stuck = Stuck.remote()
    pids = {"stuck": ray.get(stuck.pid.remote()),
            "reconciler": ray.get(reconciler.pid.remote())}
    time.sleep(1)
    for side in sides:
        ray.kill(side, no_restart=True)
    time.sleep(1)
    for handle in (stuck, reconciler):
        with contextlib.suppress(ray.exceptions.RayActorError):  # it exited before answering
            ray.get(handle.__ray_terminate__.remote(), timeout=60)
    print(json.dumps(pids), flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    main()
