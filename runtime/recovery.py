"""A kernel behind a write-ahead journal: record each input, then apply it; restore after a crash.

The kernel is deterministic, so its state after a crash is rebuilt exactly from the latest
snapshot plus the journal's tail (the inputs after it). Outputs produced while replaying are
discarded: they were produced (and, in an actor, journaled and sent) before the crash.

A snapshot is taken every ``snapshot_every`` journal entries; with ``compact=True`` the entries
it covers are then deleted, so a restore reads one snapshot and at most ``snapshot_every``
entries however long the owner has run. The count of market data messages handled
(:attr:`JournaledKernel.market_seen`, the owner's position in the feed) rides in the snapshot,
so it survives compaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from runtime.errors import InvariantError
from runtime.journal import Blob, Journal
from runtime.kernel import Kernel
from runtime.messages import Bar, BookDeltas, BookSnapshot, Message, QuoteTick, TradeTick

__all__ = ["JournaledKernel"]

_MARKET = (QuoteTick, TradeTick, Bar, BookDeltas, BookSnapshot)
_START = "kernel.start"
_STOP = "kernel.stop"


class JournaledKernel:
    """Wraps a :class:`Kernel`: ``start``/``handle``/``stop`` journal their input first."""

    def __init__(self, kernel: Kernel, journal: Journal, *, snapshot_every: int = 10_000,
                 compact: bool = False, market_seen: int = 0) -> None:
        self.kernel = kernel
        self.journal = journal
        self.snapshot_every = snapshot_every
        self.compact = compact
        self.market_seen = market_seen  # market data messages handled (snapshot + tail)

    def start(self, ts_ns: int) -> list[Message]:
        self.journal.append(Blob(_START, ts_ns.to_bytes(8, "big", signed=True)))
        return self.kernel.start(ts_ns)

    def handle(self, message: Message) -> list[Message]:
        seq = self.journal.append(message)  # type: ignore[arg-type]  # any runtime message
        if isinstance(message, _MARKET):
            self.market_seen += 1
        out = self.kernel.handle(message)
        if seq % self.snapshot_every == 0:
            self.snapshot()
        return out

    def stop(self, ts_ns: int) -> list[Message]:
        self.journal.append(Blob(_STOP, ts_ns.to_bytes(8, "big", signed=True)))
        out = self.kernel.stop(ts_ns)
        self.journal.flush()
        return out

    def snapshot(self) -> None:
        """The kernel's state after every entry so far; with ``compact``, those entries go."""
        upto = self.journal.last_seq
        self.journal.snapshot(_encode_state(self.kernel, self.market_seen), upto_seq=upto)
        if self.compact:
            self.journal.compact(upto)

    @classmethod
    def restore(
        cls,
        factory: Callable[[], Kernel],
        journal: Journal,
        *,
        blobs: Mapping[str, Callable[[Kernel, bytes], None]] | None = None,
        **kwargs: Any,
    ) -> JournaledKernel:
        """A new kernel from ``factory()``, brought to the journal's last committed state.

        ``blobs``: how to re-apply the other kinds of :class:`Blob` records its owner
        journals beside the kernel's inputs (kind → ``handler(kernel, payload)``, in journal
        order; e.g. an operator's change of a strategy's params); any other kind is an
        error."""
        kernel = factory()
        snapshot, _, tail = journal.restore()
        market_seen = 0
        if snapshot is not None:
            payload = json.loads(snapshot)
            market_seen = int(payload.get("market_seen", 0))
            kernel.start(int(payload["now"]))  # binds strategies; outputs discarded
            kernel.load_state(payload["kernel"])
            for strategy in kernel.strategies:
                state = payload["strategies"].get(strategy.strategy_id)
                if state is not None:
                    strategy.set_state(state)
        for _, record in tail:
            if isinstance(record, Blob):
                if record.kind == _START:
                    kernel.start(int.from_bytes(record.payload, "big", signed=True))
                elif record.kind == _STOP:
                    kernel.stop(int.from_bytes(record.payload, "big", signed=True))
                elif blobs is not None and record.kind in blobs:
                    blobs[record.kind](kernel, record.payload)
                else:
                    raise InvariantError(f"unknown journal record kind {record.kind!r}")
            else:
                market_seen += isinstance(record, _MARKET)
                kernel.handle(record)
        return cls(kernel, journal, market_seen=market_seen, **kwargs)


def _encode_state(kernel: Kernel, market_seen: int) -> bytes:
    strategies = {s.strategy_id: s.get_state() for s in kernel.strategies}
    # JSON, not msgpack: exact money and cost sums can exceed 64 bits
    return json.dumps(
        {
            "now": kernel.now,
            "market_seen": market_seen,
            "kernel": kernel.state(),
            "strategies": {k: v for k, v in strategies.items() if v is not None},
        },
        sort_keys=True,
    ).encode()
