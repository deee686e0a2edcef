"""The kernel's timers: the first due first, ties in the order set; ``next_due`` is what runners
peek at (``NEVER`` when none is set); a bad interval is refused."""

from __future__ import annotations

import pytest

from runtime.errors import InvariantError
from runtime.messages import TimerFired
from runtime.timers import NEVER, Timers, idle_timer, idle_until_of


def test_the_first_due_comes_first_and_ties_keep_their_order() -> None:
    timers = Timers()
    assert timers.next_due == NEVER and timers.pop_due(10**18) is None
    timers.set("a", "slow", due_ns=30, interval_ns=30)
    timers.set("b", "fast", due_ns=10, interval_ns=10)
    timers.set("c", "tie", due_ns=10, interval_ns=5)
    assert timers.next_due == 10 and len(timers) == 3
    assert timers.pop_due(9) is None  # nothing due yet: nothing taken
    popped = [timers.pop_due(30) for _ in range(3)]
    assert [(t[0], t[2]) for t in popped if t] == [(10, "b"), (10, "c"), (30, "a")]
    assert timers.next_due == NEVER and len(timers) == 0


def test_a_timer_needs_a_positive_interval() -> None:
    with pytest.raises(InvariantError, match="interval must be positive"):
        Timers().set("a", "t", due_ns=1, interval_ns=0)


def test_idle_until_rides_in_a_timer_tick() -> None:
    assert idle_until_of(idle_timer(5, 99)) == 99
    assert idle_until_of(idle_timer(5, None)) is None
    assert idle_until_of(TimerFired(seq=0, ts_event=1, ts_init=1, name="wake")) is None
