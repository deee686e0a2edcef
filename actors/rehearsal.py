"""Rehearsals of the runbook's drills (``tradewind rehearse``) on a paper session of sample data.

Each drill does to a running session what an unattended week does to it, through the real
parts (Ray actors, the supervisor, the reconciler's watchdogs, the stop signal), and says
whether the session did what docs/runbook.md says it does:

* **actor crash** — SIGKILL of the strategy actor's process: the supervisor starts it again
  (its events say so), it restores from its journal, and the session trades on;
* **risk guards** — the guard probe (:class:`GuardProbe`, a strategy beside the market maker)
  sends, when asked through the operator's params, an order that breaks ``max_position``,
  ``max_order_notional``, ``price_band`` or ``stale_data``: risk must deny it with that
  reason code (the probe keeps the denial it got);
* **kill file** — the configured kill file appears: trading halts; it goes: trading resumes;
* **watchdog disk_low** — free space where the session journals falls below the watchdog's
  limit (a ballast file, allocated without writing, takes it there): the watchdog trips and
  trading halts; the ballast goes, the operator resumes, trading is active again;
* **broker watchdogs, drift, breaker** — not rehearsable on a replayed paper session (the
  paper broker's and the replay's health, read from the gateway and the feed, say why): N/A;
* **daily loss** — the probe's taker round trips lose until the day's loss reaches the limit:
  trading goes close-only, the probe's next entry is denied;
* **restart storm** — the strategy killed until the supervisor gives up: trading halts by the
  supervisor's escalation, no order left open;
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
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from actors.names import Named
from runtime.errors import ConfigError
from runtime.messages import Message, OrderDenied, QuoteTick
from runtime.strategy import Qty, Strategy, StrategyParams
from runtime.values import FIXED_SCALE, Rounding

__all__ = ["PROBES", "Drill", "Drills", "GuardProbe", "GuardProbeParams", "graceful_stop",
           "write_workspace"]

SESSION_ID = "rehearsal"
_BALLAST_MB = 4096  # what the disk drill allocates ...
_MARGIN_MB = 2048  # ... against a limit this far below the free space at the start (room for
# what other programs on the machine write meanwhile)
_B_SECONDS = 10  # SIM-B's quotes stop this far into the data (data time)
_TAKER_BPS = 50  # what a taker pays: the daily-loss probe's round trips lose this twice
_STORM_PERIOD_S = 60.0  # the supervisor's window for counting restarts


@dataclass
class Drill:
    """One drill's outcome: the guard it trips, what fired and what the session did, read from
    the session (risk's denials and trading state, the reconciler's trips, the supervisor's
    events, the gateway's health). ``passed`` is None for a guard the paper broker cannot
    trip (``fired`` says why): not rehearsed, not failed."""

    name: str
    guard: str
    passed: bool | None
    fired: str
    did: str = ""
    seconds: float = 0.0

    @property
    def result(self) -> str:
        return {True: "PASS", False: "FAIL", None: "N/A"}[self.passed]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"result": self.result}


def write_workspace(folder: Path, *, minutes: int | None = 60, days: int = 1,
                    speed: float = 10.0, drills: bool = True) -> Path:
    """The rehearsal's configs in ``folder`` (a market maker on the first ``minutes`` of
    ``days`` of generated SIM-A quotes and trades (``None``: all of them), replayed in real
    time ``speed`` times faster); the paper config's path. With ``drills`` the session is set
    up to be tripped (else it is the market maker alone, as a soak runs it):

    * the guard probe (:class:`GuardProbe`) trades beside the market maker, on SIM-A and on
      SIM-B, whose quotes stop :data:`_B_SECONDS` into the data (the stale-data probe);
    * every risk guard is on, each set where the market maker stays clear of it and the probe's
      orders do not (the daily loss: the probe's taker round trips pay :data:`_TAKER_BPS`);
    * the disk watchdog's limit sits :data:`_MARGIN_MB` below the free space now;
    * the supervisor (one flat tree) gives up at its third restart within
      :data:`_STORM_PERIOD_S`: it halts trading (the restart storm).
    """
    if (folder / "var" / SESSION_ID).exists():
        raise ConfigError(f"{folder} holds a rehearsal already (its journals would resume): "
                          "give an empty folder", field="--dir")
    folder.mkdir(parents=True, exist_ok=True)

    def at(seconds: int) -> str:
        return (f"2024-01-02T{14 + (30 * 60 + seconds) // 3600:02d}:"
                f"{(30 * 60 + seconds) // 60 % 60:02d}:{seconds % 60:02d}")

    def stream(kind: str, instrument: str, end: str | None) -> dict[str, Any]:
        return ({"kind": kind, "instrument": instrument, "sample_days": days}
                | ({"end": end} if end else {}))

    end = None if minutes is None else at(minutes * 60)
    instrument = {"price_precision": 2, "lot_size": 1, "min_quantity": 1}
    mm = {"id": "mm", "class": "backtest.strategies.market_maker:MarketMaker",
          "instruments": ["SIM-A"],
          "params": {"size": 10, "levels": 2, "half_spread_ticks": 1, "vol_mult": 0.5,
                     "skew_ticks": 2, "max_inventory": 100, "requote_ms": 500}}
    trading: dict[str, Any] = {
        "name": "rehearsal", "seed": 11, "initial_cash": 100000,
        "instruments": [{"id": "SIM-A"} | instrument],
        "data": [stream(kind, "SIM-A", end) for kind in ("quotes", "trades")],
        "strategies": [mm],
        "venue": {"latency": {"kind": "constant", "entry_ns": 5_000_000,
                              "response_ns": 5_000_000},
                  "fills": {"kind": "l1", "queue_shrink": "behind_first"},
                  "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 2}},
        "risk": {"max_position": 150, "max_orders_per_window": 50, "order_window_s": 1},
        "store": {"record": False},
    }
    watchdogs: dict[str, Any] = {"disk_low": {"min_free_mb": 256.0, "action": "halt"},
                                 "inventory_desync": {"confirm_runs": 3}}
    paper: dict[str, Any] = {
        "name": "rehearsal", "trading": "trading.yaml",
        "journal_dir": str(folder / "var"), "output_dir": str(folder / "runs"),
        "kill_file": str(folder / "var" / "KILL"), "cancel_on_stop": True,
        # the watchdogs act, as in a broker session; the desync watchdog is given time for
        # the crash drill's restart (a fill in flight while an actor restarts is no desync)
        "status_every_s": 0.5, "reconcile_every_s": 5.0, "reconcile_act": True,
        "watchdogs": watchdogs,
        "feed": {"lockstep": False, "speed": speed},
        "control": {"enabled": False},
    }
    if drills:
        trading["instruments"].append({"id": "SIM-B"} | instrument)
        trading["data"].append(stream("quotes", "SIM-B", at(_B_SECONDS)))
        # SIM-A trades near 180: the market maker's orders (10 at a time, at most 100 held)
        # stay clear of every limit; the probe's orders each break one
        limits = {"max_position": 300, "max_order_notional": 80000, "price_band_pct": 5}
        trading["risk"] |= limits | {"stale_data_s": 30, "max_daily_loss": 500,
                                     "daily_loss_action": "reducing"}
        trading["strategies"].append({
            "id": "probe", "class": "actors.rehearsal:GuardProbe",
            "instruments": ["SIM-A", "SIM-B"], "params": {"size": 100} | limits})
        trading["venue"]["fees"]["taker_bps"] = _TAKER_BPS  # the market maker only posts
        free_mb = shutil.disk_usage(folder).free / 2**20
        watchdogs["disk_low"]["min_free_mb"] = max(free_mb - _MARGIN_MB, 1.0)
        # one flat tree: the third restart within the window is a storm, the root gives up
        # (halts trading, cancels) and from then on only brings crashed actors back
        paper["supervisor"] = {
            "intensity": 2, "period_s": _STORM_PERIOD_S,
            "children": [{"child_id": k} for k in ("risk", "gateway", "strategy", "reconciler",
                                                    "book", "store", "recorder")]
            + [{"child_id": "feed", "restart": "transient"}]}
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
        self.over = threading.Event()  # set when the session returned: waits give up

    def actor(self, child: str) -> Named:
        return Named(f"tw.{self.session_id}.{child}")

    def plan(self) -> list[tuple[str, str, Callable[[], tuple[bool | None, str, str]]]]:
        """(drill, guard, how) in the order they run: the daily loss and the restart storm last
        (the session stays close-only, then halted: what they leave is what they test)."""

        def probe(code: str) -> Callable[[], tuple[bool | None, str, str]]:
            return lambda: self.guard(code)

        return [
            ("market-data silence", "watchdog market_data_silence", self.silence),
            ("actor crash (SIGKILL)", "supervisor restart", self.crash),
            ("oversized position", "risk max_position", probe("max_position")),
            ("oversized order", "risk max_order_notional", probe("max_order_notional")),
            ("price far from the market", "risk price_band", probe("price_band")),
            ("order on stale data", "risk stale_data", probe("stale_data")),
            ("kill file", "kill file", self.kill),
            ("disk filling up", "watchdog disk_low", self.disk_low),
            ("broker link stalls", "watchdog order_stream_stale",
             lambda: self.paper_cannot("exec_waiting_since_ns")),
            ("unknown-order storm", "watchdog unknown_order_storm",
             lambda: self.paper_cannot("foreign_reports")),
            ("broker and risk drift apart", "watchdog inventory_desync (drift)",
             self.drift),
            ("broker rejects in a row", "circuit breaker",
             lambda: self.paper_cannot("breaker_open")),
            ("losing day", "risk daily loss", self.daily_loss),
            ("restart storm", "supervisor escalation", self.storm),
        ]

    def run(self) -> list[Drill]:
        out = []
        for name, guard, drill in self.plan():
            if self.over.is_set():
                out.append(Drill(name, guard, False, "the session ended before this drill"))
                continue
            started = time.monotonic()
            try:
                passed, fired, did = drill()
            except Exception as exc:  # a drill that cannot finish failed: say why
                passed, fired, did = False, f"{type(exc).__name__}: {exc}", ""
            out.append(Drill(name, guard, passed, fired, did,
                             round(time.monotonic() - started, 1)))
        return out

    def running(self) -> None:
        """Until the session's data flows (its risk actor took market data)."""
        self._until(lambda: self.actor("risk").get("summary")["cursor"] > 0,
                    "the session's data to flow")

    def trading(self) -> None:
        """Until the session trades (its risk actor has orders)."""
        self._until(lambda: self.actor("risk").get("summary")["orders"] > 0,
                    "the session to place orders")

    # --- the drills: each returns (passed, what fired, what the session did) ------------------
    def silence(self) -> tuple[bool | None, str, str]:
        """The silence watchdog watches a broker's market-data stream (its health, from the
        feed); a replayed feed has none to report (read here, not assumed)."""
        health = self.actor("feed").get("market_health")
        if health is not None:
            return False, f"the feed streams ({health}): this rehearsal replays sample data", ""
        return None, ("not rehearsable on a replayed paper session: the silence watchdog "
                      "watches a broker's market-data stream, and a replay reports none "
                      "(feed market_health None); tripped through a session's feed in "
                      "tests/actors/test_reconciler_actor.py"), ""

    def crash(self) -> tuple[bool | None, str, str]:
        self.trading()
        strategy, feed = self.actor("strategy.mm"), self.actor("feed")
        pid = int(strategy.get("pid"))
        before = feed.get("status")["cursor"]
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        again = self._until(lambda: _new_pid(strategy, pid), "the strategy back")
        back_s = time.monotonic() - started
        self._until(lambda: feed.get("status")["cursor"] > before + 100, "the feed to move on")
        status = feed.get("status")
        restarts = [e for e in self.actor("supervisor").get("status")["events"]
                    if e["child"] == "strategy:mm" and e["action"] == "restart"]
        if status["error"]:
            return False, f"the feed stopped: {status['error']}", ""
        if not restarts:
            return False, "the strategy came back, but the supervisor logged no restart", ""
        return True, (f"strategy.mm (pid {pid}) died ({restarts[-1]['reason']}); restarted as "
                      f"pid {again} in {back_s:.1f} s"), (
                          f"the feed moved on to {status['cursor']:,}, no error")

    def guard(self, code: str) -> tuple[bool | None, str, str]:
        """The probe sends one order the guard ``code`` must refuse: passes when risk denied
        it with that reason code."""
        if (was := self._not_active()) is not None:
            return False, was, ""
        denied = self._probe(code)
        fired = f"{denied[0] or 'nothing'}: {denied[1]}"
        if denied[0] != code:
            return False, fired, f"the probe's order was not denied by {code}"
        return True, fired, "the order was denied before the broker saw it"

    def kill(self) -> tuple[bool | None, str, str]:
        if (was := self._not_active()) is not None:
            return False, was, ""
        self.kill_file.parent.mkdir(parents=True, exist_ok=True)
        self.kill_file.touch()
        started = time.monotonic()
        try:
            self._until(lambda: self._state() == "halted", "trading to halt")
            halted_s = time.monotonic() - started
            reason = self.actor("risk").get("summary")["state_reason"]
        finally:
            self.kill_file.unlink(missing_ok=True)
        self._until(lambda: self._state() == "active", "trading to resume")
        return True, f"{self.kill_file.name} appeared: {reason}", (
            f"halted in {halted_s:.1f} s; active once the file went")

    def disk_low(self) -> tuple[bool | None, str, str]:
        if (was := self._not_active()) is not None:
            return False, was, ""
        ballast = self.journal_dir / "rehearsal.ballast"
        fd = os.open(ballast, os.O_CREAT | os.O_WRONLY, 0o600)
        started = time.monotonic()
        try:
            os.posix_fallocate(fd, 0, _BALLAST_MB * 2**20)
            self._until(lambda: self._state() == "halted", "the watchdog to halt trading")
            tripped_s = time.monotonic() - started
            trip = self._trip("disk_low")
        finally:
            os.close(fd)
            ballast.unlink(missing_ok=True)
        if trip is None:
            return False, "trading halted, but not by the disk_low watchdog", ""
        reconciler = self.actor("reconciler")
        self._until(lambda: reconciler.get("status")["watchdogs"]["disk_low"] == "ok",
                    "the watchdog to clear")
        self.actor("feed").get("operate", "set_state",
                               {"state": "active", "reason": "rehearsal: disk freed"})
        self._until(lambda: self._state() == "active", "trading to resume")
        return True, trip["reason"], (f"{trip['action']}: trading halted {tripped_s:.1f} s after "
                                      "the ballast; cleared once freed; resumed by the operator")

    def paper_cannot(self, field: str) -> tuple[bool | None, str, str]:
        """A broker watchdog or the breaker: fed by what a broker adapter reports; the paper
        broker's health (read here, not assumed) cannot show it."""
        health = self.actor("gateway").get("health")
        if health.get("broker") != "paper":
            return False, f"the gateway is {health.get('broker')!r}, not the paper broker", ""
        why = {"exec_waiting_since_ns": "answers every command within the step that sent it",
               "foreign_reports": "is this session's own venue: it reports no foreign orders",
               "breaker_open": "never rejects for a broker fault (its rejects are the venue "
                               "rules'), and has no breaker"}[field]
        where = {"exec_waiting_since_ns": "tests/venues/test_watchdog_health.py",
                 "foreign_reports": "tests/venues/test_watchdog_health.py",
                 "breaker_open": "tests/venues/test_common.py and test_ccxt.py"}[field]
        return None, (f"not rehearsable on the paper broker: it {why} "
                      f"(health {field}={health.get(field)!r}); tripped in {where}"), ""

    def drift(self) -> tuple[bool | None, str, str]:
        """The reconciler compares the paper venue's books with risk's: both follow the same
        in-process venue, so they can only drift while a step is in flight."""
        status = self.actor("reconciler").get("status")
        return None, ("not rehearsable on the paper broker: its view is the venue risk trades "
                      "with in process, so no fill or position can go missing between them "
                      f"(inventory_desync {status['watchdogs'].get('inventory_desync')}); "
                      "tripped on drifted views in tests/actors/test_reconciler_actor.py"), ""

    def daily_loss(self) -> tuple[bool | None, str, str]:
        """The probe's taker round trips lose the spread and the fee each until the day's loss
        reaches the limit: trading goes close-only (the rule's action) and the probe's next
        entry is refused."""
        if (was := self._not_active()) is not None:
            return False, was, ""
        denied = self._probe("daily_loss")
        summary = self.actor("risk").get("summary")
        self._set_probe("")  # the probe closes what it holds
        report = self.actor("strategy.probe").get("view")["report"]
        if summary["state"] != "reducing" or not summary["state_reason"].startswith(
                "daily loss"):
            return False, f"trading is {summary['state']}: {summary['state_reason']}", ""
        return True, summary["state_reason"], (
            f"trading went close-only after {report['round_trips']} round trips; the next "
            f"entry was denied ({denied[0]})")

    def storm(self) -> tuple[bool | None, str, str]:
        """The strategy killed again and again: past the supervisor's intensity it gives up
        and halts trading (open orders cancelled)."""
        strategy, supervisor = self.actor("strategy.mm"), self.actor("supervisor")
        kills = 0
        while not supervisor.get("status")["escalated"] and kills < 6:
            pid = int(self._until(lambda: strategy.get("pid"), "the strategy"))
            os.kill(pid, signal.SIGKILL)
            kills += 1
            self._until(partial(_back_or_given_up, strategy, supervisor, pid),
                        "the strategy back, or the supervisor to give up")
        status = supervisor.get("status")
        if not status["escalated"]:
            return False, f"{kills} kills, and the supervisor did not give up", ""
        summary = self._until(lambda: (s := self.actor("risk").get("summary"))["state"]
                              == "halted" and s, "trading to halt")
        if not summary["state_reason"].startswith("supervisor escalation"):
            return False, f"{kills} kills: {status['reason']}", (
                f"trading is halted, but not by the supervisor: {summary['state_reason']}")
        summary = self._until(lambda: (s := self.actor("risk").get("summary"))["open"] == 0
                              and s, "the open orders to be cancelled")
        return True, f"{kills} kills: {status['reason']}", (
            f"trading halted ({summary['state_reason']}); no order left open")

    # --- helpers --------------------------------------------------------------------------------
    def _set_probe(self, drill: str) -> None:
        self.actor("strategy.probe").get("operate", "params", {"params": {"drill": drill}})

    def _probe(self, drill: str) -> list[str]:
        """Ask the probe for ``drill``; the denial risk answered its order with."""
        self._set_probe(drill)
        probe = self.actor("strategy.probe")
        return list(self._until(lambda: probe.get("view")["report"]["denied"].get(drill),
                                f"risk to answer the probe's {drill} order"))

    def _trip(self, watchdog: str) -> dict[str, Any] | None:
        trips = [t for t in self.actor("reconciler").get("trips") if t["watchdog"] == watchdog]
        return trips[0] if trips else None

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
            if self.over.is_set():
                raise RuntimeError(f"the session ended while waiting for {what}")
            with contextlib.suppress(Exception):  # an actor restarting answers nothing yet
                value = check()
                if value:
                    return value
            time.sleep(0.2)
        raise TimeoutError(f"waited {self.timeout_s:.0f} s for {what}")


def _back_or_given_up(strategy: Named, supervisor: Named, old: int) -> bool:
    return bool(_new_pid(strategy, old) or supervisor.get("status")["escalated"])


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
    name, guard = "graceful stop (SIGTERM)", "stop signal"
    fired = f"stopped by {stopped_by or 'the end of the data'}"
    if problems:
        return Drill(name, guard, False, fired, "; ".join(problems))
    return Drill(name, guard, True, fired,
                 f"{result['orders']} orders, {result['fills']} fills, none left open; "
                 f"files in {files}")


# --- the risk drills' strategy ------------------------------------------------------------------
#: the risk guards the probe trips, each by one order it sends on the next quote once the
#: rehearsal names it (``drill`` param, set through the operator like any param change)
PROBES = ("max_position", "max_order_notional", "price_band", "stale_data")


class GuardProbeParams(StrategyParams):
    drill: str = Field("", description="the guard to trip next: one of PROBES, daily_loss, "
                                       "or nothing")
    size: Qty = Field(gt=0, description="the daily-loss drill's round-trip quantity")
    max_round_trips: int = Field(30, ge=1)
    # the limits to break, as the session's risk config sets them (a strategy actor's
    # ``Strategy.limits`` is empty in a paper session: risk decides in the risk actor)
    max_position: Qty | None = Field(None, gt=0)
    max_order_notional: Qty | None = Field(None, gt=0, description="money, fixed point")
    price_band_pct: float | None = Field(None, gt=0)


class GuardProbe(Strategy[GuardProbeParams]):
    """Sends, when the rehearsal asks, an order that one risk guard must refuse, and keeps the
    denial risk answered with (its reason code and reason): nothing is judged here, the
    rehearsal reads :meth:`report`. Its first instrument is the one it trades; its second, when
    there is one, is the one whose data stops early (the stale-data probe). ``daily_loss``:
    market-order round trips of ``size`` (each pays the spread and the taker fee) until risk
    stops them; with no drill it closes what it holds."""

    def on_start(self) -> None:
        self.quotes: dict[str, QuoteTick] = {}
        self.sent: dict[str, str] = {}  # client order id -> drill
        self.denied: dict[str, list[str]] = {}  # drill -> [reason code, reason] (the first)
        self.fired: set[str] = set()
        self.round_trips = 0

    def on_quote(self, quote: QuoteTick) -> None:
        self.quotes[quote.instrument_id] = quote
        main = self.instruments[0]
        if quote.instrument_id != main or self.open_orders(main):
            return
        drill = self.params.drill
        if drill in PROBES and drill not in self.fired:
            self.fired.add(drill)
            order = self._probe(drill, quote)
            if order is not None:
                self.sent[order] = drill
        elif drill == "daily_loss" and "daily_loss" not in self.denied:
            if self.position(main) > 0:
                self.sent[self.sell(main, self.position(main))] = drill
            elif self.round_trips < self.params.max_round_trips:
                self.round_trips += 1
                self.sent[self.buy(main, self.params.size)] = drill
        elif drill != "daily_loss" and self.position(main) > 0:
            self.sell(main, self.position(main))  # what the loss drill left: closed

    def _probe(self, drill: str, quote: QuoteTick) -> str | None:
        p, main = self.params, self.instruments[0]
        instrument = self.instrument(main)
        lot = instrument.quantize_quantity(FIXED_SCALE, Rounding.UP)
        bid = quote.bid_price
        if drill == "max_position" and p.max_position is not None:
            return self.buy(main, p.max_position + lot, bid)
        if drill == "max_order_notional" and p.max_order_notional is not None:
            lots = p.max_order_notional // bid + 1  # valued at the market, at least the bid
            return self.buy(main, lots * lot, bid)
        if drill == "price_band" and p.price_band_pct is not None:
            away = int(bid * (1 - 2 * p.price_band_pct / 100))
            return self.buy(main, lot, instrument.quantize_price(away, Rounding.FLOOR))
        if drill == "stale_data" and len(self.instruments) > 1:
            other = self.quotes.get(self.instruments[1])
            if other is not None:
                return self.buy(other.instrument_id, lot, other.bid_price)
        self.denied[drill] = ["", "the probe had nothing to send: its params name no such "
                                  "limit, or the instrument had no quote"]
        return None

    def on_order_event(self, event: Message) -> None:
        if isinstance(event, OrderDenied) and event.client_order_id in self.sent:
            self.denied.setdefault(self.sent[event.client_order_id],
                                   [event.reason_code, event.reason])

    def report(self) -> dict[str, Any]:
        return {"sent": sorted(set(self.sent.values())), "denied": dict(self.denied),
                "round_trips": self.round_trips}
