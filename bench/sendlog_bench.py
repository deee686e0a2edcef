"""The broker send log's size over a long session, compacted and not.

A :class:`~actors.venues.gateway.BrokerGateway` drives ``--orders`` limit orders through an
in-process adapter built on the adapters' own :class:`~actors.venues.reports.ReportBook` and
:class:`~actors.venues.send_log.SendLog` (journal before send, broker ids, sent, an ack, a fill
in two parts, closed: what an IB order writes), one order per step, the driver's cursor
following. The session's clock advances ``--step-s`` per order, so 50,000 orders at 10 s span
almost six days and the gateway's retirement horizon (a day) applies. Printed per mode: the
SQLite file's size after each quarter of the orders (it never shrinks: its high-water mark),
the WAL's largest (it cycles under ``actors.journals.WAL_LIMIT`` whatever the session's length,
compacted or not), the orders the log still holds, those retired, and the run's time. The
journals go to ``/dev/shm`` when it exists (every append is fsynced: a disk would measure the
disk, not the log).

    .venv/bin/python bench/sendlog_bench.py [--orders 50000] [--step-s 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import actors.venues.send_log as send_log_module
from actors.venues.common import CircuitBreaker, CommandQueue
from actors.venues.gateway import BrokerGateway
from actors.venues.reports import BookViews, ReportBook
from actors.venues.send_log import SendLog
from runtime.messages import OrderSide, OrderType, SubmitOrder, TimeInForce

LOT = 10**9


class _Venue(BookViews):
    """Acks and fills every order at once, in two executions, journaling as an adapter does."""

    pump_on_drain = False

    def __init__(self, send_log: SendLog, clock_ns: Callable[[], int]) -> None:
        self.send_log, self.clock_ns = send_log, clock_ns
        self.book = ReportBook(currency="USD", clock_ns=clock_ns, on_report=send_log.report,
                               on_terminal=send_log.closed)
        self.book.set_baseline(send_log.baseline or {})
        self.queue, self.breaker = CommandQueue(), CircuitBreaker()
        self.connected, self.reconcile_requested = True, False
        self.executions = 0

    def submit(self, command: SubmitOrder, now: int) -> None:
        cid = command.client_order_id
        if not self.send_log.before_send(command):
            return
        self.book.track(command)
        self.send_log.broker_ids(cid, order_id=str(1000 + self.send_log.submits))
        self.send_log.sent(cid)
        self.send_log.broker_ids(cid, perm_id=str(9_000_000 + self.send_log.submits))
        self.book.accepted(cid, venue_order_id=cid, ts_event=now)
        for qty in (command.quantity // 2, command.quantity - command.quantity // 2):
            self.executions += 1
            self.book.filled(cid, fill_id=f"IB-0000e0d5.{self.executions:08d}.01.01", qty=qty,
                             price=100 * LOT, fee=LOT, ts_event=now)


class _Link:
    def __init__(self, venue: _Venue) -> None:
        self.venue = venue

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    def close(self) -> None:
        pass


def _size(folder: Path) -> tuple[int, int]:
    path = folder / "broker.bench.journal"
    wal = Path(f"{path}-wal")
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0


def run(orders: int, step_s: float, *, compact: bool) -> dict[str, Any]:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    folder = Path(tempfile.mkdtemp(prefix="tw-sendlog-", dir=base))
    now = [1_700_000_000 * 10**9]
    clock = lambda: now[0]  # noqa: E731
    send_log_module.COMPACT_MIN_ENTRIES = 2000 if compact else 1 << 62
    gateway = BrokerGateway(lambda log: _Link(_Venue(log, clock)), folder, kind="bench",
                            clock_ns=clock)
    seen, wal, quarters, t0 = 0, 0, [], time.perf_counter()
    for i in range(orders):
        now[0] += int(step_s * 1e9)
        gateway.send([SubmitOrder(seq=i + 1, ts_event=now[0], ts_init=now[0],
                                  client_order_id=f"S1-{i:07d}", strategy_id="s",
                                  instrument_id="SIM-A", side=OrderSide.BUY if i % 2 == 0
                                  else OrderSide.SELL, order_type=OrderType.LIMIT,
                                  quantity=10 * LOT, price=100 * LOT,
                                  time_in_force=TimeInForce.DAY)])
        seen += len(gateway.reports_due(seen))
        gateway.commit()
        if i % 500 == 0:
            wal = max(wal, _size(folder)[1])
        if (i + 1) % (orders // 4) == 0:
            quarters.append(_size(folder)[0])
    elapsed = time.perf_counter() - t0
    held, retired = len(gateway.send_log.orders), gateway.send_log.retired
    gateway.close()
    gateway.send_log.journal.close()
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    return {"quarters": quarters, "wal": wal, "held": held, "retired": retired,
            "elapsed_s": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--step-s", type=float, default=10.0)
    args = parser.parse_args()
    print(f"{args.orders} orders, {args.step_s:g} s apart "
          f"({args.orders * args.step_s / 86_400:.1f} days); load {os.getloadavg()[0]:.2f}")
    results = {}
    for compact in (False, True):
        r = results[compact] = run(args.orders, args.step_s, compact=compact)
        sizes = " / ".join(f"{q / 2**20:.1f}" for q in r["quarters"])
        print(f"  {'compacted' if compact else 'never compacted'}: file after each quarter "
              f"{sizes} MB, WAL at most {r['wal'] / 2**20:.1f} MB; orders held {r['held']}, "
              f"retired {r['retired']}; {r['elapsed_s']:.1f} s")
    off, on = results[False]["quarters"][-1], results[True]["quarters"][-1]
    print(f"  file at the end, never / compacted: {off / on:.1f}x; "
          f"bytes per order never compacted: {off / args.orders:.0f}")


if __name__ == "__main__":
    main()
