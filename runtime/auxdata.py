"""Auxiliary data a strategy depends on, and when it is too old to act on.

A strategy declares what it needs (:meth:`runtime.strategy.Strategy.aux_needs`): a kind
(``funding``, ``open_interest``, ``mark``, ``borrow``), an instrument and a time to live. The
kernel keeps the latest message of each kind and instrument (:class:`AuxState`); while any need
of a strategy is missing or older than its TTL, risk denies that strategy's orders that would
open or grow a position (reason ``aux_stale``, or ``aux_missing`` before the first message);
orders that only reduce pass. The same rule holds live (a poller that stopped answering) and in
a backtest (a gap in the recorded series): age is the kernel's clock minus the message's
``ts_event``.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from runtime.errors import ConfigError
from runtime.messages import AuxData, BorrowRate, FundingRate, IndexMarkPrice, OpenInterest

__all__ = ["AUX_KINDS", "AUX_TYPES", "AuxNeed", "AuxState", "aux_kind"]

#: the kind name of each auxiliary message type (also its store table's kind)
AUX_KINDS: dict[type, str] = {
    FundingRate: "funding",
    OpenInterest: "open_interest",
    IndexMarkPrice: "mark",
    BorrowRate: "borrow",
}
#: the auxiliary message types
AUX_TYPES: tuple[type, ...] = tuple(AUX_KINDS)
_KIND_NAMES = frozenset(AUX_KINDS.values())
_S = 10**9


def aux_kind(message: AuxData) -> str:
    return AUX_KINDS[type(message)]


class AuxNeed(msgspec.Struct, frozen=True, kw_only=True):
    """One feed a strategy needs, fresh: data of ``kind`` for ``instrument_id`` no older than
    ``ttl_ns``."""

    kind: str
    instrument_id: str
    ttl_ns: int

    def __post_init__(self) -> None:
        if self.kind not in _KIND_NAMES:
            raise ConfigError(
                f"unknown auxiliary data kind {self.kind!r} "
                f"(expected one of: {', '.join(sorted(_KIND_NAMES))})"
            )
        if self.ttl_ns <= 0:
            raise ConfigError(f"aux need {self.kind}/{self.instrument_id}: ttl must be > 0")


class AuxState:
    """The latest auxiliary message per (kind, instrument), and each strategy's needs.

    Like the last prices, this is what the data said, not state of its own: it is rebuilt by
    the data (a restored kernel sees the feed again), so it is not in the state hash."""

    def __init__(self) -> None:
        self.latest: dict[tuple[str, str], AuxData] = {}
        self.needs: dict[str, tuple[AuxNeed, ...]] = {}

    def declare(self, strategy_id: str, needs: Iterable[AuxNeed]) -> None:
        self.needs[strategy_id] = tuple(needs)

    def on_data(self, message: AuxData) -> None:
        key = (AUX_KINDS[type(message)], message.instrument_id)
        held = self.latest.get(key)
        if held is None or message.ts_event >= held.ts_event:
            self.latest[key] = message

    def get(self, kind: str, instrument_id: str) -> AuxData | None:
        return self.latest.get((kind, instrument_id))

    def stale(self, strategy_id: str, now_ns: int) -> tuple[str, str] | None:
        """``(reason_code, reason)`` for the first need of ``strategy_id`` that is missing or
        stale at ``now_ns``; None when all are fresh (or it needs nothing)."""
        for need in self.needs.get(strategy_id, ()):
            held = self.latest.get((need.kind, need.instrument_id))
            if held is None:
                return "aux_missing", (
                    f"{strategy_id} needs {need.kind} data for {need.instrument_id}: none yet"
                )
            age = now_ns - held.ts_event
            if age > need.ttl_ns:
                return "aux_stale", (
                    f"{strategy_id} needs {need.kind} data for {need.instrument_id} no older "
                    f"than {need.ttl_ns / _S:g}s; the latest is {age / _S:.3f}s old"
                )
        return None
