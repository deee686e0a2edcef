"""Watchdogs for unattended sessions: pure decisions over what the session's actors observed.

Callers pass ``now_ns`` and a :class:`Health` sample (the reconciler actor gathers one from the
feed and the gateway on its timer); :meth:`Watchdogs.check` returns the :class:`Trip` of each
watchdog that fired, once per episode: a watchdog that fired stays *tripped* (no repeat) until
its condition clears, then it may fire again. What a trip does is its rule's ``action``:

* ``reduce_only`` — trading goes close-only;
* ``halt`` — trading halts, resting orders stay;
* ``cancel_all_and_halt`` — trading halts and every open order is cancelled.

The watchdogs (each off when its block is absent; YAML ``watchdogs:`` in the paper config):

* ``market_data_silence`` — an instrument's market data has been silent for ``after_s`` while
  the instrument is trading: its calendar (or hand-written sessions) says it is in session (at
  ``Health.session_ns``: a replay's data clock, else now). A closed market is quiet, not
  silent; an instrument never heard counts from the stream's start. ``instruments`` limits it
  to those named (an unknown one is a ConfigError).
* ``order_stream_stale`` — the broker has owed an answer (to a submit, cancel or modify the
  gateway handed it) for ``after_s``: the execution stream is stale or the link is down.
* ``unknown_order_storm`` — ``reports`` or more reports about orders this session never sent
  within ``window_s``: the first time, every open order is cancelled and the gateway reconciles
  (action ``cancel_all``, fixed); if the storm is still on ``window_s`` later, ``action``.
* ``disk_low`` — the free space where the session journals fell below ``min_free_mb``: trading
  takes ``action`` (``halt`` by default) before a journal write fails; clears above it.
* ``disk_full`` — a journal write found the disk full: it released the disk reserve
  (``runtime.disk_reserve``, ``reserve_mb`` held where the session journals) and went through
  in the space given back, leaving a note naming the file and the error (``Health.disk_full``):
  trading takes ``action`` (``cancel_all_and_halt`` by default: nothing rests in the market
  while the session cannot journal), whose own entries fit in the reserve's space. It clears
  once the reserve is held again (there is room for it).
* ``inventory_desync`` — from the reconciler's drifts (``runtime/reconcile.py``) about what is
  held: a fill known to one side only, or a position apart by more than
  ``halt_position_drift_lots`` (what the reconciler calls HALTED). The gateway's view is taken
  *as of the reports risk was handed* (``runtime.reconcile.as_of``): a fill the gateway reported
  beyond that watermark, or not yet, is in flight, not a drift; its quantity comes out of the
  gateway's positions. In flight is bounded: a fill found in flight in more than
  ``in_flight_runs`` reconciliations in a row (they run only while the feed, risk and the
  gateway all answer: an actor restarting pauses the count) has not reached risk because the
  feed has stalled, not because it is on its way; from then on it is a fill known to the
  gateway only (its quantity no longer excuses a position drift), confirmed like any other. What
  is left must
  also be found unchanged in ``confirm_runs`` consecutive reconciliations (the two views are
  read one after the other, not at one instant): the same fill, or a position apart by the same
  amount (both sides may trade on meanwhile) in runs with no fill on one side only and no fill
  in flight whose quantity is unknown (either explains a position drift). Orders open at one
  side only and smaller position drifts stay drift events (an adapter restarting or reconciling
  shows them for a while); they are not inventory. The broker's own positions count too: an
  adapter's reconciliation compares them with the replay of our fills where both describe one
  instant (``position AAPL: IB 109 vs fills 99``: a trade outside Tradewind, a fill never
  reported), and such a gap beyond ``halt_position_drift_lots``, the same in ``confirm_runs``
  of the adapter's reconciliations in a row (:class:`BrokerGap`, counted by the adapter's run,
  not by the reconciler's looks), trips it as well. A run that could not compare an instrument
  (a fill of ours came in while it read the broker: :class:`BrokerPositions`) leaves that
  instrument's streak as it was.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

import msgspec
from pydantic import BaseModel, ConfigDict, Field, field_validator

from runtime.errors import ConfigError
from runtime.instruments import Instrument
from runtime.messages import TradingState
from runtime.reconcile import (
    Drift,
    FillDrift,
    OrderDrift,
    PositionDrift,
    ReconcileThresholds,
    describe,
    recommend,
)
from runtime.values import from_fixed

__all__ = [
    "BrokerGap",
    "BrokerPositions",
    "DesyncRule",
    "DiskFullRule",
    "DiskRule",
    "Health",
    "MarketSilenceRule",
    "SilenceRule",
    "StormRule",
    "Trip",
    "WatchdogAction",
    "WatchdogConfig",
    "Watchdogs",
]

_S = 10**9


class WatchdogAction(StrEnum):
    REDUCE_ONLY = "reduce_only"
    HALT = "halt"
    CANCEL_ALL_AND_HALT = "cancel_all_and_halt"
    CANCEL_ALL = "cancel_all"  # the storm's first response only (not configurable)


_CONFIGURABLE = (
    WatchdogAction.REDUCE_ONLY,
    WatchdogAction.HALT,
    WatchdogAction.CANCEL_ALL_AND_HALT,
)


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    action: WatchdogAction = WatchdogAction.HALT

    @field_validator("action")
    @classmethod
    def _configurable(cls, action: WatchdogAction) -> WatchdogAction:
        if action not in _CONFIGURABLE:
            raise ValueError(f"action must be one of {', '.join(_CONFIGURABLE)}")
        return action


class SilenceRule(_Rule):
    after_s: float = Field(gt=0)


class MarketSilenceRule(SilenceRule):
    """``instruments``: the ones watched (``None``: every instrument of the session)."""

    instruments: tuple[str, ...] | None = None


class StormRule(_Rule):
    reports: int = Field(20, ge=1)
    window_s: float = Field(10.0, gt=0)


class DiskRule(_Rule):
    min_free_mb: float = Field(256.0, gt=0)


class DiskFullRule(_Rule):
    """``reserve_mb``: the disk reserve held where the session journals
    (``runtime.disk_reserve``), what the action's own journal entries are written in."""

    action: WatchdogAction = WatchdogAction.CANCEL_ALL_AND_HALT
    reserve_mb: float = Field(16.0, gt=0)


class DesyncRule(_Rule):
    action: WatchdogAction = WatchdogAction.CANCEL_ALL_AND_HALT
    confirm_runs: int = Field(2, ge=1)
    #: a fill stays excused as in flight for at most this many reconciliations in a row
    in_flight_runs: int = Field(12, ge=1)


class WatchdogConfig(BaseModel):
    """Which watchdogs run and what each does; ``None`` turns one off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    market_data_silence: MarketSilenceRule | None = None
    order_stream_stale: SilenceRule | None = None
    unknown_order_storm: StormRule | None = None
    disk_low: DiskRule | None = DiskRule()
    disk_full: DiskFullRule | None = DiskFullRule()
    inventory_desync: DesyncRule | None = DesyncRule()


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """One sample of what the actors observed, on the actors' wall clock (ns)."""

    now_ns: int
    stream_since_ns: int | None = None  # when the market-data stream opened (None: no stream)
    market_last_ns: dict[str, int] = {}  # last message received per instrument
    #: when the stream's health was read (the silence is counted to then: a reply that took
    #: long to arrive is not silence); None: ``now_ns``
    market_now_ns: int | None = None
    #: the clock the calendar is asked at (a replay's data clock; None: ``now_ns``)
    session_ns: int | None = None
    exec_waiting_since_ns: int | None = None  # the oldest command the broker has not answered
    foreign_reports: int = 0  # reports about orders never sent, counted since the start
    disk_free_bytes: int | None = None  # free space where the session journals
    #: the released disk reserve's note (what could not be written, and why); None: held
    disk_full: str | None = None


class BrokerGap(msgspec.Struct, frozen=True, kw_only=True):
    """The broker's own position apart from the replay of our fills, as an adapter's
    reconciliation found it (``actors.venues.common.broker_positions``)."""

    instrument_id: str
    broker: int
    ours: int
    lots: int  # |broker - ours| in lots, rounded up

    def describe(self) -> str:
        return (f"position {self.instrument_id}: the broker {from_fixed(self.broker)} vs our "
                f"fills {from_fixed(self.ours)} ({self.lots} lot(s) apart)")


class BrokerPositions(msgspec.Struct, frozen=True, kw_only=True):
    """An adapter's reconciliation of the broker's positions (``run``: how many it made so
    far): the gaps it found, and the instruments it could not compare because a fill of ours
    came in while it read them (``actors.venues.common.PositionCheck``)."""

    run: int
    gaps: tuple[BrokerGap, ...] = ()
    unsettled: frozenset[str] = frozenset()


class Trip(msgspec.Struct, frozen=True):
    watchdog: str
    action: WatchdogAction
    reason: str


class Watchdogs:
    """The watchdogs' state between samples (see the module docstring)."""

    def __init__(self, config: WatchdogConfig, instruments: Iterable[Instrument]) -> None:
        self.config = config
        self.instruments = {i.instrument_id: i for i in instruments}
        silence = config.market_data_silence
        unknown = sorted(set(silence.instruments or ()) - set(self.instruments)) \
            if silence is not None else []
        if unknown:
            raise ConfigError(f"{', '.join(unknown)}: not an instrument of the session "
                              f"(known: {', '.join(sorted(self.instruments)) or 'none'})",
                              field="watchdogs.market_data_silence.instruments")
        self.tripped: dict[str, str] = {}  # watchdog (or watchdog:instrument) -> reason
        self._foreign: deque[tuple[int, int]] = deque()  # (now_ns, count) within the window
        self._storm_since_ns: int | None = None
        self._storm_escalated = False
        self._streaks: dict[tuple[object, ...], int] = {}  # drift -> runs in a row seen
        self._flying: dict[str, int] = {}  # fill id in flight -> runs in a row seen so
        self._broker_run: int | None = None  # the adapter's reconciliation last counted
        self._broker_streaks: dict[tuple[str, int], int] = {}  # (instrument, gap) -> runs

    def state(self) -> dict[str, str]:
        """Each configured watchdog: ``ok``, ``tripped`` or ``off`` (for metrics and status)."""
        out = {}
        for name in ("market_data_silence", "order_stream_stale", "unknown_order_storm",
                     "disk_low", "disk_full", "inventory_desync"):
            if getattr(self.config, name) is None:
                out[name] = "off"
            else:
                hit = any(k == name or k.startswith(name + ":") for k in self.tripped)
                out[name] = "tripped" if hit else "ok"
        return out

    def check(self, health: Health) -> list[Trip]:
        return (self._silence(health) + self._stale(health) + self._storm(health)
                + self._disk(health) + self._disk_full(health))

    def _disk_full(self, health: Health) -> list[Trip]:
        rule = self.config.disk_full
        if rule is None:
            return []
        reason = (f"the disk is full: {health.disk_full}; the disk reserve was released so "
                  "that the halt and the cancels can be journaled")
        return self._fire("disk_full", health.disk_full is not None,
                          Trip("disk_full", rule.action, reason))

    def _disk(self, health: Health) -> list[Trip]:
        rule = self.config.disk_low
        if rule is None or health.disk_free_bytes is None:
            return []
        free_mb = health.disk_free_bytes / 2**20
        reason = (f"{free_mb:.0f} MB free where the session journals "
                  f"(limit {rule.min_free_mb:g} MB)")
        return self._fire("disk_low", free_mb < rule.min_free_mb,
                          Trip("disk_low", rule.action, reason))

    def desync(self, drifts: Sequence[Drift], thresholds: ReconcileThresholds, *,
               in_flight: Mapping[str, tuple[str, int] | None] | None = None,
               broker: BrokerPositions | None = None) -> list[Trip]:
        """One reconciliation's drifts (the gateway's view as of the delivered watermark):
        inventory drifts seen unchanged in ``confirm_runs`` runs in a row that call for HALTED
        take the rule's action (module docstring). ``in_flight``: the gateway view's fills in
        flight (:attr:`runtime.reconcile.View.in_flight`; ``None`` for one whose quantity its
        positions still hold). ``broker``: what the adapter's last reconciliation found between
        the broker's positions and our fills."""
        rule = self.config.inventory_desync
        runs = rule.confirm_runs if rule is not None else 1
        gaps = self._broker_gaps(broker, thresholds, runs)
        flying = dict(in_flight or {})
        self._flying = {f: self._flying.get(f, 0) + 1 for f in flying}
        limit = rule.in_flight_runs if rule is not None else None
        stalled = sorted(f for f, n in self._flying.items() if limit is not None and n > limit)
        held: list[Drift] = [d for d in drifts if not isinstance(d, OrderDrift)]
        held += [FillDrift(fill_id=f, known_to="gateway") for f in stalled]
        unvalued = any(v is None for f, v in flying.items() if f not in stalled)
        if unvalued or any(isinstance(d, FillDrift) for d in held):  # they explain positions
            held = [d for d in held if not isinstance(d, PositionDrift)]
        streaks = {_drift_key(d): self._streaks.get(_drift_key(d), 0) + 1 for d in held}
        self._streaks = streaks
        lasting = [d for d in held if streaks[_drift_key(d)] >= runs]
        state = recommend(lasting, thresholds)[0] if lasting else TradingState.ACTIVE
        if rule is None or (state is not TradingState.HALTED and not gaps):
            for key in [k for k in self.tripped if k.startswith("inventory_desync")]:
                del self.tripped[key]
            return []
        lines = [_stalled(d, self._flying) if isinstance(d, FillDrift) and d.fill_id in stalled
                 else describe(d) for d in lasting] + [g.describe() for g in gaps]
        reason = (f"inventory desync in {runs} reconciliations in a row: "
                  + "; ".join(lines[:5])
                  + (f"; and {len(lines) - 5} more" if len(lines) > 5 else ""))
        return self._fire("inventory_desync", True, Trip("inventory_desync", rule.action, reason))

    def _broker_gaps(self, broker: BrokerPositions | None,
                     thresholds: ReconcileThresholds, runs: int) -> list[BrokerGap]:
        """The broker gaps beyond ``halt_position_drift_lots`` found the same in ``runs`` of
        the adapter's reconciliations in a row (a new run updates the streaks, except an
        unsettled instrument's, which stand; looking again at the same run changes nothing)."""
        if broker is None:
            return []
        if broker.run != self._broker_run:
            self._broker_run = broker.run
            old = self._broker_streaks
            self._broker_streaks = {k: n for k, n in old.items() if k[0] in broker.unsettled}
            for g in broker.gaps:
                key = (g.instrument_id, g.broker - g.ours)
                self._broker_streaks[key] = old.get(key, 0) + 1
        return [g for g in broker.gaps if g.lots > thresholds.halt_position_drift_lots
                and self._broker_streaks.get((g.instrument_id, g.broker - g.ours), 0) >= runs]

    def _fire(self, key: str, active: bool, trip: Trip | None) -> list[Trip]:
        if not active:
            self.tripped.pop(key, None)
            return []
        if key in self.tripped or trip is None:
            return []
        self.tripped[key] = trip.reason
        return [trip]

    def _silence(self, health: Health) -> list[Trip]:
        rule = self.config.market_data_silence
        if rule is None or health.stream_since_ns is None:
            return []
        trips: list[Trip] = []
        now = health.now_ns if health.market_now_ns is None else health.market_now_ns
        at = now if health.session_ns is None else health.session_ns
        watched = self.instruments if rule.instruments is None else rule.instruments
        for iid in sorted(watched):
            instrument = self.instruments[iid]
            last = max(health.market_last_ns.get(iid, 0), health.stream_since_ns)
            silent_s = (now - last) / _S
            active = instrument.in_session(at) and silent_s > rule.after_s
            reason = (
                f"market data for {iid} silent for {silent_s:.0f} s while its market is open "
                f"(limit {rule.after_s:g} s)"
            )
            trips += self._fire(
                f"market_data_silence:{iid}", active,
                Trip("market_data_silence", rule.action, reason),
            )
        return trips

    def _stale(self, health: Health) -> list[Trip]:
        rule = self.config.order_stream_stale
        if rule is None:
            return []
        since = health.exec_waiting_since_ns
        waited_s = 0.0 if since is None else (health.now_ns - since) / _S
        reason = (
            f"the broker has not answered a command for {waited_s:.0f} s "
            f"(limit {rule.after_s:g} s): the order stream is stale or the link is down"
        )
        active = since is not None and waited_s > rule.after_s
        return self._fire("order_stream_stale", active, Trip("order_stream_stale", rule.action,
                                                             reason))

    def _storm(self, health: Health) -> list[Trip]:
        rule = self.config.unknown_order_storm
        if rule is None:
            return []
        now, window = health.now_ns, int(rule.window_s * _S)
        self._foreign.append((now, health.foreign_reports))
        while len(self._foreign) > 1 and self._foreign[1][0] <= now - window:
            self._foreign.popleft()
        seen = health.foreign_reports - self._foreign[0][1]
        if seen < rule.reports:
            self._storm_since_ns, self._storm_escalated = None, False
            self.tripped.pop("unknown_order_storm", None)
            return []
        what = f"{seen} reports for orders this session never sent within {rule.window_s:g} s"
        if self._storm_since_ns is None:
            self._storm_since_ns = now
            self.tripped["unknown_order_storm"] = what
            return [Trip("unknown_order_storm", WatchdogAction.CANCEL_ALL,
                         f"{what}: cancelling every open order and reconciling")]
        if not self._storm_escalated and now - self._storm_since_ns >= window:
            self._storm_escalated = True
            return [Trip("unknown_order_storm", rule.action, f"{what}, still after a reconcile")]
        return []


def _stalled(drift: FillDrift, flying: Mapping[str, int]) -> str:
    return (f"fill {drift.fill_id} reported by the gateway has not reached risk in "
            f"{flying[drift.fill_id]} reconciliations (the feed has stalled)")


def _drift_key(drift: Drift) -> tuple[object, ...]:
    """What must stay the same for a drift to count as lasting: a position by how far apart the
    sides are (both may trade on), an order or a fill by its id and side."""
    if isinstance(drift, PositionDrift):
        return (drift.kind, drift.instrument_id, drift.gateway - drift.risk)
    return tuple(msgspec.structs.astuple(drift))
