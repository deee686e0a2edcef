"""The append-only archive file (``runtime.archive``): frames read back in order, a torn tail
cut off, a failed append cut off with a clear error, and a full disk given the session's
reserve back before the append is tried once more."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from runtime import disk_reserve
from runtime.archive import Archive
from runtime.errors import DiskWriteError


def _full(times: list[int]) -> object:
    sync = os.fsync

    def fsync(fd: int) -> None:
        if times[0] > 0:
            times[0] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        sync(fd)

    return fsync


def test_frames_come_back_in_order_and_a_torn_tail_is_cut(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "x.fills")
    assert list(archive.frames()) == [] and archive.cut_torn_tail() == 0
    archive.append(b"one", what="one")
    archive.append(b"", what="empty")
    archive.append(b"three", what="three")
    with archive.path.open("ab") as fh:
        fh.write(b"\x00\x00\x00\x09tor")  # a crash mid-append
    assert list(archive.frames()) == [b"one", b"", b"three"]
    assert [archive.read(s) for s in archive.spans()] == [b"one", b"", b"three"]
    assert archive.cut_torn_tail() == 7
    archive.append(b"four", what="four")
    assert list(archive.frames()) == [b"one", b"", b"three", b"four"]


def test_a_failed_append_is_cut_off_and_named(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    archive = Archive(tmp_path / "x.fills")
    archive.append(b"kept", what="kept")
    monkeypatch.setattr(os, "fsync", _full([1]))
    with pytest.raises(DiskWriteError, match=r"x\.fills: 3 things not archived: No space"):
        archive.append(b"lost", what="3 things not archived")
    assert list(archive.frames()) == [b"kept"]  # what was archived before is untouched
    assert archive.path.stat().st_size == 4 + 4


def test_a_full_disk_gives_the_reserve_back_and_the_append_goes_through(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reserve = tmp_path / disk_reserve.RESERVE
    disk_reserve.keep(reserve, 4096)
    archive = Archive(tmp_path / "x.fills")
    monkeypatch.setattr(os, "fsync", _full([1]))  # the first try is refused
    archive.append(b"frame", what="a frame")
    assert list(archive.frames()) == [b"frame"]  # once: the refused try was cut off
    note = disk_reserve.released(reserve)
    assert note is not None and "x.fills: ENOSPC" in note
