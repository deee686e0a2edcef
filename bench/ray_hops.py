"""What one actor hop costs on this machine: the floor under tick → order latency (issue 3).

``python bench/ray_hops.py [--calls 2000] [--rate 1000]``

Prints p50/p99 of (1) a plain round trip to a trivial sync actor and to a trivial async actor,
awaited from asyncio as the feed's driver awaits its calls, paced at ``--rate`` calls/s; (2) a
chain of three trivial actors as a Ray Compiled Graph (``experimental_compile``: shared-memory
channels instead of RPCs), paced the same way; and checks that a plain call to an actor of the
compiled graph is still answered while the graph is live (supervisor pings and control calls
need that). The paper session's hot path is three round trips (strategy, risk, gateway), so it
cannot beat three times the plain round trip; the compiled chain is what moving it onto a
Compiled Graph could reach.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import ray


@ray.remote(num_cpus=0)
class Echo:
    def f(self, x: int) -> int:
        return x + 1

    def ping(self) -> str:
        return "pong"


@ray.remote(num_cpus=0)
class AsyncEcho:
    async def f(self, x: int) -> int:
        return x + 1


def _pct(values: list[int]) -> tuple[float, float]:
    values = sorted(values)
    return values[len(values) // 2] / 1e6, values[int(len(values) * 0.99)] / 1e6


def plain(actor: Any, calls: int, rate: float) -> tuple[float, float]:
    async def run() -> list[int]:
        out: list[int] = []
        t_next = time.monotonic()
        for i in range(calls):
            t_next += 1 / rate
            await asyncio.sleep(max(0.0, t_next - time.monotonic()))
            t0 = time.perf_counter_ns()
            await actor.f.remote(i)
            out.append(time.perf_counter_ns() - t0)
        return out

    ray.get(actor.f.remote(0))
    return _pct(asyncio.run(run()))


def compiled(calls: int, rate: float) -> tuple[tuple[float, float], str]:
    from ray.dag import InputNode

    a, b, c = Echo.remote(), Echo.remote(), Echo.remote()
    ray.get([a.f.remote(0), b.f.remote(0), c.f.remote(0)])
    with InputNode() as inp:
        dag = c.f.bind(b.f.bind(a.f.bind(inp)))
    graph = dag.experimental_compile()
    try:
        out: list[int] = []
        t_next = time.monotonic()
        for i in range(calls):
            t_next += 1 / rate
            time.sleep(max(0.0, t_next - time.monotonic()))
            t0 = time.perf_counter_ns()
            if ray.get(graph.execute(i)) != i + 3:
                raise RuntimeError("the compiled chain gave a wrong answer")
            out.append(time.perf_counter_ns() - t0)
        side_call = str(ray.get(a.ping.remote(), timeout=10))
    finally:
        graph.teardown()
    return _pct(out), side_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=1000.0, help="calls per second")
    args = parser.parse_args()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"actor hops, {args.calls} calls at {args.rate:g}/s (load {load})")
        for label, actor in (("plain round trip, sync actor", Echo.remote()),
                             ("plain round trip, async actor", AsyncEcho.remote())):
            p50, p99 = plain(actor, args.calls, args.rate)
            print(f"  {label:38} p50 {p50:6.3f} ms   p99 {p99:6.3f} ms")
        (p50, p99), side = compiled(args.calls, args.rate)
        print(f"  {'compiled graph, 3 actors in a chain':38} p50 {p50:6.3f} ms   p99 {p99:6.3f} ms"
              f"   (plain call meanwhile: {side})")
        print("  hot path today: 3 plain round trips; target tick → order p50 ≤ 1 ms, p99 ≤ 5 ms")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
