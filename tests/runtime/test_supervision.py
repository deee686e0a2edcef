"""The supervisor's restart decision against an independently written model of the OTP rules."""

from __future__ import annotations

from dataclasses import dataclass, field

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.errors import InvariantError
from runtime.supervision import (
    ChildExited,
    ChildSpec,
    Decision,
    Escalate,
    ExitReason,
    NoRestart,
    Restart,
    RestartStrategy,
    RestartType,
    SupervisorSpec,
    SupervisorState,
    decide,
    initial_state,
)

S = 1_000_000_000
MS = 1_000_000


def spec_of(
    strategy: str = "one_for_one",
    *,
    intensity: int = 3,
    period_s: float = 5.0,
    children: str = "abcd",
    **kw: object,
) -> SupervisorSpec:
    types = kw.pop("types", {})
    assert isinstance(types, dict)
    return SupervisorSpec(
        strategy=RestartStrategy(strategy),
        intensity=intensity,
        period_s=period_s,
        children=tuple(ChildSpec(child_id=c, restart=types.get(c, "permanent")) for c in children),
        **kw,  # type: ignore[arg-type]
    )


def exit_(child: str, at_ns: int, reason: str = "crash") -> ChildExited:
    return ChildExited(child_id=child, reason=ExitReason(reason), now_ns=at_ns)


# --- the model ---------------------------------------------------------------------------------


@dataclass
class OtpModel:
    """The rules as OTP's documentation states them, written without looking at the code."""

    order: list[str]
    kinds: dict[str, str]
    strategy: str
    max_r: int
    max_t_ns: int
    backoff: tuple[int, int, int]  # initial_ns, max_ns, reset_ns
    alive: set[str]
    started: dict[str, int]
    gone: set[str] = field(default_factory=set)
    history: list[int] = field(default_factory=list)  # every restart time, ever
    streak: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def on_exit(self, child: str, reason: str, now: int) -> tuple[object, ...]:
        hung = reason == "hang"
        live = (self.alive - {child}) | ({child} if hung else set())
        self.alive.discard(child)
        if self.kinds[child] == "temporary":
            self.gone.add(child)
            return ("none", [child] if hung else [], True)
        if self.kinds[child] == "transient" and reason in ("normal", "shutdown"):
            return ("none", [child] if hung else [], False)
        self.history.append(now)
        in_window = sum(1 for t in self.history if now - t <= self.max_t_ns)
        if in_window > self.max_r:
            return ("escalate", [c for c in self.order[::-1] if c in live])
        members = self._members(child)
        stop = [c for c in self.order[::-1] if c in members and c in live]
        start = [c for c in members if self.kinds[c] != "temporary"]
        drop = [c for c in members if self.kinds[c] == "temporary"]
        delay = self._delay(child, now)
        for c in start:
            self.started[c] = now + delay
            self.counts[c] = self.counts.get(c, 0) + 1
        self.alive = (self.alive - set(drop)) | set(start)
        self.gone |= set(drop)
        return ("restart", stop, start, drop, delay)

    def _members(self, child: str) -> list[str]:
        present = [c for c in self.order if c not in self.gone]
        if self.strategy == "one_for_all":
            return present
        if self.strategy == "rest_for_one":
            return present[present.index(child) :]
        return [child]

    def _delay(self, child: str, now: int) -> int:
        initial, most, reset = self.backoff
        if now - self.started[child] >= reset:
            self.streak[child] = 0
        k = self.streak.get(child, 0)
        self.streak[child] = k + 1
        return min(most, initial << k)


def as_tuple(decision: Decision) -> tuple[object, ...]:
    if isinstance(decision, NoRestart):
        return ("none", list(decision.stop), decision.removed)
    if isinstance(decision, Escalate):
        return ("escalate", list(decision.stop))
    return (
        "restart",
        list(decision.stop),
        list(decision.start),
        list(decision.remove),
        decision.delay_ns,
    )


@st.composite
def specs(draw: st.DrawFn) -> SupervisorSpec:
    n = draw(st.integers(1, 5))
    initial_ms = draw(st.integers(0, 100))
    return SupervisorSpec(
        strategy=draw(st.sampled_from(list(RestartStrategy))),
        intensity=draw(st.integers(0, 4)),
        period_s=draw(st.integers(1, 1_000)) / 1_000,
        backoff_initial_s=initial_ms / 1_000,
        backoff_max_s=draw(st.integers(initial_ms, 2_000)) / 1_000,
        backoff_reset_s=draw(st.none() | st.integers(1, 3_000).map(lambda ms: ms / 1_000)),
        children=tuple(
            ChildSpec(child_id=f"c{i}", restart=draw(st.sampled_from(list(RestartType))))
            for i in range(n)
        ),
    )


@settings(max_examples=300, deadline=None)
@given(spec=specs(), data=st.data())
def test_decisions_follow_the_otp_model(spec: SupervisorSpec, data: st.DataObject) -> None:
    period_ns = round(spec.period_s * S)
    model = OtpModel(
        order=list(spec.child_ids()),
        kinds={c.child_id: c.restart.value for c in spec.children},
        strategy=spec.strategy.value,
        max_r=spec.intensity,
        max_t_ns=period_ns,
        backoff=(
            round(spec.backoff_initial_s * S),
            round(spec.backoff_max_s * S),
            round((spec.backoff_reset_s or spec.period_s) * S),
        ),
        alive=set(spec.child_ids()),
        started=dict.fromkeys(spec.child_ids(), 0),
    )
    state, now = initial_state(spec, now_ns=0), 0
    gaps = st.sampled_from([0, 1, period_ns - 1, period_ns, period_ns + 1]) | st.integers(0, 3 * S)
    for _ in range(25):
        if not model.alive:
            break
        child = data.draw(st.sampled_from(sorted(model.alive)))
        reason = data.draw(st.sampled_from(list(ExitReason)))
        now += data.draw(gaps)
        decision, state = decide(spec, state, exit_(child, now, reason.value))
        assert as_tuple(decision) == model.on_exit(child, reason.value, now)
        if isinstance(decision, Escalate):
            with pytest.raises(InvariantError, match="after escalation"):
                decide(spec, state, exit_(child, now))
            return
        assert state.running == frozenset(model.alive)
        assert state.restart_counts == model.counts
        assert all(now - t <= period_ns for t in state.restarts_ns)


@settings(max_examples=200, deadline=None)
@given(spec=specs(), gaps=st.lists(st.integers(0, 4 * S), min_size=1, max_size=30))
def test_backoff_is_monotone_up_to_the_max_and_resets_after_a_quiet_period(
    spec: SupervisorSpec, gaps: list[int]
) -> None:
    """One permanent child crashing again and again, without intensity getting in the way."""
    spec = spec.model_copy(
        update={
            "intensity": 1_000,
            "strategy": RestartStrategy.ONE_FOR_ONE,
            "children": (ChildSpec(child_id="x"),),
        }
    )
    reset_ns = round((spec.backoff_reset_s or spec.period_s) * S)
    state, now, previous, up_since = initial_state(spec, now_ns=0), 0, -1, 0
    for gap in gaps:
        now = max(now + gap, up_since)  # a child cannot exit before it was started
        decision, state = decide(spec, state, exit_("x", now))
        assert isinstance(decision, Restart)
        assert decision.delay_ns <= round(spec.backoff_max_s * S)
        if now - up_since >= reset_ns or previous < 0:  # quiet (or first): back to the start
            assert decision.delay_ns == round(spec.backoff_initial_s * S)
        else:
            assert decision.delay_ns >= previous
        previous, up_since = decision.delay_ns, now + decision.delay_ns


# --- worked examples ---------------------------------------------------------------------------


def test_escalation_exactly_when_the_intensity_plus_first_restart_falls_in_the_period() -> None:
    spec = spec_of(intensity=2, period_s=10.0)
    state = initial_state(spec, now_ns=0)
    d1, state = decide(spec, state, exit_("a", 1 * S))
    d2, state = decide(spec, state, exit_("b", 2 * S))  # counted across children
    assert isinstance(d1, Restart) and isinstance(d2, Restart)
    late, _ = decide(spec, state, exit_("c", 11 * S + 1))  # the first restart fell out
    assert isinstance(late, Restart)
    on_edge, _ = decide(spec, state, exit_("c", 11 * S))  # 10 s ago still counts (OTP)
    assert isinstance(on_edge, Escalate) and on_edge.restarts_in_period == 3
    assert on_edge.stop == ("d", "b", "a")


def test_intensity_zero_escalates_on_the_first_restart() -> None:
    spec = spec_of(intensity=0)
    decision, _ = decide(spec, initial_state(spec, now_ns=0), exit_("b", 1))
    assert isinstance(decision, Escalate)


def test_rest_for_one_stops_in_reverse_and_starts_in_order() -> None:
    spec = spec_of("rest_for_one")
    decision, _ = decide(spec, initial_state(spec, now_ns=0), exit_("b", 1))
    assert isinstance(decision, Restart)
    assert (decision.stop, decision.start) == (("d", "c"), ("b", "c", "d"))


def test_one_for_all_drops_temporary_siblings_and_stops_a_hung_child_too() -> None:
    spec = spec_of("one_for_all", types={"c": "temporary"})
    decision, state = decide(spec, initial_state(spec, now_ns=0), exit_("b", 1, "hang"))
    assert isinstance(decision, Restart)
    assert decision.stop == ("d", "c", "b", "a")
    assert (decision.start, decision.remove) == (("a", "b", "d"), ("c",))
    assert state.running == {"a", "b", "d"} and state.removed == {"c"}


def test_temporary_never_and_transient_only_on_abnormal_exit() -> None:
    spec = spec_of(types={"a": "temporary", "b": "transient"})
    state = initial_state(spec, now_ns=0)
    gone, state = decide(spec, state, exit_("a", 1))
    assert isinstance(gone, NoRestart) and gone.removed
    normal, state = decide(spec, state, exit_("b", 2, "shutdown"))
    assert isinstance(normal, NoRestart) and not normal.removed
    assert state.running == {"c", "d"} and state.restarts_ns == ()


def test_time_going_backwards_and_stray_exits_are_invariant_errors() -> None:
    spec = spec_of()
    _, state = decide(spec, initial_state(spec, now_ns=10), exit_("a", 20))
    with pytest.raises(InvariantError, match="backwards"):
        decide(spec, state, exit_("b", 19))
    with pytest.raises(InvariantError, match="unknown child 'z'"):
        decide(spec, state, exit_("z", 30))
    spec_t = spec_of(types={"a": "transient"})
    _, state = decide(spec_t, initial_state(spec_t, now_ns=0), exit_("a", 1, "normal"))
    with pytest.raises(InvariantError, match="not running"):
        decide(spec_t, state, exit_("a", 2))


def test_decide_is_pure() -> None:
    spec = spec_of("one_for_all")
    state = initial_state(spec, now_ns=0)
    before = SupervisorState(**{f: getattr(state, f) for f in state.__struct_fields__})
    first = decide(spec, state, exit_("a", 5))
    assert state == before
    assert decide(spec, state, exit_("a", 5)) == first


def test_bad_specs_are_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="unique"):
        spec_of(children="aa")
    with pytest.raises(pydantic.ValidationError, match="backoff_max_s"):
        spec_of(backoff_initial_s=2.0, backoff_max_s=1.0)
    with pytest.raises(pydantic.ValidationError):
        spec_of(intensity=-1)
    with pytest.raises(pydantic.ValidationError):
        ChildSpec(child_id="a", restart="sometimes")  # type: ignore[arg-type]


def test_backoff_doubles_while_crashing_and_resets_after_a_full_quiet_period() -> None:
    spec = spec_of(intensity=100, period_s=10.0, backoff_initial_s=1.0, backoff_max_s=3.0)
    state = initial_state(spec, now_ns=0)
    delays = []
    for at in (1 * S, 2 * S, 4 * S, 7 * S):  # each exit soon after the (delayed) restart
        decision, state = decide(spec, state, exit_("a", at))
        assert isinstance(decision, Restart)
        delays.append(decision.delay_ns // S)
    assert delays == [1, 2, 3, 3]  # doubling, capped at backoff_max_s
    up_since = 7 * S + 3 * S
    not_yet, _ = decide(spec, state, exit_("a", up_since + 10 * S - 1))
    quiet, _ = decide(spec, state, exit_("a", up_since + 10 * S))  # ran a full reset period
    assert isinstance(not_yet, Restart) and not_yet.delay_ns == 3 * S
    assert isinstance(quiet, Restart) and quiet.delay_ns == 1 * S
