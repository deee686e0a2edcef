"""Exchange calendars from the ``exchange-calendars`` package, resolved into the core's data.

An instrument's config names its exchange's calendar (``calendar: XNYS`` or a block with
pre/post-market hours and the date range to resolve). This module asks the package once per
distinct block and hands the core a frozen :class:`~runtime.calendar.SessionCalendar`: the core
keeps no library, wall clock or network. The range is fixed by the config (never "today"), so the
same config resolves to the same sessions on any day.

Names are the package's (``XNYS``, ``XNAS``, ``CMES``, ``XTAI``, ``us_futures``, … and aliases
such as ``NYSE``); ``tradewind``'s docs list the usual ones (docs/calendars.md).
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runtime.calendar import SessionCalendar
from runtime.errors import ConfigError

__all__ = ["CalendarConfig", "resolve_calendar"]

_NS_PER_MIN = 60 * 10**9
_NS_PER_DAY = 86_400 * 10**9


class CalendarConfig(BaseModel):
    """Which exchange calendar an instrument trades by. ``pre_market_minutes`` before each open
    and ``post_market_minutes`` after each close are trading windows too (0: regular hours only);
    ``start``/``end`` bound the dates resolved (orders outside them are refused)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    pre_market_minutes: int = Field(0, ge=0, le=12 * 60)
    post_market_minutes: int = Field(0, ge=0, le=16 * 60)
    start: dt.date = dt.date(2015, 1, 1)
    end: dt.date = dt.date(2030, 12, 31)

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _a_range(self) -> CalendarConfig:
        if self.start >= self.end:
            raise ValueError(
                f"calendar range is empty: start {self.start} is not before {self.end}"
            )
        return self

    def resolve(self) -> SessionCalendar:
        return resolve_calendar(self)


@functools.lru_cache(maxsize=32)
def resolve_calendar(config: CalendarConfig) -> SessionCalendar:
    """The sessions of ``config.name`` between ``start`` and ``end`` as trading windows."""
    import exchange_calendars as xc  # imported here: a second to load, and only calendars need it

    try:
        with warnings.catch_warnings():  # the package's own pandas deprecations, not ours
            warnings.simplefilter("ignore")
            calendar = xc.get_calendar(
                config.name, start=config.start.isoformat(), end=config.end.isoformat()
            )
            schedule = calendar.schedule
    except xc.errors.InvalidCalendarName:
        raise ConfigError(
            f"unknown exchange calendar {config.name!r} (the exchange-calendars package's names, "
            "e.g. XNYS, XNAS, CMES, XTAI, us_futures; see docs/calendars.md)",
            field="calendar.name",
        ) from None
    except ValueError as exc:  # a range the package cannot give (before its first date, …)
        raise ConfigError(f"calendar {config.name}: {exc}", field="calendar.start") from exc
    pre, post = config.pre_market_minutes * _NS_PER_MIN, config.post_market_minutes * _NS_PER_MIN
    opens: list[int] = []
    closes: list[int] = []
    labels: list[int] = []
    for label, row in schedule.iterrows():
        day = int(label.value) // _NS_PER_DAY
        open_ns, close_ns = row["open"].value, row["close"].value
        windows = [(open_ns, close_ns)]
        if row.notna()["break_start"]:
            windows = [(open_ns, row["break_start"].value), (row["break_end"].value, close_ns)]
        if pre:
            windows.insert(0, (open_ns - pre, open_ns))
        if post:
            windows.append((close_ns, close_ns + post))
        for start, end in windows:
            if opens and start < closes[-1]:
                raise ConfigError(
                    f"calendar {config.name}: pre/post-market hours overlap the next session "
                    f"on {label.date()}",
                    field="calendar.post_market_minutes",
                )
            if opens and start == closes[-1] and labels[-1] == day:
                closes[-1] = end  # one window: pre-market runs into the open
                continue
            opens.append(start)
            closes.append(end)
            labels.append(day)
    start_ns = int(dt.datetime.combine(config.start, dt.time(), dt.UTC).timestamp()) * 10**9
    end_ns = (int(dt.datetime.combine(config.end, dt.time(), dt.UTC).timestamp()) + 86_400) * 10**9
    start_ns = min(start_ns, opens[0]) if opens else start_ns
    end_ns = max(end_ns, closes[-1]) if closes else end_ns
    return SessionCalendar(
        name=config.name,
        opens=tuple(opens),
        closes=tuple(closes),
        labels=tuple(labels),
        start_ns=start_ns,
        end_ns=end_ns,
    )
