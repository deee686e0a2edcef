"""Small children for the supervisor tests: each start, hook and stop leaves a line in a file
of the test's folder, so the tests count them after the fact (no timing)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import ray

from actors.base import ACTOR_OPTIONS, WATCH_GROUPS, Child

__all__ = ["FakeBroken", "FakeChild", "FakeFeed", "lines"]


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _note(path: Path, text: str) -> None:
    with path.open("a") as fh:
        fh.write(text + "\n")


@ray.remote(concurrency_groups=WATCH_GROUPS, **ACTOR_OPTIONS)
class FakeChild(Child):
    """A synchronous child like risk or gateway: ordered default group, watch group."""

    def __init__(self, folder: str, name: str) -> None:
        self.folder, self.name = Path(folder), name
        _note(self.folder / f"{name}.starts", str(os.getpid()))

    def block(self, seconds: float) -> None:
        time.sleep(seconds)  # holds the default group: heartbeats and stops wait

    def pid_after(self, seconds: float) -> int:
        time.sleep(seconds)
        return os.getpid()

    def fail(self) -> None:
        raise ValueError("the method's own error")

    def finish(self) -> None:
        self._finished()  # a normal exit

    def after_restart(self) -> None:
        _note(self.folder / f"{self.name}.hooks", str(os.getpid()))

    def stopping(self) -> None:
        _note(self.folder / "stops", self.name)


@ray.remote(concurrency_groups=WATCH_GROUPS, **ACTOR_OPTIONS)
class FakeBroken(Child):
    """A child whose constructor fails (a bad credential, a missing file)."""

    def __init__(self, folder: str, name: str) -> None:
        raise RuntimeError(f"{name} cannot start")


@ray.remote(num_cpus=0)
class FakeFeed:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.failing = 0  # halts that raise before one lands (a feed that cannot halt yet)

    def fail_halts(self, n: int) -> None:
        self.failing = n

    def halt(self, reason: str) -> None:
        if self.failing:
            self.failing -= 1
            raise RuntimeError("the session's risk actor is not running")
        self.reasons.append(reason)

    def halts(self) -> list[str]:
        return self.reasons
