"""Time inside a kernel: its clock, and the strategies' repeating timers.

The :class:`Clock` is the time of the message being handled, in ns. Only the kernel moves it;
the parts it lends the clock to (the strategy context) read it.

:class:`Timers` holds repeating timers, the first due first (ties in the order they were set).
Runners peek at :attr:`Timers.next_due` (an attribute, not a call: they look before every
message) and never touch the heap behind it.
"""

from __future__ import annotations

import heapq
from typing import TypeAlias

from runtime.errors import InvariantError
from runtime.messages import TimerFired

__all__ = ["NEVER", "Clock", "Timer", "Timers", "idle_timer", "idle_until_of"]

#: ``next_due`` when no timer is set: later than any time
NEVER = 2**63

#: (due ns, order set, strategy id, name, interval ns)
Timer: TypeAlias = tuple[int, int, str, str, int]


_IDLE_PREFIX = "idle_until="


def idle_timer(ts_ns: int, idle_until: int | None) -> TimerFired:
    """A timer tick as a message a kernel handles (and an actor journals): ``idle_until``
    (:meth:`runtime.kernel.Kernel.on_timer`) rides in its name."""
    name = "" if idle_until is None else f"{_IDLE_PREFIX}{idle_until}"
    return TimerFired(seq=0, ts_event=ts_ns, ts_init=ts_ns, name=name)


def idle_until_of(timer: TimerFired) -> int | None:
    """Inverse of :func:`idle_timer`: the ``idle_until`` a tick carries, or None."""
    name = timer.name
    return int(name[len(_IDLE_PREFIX):]) if name.startswith(_IDLE_PREFIX) else None


class Clock:
    """The kernel's clock (ns since the epoch)."""

    __slots__ = ("ns",)

    def __init__(self, ns: int = 0) -> None:
        self.ns = ns


class Timers:
    """Repeating timers of the strategies of one kernel."""

    __slots__ = ("_heap", "_seq", "next_due")

    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._seq = 0
        self.next_due = NEVER

    def __len__(self) -> int:
        return len(self._heap)

    def set(self, strategy_id: str, name: str, *, due_ns: int, interval_ns: int) -> None:
        """A timer first due at ``due_ns``, then every ``interval_ns`` (when rescheduled)."""
        if interval_ns <= 0:
            raise InvariantError(f"timer {name}: interval must be positive")
        self._seq += 1
        heapq.heappush(self._heap, (due_ns, self._seq, strategy_id, name, interval_ns))
        self.next_due = self._heap[0][0]

    def pop_due(self, ts_ns: int) -> Timer | None:
        """The first timer due at or before ``ts_ns``, taken off (reschedule it with
        :meth:`set`), or None."""
        if self.next_due > ts_ns:
            return None
        timer = heapq.heappop(self._heap)
        self.next_due = self._heap[0][0] if self._heap else NEVER
        return timer
