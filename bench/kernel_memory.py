"""A kernel's memory and snapshot over a long session, retiring closed orders and not.

A kernel (risk checks here, one strategy) trades one order a bar (long on odd bars, flat on even
ones), each accepted and filled at once, for ``--days`` days of event time at ``--per-day`` bars
a day, in three modes: closed orders retiring after a day (``runtime.retirement``, the default);
retiring into the risk actor's archive (``actors.order_archive``: the kernel keeps what it
retires until the archive takes it after each bar, as the risk actor's does after each commit);
and every order kept (``retire_orders_after_h: null``). Printed per mode, after each quarter of
the days: the orders held, the Python heap the kernel holds (tracemalloc), its snapshot's size
(pickled and compressed as ``runtime.snapshots.pack`` does) and the archive's size; then the
growth per order over the second half and the time the run took.

    .venv/bin/python bench/kernel_memory.py [--days 20] [--per-day 144]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.order_archive import OrderArchive
from runtime.instruments import Instrument, InstrumentRegistry
from runtime.kernel import Kernel
from runtime.messages import Bar, Liquidity, OrderAccepted, OrderFilled, SubmitOrder
from runtime.strategy import Strategy, StrategyParams
from runtime.values import fixed

DAY_NS = 24 * 3600 * 10**9
REG = InstrumentRegistry([Instrument(instrument_id="X", price_precision=2)])


class Flip(Strategy[StrategyParams]):
    """Long 10 on odd bars, flat on even ones: an order a bar."""

    def on_start(self) -> None:
        self.n = 0

    def on_bar(self, bar: Bar) -> None:
        self.n += 1
        self.target_position(bar.instrument_id, 10 * 10**9 if self.n % 2 else 0)


def _step(k: Kernel, i: int, step_ns: int) -> None:
    price = fixed(100 + i % 7)
    bar = Bar(seq=i, ts_event=i * step_ns, ts_init=i * step_ns, instrument_id="X", open=price,
              high=price, low=price, close=price, volume=10**12, interval_ns=step_ns)
    for cmd in k.handle(bar):
        if not isinstance(cmd, SubmitOrder):
            continue
        ids = {"client_order_id": cmd.client_order_id, "strategy_id": cmd.strategy_id,
               "instrument_id": cmd.instrument_id, "venue_order_id": "v"}
        k.handle(OrderAccepted(seq=0, ts_event=cmd.ts_event, ts_init=cmd.ts_event, **ids))
        k.handle(OrderFilled(seq=0, ts_event=cmd.ts_event + 1, ts_init=cmd.ts_event + 1,
                             fill_id=f"F-{cmd.client_order_id}", side=cmd.side,
                             last_qty=cmd.quantity, last_price=price, cum_qty=cmd.quantity,
                             leaves_qty=0, fee=fixed("0.5"), currency="USD",
                             liquidity=Liquidity.TAKER, **ids))


def run(days: int, per_day: int, retire_after_ns: int | None,
        archive: OrderArchive | None = None) -> dict[str, Any]:
    step_ns = DAY_NS // per_day
    tracemalloc.start()
    t0 = time.perf_counter()
    k = Kernel(registry=REG, strategies=[Flip("flip", instruments=("X",))],
               initial_cash=fixed(10**6), namespace="bench", retire_after_ns=retire_after_ns,
               keep_retired=archive is not None)
    k.start(0)
    rows, n = [], 0
    for quarter in range(1, 5):
        for i in range(n + 1, days * per_day * quarter // 4 + 1):
            _step(k, i, step_ns)
            if archive is not None and k.retired_orders:
                archive.settle(k.retired_orders)
        n = days * per_day * quarter // 4
        rows.append({"orders": k.ledger.total, "held": len(k.orders),
                     "heap": tracemalloc.get_traced_memory()[0],
                     "snapshot": len(zlib.compress(pickle.dumps(k), 1)),
                     "archive": archive.path.stat().st_size
                     if archive is not None and archive.path.exists() else 0})
    tracemalloc.stop()
    made = rows[3]["orders"] - rows[1]["orders"]
    return {"rows": rows, "seconds": time.perf_counter() - t0,
            "heap_per_order": (rows[3]["heap"] - rows[1]["heap"]) / made,
            "snapshot_per_order": (rows[3]["snapshot"] - rows[1]["snapshot"]) / made,
            "archive_per_order": (rows[3]["archive"] - rows[1]["archive"]) / made}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--per-day", type=int, default=144)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        archive = OrderArchive(Path(tmp) / "risk.journal")
        for mode, after, into in (("retiring after a day", DAY_NS, None),
                                  ("retiring into risk's archive", DAY_NS, archive),
                                  ("every order kept", None, None)):
            result = out[mode] = run(args.days, args.per_day, after, into)
            print(f"{mode}:")
            for q, row in enumerate(result["rows"], 1):
                print(f"  after {q}/4: {row['orders']:>6} orders, {row['held']:>6} held, heap "
                      f"{row['heap'] / 1e6:6.2f} MB, snapshot {row['snapshot'] / 1e3:7.1f} kB, "
                      f"archive {row['archive'] / 1e3:7.1f} kB")
            print(f"  second half, per order: heap {result['heap_per_order']:.0f} B, snapshot "
                  f"{result['snapshot_per_order']:.1f} B, archive "
                  f"{result['archive_per_order']:.1f} B; {result['seconds']:.1f} s")
    print(json.dumps({"bench": "kernel_memory", "days": args.days, "per_day": args.per_day,
                      "load": load, **{m: {k: v for k, v in r.items() if k != "rows"}
                                       for m, r in out.items()}}))


if __name__ == "__main__":
    main()
