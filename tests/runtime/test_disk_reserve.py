"""The disk reserve on a real small filesystem (a 2 MB tmpfs, ``tests.small_disk``):
a journal write the full disk refuses releases the reserve, leaving a note naming the journal
and the error, and goes through in the space given back; with the reserve spent, the next
refused write raises DiskWriteError and the journal keeps what it had; the reserve is taken back
once there is room, and refused, naming the file, while there is none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import disk_reserve
from runtime.errors import DiskWriteError
from runtime.journal import Blob, Journal
from tests.small_disk import fill_up, mounted_tmpfs

_RESERVE = 256 * 1024


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "small", "2m") as folder:
        yield folder


def _entry(i: int) -> Blob:
    return Blob("test", i.to_bytes(4, "big") * 2048)  # 8 kB


def test_a_full_disk_spends_the_reserve_then_refuses(small_fs: Path) -> None:
    reserve = small_fs / disk_reserve.RESERVE
    disk_reserve.keep(reserve, _RESERVE)
    assert reserve.stat().st_size == _RESERVE and disk_reserve.released(reserve) is None
    path = small_fs / "risk.journal"
    journal = Journal(path)
    for i in range(3):
        journal.append(_entry(i))
    journal.flush()
    ballast = fill_up(small_fs)
    journal.append(_entry(3))
    journal.flush()  # the disk refused it: the reserve went, the entry is in its space
    note = disk_reserve.released(reserve)
    assert note is not None and note.startswith(f"{path}: ") and "SQLITE_FULL" in note
    assert reserve.stat().st_size < 4096
    assert not disk_reserve.release(reserve, "again")  # the first note stays
    fill_up(small_fs)  # what the reserve gave back, filled too
    journal.append(_entry(4))
    with pytest.raises(DiskWriteError) as caught:
        journal.flush()
    assert str(path) in str(caught.value) and "intact up to seq 4" in str(caught.value)
    with pytest.raises(DiskWriteError) as refused:  # no room to take it back
        disk_reserve.keep(reserve, _RESERVE)
    assert str(reserve) in str(refused.value)
    journal.close()
    ballast.unlink()
    disk_reserve.keep(reserve, _RESERVE)  # room again: held again
    assert disk_reserve.released(reserve) is None and reserve.stat().st_size == _RESERVE
    with Journal(path) as again:  # what was journaled, the reserve's entry too, is intact
        assert [r.payload[:4] for _, r in again.entries()] == [
            i.to_bytes(4, "big") for i in range(4)]


def test_no_reserve_no_retry(small_fs: Path) -> None:
    path = small_fs / "risk.journal"
    journal = Journal(path)
    journal.append(_entry(0))
    journal.flush()
    fill_up(small_fs)
    journal.append(_entry(1))
    with pytest.raises(DiskWriteError):
        journal.flush()
    assert disk_reserve.find(path) is None
    journal.close()
