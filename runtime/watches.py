"""The instruments whose market data the kernel hands to its emulations (trailing stops, stops
held in the core, parent orders worked by algorithms, time stops), in one mapping they share:
instrument -> keys.

One mapping, so the kernel's hot path asks one question per market message (``inst in
watches``) whatever is emulated. Each part adds and removes only its own keys (trailing stop
and parent order ids are client order ids, unique in a kernel; a stop held in the core uses
``"held:"`` + its id, since a trailing stop may be held too; time stops use
:data:`TIME_STOPS`) and reads its own back with :func:`owned`.
"""

from __future__ import annotations

from collections.abc import Container
from typing import TypeAlias

__all__ = ["TIME_STOPS", "Watches", "owned", "unwatch", "watch"]

Watches: TypeAlias = dict[str, set[str]]
#: the key of an instrument's time stops (never a client order id: those hold a '-')
TIME_STOPS = "time_stops"


def watch(watches: Watches, instrument_id: str, key: str) -> None:
    watches.setdefault(instrument_id, set()).add(key)


def unwatch(watches: Watches, instrument_id: str, key: str) -> None:
    keys = watches.get(instrument_id)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del watches[instrument_id]


def owned(watches: Watches, instrument_id: str, mine: Container[str]) -> list[str]:
    """The keys on ``instrument_id`` that are in ``mine``, sorted (a deterministic order)."""
    return sorted(k for k in watches.get(instrument_id, ()) if k in mine)
