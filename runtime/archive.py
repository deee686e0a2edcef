"""An append-only archive file: what an owner's journal is about to drop, kept for the
session's files (a restart never needs it).

Each append is one frame, ``<length: 4 bytes, big-endian><payload>``, written and synced
(``fsync``) before :meth:`Archive.append` returns, so an owner appends *before* its journal or
snapshot drops what the frame holds. States of the file's tail::

    whole frames ──append──► whole frames + a torn frame (a crash or a full disk mid-append)
          ▲                              │
          └────────── cut_torn_tail ─────┘  (the owner's journal still holds what it held)

A failed append cuts off what it wrote, if it can, and raises
:class:`~runtime.errors.DiskWriteError` naming the file and what was not archived; a disk that
refuses it (``ENOSPC``) first gives back the session's disk reserve (``runtime.disk_reserve``)
and is tried once more, as every journal write is. What was archived before is untouched.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from runtime import disk_reserve
from runtime.errors import DiskWriteError

__all__ = ["Archive"]

_LEN: Final = struct.Struct("!I")


class Archive:
    """Frames appended durably to ``path``, read back in order."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, payload: bytes, *, what: str) -> None:
        """Append ``payload`` as one frame and sync it; a :class:`DiskWriteError` ("``what``:
        <why>", ``what`` saying what was not archived) leaves the file as it was."""
        before = self.path.stat().st_size if self.path.exists() else 0
        frame = _LEN.pack(len(payload)) + payload

        def write() -> None:
            with self.path.open("ab") as fh:
                try:
                    fh.write(frame)
                    fh.flush()
                    os.fsync(fh.fileno())
                except OSError:
                    with contextlib.suppress(OSError):  # what the failed append left
                        os.truncate(fh.fileno(), before)
                    raise

        try:
            disk_reserve.retrying(self.path, write)
        except OSError as exc:
            raise DiskWriteError(f"{what}: {exc.strerror or exc}",
                                 path=str(self.path)) from exc

    def spans(self) -> list[tuple[int, int]]:
        """``(offset, size)`` of every whole frame's payload, in order (reads only the length
        prefixes)."""
        try:
            fh = self.path.open("rb")
        except FileNotFoundError:
            return []
        spans: list[tuple[int, int]] = []
        with fh:
            end = os.fstat(fh.fileno()).st_size
            at = 0
            while at + _LEN.size <= end:
                fh.seek(at)
                (size,) = _LEN.unpack(fh.read(_LEN.size))
                if at + _LEN.size + size > end:
                    break
                spans.append((at + _LEN.size, size))
                at += _LEN.size + size
        return spans

    def read(self, span: tuple[int, int]) -> bytes:
        """The payload of one frame of :meth:`spans`."""
        with self.path.open("rb") as fh:
            fh.seek(span[0])
            return fh.read(span[1])

    def frames(self) -> Iterator[bytes]:
        """Every whole frame's payload, in the order appended (a torn tail is left out)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        at = 0
        while at + _LEN.size <= len(data):
            (size,) = _LEN.unpack_from(data, at)
            start, at = at + _LEN.size, at + _LEN.size + size
            if at > len(data):
                return
            yield data[start:at]

    def cut_torn_tail(self) -> int:
        """Cut off a frame a crash or a full disk cut short; the bytes cut (0: none)."""
        spans = self.spans()
        whole = spans[-1][0] + spans[-1][1] if spans else 0
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return 0
        if size > whole:
            os.truncate(self.path, whole)
        return size - whole
