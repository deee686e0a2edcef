"""Helper for the crash tests: append to a journal forever, report every commit on stdout.

Usage: ``python journal_writer.py PATH BATCH_SIZE SYNCHRONOUS SNAPSHOT_EVERY``

Reopens PATH, continues after its last seq, and appends :func:`record_for` ``(seq)`` in a loop.
Commits happen only through the journal's auto-flush (every BATCH_SIZE appends), so every commit
ends on a multiple of BATCH_SIZE. After each commit it prints ``C <seq>``; after each snapshot
(every SNAPSHOT_EVERY batches, state :func:`state_for` ``(seq)``) it prints ``S <seq>``. A line is
printed only after the commit returned, so every reported seq is committed. The test SIGKILLs it.
"""

from __future__ import annotations

import sys

from runtime.journal import Blob, Journal, JournalRecord
from runtime.messages import OrderSide, OrderType, SubmitOrder, TradeTick

__all__ = ["record_for", "state_for"]


def record_for(seq: int) -> JournalRecord:
    """The deterministic record the writer appends at journal seq ``seq``."""
    if seq % 11 == 0:
        return Blob(kind="timer-state", payload=seq.to_bytes(8, "big") * 8)
    if seq % 5 == 0:
        return SubmitOrder(
            seq=seq,
            ts_event=seq * 1_000,
            ts_init=seq * 1_000 + 1,
            client_order_id=f"S1-{seq:08d}",
            strategy_id="S1",
            instrument_id="2330.TW",
            side=OrderSide.BUY if seq % 2 else OrderSide.SELL,
            order_type=OrderType.LIMIT,
            quantity=1_000,
            price=600_000_000 + seq,
        )
    return TradeTick(
        seq=seq,
        ts_event=seq * 1_000,
        ts_init=seq * 1_000 + 1,
        instrument_id=f"SYM{seq % 7}",
        price=100_000 + seq,
        size=seq % 97 + 1,
        trade_id=f"T{seq:012d}" * 4,
    )


def state_for(seq: int) -> bytes:
    """The deterministic snapshot the writer stores as of ``seq``."""
    return f"state@{seq}".encode() * 16


def main(argv: list[str]) -> None:
    path, batch_size, synchronous, snapshot_every = argv[1], int(argv[2]), argv[3], int(argv[4])
    journal = Journal(path, batch_size=batch_size, synchronous=synchronous)  # type: ignore[arg-type]
    if journal.last_seq % batch_size:
        raise SystemExit(f"half batch on disk: last seq {journal.last_seq}")
    while True:
        for _ in range(batch_size):
            seq = journal.append(record_for(journal.last_seq + 1))
        print(f"C {journal.committed_seq}", flush=True)
        if (seq // batch_size) % snapshot_every == 0:
            journal.snapshot(state_for(seq), upto_seq=seq)
            print(f"S {seq}", flush=True)


if __name__ == "__main__":
    main(sys.argv)
