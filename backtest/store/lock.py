"""The single-opener rule for embedded stores: an OS file lock in the store directory.

chDB runs ClickHouse inside the process, and two processes writing one data directory would
corrupt it. The first opener takes an exclusive ``fcntl.flock`` on ``<dir>/tradewind.lock`` and
writes its PID there; a second opener fails at once with a :class:`StoreError` that names the
holder and the ways out. The OS drops the lock when the holder exits, even when it crashes.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from runtime.errors import StoreError

__all__ = ["LOCK_FILE_NAME", "LockHeld", "PidLock", "StoreLock", "holder_name"]

LOCK_FILE_NAME = "tradewind.lock"


class LockHeld(Exception):
    """The lock is held by ``holder`` (a process id, or None if it cannot be read)."""

    def __init__(self, holder: int | None) -> None:
        super().__init__(holder)
        self.holder = holder


class PidLock:
    """An exclusive, non-blocking ``fcntl.flock`` on ``path``, with the holder's process id
    written in the file. The OS drops it when the holder exits, even when it crashes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock; :class:`LockHeld` if another open file holds it, OSError if the file
        cannot be created."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise LockHeld(holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None


def holder_name(holder: int | None) -> str:
    """``process 123`` (``(this process)`` when it is us), or ``another process``."""
    who = f"process {holder}" if holder is not None else "another process"
    return who + (" (this process)" if holder == os.getpid() else "")


class StoreLock(PidLock):
    """The single-opener lock of an embedded store directory."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory / LOCK_FILE_NAME)
        self.directory = directory

    def acquire(self) -> None:
        try:
            super().acquire()
        except LockHeld as held:
            raise StoreError(self._held_message(held.holder)) from None
        except OSError as exc:
            raise StoreError(f"cannot create the store at {self.directory}: {exc}") from exc

    def _held_message(self, holder: int | None) -> str:
        who = holder_name(holder)
        return (
            f"the store at {self.directory} is open by {who}; an embedded store has one opener "
            f"at a time: stop that process (or close its store), or use a ClickHouse server DSN "
            f"(--store http://host:8123 or TRADEWIND_STORE_DSN)"
        )


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
