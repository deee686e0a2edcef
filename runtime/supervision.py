"""The supervisor's restart decision: Erlang/OTP semantics as a pure function.

:func:`decide` takes the supervisor's spec, its state and one :class:`ChildExited` event and
returns a :class:`Decision` and the next state. It reads no clock (``now_ns`` is a monotonic
timestamp passed in), starts nothing and sleeps nowhere: the Ray supervisor actor carries the
decision out.

The rules, as in OTP's ``supervisor``:

* **Restart type.** ``permanent`` children are always restarted; ``transient`` ones only after an
  abnormal exit (``crash``, ``hang``; not ``normal`` or ``shutdown``); ``temporary`` ones never:
  they are removed, also when a sibling's restart stops them.
* **Strategy.** ``one_for_one`` restarts the child; ``one_for_all`` stops every other child and
  restarts all; ``rest_for_one`` stops and restarts the child and those started after it.
  Children are stopped in reverse start order and started in start order (the spec's order).
  As in OTP, a group restart also starts a non-temporary child that had exited and was not
  restarted (a transient child that exited normally).
* **Intensity.** Restarts are counted per supervisor, across all children (a group restart counts
  once). Restart times older than ``period_s`` fall out of the window (a restart exactly
  ``period_s`` ago still counts, as OTP's ``R >= Now - Period``). When a restart would make more
  than ``intensity`` restarts within the window, the supervisor escalates instead: it stops its
  children and gives up (:class:`Escalate`). ``intensity=0`` means: escalate on the first exit that
  needs a restart. After an escalation the state accepts no more events.
* **Backoff** (Tradewind's addition; OTP restarts at once). *Quiet-period reset rule*: the delay
  before restarting a child is ``backoff_initial_s * 2**streak`` capped at ``backoff_max_s``, where
  ``streak`` counts the restarts this child triggered in a row; the streak resets to 0 when the
  child had run at least ``backoff_reset_s`` (default: ``period_s``) since it was last (re)started
  (its start time being the restart decision's ``now_ns + delay_ns``).
* **Nesting.** A child may be a supervisor itself (:attr:`ChildSpec.supervisor`): when it
  escalates it stops its children and exits, which its parent sees as an abnormal exit of that
  child and decides on by the same rules. Child ids are unique across the whole tree.
"""

from __future__ import annotations

import enum
from typing import Any, TypeAlias

import msgspec
from pydantic import BaseModel, ConfigDict, Field, model_validator

from runtime.errors import InvariantError

__all__ = [
    "Call",
    "ChildExited",
    "ChildSpec",
    "Decision",
    "Escalate",
    "ExitReason",
    "NoRestart",
    "Restart",
    "RestartStrategy",
    "RestartType",
    "SupervisorSpec",
    "SupervisorState",
    "decide",
    "initial_state",
]

_NS_PER_S = 1_000_000_000


class RestartType(enum.StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class RestartStrategy(enum.StrEnum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class ExitReason(enum.StrEnum):
    NORMAL = "normal"  # the child finished its work
    SHUTDOWN = "shutdown"  # the child was asked to stop
    CRASH = "crash"  # abnormal: an exception, a killed process
    HANG = "hang"  # abnormal: alive but unresponsive; it must be stopped first

    @property
    def abnormal(self) -> bool:
        return self in (ExitReason.CRASH, ExitReason.HANG)


class Call(BaseModel):
    """A call on a child: ``method(*args, **kwargs)`` (a per-child hook in a :class:`ChildSpec`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    method: str = Field(min_length=1)
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ChildSpec(BaseModel):
    """One child of a supervisor, as OTP's child spec: what starts it (``factory``: an importable
    ``"module:Name"`` called with ``args`` and ``kwargs``, with ``options`` for whoever starts it;
    or ``supervisor``: a nested supervisor over its own spec), its restart type, how long it is
    given to stop before it is killed, and its hooks: ``on_start`` after every start (the first
    one too), ``after_restart`` after a restart only (once the backoff delay has passed),
    ``before_stop`` when the supervisor stops it."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    child_id: str = Field(min_length=1)
    restart: RestartType = RestartType.PERMANENT
    shutdown_timeout_s: float = Field(default=5.0, ge=0)
    factory: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    supervisor: SupervisorSpec | None = None
    on_start: tuple[Call, ...] = ()
    after_restart: tuple[Call, ...] = ()
    before_stop: tuple[Call, ...] = ()

    @model_validator(mode="after")
    def _one_start(self) -> ChildSpec:
        if self.factory is not None and self.supervisor is not None:
            raise ValueError(f"child {self.child_id!r}: a factory or a supervisor, not both")
        return self


class SupervisorSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: RestartStrategy = RestartStrategy.ONE_FOR_ONE
    intensity: int = Field(default=3, ge=0)  # OTP MaxR
    period_s: float = Field(default=5.0, gt=0)  # OTP MaxT
    backoff_initial_s: float = Field(default=0.1, ge=0)
    backoff_max_s: float = Field(default=10.0, ge=0)
    backoff_reset_s: float | None = Field(default=None, gt=0)  # None: period_s
    children: tuple[ChildSpec, ...] = Field(min_length=1)  # in start order

    @model_validator(mode="after")
    def _check(self) -> SupervisorSpec:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        ids = self.tree_ids()
        if len(set(ids)) != len(ids):
            raise ValueError(f"child ids must be unique in the whole tree: {ids}")
        return self

    def child_ids(self) -> tuple[str, ...]:
        return tuple(c.child_id for c in self.children)

    def tree_ids(self) -> tuple[str, ...]:
        """Every child id of the tree, depth first in start order (a subtree before its own
        children)."""
        out: list[str] = []
        for child in self.children:
            out.append(child.child_id)
            if child.supervisor is not None:
                out.extend(child.supervisor.tree_ids())
        return tuple(out)


class ChildExited(msgspec.Struct, frozen=True, kw_only=True):
    child_id: str
    reason: ExitReason
    now_ns: int  # monotonic


class SupervisorState(msgspec.Struct, frozen=True, kw_only=True):
    """What the supervisor remembers. Never mutated: :func:`decide` returns a new one."""

    last_ns: int  # the latest timestamp seen
    running: frozenset[str]
    removed: frozenset[str] = frozenset()  # temporary children that are gone
    restarts_ns: tuple[int, ...] = ()  # restart times within the period, oldest first
    restart_counts: dict[str, int] = msgspec.field(default_factory=dict)  # per child, all time
    started_ns: dict[str, int] = msgspec.field(default_factory=dict)  # last (re)start per child
    streaks: dict[str, int] = msgspec.field(default_factory=dict)  # backoff streak per child
    escalated: bool = False


class Restart(msgspec.Struct, frozen=True, kw_only=True):
    child_id: str  # the child whose exit caused this
    stop: tuple[str, ...]  # live children to stop first, in this order (reverse start order)
    start: tuple[str, ...]  # then start these, in this order (start order)
    remove: tuple[str, ...]  # temporary children dropped for good
    delay_ns: int  # wait this long (after stopping, before starting)

    @property
    def delay_s(self) -> float:
        return self.delay_ns / _NS_PER_S


class NoRestart(msgspec.Struct, frozen=True, kw_only=True):
    child_id: str
    stop: tuple[str, ...]  # the child itself when it hangs
    removed: bool  # a temporary child leaves the supervisor
    why: str


class Escalate(msgspec.Struct, frozen=True, kw_only=True):
    child_id: str
    stop: tuple[str, ...]  # every live child, reverse start order
    reason: str
    restarts_in_period: int


Decision: TypeAlias = Restart | NoRestart | Escalate

ChildSpec.model_rebuild()


def initial_state(spec: SupervisorSpec, *, now_ns: int) -> SupervisorState:
    """The state right after the supervisor started all its children, in order, at ``now_ns``."""
    ids = spec.child_ids()
    return SupervisorState(
        last_ns=now_ns, running=frozenset(ids), started_ns=dict.fromkeys(ids, now_ns)
    )


def decide(
    spec: SupervisorSpec, state: SupervisorState, event: ChildExited
) -> tuple[Decision, SupervisorState]:
    """What to do about ``event``, and the supervisor's next state (see the module docstring)."""
    _check_event(spec, state, event)
    child = _spec_of(spec, event.child_id)
    # a hung child is still alive: it is stopped like the running ones
    alive = state.running if event.reason is ExitReason.HANG else state.running - {event.child_id}
    threshold = event.now_ns - round(spec.period_s * _NS_PER_S)  # OTP: keep R >= Now - Period
    state = msgspec.structs.replace(
        state,
        last_ns=event.now_ns,
        running=state.running - {event.child_id},
        restarts_ns=tuple(t for t in state.restarts_ns if t >= threshold),
    )
    self_stop = (event.child_id,) if event.reason is ExitReason.HANG else ()
    if child.restart is RestartType.TEMPORARY:
        state = msgspec.structs.replace(state, removed=state.removed | {event.child_id})
        why = "temporary children are never restarted"
        return NoRestart(child_id=event.child_id, stop=self_stop, removed=True, why=why), state
    if child.restart is RestartType.TRANSIENT and not event.reason.abnormal:
        why = f"transient child exited with {event.reason.value}"
        return NoRestart(child_id=event.child_id, stop=self_stop, removed=False, why=why), state
    return _restart(spec, state, event, alive)


def _check_event(spec: SupervisorSpec, state: SupervisorState, event: ChildExited) -> None:
    if state.escalated:
        raise InvariantError("supervisor: event after escalation (the supervisor has given up)")
    if event.now_ns < state.last_ns:
        raise InvariantError(
            f"supervisor: time went backwards: now_ns={event.now_ns} < last seen {state.last_ns}"
        )
    if event.child_id not in spec.child_ids():
        raise InvariantError(f"supervisor: unknown child {event.child_id!r}")
    if event.child_id not in state.running:
        raise InvariantError(f"supervisor: exit of child {event.child_id!r}, which is not running")


def _spec_of(spec: SupervisorSpec, child_id: str) -> ChildSpec:
    return next(c for c in spec.children if c.child_id == child_id)


def _restart(
    spec: SupervisorSpec, state: SupervisorState, event: ChildExited, alive: frozenset[str]
) -> tuple[Decision, SupervisorState]:
    now = event.now_ns
    window = (*state.restarts_ns, now)
    state = msgspec.structs.replace(state, restarts_ns=window)
    if len(window) > spec.intensity:
        stop = _reverse_running(spec, alive)
        reason = (
            f"{len(window)} restarts within {spec.period_s}s exceed intensity {spec.intensity} "
            f"(last: {event.child_id} {event.reason.value})"
        )
        decision = Escalate(
            child_id=event.child_id, stop=stop, reason=reason, restarts_in_period=len(window)
        )
        return decision, msgspec.structs.replace(state, escalated=True, running=frozenset())
    group = _group(spec, event.child_id, state.removed)
    stop = _reverse_running(spec, alive & set(group))
    remove = tuple(c for c in group if _spec_of(spec, c).restart is RestartType.TEMPORARY)
    start = tuple(c for c in group if c not in remove)
    delay_ns, streak = _backoff(spec, state, event)
    state = _after_restart(
        state, event.child_id, start=start, remove=remove, streak=streak, start_ns=now + delay_ns
    )
    restart = Restart(
        child_id=event.child_id, stop=stop, start=start, remove=remove, delay_ns=delay_ns
    )
    return restart, state


def _group(spec: SupervisorSpec, child_id: str, removed: frozenset[str]) -> tuple[str, ...]:
    """The children a restart of ``child_id`` concerns, in start order."""
    ids = tuple(c for c in spec.child_ids() if c not in removed)
    if spec.strategy is RestartStrategy.ONE_FOR_ALL:
        return ids
    if spec.strategy is RestartStrategy.REST_FOR_ONE:
        return ids[ids.index(child_id) :]
    return (child_id,)


def _reverse_running(spec: SupervisorSpec, alive: frozenset[str]) -> tuple[str, ...]:
    return tuple(c for c in reversed(spec.child_ids()) if c in alive)


def _backoff(spec: SupervisorSpec, state: SupervisorState, event: ChildExited) -> tuple[int, int]:
    """(delay_ns, the child's streak after this restart) by the quiet-period reset rule."""
    reset_ns = round((spec.backoff_reset_s or spec.period_s) * _NS_PER_S)
    up_since = state.started_ns.get(event.child_id, state.last_ns)
    quiet = event.now_ns - up_since >= reset_ns
    streak = 0 if quiet else state.streaks.get(event.child_id, 0)
    initial_ns = round(spec.backoff_initial_s * _NS_PER_S)
    max_ns = round(spec.backoff_max_s * _NS_PER_S)
    delay_ns = max_ns if streak >= 63 else min(max_ns, initial_ns << streak)
    return delay_ns, streak + 1


def _after_restart(
    state: SupervisorState,
    child_id: str,
    *,
    start: tuple[str, ...],
    remove: tuple[str, ...],
    streak: int,
    start_ns: int,
) -> SupervisorState:
    counts = dict(state.restart_counts)
    started = dict(state.started_ns)
    for c in start:
        counts[c] = counts.get(c, 0) + 1
        started[c] = start_ns
    for c in remove:
        started.pop(c, None)
    return msgspec.structs.replace(
        state,
        running=(state.running - set(remove)) | set(start),
        removed=state.removed | set(remove),
        restart_counts=counts,
        started_ns=started,
        streaks={**state.streaks, child_id: streak},
    )
