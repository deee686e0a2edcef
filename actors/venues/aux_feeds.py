"""Auxiliary data pollers: when to ask, what the last answer was, how old it is, what failed.

A pure core (callers pass ``now_s``; nothing here sleeps or reads a clock), driven by a venue's
poll loop (:mod:`actors.venues.ccxt_aux`). Each feed (a kind and an instrument) is polled every
``every_s``; a failure is retried after a backoff that doubles from ``backoff_min_s`` up to
``backoff_max_s`` and resets on the next success. The latest messages of each feed are cached
(what a strategy or an operator reads between polls); a feed is *stale* when its last success
is older than its ``ttl_s`` (never polled successfully counts as stale). :meth:`AuxPolls.telemetry`
reports per feed its age, its consecutive and total errors and the last error's text. Kernels
apply the same TTL rule to the data itself (:mod:`runtime.auxdata`).

::

    due ──poll──► ok ──► cached, next poll at now + every_s, failures = 0
     ▲              └─► error ──► failures + 1, next poll at now + backoff(failures)
     └──────────────────────────────┘
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runtime.messages import AuxData

__all__ = ["AuxFeedConfig", "AuxPolls", "FeedState"]

FeedKey = tuple[str, str]  # (kind, instrument id)


class AuxFeedConfig(BaseModel):
    """One polled feed (YAML ``broker: {aux: [...]}``): ``kind`` is ``funding`` (the current
    rate with the mark and index price, and the settled history), ``open_interest``, ``mark``
    or ``borrow`` (the margin rate for borrowing a spot instrument's base asset to hold it
    short)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(pattern=r"^(funding|open_interest|mark|borrow)$")
    instrument: str
    every_s: float = Field(60.0, gt=0)
    ttl_s: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _ttl_covers_a_poll(self) -> AuxFeedConfig:
        if self.ttl_s < self.every_s:
            raise ValueError(f"ttl_s ({self.ttl_s}) is shorter than every_s ({self.every_s}): "
                             "the feed would be stale between polls")
        return self


@dataclass
class FeedState:
    config: AuxFeedConfig
    next_due_s: float = 0.0
    last_ok_s: float | None = None
    failures: int = 0  # consecutive
    errors: int = 0  # in all
    last_error: str = ""
    cache: list[AuxData] = field(default_factory=list)


class AuxPolls:
    """The feeds of one venue and their state."""

    def __init__(self, feeds: list[AuxFeedConfig], *, backoff_min_s: float,
                 backoff_max_s: float) -> None:
        self.backoff_min_s, self.backoff_max_s = backoff_min_s, backoff_max_s
        self.feeds: dict[FeedKey, FeedState] = {}
        for feed in feeds:
            key = (feed.kind, feed.instrument)
            if key in self.feeds:
                raise ValueError(f"aux feed {feed.kind} of {feed.instrument} appears twice")
            self.feeds[key] = FeedState(feed)

    def due(self, now_s: float) -> list[FeedKey]:
        return [k for k, f in self.feeds.items() if f.next_due_s <= now_s]

    def next_due_s(self) -> float:
        return min((f.next_due_s for f in self.feeds.values()), default=float("inf"))

    def on_ok(self, key: FeedKey, messages: list[AuxData], now_s: float) -> None:
        feed = self.feeds[key]
        feed.last_ok_s, feed.failures = now_s, 0
        feed.next_due_s = now_s + feed.config.every_s
        if messages:
            feed.cache = list(messages)

    def on_error(self, key: FeedKey, error: str, now_s: float, *,
                 retry_after_s: float = 0.0) -> float:
        """A failed poll: the delay before the next one (at least ``retry_after_s``)."""
        feed = self.feeds[key]
        feed.failures += 1
        feed.errors += 1
        feed.last_error = error
        doubled = self.backoff_min_s * float(1 << min(feed.failures - 1, 30))
        delay = min(self.backoff_max_s, doubled)
        delay = max(delay, retry_after_s)
        feed.next_due_s = now_s + delay
        return delay

    def latest(self, kind: str, instrument_id: str) -> list[AuxData]:
        """The cached messages of a feed (empty before its first success)."""
        feed = self.feeds.get((kind, instrument_id))
        return list(feed.cache) if feed is not None else []

    def stale(self, now_s: float) -> list[FeedKey]:
        return [k for k, f in self.feeds.items()
                if f.last_ok_s is None or now_s - f.last_ok_s > f.config.ttl_s]

    def telemetry(self, now_s: float) -> dict[str, dict[str, float | int | str | bool | None]]:
        """Per feed (``kind/instrument``): age of the last success in seconds and when it was
        (on the caller's clock; None before the first), stale or not, consecutive and total
        errors, the last error's text."""
        stale = set(self.stale(now_s))
        return {
            f"{kind}/{iid}": {
                "age_s": None if f.last_ok_s is None else now_s - f.last_ok_s,
                "last_ok_s": f.last_ok_s,
                "stale": (kind, iid) in stale,
                "failures": f.failures,
                "errors": f.errors,
                "last_error": f.last_error,
            }
            for (kind, iid), f in sorted(self.feeds.items())
        }
