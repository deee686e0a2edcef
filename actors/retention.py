"""Retention of the broker stream's market data: bounded disk and memory, never a restore lost.

A broker session's feed journals what the broker streams (``feed.stream.journal``) and holds it
in memory (:class:`actors.feed_log.FeedMessages`); every stateful actor re-reads from there,
when it restores, the market data between its latest snapshot and its journal's last marker
(``runtime.recovery``). So the oldest messages may go once they are:

* older than ``feed.retention.max_age_s`` (by arrival, ``ts_init``) or beyond the newest
  ``max_messages``, and
* below the *floor*: the lowest feed position any owner restores from — the latest snapshot's
  position in each owner's journal (0 for an owner without a snapshot, or whose journal is not
  there yet) — and the feed's saved cursor (where a restarted feed resumes).

Both conditions, always: the policy says what may go, the floor what must stay. The stream's
journal then takes a snapshot (how many went, and the first message, which paces the driver)
and drops the entries before it (``Journal.compact``); the feed's list drops them from memory.
An index below what is kept reads as a DataError naming retention, never a silent gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from actors.config import RetentionConfig
from actors.feed_log import FeedMessages
from actors.setup import SessionSetup
from runtime.errors import ConfigError
from runtime.journal import JournalReader
from runtime.recovery import snapshot_position

__all__ = ["Retention", "Sink", "owners", "restore_floor", "retire_below"]


def owners(setup: SessionSetup, *, paper_gateway: bool) -> list[Path]:
    """The journals of the actors that re-read the feed's log when they restore: risk, each
    strategy, each instrument's book, and the paper broker's venue (a broker's gateway keeps
    no market data)."""
    paths = [setup.path("risk")]
    paths += [setup.path(f"strategy.{sid}") for sid in setup.strategy_ids()]
    paths += [setup.path(f"book.{iid}") for iid in setup.instruments()]
    if paper_gateway:
        paths.append(setup.path("gateway"))
    return paths


def restore_floor(journals: Sequence[Path], cursor: int) -> int:
    """The lowest feed index a restore may still read: ``cursor`` or an owner's snapshot
    position, whichever is lower (0 for an owner with no snapshot or no journal yet)."""
    floor = cursor
    for path in journals:
        try:
            reader = JournalReader(path)
        except ConfigError:
            return 0  # not there yet (or unreadable): it would restore from the start
        try:
            floor = min(floor, snapshot_position(reader))
        finally:
            reader.close()
    return floor


def retire_below(messages: FeedMessages, policy: RetentionConfig, *, floor: int,
                 now_ns: int) -> int:
    """The feed index below which the stream's messages go: what the policy lets go (too old,
    or beyond the newest ``max_messages``), never at or above ``floor``; at most the
    messages already gone (nothing more)."""
    held = messages.streamed()
    start = len(messages) - len(held)  # the first stream index held
    upto = start
    if policy.max_messages is not None:
        upto = max(upto, len(messages) - policy.max_messages)
    if policy.max_age_s is not None:
        cutoff = now_ns - int(policy.max_age_s * 1e9)
        k = upto - start
        while k < len(held) and held[k].ts_init < cutoff:
            k += 1
        upto = start + k
    return max(min(upto, floor), start)


class Sink(Protocol):
    """What retention asks of the stream's sink (``actors.venues.market_data.StreamSink``)."""

    def retire(self, upto: Callable[[FeedMessages], int]) -> int:
        """Under the sink's lock: drop the stream's messages below ``upto(messages)`` from its
        journal and the feed's list; how many went."""
        ...


class Retention:
    """The feed actor's retention: every ``check_every_s``, the floor from the owners'
    journals, then the stream's sink drops what may go (``StreamSink.retire``)."""

    def __init__(self, policy: RetentionConfig, journals: Sequence[Path]) -> None:
        self.policy, self.journals = policy, list(journals)
        self._last = 0.0
        self.retired = 0  # messages dropped by this feed actor

    def due(self, now_s: float) -> bool:
        return now_s - self._last >= self.policy.check_every_s

    def apply(self, sink: Sink, cursor: int, *, now_ns: int | None = None) -> int:
        """Drop what may go; how many went."""
        self._last = time.monotonic()
        floor = restore_floor(self.journals, cursor)
        now_ns = time.time_ns() if now_ns is None else now_ns
        gone = sink.retire(lambda messages: retire_below(messages, self.policy, floor=floor,
                                                         now_ns=now_ns))
        self.retired += gone
        return gone
