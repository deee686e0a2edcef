"""The control plane under a running paper session (issue 4).

* ``/status`` latency p50/p99 over loopback HTTP (bearer token, Serve + FastAPI), polled at
  ``--rate`` requests/s while the session trades;
* the session's own tick → order latency (the feed actor's probe, ``actors.operator``: from the
  tick whose intents became orders until the gateway took the commands), and tick → intent and
  intent → order, in alternating windows without and with that polling. The control plane must
  not slow trading by more than 10 %.

A market maker on one day of synthetic SIM-A quotes/trades, real time at ``--speed``× (not
lockstep), on a local 2-CPU Ray cluster.

    .venv/bin/python bench/control_bench.py [--window 20] [--rounds 2] [--rate 20] [--speed 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STAGES = ("tick_to_intent", "intent_to_order", "tick_to_order")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Poller(threading.Thread):
    """GET /status at ``rate`` per second; keeps each request's latency."""

    def __init__(self, url: str, token: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.period = url, token, 1.0 / rate
        self.latencies: list[float] = []
        self.errors = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        """One keep-alive connection, as a dashboard or a browser polls."""
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        headers = {"Authorization": f"Bearer {self.token}"}
        next_t = time.perf_counter()
        while not self.stop_flag.is_set():
            start = time.perf_counter()
            try:
                conn.request("GET", "/status", headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    self.latencies.append(time.perf_counter() - start)
                else:
                    self.errors += 1
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
            next_t += self.period
            time.sleep(max(0.0, next_t - time.perf_counter()))
        conn.close()


def _serve_cpu_s() -> float:
    """CPU seconds used so far by Serve's processes on this node (controller, proxy, replica)."""
    from ray._private import state

    total = 0.0
    for actor in state.actors().values():
        cls = str(actor.get("ActorClassName", ""))
        if actor.get("State") == "ALIVE" and (
            cls in ("ProxyActor", "ServeController") or cls.startswith("ServeReplica:")
        ):
            try:
                fields = Path(f"/proc/{actor['Pid']}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _samples(feed: Any) -> dict[str, list[float]]:
    import ray

    out: dict[str, list[float]] = ray.get(feed.operate.remote("telemetry", {"raw": True}))[
        "samples"
    ]
    return out


def _window(feed: Any, seconds: float) -> dict[str, list[float]]:
    """The probe's new samples over ``seconds`` (the deques keep the latest 20k)."""
    before = {k: len(v) for k, v in _samples(feed).items()}
    time.sleep(seconds)
    after = _samples(feed)
    return {k: v[before[k] :] if len(v) < 20_000 else v for k, v in after.items()}


def _start(folder: Path, speed: float) -> tuple[Any, Any]:
    from actors.config import load_paper_config
    from actors.session import start_session
    from serve.deploy import start_control
    from tests.actors.paper_helpers import write_paper_config, write_sample

    path = write_paper_config(
        folder / "cfg",
        "mm",
        write_sample(folder / "data"),
        minutes=240,
        feed={"lockstep": False, "speed": speed},
        reconcile_every_s=5,
        control={"port": 8000, "grpc_port": 9010},
    )
    config = load_paper_config(path)
    session = start_session(config, session_id="bench_control")
    return session, start_control(config, "bench_control", quiet=True)


def _print_stages(label: str, samples: dict[str, list[float]]) -> None:
    parts = [
        f"{s} p50 {_pct(samples[s], 0.5) * 1e3:6.2f} ms p99 {_pct(samples[s], 0.99) * 1e3:6.2f}"
        f" ms (n={len(samples[s])})"
        for s in STAGES
    ]
    print(f"  {label:<14} " + "; ".join(parts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=15.0, help="seconds per window")
    parser.add_argument("--rounds", type=int, default=3, help="quiet/polled window pairs")
    parser.add_argument("--rate", type=float, default=20.0, help="/status requests per second")
    parser.add_argument("--speed", type=float, default=15.0, help="replay speed")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    quiet: dict[str, list[float]] = {s: [] for s in STAGES}
    polled: dict[str, list[float]] = {s: [] for s in STAGES}
    status_latencies: list[float] = []
    errors = 0
    serve_cpu = 0.0
    with tempfile.TemporaryDirectory(prefix="tw-control-bench-") as tmp:
        session, control = _start(Path(tmp), args.speed)
        try:
            time.sleep(5)  # past the start
            for _ in range(args.rounds):
                for stage, values in _window(session.feed, args.window).items():
                    if stage in quiet:
                        quiet[stage] += values
                poller = Poller(control.url, control.tokens.read, args.rate)
                cpu0 = _serve_cpu_s()
                poller.start()
                for stage, values in _window(session.feed, args.window).items():
                    if stage in polled:
                        polled[stage] += values
                poller.stop_flag.set()
                poller.join()
                serve_cpu += _serve_cpu_s() - cpu0
                status_latencies += poller.latencies
                errors += poller.errors
        finally:
            from serve.deploy import stop_control

            stop_control(control)
            session.stop(write=False)
    ray.shutdown()
    _report(args, quiet, polled, status_latencies, errors)
    polled_s = args.rounds * args.window
    print(
        f"  Serve processes (controller, proxy, replica) while polled: "
        f"{serve_cpu / polled_s * 100:.1f} % of one core, "
        f"{serve_cpu / max(len(status_latencies), 1) * 1e3:.2f} ms CPU per request "
        "(including the 1/refresh_s snapshot reads)"
    )
    return 0


def _report(
    args: argparse.Namespace,
    quiet: dict[str, list[float]],
    polled: dict[str, list[float]],
    status: list[float],
    errors: int,
) -> None:
    print(
        f"control plane under a paper session (mm on SIM-A quotes, speed {args.speed:g}×, "
        f"{args.rounds}× {args.window:g} s windows each)"
    )
    rate = len(status) / (args.rounds * args.window)
    print(
        f"  GET /status at {args.rate:g} req/s: {len(status)} requests ({rate:.1f}/s), "
        f"{errors} errors, p50 {_pct(status, 0.5) * 1e3:.2f} ms, "
        f"p99 {_pct(status, 0.99) * 1e3:.2f} ms"
    )
    _print_stages("no polling", quiet)
    _print_stages("with polling", polled)
    for stage in STAGES:
        base, load = statistics.median(quiet[stage]), statistics.median(polled[stage])
        print(
            f"  {stage}: median {base * 1e3:.2f} → {load * 1e3:.2f} ms "
            f"({(load / base - 1) * 100:+.1f} %)"
        )
    base = statistics.median(quiet["tick_to_order"])
    load = statistics.median(polled["tick_to_order"])
    verdict = "PASS" if load <= base * 1.10 else "FAIL"
    print(f"  target: polling slows tick → order by ≤ 10 %: {verdict}")


if __name__ == "__main__":
    sys.exit(main())
