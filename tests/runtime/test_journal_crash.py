"""Crash safety for real: SIGKILL a writer process mid-write, reopen, check the committed prefix."""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from runtime.journal import Journal

WRITER = Path(__file__).with_name("journal_writer.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
BATCH = 64
SNAPSHOT_EVERY = 7  # batches


def _load_writer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("journal_writer", WRITER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


writer = _load_writer()


def _run_and_kill(path: Path, synchronous: str, rng: random.Random) -> tuple[list[int], list[int]]:
    """Start the writer, SIGKILL it at a random moment; return the (commit, snapshot) seqs it
    reported as done."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    args = [sys.executable, str(WRITER), str(path), str(BATCH), synchronous, str(SNAPSHOT_EVERY)]
    child = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    first = child.stdout.readline() if child.stdout else ""
    if not first:
        child.kill()
        _, err = child.communicate()
        pytest.fail(f"writer failed to start: {err}")
    time.sleep(rng.uniform(0.0, 0.25))
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    lines = [first, *out.splitlines()]
    commits = [int(line.split()[1]) for line in lines if line.startswith("C ")]
    snapshots = [int(line.split()[1]) for line in lines if line.startswith("S ")]
    return commits, snapshots


def _check_restored(path: Path, commits: list[int], snapshots: list[int]) -> int:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with Journal(path, batch_size=BATCH) as journal:
        last = journal.last_seq
        assert last % BATCH == 0, f"half batch on disk: last seq {last}"
        assert last >= max(commits), "a reported commit was lost"
        snapshot, snapshot_seq, tail = journal.restore()
        if snapshots:
            assert snapshot_seq >= max(snapshots), "a reported snapshot was lost"
        if snapshot_seq:
            assert snapshot == writer.state_for(snapshot_seq)
        else:
            assert snapshot is None
        entries = list(tail)
        assert [seq for seq, _ in entries] == list(range(snapshot_seq + 1, last + 1))
        assert all(record == writer.record_for(seq) for seq, record in entries)
        full = [seq for seq, _ in journal.entries()]
        assert full == list(range(1, last + 1)), "the journal is not a gap-free prefix"
    return last


@pytest.mark.slow
def test_sigkill_mid_write_keeps_exactly_the_committed_prefix(tmp_path: Path) -> None:
    rng = random.Random(20240607)
    path = tmp_path / "crash.journal"
    previous = 0
    for round_no in range(8):
        synchronous = "FULL" if round_no % 2 else "NORMAL"
        commits, snapshots = _run_and_kill(path, synchronous, rng)
        assert commits, "the writer reported no commit before the kill"
        assert min(commits) > previous, "the writer did not continue after the last commit"
        previous = _check_restored(path, commits, snapshots)
    assert previous > 8 * BATCH
