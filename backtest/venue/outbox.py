"""The venue's outgoing reports: numbered, stamped and held until their delivery time."""

from __future__ import annotations

from collections import deque
from typing import Any

from backtest.models.latency import LatencyModel
from backtest.venue.timeline import NEVER
from runtime.messages import OrderEvent

__all__ = ["Outbox"]


class Outbox:
    """Reports in delivery order. A report produced at ``ts_event`` is delivered at
    ``max(ts_event + response latency, previous delivery, venue clock)`` — its ``ts_init`` — so
    delivery order is production order (``seq``) and never earlier than the venue's clock.

    ``next_ts`` is the delivery time of the next report (``NEVER`` when none): the venue reads it
    around every market data message while orders are live, so it is a plain attribute."""

    __slots__ = ("_last_delivery", "_latency", "_queue", "_seq", "next_ts")

    def __init__(self, latency: LatencyModel) -> None:
        self._latency = latency
        self._queue: deque[OrderEvent] = deque()
        self._last_delivery = 0
        self._seq = 0
        self.next_ts = NEVER

    def emit(self, kind: type[Any], ts: int, *, now: int, **fields: Any) -> OrderEvent:
        seq, delivery = self.stamp(ts, now)
        report: OrderEvent = kind(seq=seq, ts_event=ts, ts_init=delivery, **fields)
        self.push(report)
        return report

    def stamp(self, ts: int, now: int) -> tuple[int, int]:
        """``(seq, delivery time)`` for the next report produced at ``ts``; the caller builds
        the report with them and hands it to :meth:`push` (the hot fill path does, to skip
        building keyword dicts)."""
        delivery = ts + self._latency.response_ns()
        if delivery < self._last_delivery:
            delivery = self._last_delivery
        if delivery < now:
            delivery = now
        self._last_delivery = delivery
        self._seq += 1
        return self._seq, delivery

    def push(self, report: OrderEvent) -> None:
        """Queue a report stamped by :meth:`stamp` (deliveries never decrease: the first report
        queued is the next delivered)."""
        if not self._queue:
            self.next_ts = report.ts_init
        self._queue.append(report)

    def next_delivery(self) -> int | None:
        return None if self.next_ts == NEVER else self.next_ts

    def pop(self, until_ts: int) -> list[OrderEvent]:
        if self.next_ts > until_ts:
            return []
        queue = self._queue
        out: list[OrderEvent] = []
        while queue and queue[0].ts_init <= until_ts:
            out.append(queue.popleft())
        self.next_ts = queue[0].ts_init if queue else NEVER
        return out
