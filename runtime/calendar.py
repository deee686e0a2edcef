"""An exchange's trading sessions as data: when an instrument may trade, and its trading day.

The core never asks a calendar library, the network or the wall clock: a :class:`SessionCalendar`
is resolved outside it (``backtest/calendars.py`` builds one from the ``exchange-calendars``
package for a fixed date range) and passed in on the instrument. It is a frozen value: sorted,
non-overlapping trading *windows* ``[open, close)`` in nanoseconds since the epoch, each labelled
with its session's date (days since 1970-01-01). A session with a lunch break is two windows;
configured pre- and post-market hours are windows of their own with the session's label.

Rules stated here and used everywhere (pre-trade risk, the simulated venue, watchdogs):

* a moment is *in session* when a window holds it (``open <= ts < close``);
* the *trading day* of a moment is the label of the first window that closes after it: the day
  rolls at the last close of a session (its post-market close when one is configured), never at
  UTC midnight;
* a DAY order expires at the end of its trading day's last window;
* a moment outside ``[start_ns, end_ns)``, the range the calendar was resolved for, is outside
  every session, and :meth:`SessionCalendar.why_closed` says it is beyond the range.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right

import msgspec

from runtime.errors import ConfigError

__all__ = ["SessionCalendar", "utc_day"]

_NS_PER_DAY = 86_400 * 10**9


def _utc(ts_ns: int) -> str:
    moment = dt.datetime.fromtimestamp(ts_ns // 10**9, dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


class SessionCalendar(msgspec.Struct, frozen=True, kw_only=True):
    """Trading windows of one exchange over ``[start_ns, end_ns)``; see the module docstring."""

    name: str
    opens: tuple[int, ...]
    closes: tuple[int, ...]
    labels: tuple[int, ...]
    start_ns: int
    end_ns: int

    def __post_init__(self) -> None:
        if not len(self.opens) == len(self.closes) == len(self.labels):
            raise ConfigError(f"calendar {self.name}: opens, closes and labels differ in length")
        previous = self.start_ns
        for open_ns, close_ns in zip(self.opens, self.closes, strict=True):
            if not previous <= open_ns < close_ns:
                raise ConfigError(
                    f"calendar {self.name}: windows must be sorted, non-empty and apart "
                    f"(window {_utc(open_ns)}..{_utc(close_ns)})"
                )
            previous = close_ns
        if previous > self.end_ns:
            raise ConfigError(f"calendar {self.name}: a window ends after the calendar's range")

    def covers(self, ts_ns: int) -> bool:
        return self.start_ns <= ts_ns < self.end_ns

    def _window(self, ts_ns: int) -> int:
        """Index of the first window that closes after ``ts_ns`` (``len`` when none)."""
        return bisect_right(self.closes, ts_ns)

    def in_session(self, ts_ns: int) -> bool:
        i = self._window(ts_ns)
        return i < len(self.opens) and self.opens[i] <= ts_ns and self.covers(ts_ns)

    def trading_day(self, ts_ns: int) -> int | None:
        """The label (days since the epoch) of the trading day ``ts_ns`` belongs to; ``None``
        past the last session of the range."""
        i = self._window(ts_ns)
        return self.labels[i] if i < len(self.labels) and self.covers(ts_ns) else None

    def day_end_ns(self, ts_ns: int) -> int | None:
        """The end of the last window of ``ts_ns``'s trading day (a DAY order's expiry)."""
        i = self._window(ts_ns)
        if i >= len(self.labels) or not self.covers(ts_ns):
            return None
        label = self.labels[i]
        while i + 1 < len(self.labels) and self.labels[i + 1] == label:
            i += 1
        return self.closes[i]

    def next_open_ns(self, ts_ns: int) -> int | None:
        """When trading next opens at or after ``ts_ns`` (``ts_ns`` itself when in session)."""
        i = self._window(ts_ns)
        if i >= len(self.opens):
            return None
        return max(self.opens[i], ts_ns)

    def why_closed(self, ts_ns: int) -> str | None:
        """``None`` in session, else a reason naming the calendar and the next open."""
        if not self.covers(ts_ns):
            return (
                f"{_utc(ts_ns)} is outside the range the {self.name} calendar was resolved for "
                f"({_utc(self.start_ns)} to {_utc(self.end_ns)}; widen calendar.start/end)"
            )
        if self.in_session(ts_ns):
            return None
        upcoming = self.next_open_ns(ts_ns)
        after = "no later session in range" if upcoming is None else f"opens {_utc(upcoming)}"
        return f"the {self.name} market is closed at {_utc(ts_ns)} ({after})"


def utc_day(ts_ns: int) -> int:
    """The UTC calendar day of ``ts_ns`` (days since the epoch): the trading day of an
    instrument without a calendar."""
    return ts_ns // _NS_PER_DAY
