"""Small children for the supervisor tests: each start, hook and stop leaves a line in a file
of the test's folder, so the tests count them after the fact (no timing)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import ray

from actors.base import ACTOR_OPTIONS, WATCH_GROUPS, Child

__all__ = ["FakeBroken", "FakeChild", "FakeFeed", "FakeLoop", "lines"]


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


@ray.remote(**ACTOR_OPTIONS)
class FakeLoop:
    """An asynchronous child like the feed: alive, but its work (a loop) can fail, which its
    ``watch`` reports by raising the loop's error."""

    def __init__(self, folder: str, name: str) -> None:
        self.folder, self.name = Path(folder), name
        self.failed, self.why = asyncio.Event(), ""
        _note(self.folder / f"{name}.starts", str(os.getpid()))

    async def fail_loop(self, why: str) -> None:
        self.why = why
        self.failed.set()

    async def ping(self) -> float:
        return time.time()

    async def pid(self) -> int:
        return os.getpid()

    async def after_restart(self) -> None:
        _note(self.folder / f"{self.name}.hooks", str(os.getpid()))

    async def stopping(self) -> None:
        _note(self.folder / "stops", self.name)

    async def watch(self) -> None:
        await self.failed.wait()
        raise RuntimeError(self.why)


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
