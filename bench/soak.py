"""Soaks: a session in real time for N minutes, sampled as it runs, and checked at the end.

``python -m bench.soak --minutes 3`` (``--broker ib``, the default): the session trades through
the loopback Interactive Brokers fake (``tests/venues/fake_ib.py``, the TWS wire protocol to the
real ib_async client in the gateway actor; imported from the repository root as the tests do, on
its own thread in this process), recording into the embedded ClickHouse store (chdb, in the
soak's folder). One generated day of SIM-A bars (SMA 2/5, 100 shares; the fake fills every order
0.2 s later in two executions) is replayed to last the run. During it: ``--disconnects`` times
the fake drops its sockets and refuses connects for ``--down-s`` seconds (IB's nightly reset;
its own fills go on), and the store is unavailable for ``--outage-s`` seconds
(``StoreActor.set_available(False)``, the recorder tests' outage) from a third of the run;
``--kill-every S`` also SIGKILLs a random actor every S seconds. At the end (feed stopped,
fills settled) it counts, against the fake's own record: orders sent twice (duplicates), orders
decided but never reaching the broker nor refused with a report, or whose broker state never
came back (lost), fills counted twice and fills missed (ours and risk's against the broker's
executions), positions (risk's and the gateway's against the broker's), the store's fills
against the broker's after the outage, reconnects and the longest time disconnected, and RSS and
journal growth; then a table of every process of the session (each actor, the supervisors,
Ray's raylet and GCS server): its RSS and anonymous RSS (``RssAnon``, the heap a leak grows)
first and last, how many processes it had (restarts), and its anonymous memory's growth per
minute while alive; figures, then one JSON line.

``--broker paper`` runs the rehearsal's market maker instead (``actors.rehearsal``: generated
SIM-A quotes and trades, the paper broker, no network) paced so that ``--rate`` market messages
a second reach the session, every ``--every`` seconds printing one row: wall time, feed position
and ticks a second, orders, fills, restarts, the session's actors' resident memory (sum of their
processes' RSS), its journal directory's bytes, and the actors' open file descriptors. At the
end: the growth per minute of RSS and fds over the run's second half (after warm-up), the
journal directory's smallest and largest size there, and the same table per process. A soak
longer than one sample day's data at that rate (about 25,000 messages a day) passes through the
data's nights, quiet for a while at the pace of the day's messages.

Figures, not a test: bench/README.md ("Soak") has runs' output; tests/venues/test_soak_ib.py runs
a short IB soak and asserts its counts.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

# `python bench/soak.py` as well as `python -m bench.soak`: the IB soak imports tests/ fakes.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["ib_counts", "main", "parser", "run_ib", "run_paper"]

_VICTIMS = ("risk", "gateway", "strategy:mm", "book:SIM-A")


def _memory(pid: int) -> tuple[int, int, int]:
    """A process's resident bytes, its resident anonymous bytes (``RssAnon``: its heap, what a
    leak grows; without the shared libraries' file pages, which count as its own whenever no
    other process maps them, and without Ray's object store) and its open fds."""
    proc = psutil.Process(pid)
    anon = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * 1024
    return proc.memory_info().rss, anon, proc.num_fds()


def _dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _subtrees(status: dict[str, Any]) -> list[str]:
    """The nested supervisors' child ids in a supervisor's status, depth first."""
    out: list[str] = []
    for child_id, sub in status.get("subtrees", {}).items():
        out += [child_id, *_subtrees(sub)]
    return out


def _pids(session: Any, supervision: dict[str, Any]) -> dict[str, int]:
    """The process of every actor of the session: its leaves, its root supervisor and the
    nested supervisors (``sup:<id>``)."""
    import ray

    from actors.names import Named

    out = {}
    actors = dict(session.children)
    prefix = session.children["feed"].name.rsplit(".", 1)[0] + "."
    for sub in _subtrees(supervision):
        actors[f"sup:{sub}"] = Named(prefix + sub.replace(":", "."))
    for child, actor in actors.items():
        try:
            out[child] = int(actor.get("pid", timeout_s=10))
        except Exception:  # restarting: counted at the next sample
            continue
    with contextlib.suppress(Exception):  # restarting too
        out["sup:root"] = int(ray.get(session.supervisor.pid.remote(), timeout=10))
    return out


def _ray_processes() -> dict[str, int]:
    """Ray's own processes that this soak started (its driver's children: the raylet, the GCS
    server, ...), by name; none when the soak joined a cluster."""
    out = {}
    for child in psutil.Process().children():
        try:
            name = child.name()
        except psutil.Error:
            continue
        if name in ("raylet", "gcs_server"):
            out[f"ray:{name}"] = child.pid
    return out


def _sample(session: Any, journal_dir: Path, started: float) -> dict[str, Any]:
    status = session.status()
    pids = _pids(session, status["supervisor"])
    rss = anon = fds = 0
    per: dict[str, tuple[int, int, int]] = {}  # actor -> (pid, rss, anon)
    for name, pid in {**pids, **_ray_processes()}.items():
        try:
            p_rss, p_anon, p_fds = _memory(pid)
        except psutil.Error:  # exited between the two looks
            continue
        per[name] = (pid, p_rss, p_anon)
        if not name.startswith("ray:"):
            rss, anon, fds = rss + p_rss, anon + p_anon, fds + p_fds
    return {"t_s": time.monotonic() - started, "cursor": status["feed"]["cursor"],
            "orders": status["risk"]["orders"], "fills": status["risk"]["fills"],
            "restarts": status["supervisor"]["restarts"], "rss": rss, "anon": anon, "fds": fds,
            "journal": _dir_bytes(journal_dir), "actors": len(pids), "per": per}


def per_actor_growth(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each process's memory over the run, from the samples' ``per``: its first and last RSS
    and anonymous RSS (MB), how many processes it had (a restart is a new one), and its
    anonymous RSS's growth per minute while alive (each process's own growth from its first
    sample to its last, summed over the actor's processes, over the time they were sampled),
    largest first."""
    series: dict[str, list[tuple[float, int, int, int]]] = {}
    for row in rows:
        for name, (pid, rss, anon) in row.get("per", {}).items():
            series.setdefault(name, []).append((row["t_s"], pid, rss, anon))
    out = []
    for name, samples in series.items():
        grown = span = 0.0
        by_pid: dict[int, list[tuple[float, int, int, int]]] = {}
        for s in samples:
            by_pid.setdefault(s[1], []).append(s)
        for seg in by_pid.values():
            if len(seg) >= 2:
                grown += seg[-1][3] - seg[0][3]
                span += seg[-1][0] - seg[0][0]
        out.append({"actor": name, "processes": len(by_pid), "pid": samples[-1][1],
                    "rss_mb": (round(samples[0][2] / 2**20, 1), round(samples[-1][2] / 2**20, 1)),
                    "anon_mb": (round(samples[0][3] / 2**20, 1), round(samples[-1][3] / 2**20, 1)),
                    "anon_mb_per_min": round(60 * grown / span / 2**20, 2) if span else 0.0})
    return sorted(out, key=lambda r: -r["anon_mb_per_min"])


def _print_per_actor(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    growth = per_actor_growth(rows)
    print(f"{'process':<22} {'pid':>8} {'procs':>5} {'rss_MB first..last':>20} "
          f"{'anon_MB first..last':>20} {'anon MB/min alive':>17}")
    for g in growth:
        print(f"{g['actor']:<22} {g['pid']:8} {g['processes']:5} "
              f"{g['rss_mb'][0]:9.1f}..{g['rss_mb'][1]:<9.1f} "
              f"{g['anon_mb'][0]:9.1f}..{g['anon_mb'][1]:<9.1f} {g['anon_mb_per_min']:+17.2f}")
    return growth


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


def run_paper(args: argparse.Namespace) -> list[dict[str, Any]]:
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
    _print_per_actor(rows)
    return rows



# --- the IB soak -------------------------------------------------------------------------------

_IB_VICTIMS = ("risk", "gateway", "strategy:sma", "book:SIM-A")
_SIM = {"id": "SIM-A", "price_precision": 2, "lot_size": 1, "min_quantity": 1}


def _ib_workspace(folder: Path, port: int, minutes: float, seed: int,
                  reconcile_every_s: float) -> tuple[Path, float]:
    """The session's configs (a paper session whose broker is the fake, recording into chdb in
    ``folder``) and the replay speed that makes the day's bars last ``minutes``."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import yaml

    from tests.venues.broker_helpers import write_bars, write_broker_config

    bars = write_bars(folder / "data", "SIM-A", seed=seed)
    ts = pq.read_table(bars, columns=["ts_event"]).column("ts_event")
    span_s = (pc.max(ts).as_py() - pc.min(ts).as_py()) / 1e9
    speed = span_s / (minutes * 60)
    broker = {"kind": "ib", "port": port, "client_id": 7, "reset_window": ["00:00", "00:00"],
              "contracts": {"SIM-A": {"symbol": "SIMA"}}}
    path = write_broker_config(folder, bars, broker, instrument=_SIM, size=100, speed=speed,
                               record=True, store_dsn=f"chdb://{folder / 'clickhouse'}",
                               reconcile_every_s=reconcile_every_s)
    trading = yaml.safe_load((folder / "trading.yaml").read_text())
    trading["store"] = {"record": True}
    (folder / "trading.yaml").write_text(yaml.safe_dump(trading))
    return path, speed


def _broker_record(fake: Any) -> dict[str, Any]:
    """The fake's own record (read on its loop's thread): every orderRef placed, each order's
    state, every execution id, positions, how many connects it answered."""
    return {"placed": list(fake.placed),
            "orders": {o.order_ref: (o.status, o.filled) for o in fake.orders.values()},
            "executions": [e.exec_id for e in fake.executions],
            "positions": dict(fake.positions), "connected": fake.connected,
            "refusing": fake.refusing, "connects": sum(1 for m, _ in fake.requests if m == 71)}


def _settled(session: Any, broker: dict[str, Any]) -> bool:
    """The broker is reachable, every execution reached the gateway and risk, and every order
    the broker closed is closed for risk too."""
    if broker["refusing"] or not broker["connected"]:
        return False
    n = len(broker["executions"])
    if len(session.gateway.get("fills", timeout_s=30)) != n:
        return False
    if session.risk.get("summary", timeout_s=30)["fills"] != n:
        return False
    open_ours = set(session.risk.get("view", timeout_s=30)["open_orders"])
    return not any(ref in open_ours for ref, (status, _) in broker["orders"].items()
                   if status in ("Filled", "Cancelled"))


def ib_counts(broker: dict[str, Any], result: dict[str, Any],
              risk_view: dict[str, Any]) -> dict[str, Any]:
    """Duplicates, losses, fills and positions: ours (``result``: the session's collected
    files, ``risk_view``) against the broker's own record."""
    from runtime.values import FIXED_SCALE

    placed = broker["placed"]
    ours = {o["id"]: o for o in result["records"]["orders"]}
    reached = set(placed)
    refused = {cid for cid, o in ours.items() if o["status"] in ("denied", "rejected")}
    # decided, never at the broker, and never refused with a report
    unsent = sorted(cid for cid in ours if cid not in reached and cid not in refused)
    # at the broker, and unknown to us or still open for us after the broker closed it
    unreported = sorted(ref for ref in reached if ref not in ours or (
        broker["orders"][ref][0] in ("Filled", "Cancelled")
        and ours[ref]["status"] not in ("filled", "canceled", "rejected", "expired")))
    qty_wrong = sorted(ref for ref in reached & set(ours)
                       if round(broker["orders"][ref][1] * FIXED_SCALE) != ours[ref]["filled"])
    fill_ids = [f.fill_id for f in result["fill_records"]]
    broker_fills = {f"IB-{e}" for e in broker["executions"]}
    broker_pos = {"SIM-A": round(broker["positions"].get("SIMA", 0.0) * FIXED_SCALE)}
    broker_pos = {k: v for k, v in broker_pos.items() if v}
    reasons = Counter(str(ours[cid]["reason"])[:60] for cid in refused)
    return {
        "orders": len(ours), "placed": len(placed), "refused": len(refused),
        "refused_why": dict(reasons.most_common()),
        "duplicates": len(placed) - len(reached), "lost": len(unsent) + len(unreported),
        "lost_ids": unsent + unreported, "filled_qty_wrong": qty_wrong,
        "fills_broker": len(broker_fills), "fills_ours": len(fill_ids),
        "fills_risk": result["fills"],
        "fills_twice": len(fill_ids) - len(set(fill_ids)),
        "fills_missed": len(broker_fills - set(fill_ids)),
        "fills_unknown": len(set(fill_ids) - broker_fills),
        "positions_ours": {k: v / FIXED_SCALE for k, v in risk_view["positions"].items()},
        "positions_broker": {k: v / FIXED_SCALE for k, v in broker_pos.items()},
        "positions_equal": risk_view["positions"] == broker_pos and result["positions_match"],
    }


def _store_fills(session: Any) -> int:
    sql = ("SELECT count() FROM fills FINAL WHERE session_id = "
           f"'{session.session_id}'")  # an id of [A-Za-z0-9_.] (the config's pattern)
    return int(session.children["store"].get("command", sql, timeout_s=120))


def run_ib(args: argparse.Namespace) -> dict[str, Any]:
    """The IB soak (see the module docstring); the final figures as a dict."""
    import ray

    from actors.config import load_paper_config
    from actors.logs import init_ray
    from actors.session import start_session
    from tests.venues.broker_helpers import FakeIbThread

    folder = Path(args.dir or tempfile.mkdtemp(prefix="tradewind-soak-ib-"))
    run_s = args.minutes * 60
    fake = FakeIbThread(auto_fill_price=100.0, fill_delay_s=0.2)
    owns_ray = not ray.is_initialized()
    rows: list[dict[str, Any]] = []
    try:
        path, speed = _ib_workspace(folder, fake.port, args.minutes, args.seed,
                                    args.reconcile_every)
        config = load_paper_config(path)
        # the schedule: (t_s, what); disconnects spread over the run, the outage from a third
        events: list[tuple[float, str]] = [
            (run_s * (i + 1) / (args.disconnects + 1), "down") for i in range(args.disconnects)]
        if args.outage_s > 0:
            events += [(run_s / 3, "store_down"), (run_s / 3 + args.outage_s, "store_up")]
        events.sort()
        load = os.getloadavg()[0]
        print(f"soak ib: {args.minutes:g} min (bars at speed {speed:.0f}), {args.disconnects} "
              f"disconnects of {args.down_s:g} s, store outage {args.outage_s:g} s, kill every "
              f"{args.kill_every or '-'} s, {os.cpu_count()} cores, load {load:.1f}; in {folder}")
        if owns_ray:
            init_ray(args.address)
        rng = random.Random(args.seed)
        session = start_session(config, session_id="soakib")
        journal_dir = Path(session.setup.journal_dir)
        downs: list[float] = []  # seconds from each gateway down to the client's reconnect
        down_at: float | None = None
        kills = 0
        try:
            started = last_kill = last_sample = time.monotonic()
            print(f"{'t_s':>6} {'cursor':>6} {'orders':>6} {'placed':>6} {'fills':>6} "
                  f"{'b_fills':>7} {'link':>5} {'store':>5} {'spilled':>7} {'restarts':>8} "
                  f"{'rss_MB':>7} {'journal_MB':>10}")
            while (now := time.monotonic()) - started < run_s:
                time.sleep(0.25)
                t = now - started
                while events and events[0][0] <= t:
                    _, what = events.pop(0)
                    if what == "down":
                        fake.call(fake.fake.go_down, args.down_s)
                        down_at = time.monotonic()
                    else:
                        session.children["store"].get("set_available", what == "store_up",
                                                      timeout_s=60)
                connected = fake.call(lambda: fake.fake.connected)
                if down_at is not None and connected:
                    downs.append(time.monotonic() - down_at)
                    down_at = None
                if args.kill_every and now - last_kill >= args.kill_every:
                    victim = rng.choice(_IB_VICTIMS)
                    os.kill(int(session.children[victim].get("pid")), signal.SIGKILL)
                    last_kill, kills = now, kills + 1
                if now - last_sample < args.every:
                    continue
                last_sample = now
                row = _sample(session, journal_dir, started)
                broker = fake.call(_broker_record, fake.fake)
                rec = session.children["recorder"].get("stats", timeout_s=60)
                row.update(placed=len(broker["placed"]), b_fills=len(broker["executions"]),
                           link=connected, store=rec["mode"], spilled=rec["events_spilled"])
                rows.append(row)
                print(f"{row['t_s']:6.0f} {row['cursor']:6} {row['orders']:6} "
                      f"{row['placed']:6} {row['fills']:6} {row['b_fills']:7} "
                      f"{'up' if connected else 'down':>5} {rec['mode'][:5]:>5} "
                      f"{rec['events_spilled']:7} {row['restarts']:8} "
                      f"{row['rss'] / 2**20:7.0f} {row['journal'] / 2**20:10.1f}", flush=True)
            session.feed.get("stop", timeout_s=120)
            session.children["store"].get("set_available", True, timeout_s=60)
            deadline, settled = time.monotonic() + 120, False
            while time.monotonic() < deadline:
                broker = fake.call(_broker_record, fake.fake)
                if _settled(session, broker):
                    settled = True
                    break
                time.sleep(0.5)
            if down_at is not None:  # down at the end and never back: the longest is the wait
                downs.append(time.monotonic() - down_at)
            broker = fake.call(_broker_record, fake.fake)
            risk_view = session.risk.get("view", timeout_s=60)
            recorder = session.children["recorder"].get("flush", timeout_s=300)
            store_fills = _store_fills(session)
            end = _sample(session, journal_dir, started)
        finally:
            result = session.stop(write=False)
    finally:
        if owns_ray:
            ray.shutdown()
        fake.close()
    counts = ib_counts(broker, result, risk_view)
    first = rows[0] if rows else end
    span_min = max((end["t_s"] - first["t_s"]) / 60, 1e-9)
    out: dict[str, Any] = {
        "minutes": args.minutes, "load": round(load, 1), "settled": settled,
        **counts,
        "disconnects": len(downs), "reconnects": broker["connects"] - 1,
        "longest_down_s": round(max(downs, default=0.0), 1),
        "store_outage_s": args.outage_s, "recorder_outages": recorder["outages"],
        "events_spilled": recorder["events_spilled"], "store_pending": recorder["pending_events"],
        "store_fills": store_fills, "kills": kills, "restarts": result["restarts"],
        "trading_state": result["trading_state"],
        "state_reason": result["risk"]["state_reason"],
        "rss_mb": round(end["rss"] / 2**20, 1),
        "rss_mb_per_min": round((end["rss"] - first["rss"]) / 2**20 / span_min, 1),
        "anon_mb_per_min": round((end["anon"] - first["anon"]) / 2**20 / span_min, 1),
        # the whole run counts the session's start (its processes' first minute); the second
        # half's slope is what a long session keeps growing by
        "rss_mb_per_min_second_half": round(_growth([*rows, end], "rss") / 2**20, 1),
        "anon_mb_per_min_second_half": round(_growth([*rows, end], "anon") / 2**20, 1),
        "journal_mb": round(end["journal"] / 2**20, 1),
        "journal_mb_per_min": round((end["journal"] - first["journal"]) / 2**20 / span_min, 2),
    }
    print(f"orders {out['orders']} (placed {out['placed']}, refused {out['refused']}), "
          f"duplicates {out['duplicates']}, lost {out['lost']}; fills: broker "
          f"{out['fills_broker']}, ours {out['fills_ours']}, risk {out['fills_risk']}, twice "
          f"{out['fills_twice']}, missed {out['fills_missed']}, store {store_fills}; positions "
          f"ours {out['positions_ours']} broker {out['positions_broker']} equal "
          f"{out['positions_equal']}; disconnects {out['disconnects']} (reconnects "
          f"{out['reconnects']}, longest down {out['longest_down_s']} s), store outage "
          f"{args.outage_s:g} s ({out['events_spilled']} events spilled, {out['store_pending']} "
          f"pending), restarts {out['restarts']}, state {out['trading_state']} "
          f"({out['state_reason'] or '-'}), refused {out['refused_why']}; RSS "
          f"{out['rss_mb']} MB ({out['rss_mb_per_min']:+} MB/min over the run, "
          f"{out['rss_mb_per_min_second_half']:+} MB/min over its second half), journals "
          f"{out['journal_mb']} MB ({out['journal_mb_per_min']:+} MB/min)")
    growth = _print_per_actor([*rows, end])
    out["per_actor_anon_mb_per_min"] = {g["actor"]: g["anon_mb_per_min"] for g in growth}
    print(json.dumps(out, sort_keys=True))
    return out


def parser() -> argparse.ArgumentParser:
    """The soak's command line (the test builds its arguments with it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=("ib", "paper"), default="ib")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=500.0,
                        help="paper: market messages a second")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--disconnects", type=int, default=3,
                        help="ib: times the fake gateway goes down during the run")
    parser.add_argument("--down-s", type=float, default=8.0,
                        help="ib: seconds the gateway refuses connects each time")
    parser.add_argument("--outage-s", type=float, default=60.0,
                        help="ib: seconds the store is unavailable (0: no outage)")
    parser.add_argument("--reconcile-every", type=float, default=5.0,
                        help="ib: the session's reconcile_every_s (the product's default: 5)")
    parser.add_argument("--kill-every", type=float, default=0.0,
                        help="SIGKILL a random actor every this many seconds (0: never)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", help="keep the session here (default: a temporary folder)")
    parser.add_argument("--address", help="join this Ray cluster instead of starting one")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.broker == "paper":
        run_paper(args)
    else:
        run_ib(args)


if __name__ == "__main__":
    main()
