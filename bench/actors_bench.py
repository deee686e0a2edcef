"""Paper-trading actors on this machine, against the issue's targets.

* **book throughput**: market events/s through the book stage: two book actors (book +
  features, the views answered, the feed position journaled per step) each taking its
  instrument's part of every step of ``--batch`` quotes of the two instruments, interleaved
  (``actors.step.route``, run in the timed loop as the carrier runs it), at most
  ``--inflight`` unanswered steps per book, as msgpack bytes, over the default carrier (each
  book actor's UNIX socket, as ``auto`` picks on one node; ``--transports calls`` first: Ray
  actor calls); the median of ``--rounds`` runs. Target ≥ 200k events/s.
* **tick → order at the gateway**: the feed's real-time driver paced at 1k ticks/s, a strategy
  that orders on one tick in 10, and one that orders on every tick (1k orders/s); latency =
  the gateway's clock when the command is journaled and sent, minus the tick's due time (both
  CLOCK_MONOTONIC). Each carrier of ``--transports`` runs alone in turn (``feed.transport``:
  ``auto``, the default, which is the node's UNIX sockets here; ``sockets``; ``calls``, Ray
  actor calls); the first, one order in 10 ticks, is printed against the targets p50 ≤ 1 ms,
  p99 ≤ 5 ms. Each line also gives the orders over
  5 ms and the CPU's busy and stolen shares meanwhile (a VM's host taking the CPU for others
  shows as stolen time, and as late orders). Before and after the variants it measures the
  machine's floor (``bench/ipc_floor.py``): three bare processes over socketpairs, no Ray, no
  journal, paced alike. No multi-process hot path can beat that tail.
* **restart after a session of N market messages** (``--lengths``, default 10k, 100k, 1M): the
  risk, strategy, gateway and book actors take N quotes first (as a session that ran that
  long), then the feed's real-time driver runs at 1k ticks/s over the default carrier, an
  order in 10 ticks; risk (or each actor of ``--kill`` in turn) is SIGKILLed; seconds from the
  kill to the next order the gateway sends. Target ≤ 3 s at every length, not growing with
  it. Also each actor's journal bytes (main file + WAL) before the kill.

The last line is one JSON object with the figures (``p50_ms``, ``p99_ms``,
``p50_every_tick_ms``, ``book_events_per_s``, ``restart_s`` per length, ``restart_s_by_actor``,
``journal_bytes``).

    .venv/bin/python bench/actors_bench.py [--events 300000] [--ticks 10000]
        [--only books latency restart] [--transports auto calls] [--lengths 10000 100000]
        [--kill risk strategy gateway book]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.messages import QuoteTick  # noqa: E402
from runtime.strategy import Strategy, StrategyParams  # noqa: E402
from runtime.values import fixed  # noqa: E402


class EveryParams(StrategyParams):
    every: int = 1


class EveryTick(Strategy[EveryParams]):
    """Buys one share on every ``every``-th quote (its seq divisible by it), sells it on the
    next such quote: an order per tick at ``every: 1``."""

    def on_quote(self, quote: QuoteTick) -> None:
        if quote.seq % self.params.every:
            return
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


def bench_books(events: int, batch: int, inflight: int, folder: Path,
                transport: str = "sockets") -> float:
    """Steps of ``batch`` quotes of two instruments, interleaved, each book actor its part of
    each (it applies its instrument's messages, journals the position and answers the views),
    at most ``inflight`` steps unanswered per book, over ``transport`` (``sockets``: each book
    actor's UNIX socket, what ``auto`` picks on one node; ``calls``: Ray actor calls): market
    events/s through the book stage."""
    import ray

    from actors.book import BookActor
    from actors.step import HotInput, decode_views, route

    instruments = ["B1", "B2"]
    per = events // len(instruments)
    data = {i: _quotes(per, i, k, 1000) for k, i in enumerate(instruments)}
    feed = sorted((q for i in instruments for q in data[i]), key=lambda q: (q.ts_event, q.seq))
    name = f"books_{time.monotonic_ns()}"
    setup = _feed_setup(folder / name, feed)
    books = {i: BookActor.remote(i, setup) for i in instruments}
    ray.get([b.ping.remote() for b in books.values()])
    steps = [HotInput(k, feed[k:k + batch], feed[min(k + batch, len(feed)) - 1].ts_event,
                      {}, [], 0) for k in range(0, len(feed), batch)]
    if transport == "sockets":
        elapsed, views = _books_over_sockets(list(books.values()), instruments, steps, inflight)
    else:
        start = time.perf_counter()
        pending: list[Any] = []
        for step in steps:
            parts = route(step, instruments)  # the carrier's work for the book stage
            pending += [b.hot_step.remote(part) for b, part in zip(books.values(), parts,
                                                                    strict=True)]
            while len(pending) > inflight * len(instruments):
                _, pending = ray.wait(pending, num_returns=1)
        views = sum(len(decode_views(v)) for v in ray.get(pending))
        elapsed = time.perf_counter() - start
    stats = ray.get([b.stats.remote() for b in books.values()])
    applied = sum(s["applied"] for s in stats)
    print(f"  books over {transport}: {len(feed):,} events in {elapsed:.2f} s, {applied:,} "
          f"applied (the last steps answered {views:,} views)")
    for handle in books.values():
        ray.kill(handle)
    return len(feed) / elapsed


def _books_over_sockets(books: list[Any], instruments: list[str], steps: list[Any],
                        inflight: int) -> tuple[float, int]:
    """The sockets carrier's book stage (``actors.sockpath``): each book actor linked as a
    chain of its own that answers the feed, its part of each step written to its socket, at
    most ``inflight`` unanswered per book; (seconds, the views of the last answers)."""
    import socket

    import ray

    from actors.sockpath import BOOK, _call_result, chain_frame, link_frame
    from actors.step import decode_views, route

    conns = []
    for _, address in ray.get([b.hot_listen.remote() for b in books]):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(address)
        conn.sendall(link_frame(BOOK, "", 0, 1))
        _call_result(conn)
        conns.append(conn)
    start = time.perf_counter()
    unanswered = 0
    for ticket, step in enumerate(steps):
        for conn, part in zip(conns, route(step, instruments), strict=True):
            conn.sendall(chain_frame(ticket, [b"", part]))
        unanswered += 1
        if unanswered > inflight:
            for conn in conns:
                _call_result(conn)
            unanswered -= 1
    last = [_call_result(conn)[8:] for _ in range(unanswered) for conn in conns]
    elapsed = time.perf_counter() - start
    for conn in conns:
        conn.close()
    return elapsed, sum(len(decode_views(v)) for v in last)


def _feed_setup(folder: Path, quotes: list[QuoteTick], every: int = 10) -> Any:
    """A session's setup in ``folder`` whose feed's log holds ``quotes`` (the actors re-read
    their market data there when they restore)."""
    from actors.feed_log import CACHE, write_log
    from actors.setup import SessionSetup
    from backtest.config import load_config

    folder.mkdir(parents=True, exist_ok=True)
    write_log(folder / CACHE, quotes[0].ts_event, quotes)
    return SessionSetup(folder.name, str(folder), load_config(_latency_config(every)),
                        lockstep=False)


def _latency_config(every: int = 1) -> dict[str, Any]:
    """One instrument, the every-tick strategy, zero-latency L1 paper venue."""
    return {
        "name": "lat", "seed": 1, "initial_cash": 1_000_000,
        "instruments": [{"id": "L1", "price_precision": 2}],
        "data": [{"kind": "quotes", "instrument": "L1", "path": "unused.parquet"}],
        "strategies": [{"id": "tick", "class": "bench.actors_bench:EveryTick",
                        "instruments": ["L1"], "params": {"every": every}}],
        "venue": {"latency": {"kind": "constant", "entry_ns": 0, "response_ns": 0},
                  "fills": {"kind": "l1"}, "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 0}},
        "store": {"record": False}}


def bench_latency(ticks: int, folder: Path, rounds: int = 3, every: tuple[int, ...] = (10, 1),
                  modes: tuple[str, ...] = ("auto",)
                  ) -> dict[tuple[int, str], tuple[float, float]]:
    """The feed's real-time driver (``actors.driver.Driver``) paced at 1k ticks/s over
    the real strategy, risk and gateway actors, over each carrier of ``modes``
    (``actors.carriers``: ``auto``, ``sockets``, ``calls``); the strategy orders on one tick
    in ``every`` (10: a strategy that trades now and then; 1: an order per tick, 1k orders/s).
    Latency: the gateway's clock when it sent the order minus the tick's due time (both
    CLOCK_MONOTONIC), so a driver running late counts too.

    Each variant runs as a session would: its own actors and journals, alone on the machine
    (a variant that falls behind leaves its journals' pages for the disk to write while the
    next one runs), its carrier connected once, ``rounds`` rounds of ``ticks / rounds`` ticks
    back to back; between variants the page cache is written out (``os.sync``). Returns
    p50 and p99 (ms) per (every, mode)."""
    from bench.ipc_floor import floor, summary

    def machine_floor(when: str) -> None:  # what the machine allows any process chain now
        before = _cpu_times()
        line = summary(floor(ticks))
        steal = _cpu_share(before, _cpu_times())[1]
        print(f"  floor {when}, 3 processes on socketpairs (100 µs each, no Ray, no journal): "
              f"{line} (stolen by the host {steal:.1%})")

    machine_floor("before")
    figures = {}
    for n in every:
        for mode in modes:
            before = _cpu_times()
            per_round = _latency_variant(ticks, folder, rounds, n, mode)
            busy, steal = _cpu_share(before, _cpu_times())
            values = sorted(x for r in per_round for x in r)
            p50, p99 = _p50_p99(values)
            late = sum(x > 5e6 for x in values)
            label = {"calls": "Ray calls", "auto": "auto (default)",
                     "sockets": "UNIX sockets"}[mode]
            spread = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in map(_p50_p99, per_round))
            print(f"  latency, an order every {n:>2} tick(s), {label:<14}: {len(values):>5,} "
                  f"orders, p50 {p50:8.2f} ms, p99 {p99:8.2f} ms, {late} over 5 ms (rounds "
                  f"p50/p99: {spread}; CPU busy {busy:.0%}, stolen by the host {steal:.1%})")
            figures[n, mode] = (p50, p99)
    machine_floor("after")
    return figures


def _cpu_times() -> list[int]:
    """The machine's CPU times (``/proc/stat``: user nice system idle iowait irq softirq
    steal), or [] where there is none."""
    try:
        with open("/proc/stat") as stat:
            return [int(x) for x in stat.readline().split()[1:9]]
    except OSError:
        return []


def _cpu_share(before: list[int], after: list[int]) -> tuple[float, float]:
    """Busy and stolen (a VM's host running others) shares of the CPU time between two
    :func:`_cpu_times`: a run with much stolen time says more about the host than the code."""
    if not before or not after:
        return float("nan"), float("nan")
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta) or 1
    return (total - delta[3] - delta[4] - delta[7]) / total, delta[7] / total


def _p50_p99(values: list[int]) -> tuple[float, float]:
    ordered = sorted(values)
    if not ordered:
        return float("nan"), float("nan")
    return ordered[len(ordered) // 2] / 1e6, ordered[int(len(ordered) * 0.99)] / 1e6


SETTLE_S = 3.0


def _latency_variant(ticks: int, folder: Path, rounds: int, every: int,
                     mode: str) -> list[list[int]]:
    """One variant of :func:`bench_latency`: each round's latencies (ns)."""
    import ray

    from actors.book import BookActor
    from actors.carriers import open_carrier
    from actors.driver import Driver, Ports
    from actors.gateway import GatewayActor
    from actors.risk import RiskActor
    from actors.strategy import StrategyActor

    quotes = _quotes(ticks, "L1", 10**9, 10**6)  # 1 ms apart: 1k ticks/s at speed 1
    setup = _feed_setup(folder / f"lat_{every}_{mode}", quotes, every)
    ports = Ports(gateway=GatewayActor.remote(setup), risk=RiskActor.remote(setup),
                  hosts={"tick": StrategyActor.remote(setup, "tick")},
                  books={"L1": BookActor.remote("L1", setup)})
    actors = [ports.risk, ports.gateway, *ports.hosts.values(), *ports.books.values()]
    ray.get([a.ping.remote() for a in actors])
    time.sleep(SETTLE_S)  # the worker processes Ray starts beside the actors finish starting
    hot = asyncio.run(open_carrier(mode, ports.hosts, ports.risk, ports.gateway,  # type: ignore[arg-type]
                                   books=ports.books))
    driver = Driver(ports, quotes, start_ns=0, speed=1.0, carrier=hot, exact=False)
    asyncio.run(driver.start())
    per = max(ticks // rounds, 1)
    out = [_latency_round(driver, quotes, r * per, min((r + 1) * per, ticks), every)
           for r in range(rounds)]
    hot.close()
    for handle in actors:
        ray.kill(handle)
    os.sync()  # this variant's journal writes reach the disk now, not during the next
    time.sleep(1.0)
    return out


def _latency_round(driver: Any, quotes: list[QuoteTick], start: int, end: int,
                   every: int) -> list[int]:
    """Steps from ``start`` to ``end`` paced at the data's rate; each order's latency (ns)
    from its tick's due time (the pacing anchor, re-set for the round) to its sending.
    The driver sees the data only up to ``end``: a step that takes every message due may
    not run into the next round's ticks (which would order twice on them and pair the
    sends with the wrong ticks)."""
    import ray

    gateway = driver.ports.gateway
    base = len(ray.get(gateway.send_times.remote()))

    async def run() -> None:
        driver.messages, driver.cursor, driver._wall0 = quotes[:end], start, 0.0
        while await driver.step():
            pass
        await driver.flush()

    asyncio.run(run())
    sends = ray.get(gateway.send_times.remote())[base:]
    first = driver.messages[0].ts_event
    ticks = [k for k in range(start, end) if k % every == 0]  # the ticks that order
    if len(sends) != len(ticks):  # an order denied or lost: the pairing would be wrong
        print(f"  round {start}-{end}: {len(sends)} orders for {len(ticks)} ordering ticks; "
              f"its latencies are left out")
        return []
    due = [int(driver._wall0 * 1e9) + (driver.messages[k].ts_event - first) for k in ticks]
    return [s - d for s, d in zip(sends, due, strict=True)]


def bench_restart(length: int, folder: Path, kills: tuple[str, ...] = ("risk",),
                  live_s: int = 20) -> tuple[dict[str, float], dict[str, int]]:
    """Seconds from SIGKILL of each actor of ``kills`` (in turn) to the next order the gateway
    sends, after ``length`` market messages; and each actor's journal bytes (main file + WAL)
    before the first kill (see the module docstring).

    The first ``length`` quotes (seq 1: the strategy does not trade on them) go to risk, the
    gateway, the strategy and the instrument's book actor in batches, as a session that ran
    that long; then the feed's real-time driver runs over the default carrier at 1k ticks/s,
    the strategy ordering on one tick in 10, and each actor of ``kills`` is SIGKILLed in turn
    after a second of it. Its supervisor starts it again; it restores from its journal (a
    snapshot and a bounded tail, the market data re-read from the feed's log) and the carrier
    reconnects."""
    import msgspec
    import ray

    from actors.carriers import CallPath, open_carrier
    from actors.driver import Driver, Ports
    from actors.names import Named
    from actors.step import HotInput
    from actors.supervisor import SupervisorActor
    from runtime.supervision import ChildSpec, SupervisorSpec

    live_ticks = 1000 * live_s * len(kills)  # live_s of ticks per kill: never runs out
    quotes = _quotes(length + live_ticks, "L1", 10**9, 10**6)
    quotes[:length] = [msgspec.structs.replace(q, seq=1) for q in quotes[:length]]
    setup = _feed_setup(folder / f"restart_{length}", quotes)
    prefix = f"bench.restart_{length}."
    children = (("risk", "risk:RiskActor", (setup,)), ("gateway", "gateway:GatewayActor",
                                                       (setup,)),
                ("tick", "strategy:StrategyActor", (setup, "tick")),
                ("book", "book:BookActor", ("L1", setup)))
    spec = SupervisorSpec(intensity=len(kills) + 1, period_s=600, backoff_initial_s=0,
                          backoff_max_s=0, children=tuple(
                              ChildSpec(child_id=c, factory=f"actors.{factory}", args=args)
                              for c, factory, args in children))
    supervisor = SupervisorActor.remote(spec, prefix=prefix)
    ray.get(supervisor.start.remote())
    ports = Ports(gateway=Named(prefix + "gateway"), risk=Named(prefix + "risk"),
                  hosts={"tick": Named(prefix + "tick")}, books={"L1": Named(prefix + "book")})
    host = ports.hosts["tick"]
    ray.get(ports.risk.start.remote(0))
    ray.get(host.start.remote(0))
    step = 10_000
    preload = CallPath(ports.hosts, ports.risk, ports.gateway,  # steps of 10k quotes
                       books=ports.books)

    async def load(i: int, batch: list[Any]) -> None:
        await preload.submit(HotInput(i, batch, -1, {}, [], 0))
        await preload.collect()

    for i in range(0, length, step):
        asyncio.run(load(i, quotes[i:i + step]))
    journals = _journal_bytes(Path(setup.journal_dir))
    hot = asyncio.run(open_carrier("auto", ports.hosts, ports.risk, ports.gateway,  # type: ignore[arg-type]
                                   books=ports.books))
    driver = Driver(ports, quotes, start_ns=quotes[0].ts_event, speed=1.0, carrier=hot,
                    exact=False)
    driver.cursor = length
    done = threading.Event()

    def drive() -> None:
        async def run() -> None:
            await driver.start()
            driver._wall0 = 0.0  # paced from the first live tick
            while not done.is_set() and await driver.step():
                pass

        asyncio.run(run())

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    handles = {"risk": ports.risk, "gateway": ports.gateway, "strategy": host,
               "book": ports.books["L1"]}
    restarts: dict[str, float] = {}
    for name in kills:
        time.sleep(1.0)
        restarts[name] = _kill_until_order(handles[name], ports.gateway)
    done.set()
    thread.join(30)
    hot.close()
    ray.get(supervisor.stop.remote())
    ray.kill(supervisor)
    return restarts, journals


def _journal_bytes(folder: Path) -> dict[str, int]:
    """Each journal's bytes, its WAL included."""
    out: dict[str, int] = {}
    for path in folder.glob("*.journal*"):
        if path.name.endswith((".journal", ".journal-wal")):
            name = path.name.removesuffix("-wal")
            out[name] = out.get(name, 0) + path.stat().st_size
    return out


IN_FLIGHT_NS = 100_000_000  # an order sent this soon after a kill was on its way already


def _kill_until_order(handle: Any, gateway: Any) -> float:
    """SIGKILL ``handle``'s process; seconds until the gateway sends an order after it. An
    order sent within ``IN_FLIGHT_NS`` of the kill belongs to the step in flight, which the
    killed actor had answered already (a new process takes far longer to start): not
    counted."""

    pid = handle.get("pid")
    killed_ns = time.monotonic_ns()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        later = [t for t in gateway.get("send_times") if t > killed_ns + IN_FLIGHT_NS]
        if later:
            return (min(later) - killed_ns) / 1e9
        time.sleep(0.01)
    return float("nan")


def _books(args: argparse.Namespace, folder: Path) -> float:
    """Median of ``--rounds`` runs."""
    import statistics

    transport = "calls" if args.transports[0] == "calls" else "sockets"  # auto: one node
    rates = [bench_books(args.events, args.batch, args.inflight, folder, transport)
             for _ in range(args.rounds)]
    print(f"  books over {transport}: median {statistics.median(rates):,.0f} events/s of "
          f"{', '.join(f'{v:,.0f}' for v in rates)}")
    return statistics.median(rates)


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=500)  # the feed sends <= 512
    parser.add_argument("--inflight", type=int, default=8)
    parser.add_argument("--ticks", type=int, default=10_000,
                        help="ticks per latency variant at 1k/s (10,000: 1,000 orders at one "
                             "in 10, so the p99 is the 10th latest, not the 3rd)")
    parser.add_argument("--transports", nargs="+", default=["auto"],
                        choices=["auto", "sockets", "calls"],
                        help="the latency variants (feed.transport); the first is printed "
                             "against the targets")
    parser.add_argument("--lengths", nargs="+", type=int, default=[10_000, 100_000, 1_000_000],
                        help="session lengths (market messages) before risk is SIGKILLed")
    parser.add_argument("--kill", nargs="+", default=["risk"],
                        choices=["risk", "strategy", "gateway", "book"],
                        help="the actors SIGKILLed in turn in the restart runs (restart_s: "
                             "the first)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=["books", "latency", "restart"],
                        choices=["books", "latency", "restart"])
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    nan = float("nan")
    rate = nan
    latency: dict[tuple[int, str], tuple[float, float]] = {}
    restarts: dict[str, float] = {}
    restarts_by_actor: dict[str, dict[str, float]] = {}
    journal_bytes: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "books" in args.only:
            rate = _books(args, folder)
        if "latency" in args.only:
            latency = bench_latency(args.ticks, folder, modes=tuple(args.transports))
        if "restart" in args.only:
            for length in args.lengths:
                by_actor, journal_bytes[str(length)] = bench_restart(
                    length, folder, tuple(args.kill))
                restarts_by_actor[str(length)] = by_actor
                restarts[str(length)] = by_actor[args.kill[0]]
                print(f"  restart after {length:,} market messages: "
                      + ", ".join(f"{k} {v:.2f} s" for k, v in by_actor.items())
                      + f" (journal bytes: {journal_bytes[str(length)]})")
    mode = args.transports[0]
    p50, p99 = latency.get((10, mode), (nan, nan))
    every_tick = latency.get((1, mode), (nan, nan))[0]
    print(f"figure                               measured      target    (load {_load()})")
    print(f"book actors, events/s              {rate:>10,.0f}    >= 200,000")
    print(f"tick -> order at gateway p50, ms   {p50:>10.2f}    <= 1   (transport: {mode})")
    print(f"tick -> order at gateway p99, ms   {p99:>10.2f}    <= 5   (transport: {mode})")
    print(f"same, an order every tick, p50 ms  {every_tick:>10.2f}")
    for length, seconds in restarts.items():
        print(f"SIGKILL {args.kill[0]} -> next order, s, after {int(length):>9,} messages "
              f"{seconds:>6.2f}    <= 3")
    print(json.dumps({"p50_ms": p50, "p99_ms": p99, "p50_every_tick_ms": every_tick,
                      "book_events_per_s": rate, "restart_s": restarts,
                      "restart_s_by_actor": restarts_by_actor,
                      "journal_bytes": journal_bytes, "transport": mode, "load": _load()}))
    ray.shutdown()


if __name__ == "__main__":
    main()
