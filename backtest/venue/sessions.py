"""When a DAY order expires: the end of the trading session it arrived in.

With an exchange calendar it is the end of the trading day's last window (the close, or the
post-market close when one is configured: ``runtime/calendar.py``). With no sessions on the
instrument the day is the UTC calendar day, so a DAY order expires at the next UTC midnight.
A session that closes at ``24:00`` ends at the next local midnight, unless a session opens
there (TAIFEX's night session, 15:00–24:00 then 00:00–05:00): a session that holds the moment
another one closes carries the trading on, to its own close.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from runtime.instruments import Instrument, TradingSession

__all__ = ["NS_PER_DAY", "day_end_ns"]

NS_PER_DAY = 86_400 * 1_000_000_000
_NS_PER_S = 1_000_000_000


def _session_close_ns(session: TradingSession, ts_ns: int) -> int:
    zone = ZoneInfo(session.timezone)
    local = dt.datetime.fromtimestamp(ts_ns // _NS_PER_S, zone)
    hours, minutes = (int(part) for part in session.close.split(":"))
    day = local.date()
    if hours >= 24:
        day += dt.timedelta(days=1)
        hours -= 24
    close = dt.datetime(day.year, day.month, day.day, hours, minutes, tzinfo=zone)
    return int(close.timestamp()) * _NS_PER_S


def day_end_ns(instrument: Instrument, ts_ns: int) -> int:
    """Expiry time of a DAY order that arrived at ``ts_ns``."""
    if instrument.calendar is not None:
        end = instrument.calendar.day_end_ns(ts_ns)
        if end is not None:
            return end
    end = None
    for _ in instrument.sessions:  # at most once per session: each carries on from the last
        session = next((s for s in instrument.sessions if s.contains(end or ts_ns)), None)
        if session is None:
            break
        end = _session_close_ns(session, end or ts_ns)
    return (ts_ns // NS_PER_DAY + 1) * NS_PER_DAY if end is None else end
