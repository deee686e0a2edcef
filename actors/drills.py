"""The drills of ``tradewind rehearse`` against a running rehearsal session (``actors.rehearsal``
writes its configs). Each does to the session what an unattended week does to it, through the
real parts (Ray actors, the supervisor, risk, the reconciler's watchdogs, the stop signal, the
paper broker's faults), and says whether the session did what docs/runbook.md says it does:

* **actor crash** — SIGKILL of the strategy actor's process: the supervisor starts it again
  (its events say so), it restores from its journal, and the session trades on;
* **risk guards** — the guard probe (``actors.rehearsal.GuardProbe``) sends, when asked through
  the operator's params, an order that breaks ``max_position``, ``max_order_notional``,
  ``price_band`` or ``stale_data``: risk must deny it with that reason code;
* **kill file** — the configured kill file appears: trading halts; it goes: trading resumes;
* **watchdog disk_low** — free space where the session journals falls below the watchdog's
  limit (a ballast file, allocated without writing): the watchdog halts trading; the ballast
  goes, the operator resumes;
* **broker faults** — the paper broker (``actors.venues.paper``, ``GatewayActor.rehearse``)
  stalls its execution stream (``order_stream_stale``: cancel all and halt), reports orders
  never sent (``unknown_order_storm``: cancel all and reconcile, then halt), lets its position
  drift from its fills (``inventory_desync``: cancel all and halt), fails sends in a row (its
  circuit breaker opens, refuses new orders, and closes at a clean reconciliation); after each
  the watchdog clears and the operator resumes;
* **market-data silence** — the replayed stream stays connected but SIM-A's data stops
  (``FeedActor.rehearse``: it reaches no strategy and no risk; the rest flows) while SIM-A is
  in session: past ``after_s`` the watchdog, from the feed's stream health, cancels every open
  order and halts; once the data flows it clears and the operator resumes;
* **daily loss** — the probe's taker round trips lose until the day's loss reaches the limit:
  trading goes close-only, the probe's next entry is denied;
* **restart storm** — the strategy killed until the supervisor gives up: trading halts by the
  supervisor's escalation, no order left open;
* **graceful stop** — SIGTERM to the process: no new orders, open orders cancelled, files
  written, the journals closed (:func:`graceful_stop`, after the session returned).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from actors.names import Named
from actors.rehearsal import BALLAST_MB
from runtime.values import FIXED_SCALE

__all__ = ["Drill", "Drills", "graceful_stop"]

SILENCE_S = 10.0  # SIM-A's market data stops this long (the silence watchdog's after_s: 4 s)
STALL_S = 6.0  # the execution stream's stall (the watchdog's after_s: actors.rehearsal)
STORM_S, STORM_PER_S = 10.0, 10.0  # the foreign reports' storm: this long, this many a second
SHIFT_LOTS = 50  # how far the broker's SIM-A position drifts
BREAKER_FAILURES = 3  # failed sends in a row: the paper broker's breaker opens


@dataclass
class Drill:
    """One drill's outcome: the guard it trips, what fired and what the session did, read from
    the session (risk's denials and trading state, the reconciler's trips, the supervisor's
    events, the gateway's health). ``passed`` is None for a guard the rehearsal cannot
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
            ("broker link stalls", "watchdog order_stream_stale", self.stale),
            ("unknown-order storm", "watchdog unknown_order_storm", self.storm_of_foreign),
            ("broker and risk drift apart", "watchdog inventory_desync (drift)",
             self.drift),
            ("broker rejects in a row", "circuit breaker", self.breaker),
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
        """SIM-A's market data stops while the stream stays connected (the feed's ``silence``
        fault): past ``after_s`` the silence watchdog reads it in the feed's stream health,
        cancels every open order and halts; the data back, it clears, the operator resumes."""
        if (was := self._not_active()) is not None:
            return False, was, ""
        self._until(lambda: self._summary()["open"] > 0, "orders resting at the broker")
        seen = len(self._trips("market_data_silence"))
        self.actor("feed").get("rehearse", "silence",
                               {"instrument": "SIM-A", "seconds": SILENCE_S})
        started = time.monotonic()
        trip = self._until(lambda: self._trips("market_data_silence")[seen:],
                           "the market_data_silence watchdog")[0]
        tripped_s = time.monotonic() - started
        self._until(lambda: self._state() == "halted", "trading to halt")
        self._until(lambda: self._summary()["open"] == 0, "the open orders to be cancelled")
        reason = self._summary()["state_reason"]
        self._cleared("market_data_silence")
        self._resume("SIM-A's data flows again")
        if not reason.startswith("watchdog market_data_silence"):
            return False, trip["reason"], f"trading halted, but by {reason}"
        return self._acted(trip, "cancel_all_and_halt"), trip["reason"], (
            f"{trip['action']} {tripped_s:.1f} s into a {SILENCE_S:g} s silence: trading "
            "halted, none left open; cleared once the data flowed; resumed by the operator")

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
            os.posix_fallocate(fd, 0, BALLAST_MB * 2**20)
            self._until(lambda: self._state() == "halted", "the watchdog to halt trading")
            tripped_s = time.monotonic() - started
            trip = self._trip("disk_low")
        finally:
            os.close(fd)
            ballast.unlink(missing_ok=True)
        if trip is None:
            return False, "trading halted, but not by the disk_low watchdog", ""
        self._cleared("disk_low")
        self._resume("disk freed")
        return True, trip["reason"], (f"{trip['action']}: trading halted {tripped_s:.1f} s after "
                                      "the ballast; cleared once freed; resumed by the operator")

    # --- the broker's faults: the paper broker misbehaves (actors.venues.paper), the session's
    # watchdogs see it through the same health and view a broker gateway gives them
    def stale(self) -> tuple[bool | None, str, str]:
        """The execution stream stalls: the commands sent meanwhile go unanswered; past
        ``after_s`` the watchdog cancels every open order and halts. Once the stream flows, the
        cancels are confirmed (none left open), the watchdog clears, the operator resumes."""
        if (was := self._not_active()) is not None:
            return False, was, ""
        seen = len(self._trips("order_stream_stale"))
        self._fault("stall", seconds=STALL_S)
        started = time.monotonic()
        trip = self._until(lambda: self._trips("order_stream_stale")[seen:],
                           "the order_stream_stale watchdog")[0]
        tripped_s = time.monotonic() - started
        self._until(lambda: self._state() == "halted", "trading to halt")
        self._until(lambda: self._summary()["open"] == 0, "the open orders to be cancelled")
        self._cleared("order_stream_stale")
        self._resume("the order stream flows again")
        return self._acted(trip, "cancel_all_and_halt"), trip["reason"], (
            f"{trip['action']} {tripped_s:.1f} s into a {STALL_S:g} s stall: trading halted; "
            "once the stream flowed the cancels were confirmed, none left open; cleared; "
            "resumed by the operator")

    def storm_of_foreign(self) -> tuple[bool | None, str, str]:
        """Reports about orders this session never sent, many a second: the watchdog cancels
        every open order and asks the broker to reconcile; the storm goes on, it halts."""
        if (was := self._not_active()) is not None:
            return False, was, ""
        seen = len(self._trips("unknown_order_storm"))
        self._fault("foreign", seconds=STORM_S, per_s=STORM_PER_S)
        trips = self._until(lambda: (t := self._trips("unknown_order_storm")[seen:])
                            and len(t) >= 2 and t, "the storm watchdog to escalate")
        self._until(lambda: self._state() == "halted", "trading to halt")
        foreign = self.actor("gateway").get("health")["foreign_reports"]
        self._cleared("unknown_order_storm")
        self._resume("the storm is over")
        first, then = trips[0], trips[1]
        passed = self._acted(first, "cancel_all") and self._acted(then, "halt")
        return passed, first["reason"], (
            f"{first['action']}, the broker asked to reconcile; then {then['action']}: "
            f"{then['reason']}; {foreign} foreign reports counted, none handed to the session; "
            "cleared once over; resumed by the operator")

    def drift(self) -> tuple[bool | None, str, str]:
        """The broker's position drifts from what its fills say (the paper broker's ``shift``):
        risk and the broker disagree in ``confirm_runs`` reconciliations in a row, the desync
        watchdog cancels every open order and halts; the drift gone, it clears."""
        if (was := self._not_active()) is not None:
            return False, was, ""
        seen = len(self._trips("inventory_desync"))
        self._fault("shift", instrument="SIM-A", qty=SHIFT_LOTS * FIXED_SCALE)
        started = time.monotonic()
        try:
            trip = self._until(lambda: self._trips("inventory_desync")[seen:],
                               "the inventory_desync watchdog")[0]
            tripped_s = time.monotonic() - started
            self._until(lambda: self._state() == "halted", "trading to halt")
            self._until(lambda: self._summary()["open"] == 0, "the open orders to be cancelled")
        finally:
            self._fault("clear")
        self._cleared("inventory_desync")
        self._resume("the broker's position agrees again")
        return self._acted(trip, "cancel_all_and_halt"), trip["reason"], (
            f"{trip['action']} {tripped_s:.1f} s after the broker's SIM-A drifted by "
            f"{SHIFT_LOTS}; none left open; cleared once it agreed; resumed by the operator")

    def breaker(self) -> tuple[bool | None, str, str]:
        """Sends fail in a row: the paper broker's breaker opens and refuses new orders
        (``gateway.breaker_open``) until a clean reconciliation closes it; the session trades
        on (the breaker blocks at the broker, it changes no trading state)."""
        if (was := self._not_active()) is not None:
            return False, was, ""
        gateway = self.actor("gateway")
        self._fault("fail_sends", count=BREAKER_FAILURES)
        started = time.monotonic()
        health = self._until(lambda: (h := gateway.get("health"))["breaker_open"] and h,
                             "the breaker to open")
        reason = health["faults"]["breaker_reason"]
        refused = self._until(lambda: gateway.get("health")["faults"]["refused"],
                              "a new order refused while the breaker is open")
        self._until(lambda: not gateway.get("health")["breaker_open"], "the breaker to close")
        closed_s = time.monotonic() - started
        orders = self._summary()["orders"]
        self._until(lambda: self._summary()["orders"] > orders, "orders to flow again")
        if self._state() != "active":
            return False, reason, f"trading is {self._state()}: {self._summary()['state_reason']}"
        return True, f"breaker opened: {reason}", (
            f"{refused} new order(s) refused (gateway.breaker_open) while open; a clean "
            f"reconciliation closed it {closed_s:.1f} s after the first failure; orders flow "
            "again")

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
            return False, f"trading is {summary['state']}: {summary['state_reason']}", (
                f"the probe's order was denied by {denied[0] or 'nothing'}: {denied[1]}")
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
        trips = self._trips(watchdog)
        return trips[0] if trips else None

    def _trips(self, watchdog: str) -> list[dict[str, Any]]:
        return [t for t in self.actor("reconciler").get("trips") if t["watchdog"] == watchdog]

    def _fault(self, fault: str, **args: Any) -> None:
        """Turn on a fault at the paper broker (``GatewayActor.rehearse``)."""
        self.actor("gateway").get("rehearse", fault, args)

    def _acted(self, trip: dict[str, Any], action: str) -> bool:
        """The trip took ``action`` and carried it out."""
        return trip["action"] == action and trip["acted"] and "error" not in trip

    def _cleared(self, watchdog: str) -> None:
        reconciler = self.actor("reconciler")
        self._until(lambda: reconciler.get("status")["watchdogs"][watchdog] == "ok",
                    f"the {watchdog} watchdog to clear")

    def _resume(self, why: str) -> None:
        self.actor("feed").get("operate", "set_state",
                               {"state": "active", "reason": f"rehearsal: {why}"})
        self._until(lambda: self._state() == "active", "trading to resume")

    def _summary(self) -> dict[str, Any]:
        return dict(self.actor("risk").get("summary"))

    def _state(self) -> str:
        return str(self._summary()["state"])

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


