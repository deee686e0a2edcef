"""A soak: a paper session in real time for N minutes at a given tick rate, sampled as it runs.

``python -m bench.soak --minutes 2 --rate 500`` runs the rehearsal's market maker
(``actors.rehearsal``: generated SIM-A quotes and trades, the paper broker, no network) paced so
that ``--rate`` market messages a second reach the session, and every ``--every`` seconds
prints one row: wall time, feed position and ticks a second, orders, fills, restarts, the
session's actors' resident memory (sum of their processes' RSS), its journal directory's bytes,
and the actors' open file descriptors. ``--kill-every S`` also SIGKILLs a random actor (risk,
the gateway, the strategy or the book; seeded by ``--seed``) every S seconds. At the end: the
growth per minute of RSS and fds over the run's second half (after warm-up), and the journal
directory's smallest and largest size there.
A soak longer than one sample day's data at that rate (about 25,000 messages a day) passes
through the data's nights, quiet for a while at the pace of the day's messages.

Figures, not a test: bench/README.md ("Soak") has a run's output.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import random
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

_VICTIMS = ("risk", "gateway", "strategy:mm", "book:SIM-A")


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _pids(session: Any) -> dict[str, int]:
    out = {}
    for child, actor in session.children.items():
        try:
            out[child] = int(actor.get("pid", timeout_s=10))
        except Exception:  # restarting: counted at the next sample
            continue
    return out


def _sample(session: Any, journal_dir: Path, started: float) -> dict[str, Any]:
    pids = _pids(session)
    rss = fds = 0
    for pid in pids.values():
        try:
            rss += _rss_bytes(pid)
            fds += _fds(pid)
        except OSError:  # exited between the two looks
            continue
    status = session.status()
    return {"t_s": time.monotonic() - started, "cursor": status["feed"]["cursor"],
            "orders": status["risk"]["orders"], "fills": status["risk"]["fills"],
            "restarts": status["supervisor"]["restarts"], "rss": rss, "fds": fds,
            "journal": _dir_bytes(journal_dir), "actors": len(pids)}


def _speed_for(rate: float, journal_dir: Path) -> tuple[float, float]:
    """The replay speed that brings ``rate`` messages a second, and the data's own rate."""
    from actors.feed_log import FeedLog

    log = FeedLog(journal_dir)
    n = min(log.cached, 20_000)  # within the first sample day (its nights are quiet)
    first, last = log.read(0, 1)[0], log.read(n - 1, n)[0]
    per_data_s = n / max((last.ts_event - first.ts_event) / 1e9, 1e-9)
    return rate / per_data_s, per_data_s


def _growth(rows: list[dict[str, Any]], key: str) -> float:
    """Per minute, over the second half of the run (a least-squares slope)."""
    half = rows[len(rows) // 2:]
    if len(half) < 2:
        return 0.0
    ts = [r["t_s"] for r in half]
    ys = [r[key] for r in half]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    var = sum((t - mt) ** 2 for t in ts)
    return 60 * sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var if var else 0.0


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    import ray

    from actors.config import load_paper_config
    from actors.logs import init_ray
    from actors.rehearsal import write_workspace
    from actors.session import prepare_session, start_session

    folder = Path(args.dir or tempfile.mkdtemp(prefix="tradewind-soak-"))
    days = max(1, math.ceil(args.minutes * 60 * args.rate / 25_000))  # ~30k messages a day
    config = load_paper_config(write_workspace(folder, minutes=None, days=min(days, 250),
                                               drills=False))
    prepared = prepare_session(config, session_id="soak")
    journal_dir = Path(prepared.setup.journal_dir)
    speed, data_rate = _speed_for(args.rate, journal_dir)
    prepared = dataclasses.replace(prepared, feed=prepared.feed.model_copy(
        update={"speed": speed}))
    print(f"soak: {args.minutes:g} min, {args.rate:g} ticks/s (the data's own "
          f"{data_rate:.1f}/s at speed {speed:.1f}), kill every {args.kill_every or '-'} s, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; journals in {journal_dir}")
    init_ray(args.address)
    rng = random.Random(args.seed)
    rows: list[dict[str, Any]] = []
    session = start_session(config, prepared=prepared)
    try:
        started = last_kill = time.monotonic()
        print(f"{'t_s':>6} {'cursor':>9} {'ticks/s':>8} {'orders':>7} {'fills':>6} "
              f"{'restarts':>8} {'rss_MB':>7} {'journal_MB':>10} {'fds':>5}")
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(args.every)
            if args.kill_every and time.monotonic() - last_kill >= args.kill_every:
                victim = rng.choice(_VICTIMS)
                os.kill(int(session.children[victim].get("pid")), signal.SIGKILL)
                last_kill = time.monotonic()
            row = _sample(session, journal_dir, started)
            prev = rows[-1] if rows else {"t_s": 0.0, "cursor": 0}
            row["ticks_s"] = (row["cursor"] - prev["cursor"]) / max(row["t_s"] - prev["t_s"],
                                                                    1e-9)
            rows.append(row)
            print(f"{row['t_s']:6.0f} {row['cursor']:9,} {row['ticks_s']:8.0f} "
                  f"{row['orders']:7} {row['fills']:6} {row['restarts']:8} "
                  f"{row['rss'] / 2**20:7.0f} {row['journal'] / 2**20:10.1f} {row['fds']:5}",
                  flush=True)
    finally:
        session.stop(write=False)
        ray.shutdown()
    half = rows[len(rows) // 2:] or rows
    journal = [r["journal"] / 2**20 for r in half]
    print(f"second half: RSS {_growth(rows, 'rss') / 2**20:+.1f} MB/min, fds "
          f"{_growth(rows, 'fds'):+.1f}/min, journals {min(journal):.1f}..{max(journal):.1f} MB "
          f"(WALs fill and are emptied), restarts {rows[-1]['restarts'] if rows else 0}")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=500.0, help="market messages a second")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--kill-every", type=float, default=0.0,
                        help="SIGKILL a random actor every this many seconds (0: never)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", help="keep the session here (default: a temporary folder)")
    parser.add_argument("--address", help="join this Ray cluster instead of starting one")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
