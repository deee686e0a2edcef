"""The floor under any multi-process hot path on this machine, right now.

Three processes in a chain over socketpairs: each sleeps in ``recv`` until its input arrives,
then spends ``work_us`` of CPU, then writes to the next. The parent writes a step to the first
and reads the last. Steps are paced at 1k/s, and each is timed from its due time, as
``actors_bench.py`` times an order. There is no Ray, no journal, no Python object work, and no
disk. The tail this measures comes from the machine itself: the OS scheduler, and the VM's
host taking the CPU for other guests. The socket hot path (``feed.hot_path: sockets``) cannot
do better than this.

    .venv/bin/python bench/ipc_floor.py [--steps 10000] [--work-us 100] [--stages 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import time


def _stage(rx: socket.socket, tx: socket.socket, work_us: int) -> None:
    while True:
        data = rx.recv(65536)
        if not data:
            return
        start = time.perf_counter()
        while time.perf_counter() - start < work_us / 1e6:
            pass
        tx.sendall(data)


def floor(steps: int = 10_000, work_us: int = 100, stages: int = 3) -> list[float]:
    """Each step's latency (s) from its due time, ``steps`` steps at 1k/s."""
    ctx = mp.get_context("spawn")  # nothing of the caller's threads (Ray's) in the children
    pairs = [socket.socketpair() for _ in range(stages + 1)]
    procs = [ctx.Process(target=_stage, args=(pairs[i][1], pairs[i + 1][0], work_us),
                         daemon=True) for i in range(stages)]
    for proc in procs:
        proc.start()
    src, sink = pairs[0][0], pairs[stages][1]
    payload = b"x" * 200
    try:
        for _ in range(300):  # warm up
            src.sendall(payload)
            sink.recv(65536)
        out = []
        t0 = time.monotonic()
        for i in range(steps):
            due = t0 + i / 1000
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            src.sendall(payload)
            sink.recv(65536)
            out.append(time.monotonic() - due)
        return out
    finally:
        for a, b in pairs:
            a.close()
            b.close()
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    n = len(ordered)
    late = sum(x > 0.005 for x in ordered)
    return (f"p50 {ordered[n // 2] * 1e3:.2f} ms, p99 {ordered[int(n * 0.99)] * 1e3:.2f} ms, "
            f"{late} of {n:,} over 5 ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--work-us", type=int, default=100)  # a hot-path stage: 70–300 µs
    parser.add_argument("--stages", type=int, default=3)
    args = parser.parse_args()
    print(f"floor, {args.stages} processes on socketpairs, {args.work_us} µs each, 1k steps/s: "
          f"{summary(floor(args.steps, args.work_us, args.stages))}")


if __name__ == "__main__":
    main()
