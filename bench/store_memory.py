"""The embedded store's memory over many small inserts (what a recording session sends it).

A session's recorder writes each batch of events through the store actor, one
``Store.insert_arrow`` a table (a staging table created, filled, attached and dropped). This
opens an embedded (chDB) store in a temporary folder and inserts ``--inserts`` batches of five
fills into ``backtest_fills`` through that path, printing after each quarter the process's
unique memory (USS, psutil), the tables queued in ``system.dropped_tables`` and the active parts;
then the growth per insert over the second half (after the engine's warm-up).

    .venv/bin/python bench/store_memory.py [--inserts 3000]

Before the staging tables were dropped ``SYNC`` each dropped one stayed queued (480 s in an
Atomic database) with its parts in memory; bench/README.md ("Soak") has both runs' figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtest.store import open_store


def _fills(i: int) -> pa.Table:
    ids = [f"f{i}-{j}" for j in range(5)]
    return pa.table({
        "run_id": ["bench"] * 5, "fill_id": ids, "client_order_id": [f"o{i}"] * 5,
        "instrument_id": ["X"] * 5, "ts_event": [i * 5 + j for j in range(5)],
        "side": pa.array([1, -1, 1, -1, 1], pa.int8()), "qty": [10**9] * 5,
        "price": [100 * 10**9 + j for j in range(5)], "fee": [0] * 5,
        "liquidity": ["maker"] * 5,
    })


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inserts", type=int, default=3000)
    args = parser.parse_args(argv)
    proc = psutil.Process()
    rows: list[tuple[int, float, int, int]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tradewind-store-memory-") as folder, \
            open_store(f"chdb://{folder}/clickhouse") as store:
        quarter = max(args.inserts // 4, 1)
        print(f"store memory: {args.inserts} inserts of 5 rows, {os.cpu_count()} cores, "
              f"load {os.getloadavg()[0]:.1f}")
        print(f"{'inserts':>8} {'uss_MB':>8} {'dropped_tables':>14} {'active_parts':>12}")
        for i in range(1, args.inserts + 1):
            store.insert_arrow("backtest_fills", _fills(i))
            if i % quarter == 0 or i == args.inserts:
                dropped = int(store.command("SELECT count() FROM system.dropped_tables"))
                parts = int(store.command("SELECT count() FROM system.parts WHERE active"))
                rows.append((i, proc.memory_full_info().uss / 2**20, dropped, parts))
                print(f"{i:8} {rows[-1][1]:8.1f} {dropped:14} {parts:12}", flush=True)
    half = rows[len(rows) // 2 - 1] if len(rows) > 1 else rows[0]
    per_insert_kb = (rows[-1][1] - half[1]) * 1024 / max(rows[-1][0] - half[0], 1)
    out = {"inserts": args.inserts, "uss_mb": round(rows[-1][1], 1),
           "kb_per_insert_second_half": round(per_insert_kb, 1), "dropped_tables": rows[-1][2],
           "s": round(time.monotonic() - started, 1)}
    print(f"second half: {per_insert_kb:+.1f} kB an insert; {rows[-1][2]} dropped tables queued; "
          f"{out['s']} s")
    print(json.dumps(out, sort_keys=True))
    return out


if __name__ == "__main__":
    main()
