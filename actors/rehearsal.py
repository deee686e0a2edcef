"""Rehearsals of the runbook's drills (``tradewind rehearse``) on a paper session of sample data.

Each drill does to a running session what an unattended week does to it, through the real
parts (Ray actors, the supervisor, the reconciler's watchdogs, the stop signal), and says
whether the session did what docs/runbook.md says it does:

* **actor crash** — SIGKILL of the strategy actor's process: the supervisor starts it again,
  it restores from its journal, and the session trades on (the feed moves on, no error);
* **kill file** — the configured kill file appears: trading halts; it goes: trading resumes;
* **watchdog disk_low** — free space where the session journals falls below the watchdog's
  limit (a ballast file, allocated without writing, takes it there): the watchdog trips and
  trading halts; the ballast goes, the operator resumes, trading is active again;
* **graceful stop** — SIGTERM to the process: no new orders, open orders cancelled, files
  written, the journals closed (checked by the command after the session returned).

Nothing leaves the machine: the data is generated (``sample_days``), the broker is the paper
broker, the control plane is off.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from actors.names import Named
from runtime.errors import ConfigError

__all__ = ["Drill", "Drills", "graceful_stop", "write_workspace"]

SESSION_ID = "rehearsal"
_BALLAST_MB = 1024  # what the disk drill allocates ...
_MARGIN_MB = 512  # ... against a limit this far below the free space at the start


@dataclass
class Drill:
    name: str
    passed: bool
    detail: str
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_workspace(folder: Path, *, minutes: int | None = 60, days: int = 1,
                    speed: float = 10.0, disk_drill: bool = True) -> Path:
    """The rehearsal's configs in ``folder`` (a market maker on the first ``minutes`` of
    ``days`` of generated SIM-A quotes and trades (``None``: all of them), replayed in real
    time ``speed`` times faster); the paper config's path. With ``disk_drill`` the disk
    watchdog's limit sits :data:`_MARGIN_MB` below the free space now (else its default)."""
    if (folder / "var" / SESSION_ID).exists():
        raise ConfigError(f"{folder} holds a rehearsal already (its journals would resume): "
                          "give an empty folder", field="--dir")
    folder.mkdir(parents=True, exist_ok=True)
    end = (None if minutes is None else
           f"2024-01-02T{14 + (30 + minutes) // 60:02d}:{(30 + minutes) % 60:02d}:00")
    trading = {
        "name": "rehearsal", "seed": 11, "initial_cash": 100000,
        "instruments": [{"id": "SIM-A", "price_precision": 2, "lot_size": 1,
                         "min_quantity": 1}],
        "data": [{"kind": kind, "instrument": "SIM-A", "sample_days": days}
                 | ({"end": end} if end else {}) for kind in ("quotes", "trades")],
        "strategies": [{"id": "mm", "class": "backtest.strategies.market_maker:MarketMaker",
                        "instruments": ["SIM-A"],
                        "params": {"size": 10, "levels": 2, "half_spread_ticks": 1,
                                   "vol_mult": 0.5, "skew_ticks": 2, "max_inventory": 100,
                                   "requote_ms": 500}}],
        "venue": {"latency": {"kind": "constant", "entry_ns": 5_000_000,
                              "response_ns": 5_000_000},
                  "fills": {"kind": "l1", "queue_shrink": "behind_first"},
                  "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 2}},
        "risk": {"max_position": 150, "max_orders_per_window": 50, "order_window_s": 1},
        "store": {"record": False},
    }
    free_mb = shutil.disk_usage(folder).free / 2**20
    paper = {
        "name": "rehearsal", "trading": "trading.yaml",
        "journal_dir": str(folder / "var"), "output_dir": str(folder / "runs"),
        "kill_file": str(folder / "var" / "KILL"), "cancel_on_stop": True,
        # the watchdogs act, as in a broker session; the desync watchdog is given time for
        # the crash drill's restart (a fill in flight while an actor restarts is no desync)
        "status_every_s": 0.5, "reconcile_every_s": 5.0, "reconcile_act": True,
        "watchdogs": {"disk_low": {"min_free_mb": max(free_mb - _MARGIN_MB, 1.0)
                                   if disk_drill else 256.0, "action": "halt"},
                      "inventory_desync": {"confirm_runs": 3}},
        "feed": {"lockstep": False, "speed": speed},
        "control": {"enabled": False},
    }
    (folder / "trading.yaml").write_text(yaml.safe_dump(trading, sort_keys=False))
    path = folder / "paper.yaml"
    path.write_text(yaml.safe_dump(paper, sort_keys=False))
    return path


class Drills:
    """The drills against the running session ``session_id`` (actors by name), one after
    the other; :meth:`run` returns each one's outcome (a drill that raises failed)."""

    def __init__(self, *, session_id: str, journal_dir: Path, kill_file: Path,
                 timeout_s: float = 120.0) -> None:
        self.session_id, self.journal_dir = session_id, journal_dir
        self.kill_file, self.timeout_s = kill_file, timeout_s

    def actor(self, child: str) -> Named:
        return Named(f"tw.{self.session_id}.{child}")

    def run(self) -> list[Drill]:
        out = []
        for name, drill in (("actor crash (SIGKILL)", self.crash),
                            ("kill file", self.kill),
                            ("watchdog disk_low", self.disk_low)):
            started = time.monotonic()
            try:
                passed, detail = drill()
            except Exception as exc:  # a drill that cannot finish failed: say why
                passed, detail = False, f"{type(exc).__name__}: {exc}"
            out.append(Drill(name, passed, detail, round(time.monotonic() - started, 1)))
        return out

    def trading(self) -> None:
        """Until the session trades (its risk actor has orders)."""
        self._until(lambda: self.actor("risk").get("summary")["orders"] > 0,
                    "the session to place orders")

    def crash(self) -> tuple[bool, str]:
        strategy, feed = self.actor("strategy.mm"), self.actor("feed")
        pid = int(strategy.get("pid"))
        before = feed.get("status")["cursor"]
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        again = self._until(lambda: _new_pid(strategy, pid), "the strategy back")
        back_s = time.monotonic() - started
        self._until(lambda: feed.get("status")["cursor"] > before + 100, "the feed to move on")
        status = feed.get("status")
        if status["error"]:
            return False, f"the feed stopped: {status['error']}"
        return True, (f"strategy.mm (pid {pid}) restarted as pid {again} in {back_s:.1f} s; "
                      f"the feed moved on to {status['cursor']:,}")

    def kill(self) -> tuple[bool, str]:
        if (was := self._not_active()) is not None:
            return False, was
        self.kill_file.parent.mkdir(parents=True, exist_ok=True)
        self.kill_file.touch()
        started = time.monotonic()
        try:
            self._until(lambda: self._state() == "halted", "trading to halt")
            halted_s = time.monotonic() - started
        finally:
            self.kill_file.unlink(missing_ok=True)
        self._until(lambda: self._state() == "active", "trading to resume")
        return True, f"halted {halted_s:.1f} s after the file appeared; active once it went"

    def disk_low(self) -> tuple[bool, str]:
        if (was := self._not_active()) is not None:
            return False, was
        ballast = self.journal_dir / "rehearsal.ballast"
        fd = os.open(ballast, os.O_CREAT | os.O_WRONLY, 0o600)
        started = time.monotonic()
        try:
            os.posix_fallocate(fd, 0, _BALLAST_MB * 2**20)
            self._until(lambda: self._state() == "halted", "the watchdog to halt trading")
            tripped_s = time.monotonic() - started
            trips = [t for t in self.actor("reconciler").get("trips")
                     if t["watchdog"] == "disk_low"]
        finally:
            os.close(fd)
            ballast.unlink(missing_ok=True)
        if not trips:
            return False, "trading halted, but not by the disk_low watchdog"
        reconciler = self.actor("reconciler")
        self._until(lambda: reconciler.get("status")["watchdogs"]["disk_low"] == "ok",
                    "the watchdog to clear")
        self.actor("feed").get("operate", "set_state",
                               {"state": "active", "reason": "rehearsal: disk freed"})
        self._until(lambda: self._state() == "active", "trading to resume")
        return True, (f"tripped ({trips[0]['action']}) {tripped_s:.1f} s after the ballast; "
                      "cleared once freed; resumed by the operator")

    def _state(self) -> str:
        return str(self.actor("risk").get("summary")["state"])

    def _not_active(self) -> str | None:
        """Why trading is not active before a drill (something else stopped it), or None."""
        summary = self.actor("risk").get("summary")
        if summary["state"] == "active":
            return None
        return f"trading was {summary['state']} before the drill: {summary['state_reason']}"

    def _until(self, check: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # an actor restarting answers nothing yet
                value = check()
                if value:
                    return value
            time.sleep(0.2)
        raise TimeoutError(f"waited {self.timeout_s:.0f} s for {what}")


def _new_pid(actor: Named, old: int) -> int | None:
    """The actor's process id once it is another than ``old`` (None while restarting)."""
    try:
        pid = int(actor.get("pid"))
    except Exception:  # restarting
        return None
    return pid if pid != old else None


def graceful_stop(result: dict[str, Any], stopped_by: str | None, output_dir: Path) -> Drill:
    """The SIGTERM drill's verdict from what the session returned and wrote."""
    risk, feed = result["risk"], result["feed"]
    files = output_dir / result["session_id"]
    problems = []
    if stopped_by != "SIGTERM":
        problems.append(f"stopped by {stopped_by or 'the end of the data'}, not SIGTERM")
    if risk["open"]:
        problems.append(f"{risk['open']} order(s) left open")
    if feed["error"]:
        problems.append(f"the feed stopped on an error: {feed['error']}")
    missing = [n for n in ("session.md", "orders.csv", "fills.csv")
               if not (files / n).exists()]
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if problems:
        return Drill("graceful stop (SIGTERM)", False, "; ".join(problems))
    return Drill("graceful stop (SIGTERM)", True,
                 f"{result['orders']} orders, {result['fills']} fills, none left open; "
                 f"files in {files}")
