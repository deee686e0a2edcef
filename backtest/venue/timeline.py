"""The venue's own future events: command arrivals (FIFO) and DAY expiries (a heap)."""

from __future__ import annotations

import heapq
from collections import deque

from backtest.models.latency import LatencyModel
from runtime.messages import Command

__all__ = ["NEVER", "Timeline"]

NEVER = 2**63 - 1


class Timeline:
    """``next_ts`` is the time of the earliest pending event (``NEVER`` when none): the venue
    compares it with each market data timestamp, so it is a plain attribute."""

    __slots__ = ("_commands", "_expiries", "_last_arrival", "_latency", "next_ts")

    def __init__(self, latency: LatencyModel) -> None:
        self._latency = latency
        self._commands: deque[tuple[int, Command]] = deque()
        self._expiries: list[tuple[int, int, str]] = []  # (expire_ts, priority, client id)
        self._last_arrival = 0
        self.next_ts = NEVER

    def send(self, command: Command, ts_ns: int) -> None:
        """A command sent at ``ts_ns`` arrives after the entry latency, never before an earlier
        command (the channel is FIFO)."""
        arrival = max(ts_ns + self._latency.entry_ns(), self._last_arrival)
        self._last_arrival = arrival
        self._commands.append((arrival, command))
        if arrival < self.next_ts:
            self.next_ts = arrival

    def add_expiry(self, expire_ts: int, priority: int, client_order_id: str) -> None:
        heapq.heappush(self._expiries, (expire_ts, priority, client_order_id))
        if expire_ts < self.next_ts:
            self.next_ts = expire_ts

    def pop(self) -> tuple[int, Command | str]:
        """The earliest event: ``(ts, command)`` or ``(ts, client order id to expire)``;
        expiries come before commands at the same time."""
        ts = self.next_ts
        if self._expiries and self._expiries[0][0] == ts:
            event: Command | str = heapq.heappop(self._expiries)[2]
        else:
            event = self._commands.popleft()[1]
        nxt = self._commands[0][0] if self._commands else NEVER
        if self._expiries and self._expiries[0][0] < nxt:
            nxt = self._expiries[0][0]
        self.next_ts = nxt
        return ts, event
