"""Paper-trading actors on this machine, against the issue's targets.

* **book throughput**: market events/s through book actors (L2 book + features, journaled per
  batch, conflated pushes to a deliberately slow subscriber), batches of ``--batch`` quotes,
  at most ``--inflight`` unanswered batches per book, sent as ``pack``ed bytes (the feed's wire)
  or as message objects (``--wire objects``; ``both`` alternates them, same load); the median of
  ``--rounds`` runs. Target ≥ 200k events/s.
* **tick → order at the gateway**: ticks paced at 1k/s; a strategy that sends an order on every
  tick; latency = the gateway's clock when the command is journaled and sent, minus the tick's
  send time (both CLOCK_MONOTONIC). Three variants take turns in rounds (same load): the
  driver's hot path (strategy, risk, gateway: three round trips), risk forwarding one-way, and
  push (strategy → risk → gateway as one-way hops). Targets p50 ≤ 1 ms, p99 ≤ 5 ms; the last
  variant is the one printed against them.
* **crash to trading again**: SIGKILL the risk actor mid-session (lockstep replay); seconds until
  the feed's cursor moves again. Target ≤ 3 s.

    .venv/bin/python bench/actors_bench.py [--events 300000] [--ticks 3000] [--wire both]
        [--only books latency crash]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.messages import QuoteTick  # noqa: E402
from runtime.strategy import Strategy  # noqa: E402
from runtime.values import fixed  # noqa: E402


class EveryTick(Strategy):  # type: ignore[type-arg]
    """Buys one share on every quote, sells it on the next: an order per tick."""

    def on_quote(self, quote: QuoteTick) -> None:
        if self.position(quote.instrument_id) + self.ctx.pending(self.strategy_id,
                                                                  quote.instrument_id) > 0:
            self.sell(quote.instrument_id, fixed(1))
        else:
            self.buy(quote.instrument_id, fixed(1))


def _quotes(n: int, instrument: str, start_ns: int, step_ns: int) -> list[QuoteTick]:
    out = []
    for i in range(n):
        bid = fixed(100) + (i % 7) * fixed("0.01")
        out.append(QuoteTick(seq=i, ts_event=start_ns + i * step_ns, ts_init=start_ns + i * step_ns,
                             instrument_id=instrument, bid_price=bid, bid_size=fixed(500),
                             ask_price=bid + fixed("0.01"), ask_size=fixed(500)))
    return out


def bench_books(events: int, batch: int, inflight: int, folder: Path, wire: str) -> float:
    import ray

    from actors.market import BookActor, pack

    @ray.remote(num_cpus=0)
    class SlowConsumer:
        def __init__(self) -> None:
            self.seen = 0

        def on_snapshot(self, snapshot: dict[str, Any]) -> None:
            time.sleep(0.002)
            self.seen += 1

        def count(self) -> int:
            return self.seen

    name = f"bench.consumer.{wire}.{time.monotonic_ns()}"
    consumer = SlowConsumer.options(name=name).remote()
    instruments = ["B1", "B2"]
    run = folder / name
    books = {i: BookActor.remote(i, str(run / f"{i}.journal"), [name]) for i in instruments}
    ray.get([b.ping.remote() for b in books.values()])
    data = {i: _quotes(events // len(instruments), i, 0, 1000) for i in instruments}
    start = time.perf_counter()
    pending: list[Any] = []
    sent = 0
    per = events // len(instruments)
    for k in range(0, per, batch):
        for i in instruments:
            part = data[i][k:k + batch]
            prev = k - 1 if k else None
            indices = list(range(k, k + len(part)))
            if wire == "packed":
                pending.append(books[i].on_packed.remote(prev, pack(indices, part)))
            else:  # message objects, pickled by Ray (the old wire)
                pending.append(books[i].on_batch.remote(prev, indices, part))
            sent += len(part)
        while len(pending) > inflight * len(instruments):
            _, pending = ray.wait(pending, num_returns=1)
    ray.get(pending)
    elapsed = time.perf_counter() - start
    stats = ray.get([b.stats.remote() for b in books.values()])
    print(f"  books: {sent:,} events in {elapsed:.2f} s; conflated snapshots "
          f"{sum(s['conflated'] for s in stats):,}, delivered {ray.get(consumer.count.remote()):,}")
    for handle in [*books.values(), consumer]:
        ray.kill(handle)
    return sent / elapsed


def _latency_config() -> dict[str, Any]:
    """One instrument, the every-tick strategy, zero-latency L1 paper venue."""
    return {
        "name": "lat", "seed": 1, "initial_cash": 1_000_000,
        "instruments": [{"id": "L1", "price_precision": 2}],
        "data": [{"kind": "quotes", "instrument": "L1", "path": "unused.parquet"}],
        "strategies": [{"id": "tick", "class": "bench.actors_bench:EveryTick",
                        "instruments": ["L1"]}],
        "venue": {"latency": {"kind": "constant", "entry_ns": 0, "response_ns": 0},
                  "fills": {"kind": "l1"}, "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 0}},
        "store": {"record": False}}


def bench_latency(ticks: int, folder: Path) -> tuple[float, float]:
    import ray

    from actors.setup import SessionSetup
    from actors.trading import GatewayActor, RiskActor, StrategyActor
    from backtest.config import load_config

    config = load_config(_latency_config())
    setup = SessionSetup("lat", str(folder / "lat"), config, lockstep=False)
    risk = RiskActor.options(name="lat.risk").remote(setup)
    gateway = GatewayActor.options(name="lat.gateway").remote(setup)
    host = StrategyActor.remote(setup, "tick")
    ray.get([risk.start.remote(0), host.start.remote([], 0)])
    quotes = _quotes(ticks, "L1", 10**9, 10**6)
    ray.get(risk.forward_to.remote(gateway))
    reports_seen = [0]

    async def run(mode: str, offset: int) -> list[int]:
        sent: list[int] = []
        answers: list[Any] = []
        reports: list[Any] = []
        seen = reports_seen[0]
        t_next = time.monotonic()
        base = len(ray.get(gateway.send_times.remote()))
        for k, quote in enumerate(quotes):
            i = offset + k
            t_next += 0.001
            await asyncio.sleep(max(0.0, t_next - time.monotonic()))
            t0 = time.monotonic_ns()
            if mode == "push":  # the feed's real-time hot path (actors.lockstep, push=True)
                risk.step.remote([(None, reports), (i, [quote])])  # one-way, data first
                intents, _, *ref = await host.on_market.remote(answers, i, [quote],
                                                               ("lat.risk", "lat.gateway"))
                out = await ref[0] if ref else []
            elif mode == "forward":  # risk sends approved commands on to the gateway itself
                intents, _ = await host.on_market.remote(answers + reports, i, [quote])
                batches = [(None, reports), (i, [quote]), (None, intents)]
                out = await risk.step.remote(batches, True)
            else:
                intents, _ = await host.on_market.remote(answers + reports, i, [quote])
                batches = [(None, reports), (i, [quote]), (None, intents)]
                out = await risk.step.remote(batches)
                cmds = [m for m in out if type(m).__name__ in ("SubmitOrder", "CancelOrder")]
                if cmds:
                    await gateway.send.remote(cmds)
            answers = [m for m in out if type(m).__name__ in ("SubmitOrder", "OrderDenied")]
            if mode == "push":
                answers += reports  # the strategy takes them with its next call
            if intents:
                sent.append(t0)
            await gateway.apply.remote([], i, [quote])  # the venue sees the tick; reports
            reports = await gateway.drain.remote([], seen) or []
            seen += len(reports)
        reports_seen[0] = seen
        arrivals = ray.get(gateway.send_times.remote())[base:]
        return [a - t for a, t in zip(arrivals, sent, strict=False)]

    modes = (("calls", "driver -> strategy, risk, gateway (3 round trips)"),
             ("forward", "strategy round trip, risk -> gateway one-way"),
             ("push", "push: driver -> strategy -> risk -> gateway, one-way hops"))
    # the modes take turns in rounds, so that each sees the same (shared, noisy) machine
    lat: dict[str, list[int]] = {mode: [] for mode, _ in modes}
    rounds, offset = 5, 0
    per = max(ticks // rounds, 1)
    for _ in range(rounds):
        for mode, _ in modes:
            quotes = _quotes(per, "L1", 10**9 + offset * 10**6, 10**6)
            lat[mode] += asyncio.run(run(mode, offset))
            offset += per
    figures = []
    for mode, label in modes:
        values = sorted(lat[mode])
        p50, p99 = values[len(values) // 2] / 1e6, values[int(len(values) * 0.99)] / 1e6
        print(f"  latency, {label}: {len(values):,} orders, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        figures.append((p50, p99))
    for handle in (risk, gateway, host):
        ray.kill(handle)
    return figures[-1]


def bench_crash(folder: Path) -> float:
    import ray

    from actors.config import load_paper_config
    from actors.session import start_session
    from tests.actors.paper_helpers import write_paper_config, write_sample

    path = write_paper_config(folder / "crash", "mm", write_sample(folder / "data"), minutes=10)
    session = start_session(load_paper_config(path), session_id=f"bench{os.getpid()}")
    while ray.get(session.feed.status.remote())["cursor"] < 50:
        time.sleep(0.05)
    pid = ray.get(session.risk.pid.remote())
    cursor = ray.get(session.feed.status.remote())["cursor"]
    start = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    while ray.get(session.feed.status.remote())["cursor"] <= cursor + 1:
        time.sleep(0.01)
    elapsed = time.monotonic() - start
    session.stop(write=False)
    return elapsed


def _books(args: argparse.Namespace, folder: Path) -> float:
    """Median of ``--rounds`` runs; with ``--wire both`` the wires take turns (same load)."""
    import statistics

    wires = ["objects", "packed"] if args.wire == "both" else [args.wire]
    rates: dict[str, list[float]] = {w: [] for w in wires}
    for _ in range(args.rounds):
        for wire in wires:
            rates[wire].append(bench_books(args.events, args.batch, args.inflight, folder, wire))
    for wire, values in rates.items():
        print(f"  books, {wire} wire: median {statistics.median(values):,.0f} events/s of "
              f"{', '.join(f'{v:,.0f}' for v in values)}")
    return statistics.median(rates[wires[-1]])


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=500)  # the feed sends <= 512
    parser.add_argument("--inflight", type=int, default=8)
    parser.add_argument("--ticks", type=int, default=3000)
    parser.add_argument("--wire", choices=["packed", "objects", "both"], default="packed",
                        help="book batches as packed bytes (the feed's), or message objects")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=["books", "latency", "crash"],
                        choices=["books", "latency", "crash"])
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    nan = float("nan")
    rate, p50, p99, crash = nan, nan, nan, nan
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "books" in args.only:
            rate = _books(args, folder)
        if "latency" in args.only:
            p50, p99 = bench_latency(args.ticks, folder)
        if "crash" in args.only:
            crash = bench_crash(folder)
    print(f"figure                               measured      target    (load {_load()})")
    print(f"book actors, events/s              {rate:>10,.0f}    >= 200,000")
    print(f"tick -> order at gateway p50, ms   {p50:>10.2f}    <= 1")
    print(f"tick -> order at gateway p99, ms   {p99:>10.2f}    <= 5")
    print(f"crash -> trading again, s          {crash:>10.2f}    <= 3")
    ray.shutdown()


if __name__ == "__main__":
    main()
