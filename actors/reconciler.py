"""The reconciler actor: drift between the broker's view and risk's, and the session's watchdogs.

A thin async shell around :func:`runtime.reconcile.reconcile` and
:class:`runtime.watchdog.Watchdogs`. ``reconcile(gateway_view, risk_view)`` takes two views (a
:class:`~runtime.reconcile.View` or its dict form ``{"positions": {instrument: raw qty},
"open_orders": [...], "fills": [...]}``) and returns the drift events as dicts (each with
``recommended_state``).

``start(gateway, risk, feed, interval_s, act=...)`` runs on a timer over the three actors:

* every ``interval_s`` it reads ``feed.reports_delivered()`` (how many of the gateway's
  reports risk was handed), then ``risk.view()``, then ``gateway.view(delivered)`` (the
  gateway's view as of that watermark: fills beyond it are in flight, not drift, but for those
  risk holds already, ``runtime.reconcile.landed``) and reconciles the two; an inventory
  drift found unchanged in ``watchdogs.inventory_desync.confirm_runs`` runs in a row trips the
  ``inventory_desync`` watchdog, and so does a gap between the broker's own positions and our
  fills found the same by as many of the adapter's reconciliations (its view's
  ``broker_positions``);
* every ``watch_every_s`` it samples ``gateway.health()`` and ``feed.market_health()`` and runs
  the other watchdogs (``runtime/watchdog.py``: market-data silence while the calendar says the
  market is open, a stale order stream, an unknown-order storm, low free disk where the session
  journals).

A trip is carried out through the feed, between two steps, like an operator's action
(``actors/operator.py``): ``reduce_only`` and ``halt`` set the trading state,
``cancel_all_and_halt`` is the kill (halt, then every open order cancelled: nothing rests in the
market), the storm's first ``cancel_all`` cancels and asks the gateway to reconcile. Each trip is
logged (WARNING) and kept in ``trips()``. State is small and re-derived from the actors, so a
restart loses nothing that matters (the supervisor starts the timer again).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.exceptions import RayActorError, RayError

from actors.base import actor
from runtime import disk_reserve
from runtime.errors import DiskWriteError
from runtime.instruments import Instrument
from runtime.reconcile import ReconcileThresholds, Report, View, landed, reconcile
from runtime.watchdog import (
    BrokerGap,
    BrokerPositions,
    Health,
    Trip,
    WatchdogAction,
    WatchdogConfig,
    Watchdogs,
)

__all__ = ["ReconcilerActor"]

log = logging.getLogger(__name__)


async def _nothing() -> None:
    return None


def _view(value: View | Mapping[str, Any]) -> View:
    return value if isinstance(value, View) else View.from_dict(value)


@actor(num_cpus=0)
class ReconcilerActor:
    """``ReconcilerActor.remote(session_id, {"halt_position_drift_lots": 2, …},
    watchdogs={...}, instruments=[...])``."""

    def __init__(
        self,
        session_id: str,
        config: ReconcileThresholds | Mapping[str, Any] | None = None,
        *,
        watchdogs: WatchdogConfig | Mapping[str, Any] | None = None,
        instruments: list[Instrument] | None = None,
        watch_every_s: float = 1.0,
        journal_dir: str | None = None,
        max_events: int = 10_000,
    ) -> None:
        self.session_id = session_id
        self.thresholds = (
            config
            if isinstance(config, ReconcileThresholds)
            else ReconcileThresholds.model_validate(dict(config or {}))
        )
        self._events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._runs = 0
        self._last: Report | None = None
        self._timer: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._timer_errors = 0
        config_ = (watchdogs if isinstance(watchdogs, WatchdogConfig)
                   else WatchdogConfig.model_validate(dict(watchdogs or {})))
        self.watchdogs = Watchdogs(config_, instruments or [])
        self.watch_every_s = watch_every_s
        self.journal_dir = journal_dir  # whose free space the disk_low watchdog watches
        self._trips: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._health: dict[str, Any] = {}
        self._reconnects = 0  # the broker link's down-to-up transitions seen

    async def reconcile(
        self, gateway_view: View | Mapping[str, Any], risk_view: View | Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The drift events between the two views (empty when they agree)."""
        return self._compare(_view(gateway_view), _view(risk_view))

    async def start(
        self, gateway: Any, risk: Any, feed: Any, interval_s: float, *, act: bool = False
    ) -> None:
        """Reconcile every ``interval_s`` (the first run at once) and watch every
        ``watch_every_s``; replaces running timers. ``act``: trips are carried out."""
        await self.stop()
        loop = asyncio.get_running_loop()
        self._timer = loop.create_task(self._every(gateway, risk, feed, interval_s, act))
        self._watcher = loop.create_task(self._watch(gateway, feed, act))

    async def stop(self) -> None:
        for task in (self._timer, self._watcher):
            if task is not None:
                task.cancel()
        self._timer = self._watcher = None

    def trips(self) -> list[dict[str, Any]]:
        """The watchdogs' trips so far: watchdog, action, reason, whether it was carried out."""
        return list(self._trips)

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        """Drift events found so far (``run`` numbers them), those of runs after ``after``."""
        return [e for e in self._events if e["run"] > after]

    def status(self) -> dict[str, Any]:
        last = self._last
        return {
            "session_id": self.session_id,
            "runs": self._runs,
            "state": str(last.state) if last else None,
            "reasons": list(last.reasons) if last else [],
            "drifts": len(last.drifts) if last else 0,
            "timer": self._timer is not None and not self._timer.done(),
            "timer_errors": self._timer_errors,
            "watchdogs": self.watchdogs.state(),
            "health": self._health,
            "reconnects": self._reconnects,
        }

    def ping(self) -> bool:
        return True

    def pid(self) -> int:
        return os.getpid()

    def _compare(self, gateway: View, risk: View) -> list[dict[str, Any]]:
        report = reconcile(gateway, risk, thresholds=self.thresholds)
        self._runs += 1
        self._last = report
        events = [{**e, "session_id": self.session_id, "run": self._runs} for e in report.events()]
        self._events.extend(events)
        return events

    async def _every(
        self, gateway: Any, risk: Any, feed: Any, interval_s: float, act: bool
    ) -> None:
        while True:
            try:
                # in this order (runtime/reconcile.py, "Fills in flight"): the watermark,
                # then risk (it has at least that), then the gateway (at least what risk has)
                delivered = await feed.reports_delivered.remote()
                risk_view = _view(await risk.view.remote())
                raw = await gateway.view.remote(delivered)
                gateway_view = landed(_view(raw), risk_view)
                broker = self._broker_gaps(raw)
            except RayActorError as exc:  # a side is restarting: try again next time
                self._timer_errors += 1
                log.info("reconciler %s: a side is unavailable: %s", self.session_id, exc)
            else:
                self._compare(gateway_view, risk_view)
                last = self._last
                if last is not None:
                    trips = self.watchdogs.desync(last.drifts, self.thresholds,
                                                  in_flight=gateway_view.in_flight,
                                                  broker=broker)
                    await self._carry_out(trips, gateway, feed, act)
            await asyncio.sleep(interval_s)

    def _broker_gaps(self, view: Any) -> BrokerPositions | None:
        """The broker's positions apart from our fills, by the adapter's last reconciliation
        (a broker gateway's view has them; the paper venue is the market itself: None)."""
        found = view.get("broker_positions") if isinstance(view, Mapping) else None
        if not found:
            return None
        lot = self.thresholds.lot_size
        return BrokerPositions(
            run=found["run"], unsettled=frozenset(found.get("unsettled", ())),
            gaps=tuple(BrokerGap(instrument_id=iid, broker=broker, ours=ours,
                                 lots=-(-abs(broker - ours) // lot(iid)))
                       for iid, broker, ours in found["gaps"]))

    async def _watch(self, gateway: Any, feed: Any, act: bool) -> None:
        # the feed is asked only when the silence watchdog is on (nothing else reads it)
        ask_feed = self.watchdogs.config.market_data_silence is not None
        while True:
            await asyncio.sleep(self.watch_every_s)
            try:
                health, market = await asyncio.gather(
                    gateway.health.remote(),
                    feed.market_health.remote() if ask_feed else _nothing(),
                )
            except (RayError, TimeoutError) as exc:  # restarting, or a method that failed: the
                self._timer_errors += 1  # next look tries again (counted in status())
                log.warning("watchdogs %s: no health sample: %s", self.session_id, exc)
                continue
            market = market or {}
            if health.get("connected") and not self._health.get("connected", True):
                self._reconnects += 1
            self._health = {**health, "market": market}
            sample = Health(
                now_ns=time.time_ns(),
                stream_since_ns=market.get("since_ns"),
                session_ns=market.get("clock_ns"),
                market_now_ns=market.get("now_ns"),
                market_last_ns=market.get("last_ns", {}),
                exec_waiting_since_ns=health.get("exec_waiting_since_ns"),
                foreign_reports=int(health.get("foreign_reports", 0)),
                disk_free_bytes=self._disk_free(),
                disk_full=self._disk_full(),
            )
            self._health["disk_free_bytes"] = sample.disk_free_bytes
            self._health["disk_full"] = sample.disk_full
            await self._carry_out(self.watchdogs.check(sample), gateway, feed, act)

    def _disk_full(self) -> str | None:
        """The released disk reserve's note; once there is room again (the reserve twice over,
        and the disk_low limit), the reserve is taken back (the watchdog then clears)."""
        rule = self.watchdogs.config.disk_full
        if rule is None or self.journal_dir is None:
            return None
        reserve = Path(self.journal_dir) / disk_reserve.RESERVE
        note = disk_reserve.released(reserve)
        free = self._disk_free()
        if note is None or free is None:
            return note
        size = int(rule.reserve_mb * 2**20)
        low = self.watchdogs.config.disk_low
        if free < 2 * size + (0 if low is None else int(low.min_free_mb * 2**20)):
            return note
        try:
            disk_reserve.keep(reserve, size)
        except DiskWriteError as exc:  # taken meanwhile: the next look tries again
            log.warning("watchdogs %s: %s", self.session_id, exc)
            return note
        log.warning("watchdogs %s: the disk reserve %s is held again (%d MB free)",
                    self.session_id, reserve, free // 2**20)
        return None

    def _disk_free(self) -> int | None:
        if self.journal_dir is None:
            return None
        try:
            return shutil.disk_usage(self.journal_dir).free
        except OSError:  # the directory is gone: the actors that journal there will say so
            return None

    async def _carry_out(self, trips: list[Trip], gateway: Any, feed: Any, act: bool) -> None:
        """Each trip through the feed, as an operator's action would go (module docstring)."""
        for trip in trips:
            level = logging.CRITICAL if trip.watchdog == "disk_full" else logging.WARNING
            log.log(level, "watchdog %s tripped (%s%s): %s", trip.watchdog, trip.action,
                    "" if act else ", not acting: act is off", trip.reason)
            self._trips.append({"watchdog": trip.watchdog, "action": str(trip.action),
                                "reason": trip.reason, "acted": act, "ts": time.time_ns()})
            if not act:
                continue
            try:
                await self._act(trip, gateway, feed)
            except (RayError, TimeoutError) as exc:  # the trip stays recorded; say it failed
                self._trips[-1]["error"] = f"{type(exc).__name__}: {exc}"
                log.error("watchdog %s: its action %s failed: %s", trip.watchdog, trip.action,
                          exc)

    async def _act(self, trip: Trip, gateway: Any, feed: Any) -> None:
        reason = f"watchdog {trip.watchdog}: {trip.reason}"
        if trip.action is WatchdogAction.REDUCE_ONLY:
            await feed.operate.remote("set_state", {"state": "reducing", "reason": reason})
        elif trip.action is WatchdogAction.HALT:
            await feed.operate.remote("set_state", {"state": "halted", "reason": reason})
        elif trip.action is WatchdogAction.CANCEL_ALL_AND_HALT:
            await feed.operate.remote("kill", {"reason": reason})
        else:
            await feed.operate.remote("cancel_all", {"reason": reason})
            await gateway.request_reconcile.remote()
