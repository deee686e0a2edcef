"""Recorder throughput and lag through the actors: producer → RecorderActor → StoreActor → chDB.

Two measurements, each repeated (medians printed), against the targets (≥ 500k rows/s, lag < 1 s):

* **throughput**: the producer sends pre-encoded batches as fast as the recorder takes them (at
  most ``--inflight`` unanswered ``record`` calls); rows/s = events written ÷ (first ``record`` →
  the final ``flush`` returning, so every event is in ClickHouse).
* **lag**: the producer paces itself at the target rate; lag = age of the oldest unwritten event
  when its chunk reached the store (the recorder's ``max_lag_s``), and the time the final flush
  still needed after the last ``record``.

Mixes: ``market`` (quotes and trades) and ``mixed`` (per 10 events: 7 market, an order's
submit/accept/fill and a position change). Events are encoded by the producer before timing as
the session's feed sends them (``encode_batch``: msgpack messages; the recorder journals each
batch, decodes it and builds the rows).

    .venv/bin/python bench/recorder_bench.py [--events 1000000] [--repeat 3] [--batch 5000]
        [--mix market mixed]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.recording import encode_batch
from runtime.messages import (
    Liquidity,
    Message,
    OrderAccepted,
    OrderFilled,
    OrderSide,
    OrderType,
    PositionChanged,
    QuoteTick,
    SubmitOrder,
    TradeTick,
)

TARGET_ROWS_S = 500_000
TARGET_LAG_S = 1.0


def market(i: int) -> Message:
    if i % 4:
        return QuoteTick(seq=0, ts_event=i, ts_init=i, instrument_id=f"SIM-{i % 8}",
                         bid_price=100 * 10**9 + i, bid_size=10**9, ask_price=101 * 10**9 + i,
                         ask_size=2 * 10**9)
    return TradeTick(seq=0, ts_event=i, ts_init=i, instrument_id=f"SIM-{i % 8}",
                     price=100 * 10**9 + i, size=10**9, trade_id=str(i))


def order_life(i: int) -> list[Message]:
    ids = {"client_order_id": f"B-{i}", "strategy_id": "bench", "instrument_id": "SIM-0"}
    return [
        SubmitOrder(seq=0, ts_event=i, ts_init=i, **ids, side=OrderSide.BUY,
                    order_type=OrderType.LIMIT, quantity=10**9, price=100 * 10**9),
        OrderAccepted(seq=i, ts_event=i, ts_init=i, **ids, venue_order_id=f"V{i}"),
        OrderFilled(seq=i, ts_event=i, ts_init=i, **ids, venue_order_id=f"V{i}",
                    fill_id=f"F{i}", side=OrderSide.BUY, last_qty=10**9,
                    last_price=100 * 10**9, cum_qty=10**9, leaves_qty=0, fee=10**6,
                    currency="USD", liquidity=Liquidity.MAKER),
        PositionChanged(seq=0, ts_event=i, ts_init=i, instrument_id="SIM-0", quantity=i,
                        avg_price=100 * 10**9, realized_pnl=0),
    ]


def make_batches(mix: str, events: int, batch: int, offset: int) -> list[bytes]:
    out = []
    for start in range(offset, offset + events, batch):
        if mix == "market":
            messages = [market(i) for i in range(start, start + batch)]
        else:
            messages = []
            for i in range(start, start + batch, 10):
                messages += [market(i + j) for j in range(7)] + order_life(i)[:3]
        out.append(encode_batch(messages[:batch]))
    return out


def run_once(ray: Any, store: Any, batches: list[bytes], *, pace_rows_s: float | None,
             inflight: int, batch: int, spill: Path, session: str) -> dict[str, float]:
    from actors.recorder import RecorderActor

    recorder = RecorderActor.remote(session, store, str(spill), batch_rows=100_000,
                                    flush_interval_s=0.1)
    ray.get(recorder.ping.remote())
    pending: list[Any] = []
    start = time.perf_counter()
    for k, payload in enumerate(batches):
        if pace_rows_s:
            delay = start + k * batch / pace_rows_s - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        pending.append(recorder.record.remote(payload, "bench"))
        if len(pending) >= inflight:
            ray.wait(pending, num_returns=len(pending) - inflight // 2)
            pending = pending[-(inflight // 2):]
    ray.get(pending)
    sent = time.perf_counter()
    stats = ray.get(recorder.flush.remote())
    done = time.perf_counter()
    ray.kill(recorder)
    assert stats["pending_events"] == 0, stats
    return {"rows_s": stats["events_written"] / (done - start), "max_lag_s": stats["max_lag_s"],
            "final_flush_s": done - sent, "rows": stats["rows_written"],
            "insert_s": stats["max_insert_latency_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--inflight", type=int, default=8)
    parser.add_argument("--mix", nargs="+", choices=["market", "mixed"],
                        default=["market", "mixed"])
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from actors.store import StoreActor

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory(prefix="recorder-bench-") as tmp:  # GBs: never left behind
        _bench(args, ray, StoreActor, Path(tmp))
    ray.shutdown()


def _bench(args: argparse.Namespace, ray: Any, StoreActor: Any, work: Path) -> None:
    store = StoreActor.remote(f"chdb://{work / 'ch'}")
    ray.get(store.ping.remote())
    print(f"recorder bench: {args.events:,} events per run, batches of {args.batch:,}, "
          f"{args.repeat} runs, {os.cpu_count()} cores, "
          f"load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    run = 0
    for mix in args.mix:
        for pace in (None, TARGET_ROWS_S):
            results = []
            for _ in range(args.repeat):
                run += 1
                batches = make_batches(mix, args.events, args.batch, run * 10**8)
                results.append(run_once(
                    ray, store, batches, pace_rows_s=pace, inflight=args.inflight,
                    batch=args.batch, spill=work / f"spill-{run}.journal", session=f"B{run}"))
            report(mix, pace, results)
    ray.get(store.close.remote())


def report(mix: str, pace: float | None, results: list[dict[str, float]]) -> None:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in results)

    label = f"{mix:6} {'paced' if pace else 'max rate':8}"
    rows_ok = "OK" if med("rows_s") >= TARGET_ROWS_S else "below"
    lag_ok = "OK" if med("max_lag_s") < TARGET_LAG_S else "above"
    rate = f"{med('rows_s'):>10,.0f} rows/s"
    if pace:
        rate += f" (offered {pace:,.0f}/s)"
    else:
        rate += f" [{rows_ok} vs ≥{TARGET_ROWS_S:,}]"
    print(f"{label} {rate}  max lag {med('max_lag_s'):.3f} s [{lag_ok} vs <{TARGET_LAG_S} s]  "
          f"final flush {med('final_flush_s'):.3f} s  slowest insert {med('insert_s'):.3f} s  "
          f"(median of {len(results)}; rows/run {med('rows'):,.0f})")


if __name__ == "__main__":
    main()
