"""The venue's outgoing reports: numbered, stamped and held until their delivery time."""

from __future__ import annotations

from collections import deque
from typing import Any

from backtest.models.latency import LatencyModel
from runtime.messages import OrderEvent

__all__ = ["Outbox"]


class Outbox:
    """Reports in delivery order. A report produced at ``ts_event`` is delivered at
    ``max(ts_event + response latency, previous delivery, venue clock)`` — its ``ts_init`` — so
    delivery order is production order (``seq``) and never earlier than the venue's clock."""

    __slots__ = ("_last_delivery", "_latency", "_queue", "_seq")

    def __init__(self, latency: LatencyModel) -> None:
        self._latency = latency
        self._queue: deque[OrderEvent] = deque()
        self._last_delivery = 0
        self._seq = 0

    def emit(self, kind: type[Any], ts: int, *, now: int, **fields: Any) -> OrderEvent:
        seq, delivery = self.stamp(ts, now)
        report: OrderEvent = kind(seq=seq, ts_event=ts, ts_init=delivery, **fields)
        self._queue.append(report)
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
        self._queue.append(report)

    def next_delivery(self) -> int | None:
        return self._queue[0].ts_init if self._queue else None

    def pop(self, until_ts: int) -> list[OrderEvent]:
        queue = self._queue
        out: list[OrderEvent] = []
        while queue and queue[0].ts_init <= until_ts:
            out.append(queue.popleft())
        return out
