"""The disk reserve: space set aside where a session journals, given back when the disk fills,
so that what a full disk calls for (the halt, the cancels, their journal entries) can still be
written.

The reserve is one file, ``disk.reserve`` in the session's journal directory, preallocated
(``posix_fallocate``: the blocks are the filesystem's, not merely a hole) when the session
starts (:func:`keep`). A journal write that fails for want of space (``runtime.journal``)
releases it (:func:`release`; so do the session log and the feed's cursor file,
:func:`retrying`): the file is truncated and a one-line note takes its place
(``released: <the file that could not be written>: <the error>``), and the write is tried once
more, now in the space given back. Any process may release it; the first one's note stays. The
reconciler's ``disk_full`` watchdog reads the note (:func:`released`) and carries out its rule's
action (by default: cancel every open order and halt); the space the reserve gave back holds
those entries. :func:`keep` takes the space again once there is room (the reconciler, when free
space is back; a session's start, which refuses to start without it).

State of the file: absent (no reserve configured) → *held* (preallocated zeros) → *released*
(the note) → *held* again (:func:`keep`).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from runtime.errors import DiskWriteError

__all__ = ["RESERVE", "find", "keep", "release", "released", "retrying"]

T = TypeVar("T")

RESERVE = "disk.reserve"
_NOTE = b"released: "


def find(path: Path) -> Path | None:
    """The reserve that covers the file ``path`` (a journal in the session's directory or one
    below it), or None."""
    for folder in (path.parent, path.parent.parent):
        candidate = folder / RESERVE
        if candidate.exists():
            return candidate
    return None


def keep(reserve: Path, size_bytes: int) -> None:
    """Hold ``size_bytes`` at ``reserve`` (a held reserve of that size stays as it is); a
    :class:`DiskWriteError` naming the file when the disk has no room for it."""
    if released(reserve) is None and reserve.exists() and reserve.stat().st_size >= size_bytes:
        return
    fd = os.open(reserve, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        os.ftruncate(fd, 0)  # a released reserve's note goes
        os.posix_fallocate(fd, 0, size_bytes)
        os.fsync(fd)
    except OSError as exc:
        os.ftruncate(fd, 0)
        os.write(fd, _NOTE + f"{reserve}: no room to take it back ({exc.strerror})".encode())
        raise DiskWriteError(f"no room for the disk reserve ({size_bytes / 2**20:g} MB): "
                             f"{exc.strerror}; free space where the session journals",
                             path=str(reserve)) from exc
    finally:
        os.close(fd)


def release(reserve: Path, why: str) -> bool:
    """Give the reserve's space back, leaving ``why`` as its note; False when it was released
    already (or is gone)."""
    try:
        fd = os.open(reserve, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        if os.pread(fd, len(_NOTE), 0) == _NOTE:
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, _NOTE + why.encode()[:1000], 0)  # fits in the blocks just given back
        return True
    finally:
        os.close(fd)


def released(reserve: Path) -> str | None:
    """The note of a released reserve (what could not be written, and why), else None."""
    try:
        with reserve.open("rb") as f:
            head = f.read(len(_NOTE) + 1000)
    except FileNotFoundError:
        return None
    return head[len(_NOTE):].decode(errors="replace") if head.startswith(_NOTE) else None


def retrying(path: Path, write: Callable[[], T]) -> T:
    """``write()`` (of the file ``path``, not a journal: ``runtime.journal`` does this itself)
    and, should the disk refuse it (ENOSPC), once more after releasing the reserve that covers
    ``path``; without a reserve to release, the error as it was."""
    try:
        return write()
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        reserve = find(path)
        if reserve is None or not release(reserve, f"{path}: ENOSPC: {exc.strerror}"):
            raise
    return write()
