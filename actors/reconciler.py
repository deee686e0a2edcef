"""The reconciler actor: compares the gateway's view with the risk actor's, on demand or on a timer.

A thin async shell around :func:`runtime.reconcile.reconcile`. ``reconcile(gateway_view,
risk_view)`` takes two views (a :class:`~runtime.reconcile.View` or its dict form
``{"positions": {instrument: raw qty}, "open_orders": [...], "fills": [...]}``) and returns the
drift events as dicts (each with ``recommended_state``); the supervisor or the risk actor moves the
trading state from them.

``start(gateway, risk, interval_s)`` runs the same comparison on a timer over two actor handles
with a ``view()`` method. When the recommendation is not ACTIVE and ``act=True`` was given, it
sends risk the operator command ``SetTradingState`` (``RiskActor.command``: journaled and
handled by risk's kernel like any input). ``events()``
returns what the timer found; the actor keeps the last ``max_events`` events. State is small and
re-derived from the two sides, so a restart loses nothing that matters (the timer must be started
again by whoever started it: the supervisor).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from ray.exceptions import RayActorError

from actors.base import actor
from runtime.messages import SetTradingState
from runtime.reconcile import ReconcileThresholds, Report, View, reconcile

__all__ = ["ReconcilerActor"]

log = logging.getLogger(__name__)


def _view(value: View | Mapping[str, Any]) -> View:
    return value if isinstance(value, View) else View.from_dict(value)


@actor(num_cpus=0)
class ReconcilerActor:
    """``ReconcilerActor.remote(session_id, {"halt_position_drift_lots": 2, …})``."""

    def __init__(
        self,
        session_id: str,
        config: ReconcileThresholds | Mapping[str, Any] | None = None,
        *,
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
        self._timer_errors = 0

    async def reconcile(
        self, gateway_view: View | Mapping[str, Any], risk_view: View | Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The drift events between the two views (empty when they agree)."""
        return self._compare(_view(gateway_view), _view(risk_view))

    async def start(
        self, gateway_handle: Any, risk_handle: Any, interval_s: float, *, act: bool = False
    ) -> None:
        """Reconcile every ``interval_s`` (the first run at once); replaces a running timer."""
        await self.stop()
        self._timer = asyncio.get_running_loop().create_task(
            self._every(gateway_handle, risk_handle, interval_s, act)
        )

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

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

    async def _every(self, gateway: Any, risk: Any, interval_s: float, act: bool) -> None:
        while True:
            try:
                gateway_view, risk_view = await asyncio.gather(
                    gateway.view.remote(), risk.view.remote()
                )
            except RayActorError as exc:  # a side is restarting: try again next time
                self._timer_errors += 1
                log.info("reconciler %s: a side is unavailable: %s", self.session_id, exc)
            else:
                self._compare(_view(gateway_view), _view(risk_view))
                if act and self._last is not None and self._last.drifts:
                    reason = "reconciliation: " + "; ".join(self._last.reasons)
                    now = time.time_ns()
                    await risk.command.remote(SetTradingState(
                        seq=0, ts_event=now, ts_init=now, state=self._last.state, reason=reason))
            await asyncio.sleep(interval_s)
