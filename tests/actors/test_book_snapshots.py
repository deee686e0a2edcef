"""A book's snapshot it cannot use (another version, none, or one that does not load with this
code: an upgrade) is set aside with a one-line warning and the book rebuilt from the feed's
log: the same book as before, and its next snapshot of this version. Without Ray: the stage and
its journal as the book actor opens them."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest

from actors.book import SNAPSHOT_VERSION, BookStage, commit, open_book
from runtime.journal import Journal
from tests.actors.test_book_actor import _expected_hash, _quotes, _setup, _take
from tests.runtime.test_recovery import Gone, rewrite_snapshot

_N = 400


def _run_book(tmp_path: Path) -> tuple[object, Path]:
    """A book that took every quote in steps of 50, with a snapshot every 120 positions."""
    quotes = _quotes(_N)
    setup = _setup(tmp_path / "s", quotes, 120)
    stage, journal = open_book("BK", setup)
    for k in range(0, _N, 50):
        _take(stage, k, quotes[k:k + 50])
        journal.reach(k + 49, quotes[k + 49])
        commit(stage, journal)
    journal.close()
    assert stage.state_hash() == _expected_hash(quotes)
    return setup, setup.path("book.BK")


def _version(path: Path) -> int:
    with Journal(path) as journal:
        snapshot = journal.restore().snapshot
    assert snapshot is not None and snapshot[:3] == b"\xffTW"
    return int(struct.unpack_from(">3sI", snapshot)[1])


@pytest.mark.parametrize(("version", "state", "why"), [
    (SNAPSHOT_VERSION + 1, None,
     f"its snapshot has version {SNAPSHOT_VERSION + 1}; this code reads version "
     f"{SNAPSHOT_VERSION}"),
    (None, None, "its snapshot has no version (written before snapshots carried one)"),
    (SNAPSHOT_VERSION, Gone(), "does not load with this code: ModuleNotFoundError"),
], ids=["other-version", "unversioned", "unreadable"])
def test_a_snapshot_the_book_cannot_use_is_rebuilt_from_the_feeds_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, version: int | None,
        state: object, why: str) -> None:
    setup, path = _run_book(tmp_path)
    assert _version(path) == SNAPSHOT_VERSION
    rewrite_snapshot(path, version=version, state=state)
    with caplog.at_level(logging.WARNING, logger="actors.book"):
        stage, journal = open_book("BK", setup)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "actors.book"]
    assert line.startswith(f"book BK: {path}: ") and why in line
    assert line.endswith("rebuilding it from the feed's log") and "\n" not in line
    assert isinstance(stage, BookStage)
    assert stage.state_hash() == _expected_hash(_quotes(_N))  # the same book
    assert stage.book.applied == _N and journal.position == _N
    commit(stage, journal)  # the rebuild makes a snapshot due: this version's
    journal.close()
    assert _version(path) == SNAPSHOT_VERSION
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="actors.book"):
        again, journal = open_book("BK", setup)
    journal.close()
    assert caplog.records == [] and again.state_hash() == stage.state_hash()
