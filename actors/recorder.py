"""The recorder actor: copies of every event, batched into ClickHouse, spilled on outage.

A thin async shell around :class:`actors.spool.Spool`. ``record`` journals the batch (one SQLite
commit) and returns; a background task writes chunks through the store actor
(``insert_tables``), awaiting it without blocking ``record``. When the store fails (a
``StoreError``, the store actor restarting or gone, a timeout) the spool switches to draining: new
batches stay in the spill journal and are written later, in order, with backoff between retries.
The failure is counted in ``stats()`` and logged once per outage.

After a crash its supervisor starts it again: the spool reopens its journal and drains whatever
the old process had not written; what it had written but not yet marked is written again and
collapses onto the same keys (ReplacingMergeTree).

Input order: Ray may run an async actor's calls out of order; the recorder does not care (every row
carries its own key and times), and each ``record`` call is one journal entry, written whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from ray.exceptions import GetTimeoutError, RayActorError

from actors.base import actor
from actors.spool import Chunk, Spool, SpoolConfig
from runtime.errors import StoreError

__all__ = ["RecorderActor"]

log = logging.getLogger(__name__)

#: What a failed write through the store actor can raise: all of it means "spill and retry".
STORE_FAILURES = (StoreError, RayActorError, GetTimeoutError, asyncio.TimeoutError)


@actor(num_cpus=0)
class RecorderActor:
    """``RecorderActor.remote(session_id, store, spill_path, …)`` (``store``: the store actor,
    a handle or its name as :class:`actors.names.Named`).

    Every batch is journaled before ``record`` returns: a crash loses nothing accepted.
    """

    def __init__(
        self,
        session_id: str,
        store_handle: Any,
        spill_path: str | os.PathLike[str],
        *,
        batch_rows: int = 50_000,
        flush_interval_s: float = 0.2,
        insert_timeout_s: float = 30.0,
        market_every: int = 1,
        retry_max_s: float = 2.0,
    ) -> None:
        Path(spill_path).parent.mkdir(parents=True, exist_ok=True)
        config = SpoolConfig(
            batch_rows=batch_rows,
            flush_interval_s=flush_interval_s,
            market_every=market_every,
            retry_max_s=retry_max_s,
        )
        self._spool = Spool(session_id, spill_path, config, now_s=time.monotonic())
        self._store = store_handle
        self._insert_timeout_s = insert_timeout_s
        self._wake = asyncio.Event()
        self._writing = asyncio.Lock()
        self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def record(self, payload: bytes, source: str = "") -> None:
        """Take a batch of events, :func:`~actors.recording.encode_batch` bytes (msgpack: Ray
        pickling message objects would cost ~3 µs each on either side).

        Returns once the batch is in the spill journal; writing to the store happens later.
        """
        now = time.monotonic()
        self._spool.accept(payload, source=source, now_s=now)
        if self._spool.due(now):
            self._wake.set()

    async def flush(self) -> dict[str, Any]:
        """Write everything accepted so far (retrying a spill at once); returns the counts.

        Stops early, with ``pending_events > 0``, if the store is still failing.
        """
        self._spool.retry_now()
        while self._spool.pending_events():
            if not await self._write_one(force=True):
                break
        return self.stats()

    def stats(self) -> dict[str, Any]:
        """Rows written (per table), events spilled, spill size, lag, store errors, latency."""
        stats = self._spool.snapshot_stats(time.monotonic())
        stats["pid"] = os.getpid()
        return stats

    def ping(self) -> bool:
        return not self._loop_task.done()

    def pid(self) -> int:
        return os.getpid()

    async def _run(self) -> None:
        while True:
            timeout = self._spool.wait_s(time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            self._wake.clear()
            while self._spool.due(time.monotonic()):
                if not await self._write_one(force=False):
                    break

    async def _write_one(self, *, force: bool) -> bool:
        """Write the next chunk; False when nothing was written (nothing due, or a failure)."""
        async with self._writing:
            if not force and not self._spool.due(time.monotonic()):
                return False
            chunk = self._spool.next_chunk()
            if chunk is None:
                return False
            return await self._insert(chunk)

    async def _insert(self, chunk: Chunk) -> bool:
        started = time.monotonic()
        try:
            if chunk.tables:
                ref = self._store.insert_tables.remote(chunk.tables)
                await asyncio.wait_for(ref, timeout=self._insert_timeout_s)
        except STORE_FAILURES as exc:
            if self._spool.failed(chunk, exc, now_s=time.monotonic()):
                log.warning(
                    "recorder %s: store write failed, spilling to %s until it recovers: %s",
                    self._spool.session_id, self._spool.journal.path, exc,
                )  # fmt: skip
            return False
        was_draining = chunk.from_journal
        now = time.monotonic()
        self._spool.written(chunk, now_s=now, latency_s=now - started)
        if was_draining and not self._spool.pending_events():
            log.warning("recorder %s: store back, spill drained", self._spool.session_id)
        return True
