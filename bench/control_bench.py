"""The control plane under a running paper session (issue 4).

* ``GET /status`` (or ``--path``) latency p50/p99 over loopback HTTP (bearer token, Serve +
  FastAPI), polled at ``--rate`` requests/s over one keep-alive connection while the session
  trades;
* the session's own tick → order latency (the feed actor's probe, ``actors.operator``: from the
  tick whose intents became orders until the gateway took the commands), and tick → intent and
  intent → order, in alternating windows without and with that polling: each round is one quiet
  window then one polled window, back to back, and the verdict is the median over rounds of
  (polled median / quiet median − 1), so a change of the host's load between rounds cancels
  out. The control plane must not slow trading by more than 10 %;
* the CPU time of Serve's three processes (proxy, replica, controller; ``/proc/<pid>/stat``)
  in each window: polled minus quiet, divided by the requests, is the CPU one request costs —
  far less noisy on a shared machine than latency.

A market maker on one day of synthetic SIM-A quotes/trades, real time at ``--speed``× (not
lockstep), on a local 2-CPU Ray cluster; the API on a free loopback port.

    .venv/bin/python bench/control_bench.py [--window 15] [--rounds 3] [--rate 20] [--speed 15]
                                            [--path /status] [--transport auto|sockets|calls]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STAGES = ("step", "tick_to_order")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Poller(threading.Thread):
    """GET /status at ``rate`` per second; keeps each request's latency."""

    def __init__(self, url: str, token: str, rate: float, path: str = "/status") -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.period, self.path = url, token, 1.0 / rate, path
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
                conn.request("GET", self.path, headers=headers)
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


SERVE_ROLES = ("proxy", "replica", "controller")
ROLES = (*SERVE_ROLES, "trading")  # trading: the session's actors on the order path
_TRADING = ("FeedActor", "RiskActor", "GatewayActor", "StrategyActor", "BookActor")


def _serve_pids() -> dict[str, list[int]]:
    """The pids of Serve's processes on this node (proxy, replica, controller) and of the
    session's trading actors (feed, risk, gateway, strategies, books)."""
    from ray._private import state

    roles = {"ProxyActor": "proxy", "ServeController": "controller"}
    roles |= {cls: "trading" for cls in _TRADING}
    out: dict[str, list[int]] = {}
    for actor in state.actors().values():
        cls = str(actor.get("ActorClassName", ""))
        role = "replica" if cls.startswith("ServeReplica:") else roles.get(cls)
        if role and actor.get("State") == "ALIVE" and actor.get("Pid"):
            out.setdefault(role, []).append(int(actor["Pid"]))
    return out


def _cpu_s(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system, all threads) used so far by each role, from /proc."""
    out: dict[str, float] = {}
    for role, role_pids in pids.items():
        for pid in role_pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks = int(fields[11]) + int(fields[12])
            out[role] = out.get(role, 0.0) + ticks / os.sysconf("SC_CLK_TCK")
    return out


def _cpu_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {role: after.get(role, 0.0) - before.get(role, 0.0) for role in ROLES}


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


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(folder: Path, speed: float, transport: str) -> tuple[Any, Any]:
    from actors.config import load_paper_config
    from actors.session import start_session
    from serve.deploy import start_control
    from tests.actors.paper_helpers import write_paper_config, write_sample

    path = write_paper_config(
        folder / "cfg",
        "mm",
        write_sample(folder / "data"),
        minutes=240,
        feed={"lockstep": False, "speed": speed, "transport": transport},
        reconcile_every_s=5,
        control={"port": _free_port(), "grpc_port": _free_port()},
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


@dataclass
class Round:
    """One quiet window and one polled window: latency samples and Serve's CPU."""

    quiet: dict[str, list[float]]
    polled: dict[str, list[float]]
    status: list[float]
    errors: int
    cpu_quiet: dict[str, float]
    cpu_polled: dict[str, float]


def _round(
    session: Any, control: Any, pids: dict[str, list[int]], args: argparse.Namespace
) -> Round:
    cpu0 = _cpu_s(pids)
    quiet = _window(session.feed, args.window)
    cpu1 = _cpu_s(pids)
    poller = Poller(control.url, control.tokens.read, args.rate, args.path)
    poller.start()
    polled = _window(session.feed, args.window)
    poller.stop_flag.set()
    poller.join()
    cpu2 = _cpu_s(pids)
    return Round(
        quiet={s: quiet.get(s, []) for s in STAGES},
        polled={s: polled.get(s, []) for s in STAGES},
        status=poller.latencies,
        errors=poller.errors,
        cpu_quiet=_cpu_delta(cpu1, cpu0),
        cpu_polled=_cpu_delta(cpu2, cpu1),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=15.0, help="seconds per window")
    parser.add_argument("--rounds", type=int, default=3, help="quiet/polled window pairs")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--path", default="/status", help="the route polled")
    parser.add_argument("--speed", type=float, default=15.0, help="replay speed")
    parser.add_argument("--transport", choices=("auto", "sockets", "calls"), default="auto",
                        help="the session's carrier (feed.transport)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from actors.logs import RAY_RUNTIME_ENV

    load_before = os.getloadavg()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env=RAY_RUNTIME_ENV,
    )
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="tw-control-bench-") as tmp:
        session, control = _start(Path(tmp), args.speed, args.transport)
        try:
            time.sleep(5)  # past the start
            pids = _serve_pids()
            for _ in range(args.rounds):
                rounds.append(_round(session, control, pids, args))
        finally:
            from serve.deploy import stop_control

            stop_control(control)
            session.stop(write=False)
    ray.shutdown()
    _report(args, rounds, load_before, os.getloadavg())
    return 0


def _median_change(rounds: list[Round], stage: str) -> float:
    """The median over rounds of (polled median / quiet median − 1): each pair of windows
    ran back to back, so a change in the host's load between rounds cancels out."""
    changes = [
        statistics.median(r.polled[stage]) / statistics.median(r.quiet[stage]) - 1
        for r in rounds
        if r.quiet[stage] and r.polled[stage]
    ]
    return statistics.median(changes) if changes else float("nan")


def _report(
    args: argparse.Namespace,
    rounds: list[Round],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    print(
        f"control plane under a paper session (mm on SIM-A quotes, speed {args.speed:g}×, "
        f"transport {args.transport}, "
        f"{args.rounds}× {args.window:g} s windows each; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after)"
    )
    status = [x for r in rounds for x in r.status]
    errors = sum(r.errors for r in rounds)
    rate = len(status) / (args.rounds * args.window)
    print(
        f"  GET {args.path} at {args.rate:g} req/s: {len(status)} requests ({rate:.1f}/s), "
        f"{errors} errors, p50 {_pct(status, 0.5) * 1e3:.2f} ms, "
        f"p99 {_pct(status, 0.99) * 1e3:.2f} ms"
    )
    quiet = {s: [x for r in rounds for x in r.quiet[s]] for s in STAGES}
    polled = {s: [x for r in rounds for x in r.polled[s]] for s in STAGES}
    _print_stages("no polling", quiet)
    _print_stages("with polling", polled)
    for stage in STAGES:
        if not quiet[stage] or not polled[stage]:  # real time times whole steps only
            continue
        base, load = statistics.median(quiet[stage]), statistics.median(polled[stage])
        per_round = " ".join(
            f"{statistics.median(r.polled[stage]) / statistics.median(r.quiet[stage]) - 1:+.1%}"
            for r in rounds
            if r.quiet[stage] and r.polled[stage]
        )
        print(
            f"  {stage}: median {base * 1e3:.2f} → {load * 1e3:.2f} ms "
            f"({(load / base - 1) * 100:+.1f} % pooled; per round {per_round}; "
            f"median of rounds {_median_change(rounds, stage) * 100:+.1f} %)"
        )
    change = _median_change(rounds, "tick_to_order")
    verdict = "PASS" if change <= 0.10 else "FAIL"
    print(f"  target: polling slows tick → order by ≤ 10 % (median of rounds): {verdict}")
    _print_cpu(args, rounds, len(status))


def _print_cpu(args: argparse.Namespace, rounds: list[Round], requests: int) -> None:
    window_s = args.rounds * args.window
    quiet = {role: sum(r.cpu_quiet[role] for r in rounds) for role in ROLES}
    polled = {role: sum(r.cpu_polled[role] for r in rounds) for role in ROLES}
    parts = []
    for role in ROLES:
        extra = (polled[role] - quiet[role]) / max(requests, 1) * 1e3
        parts.append(
            f"{role} {quiet[role] / window_s * 100:.1f} → {polled[role] / window_s * 100:.1f} %"
            f" ({extra:+.2f} ms/request)"
        )
    serve = sum(polled[r] - quiet[r] for r in SERVE_ROLES) / max(requests, 1) * 1e3
    print("  CPU, quiet → polled, % of one core: " + "; ".join(parts))
    print(f"  Serve CPU per request (polled − quiet, proxy + replica + controller): {serve:.2f} ms")


if __name__ == "__main__":
    sys.exit(main())
