"""The paper broker's faults (``PaperVenue.inject``, what ``tradewind rehearse`` turns on): each
shows in the fields a broker gateway feeds the watchdogs (``health``, ``view``), a failed send is
journaled as its rejection (a gateway rebuilt from its journal hands out the same reports), and
an unknown fault or argument, a lockstep replay and a broker's gateway are refused by name. No
Ray: the gateway actor's class, in process."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from actors.config import FeedConfig
from actors.feed import write_cache
from actors.gateway import GatewayActor
from actors.setup import SessionSetup
from actors.venues.paper import PaperVenue
from backtest.config import load_config
from runtime.errors import ConfigError, InvariantError
from runtime.messages import OrderRejected, OrderSide, OrderType, SubmitOrder
from runtime.values import FIXED_SCALE
from tests.actors.paper_helpers import trading_config, write_sample

_HALF = 100  # the market data the venue has seen before a fault


class Clock:
    def __init__(self) -> None:
        self.ns = 1_000 * 10**9

    def __call__(self) -> int:
        return self.ns


@pytest.fixture
def gateway(tmp_path: Path) -> Any:
    config = load_config(trading_config("mm", write_sample(tmp_path / "data"), minutes=10))
    setup = SessionSetup("S1", str(tmp_path / "var"), config, lockstep=False,
                         snapshot_every=10_000)
    write_cache(setup, FeedConfig())
    return GatewayActor.__ray_metadata__.modified_class(setup)


def _venue(gateway: Any, clock: Clock) -> PaperVenue:
    venue: PaperVenue = gateway.venue
    venue.faults.clock = clock
    venue.apply(0, gateway.setup.feed_log().all()[:_HALF])  # the market has quotes
    return venue


def _submit(n: int, ts: int) -> SubmitOrder:
    return SubmitOrder(seq=0, ts_event=ts, ts_init=ts, client_order_id=f"o{n}",
                       strategy_id="mm", instrument_id="SIM-A", side=OrderSide.BUY,
                       order_type=OrderType.LIMIT, quantity=FIXED_SCALE, price=FIXED_SCALE)


def test_a_stalled_stream_owes_answers_then_delivers_them(gateway: Any) -> None:
    clock = Clock()
    venue = _venue(gateway, clock)
    assert venue.health()["exec_waiting_since_ns"] is None
    gateway.rehearse("stall", {"seconds": 5})
    venue.send([_submit(1, venue.venue.now_ns)], lockstep=False)
    clock.ns += 10**9
    venue.apply(_HALF, gateway.setup.feed_log().all()[_HALF:])  # the market moves on ...
    assert venue.reports_due(0) == []  # ... the stream holds the answer
    assert venue.health()["exec_waiting_since_ns"] == clock.ns - 10**9
    clock.ns += 5 * 10**9  # the stream flows again: what was owed comes, nothing owed
    assert [r.client_order_id for r in venue.reports_due(0)] == ["o1"]
    assert venue.health()["exec_waiting_since_ns"] is None


def test_a_storm_of_foreign_reports_is_counted_never_handed_out(gateway: Any) -> None:
    clock = Clock()
    venue = _venue(gateway, clock)
    gateway.rehearse("foreign", {"seconds": 2, "per_s": 10})
    clock.ns += 10**9
    assert venue.reports_due(0) == []
    assert venue.health()["foreign_reports"] == 10
    clock.ns += 5 * 10**9  # over after two seconds
    venue.reports_due(0)
    assert venue.health()["foreign_reports"] == 20
    clock.ns += 5 * 10**9
    venue.reports_due(0)
    assert venue.health()["foreign_reports"] == 20


def test_failed_sends_open_the_breaker_and_a_clean_reconcile_closes_it(
        gateway: Any, tmp_path: Path) -> None:
    clock = Clock()
    venue = _venue(gateway, clock)
    gateway.rehearse("fail_sends", {"count": 3})
    ts = venue.venue.now_ns
    venue.send([_submit(n, ts) for n in range(4)], lockstep=False)
    rejected = [r for r in venue.reports if isinstance(r, OrderRejected)]
    assert [r.venue_code for r in rejected] == ["gateway.disconnected"] * 3 + [
        "gateway.breaker_open"]
    assert venue.health()["breaker_open"] is True
    assert venue.health()["faults"]["refused"] == 1
    clock.ns += 4 * 10**9
    venue.reports_due(0)
    assert venue.health()["breaker_open"] is True  # no reconciliation yet
    clock.ns += 10**9  # its periodic reconciliation: clean (the sends go through), closed
    venue.reports_due(0)
    assert venue.health()["breaker_open"] is False
    venue.send([_submit(9, ts)], lockstep=False)
    assert "o9" in venue.submitted
    venue.commit()
    again = GatewayActor.__ray_metadata__.modified_class(gateway.setup)  # from its journal
    assert [r.client_order_id for r in again.venue.reports] == [
        r.client_order_id for r in venue.reports]
    again.venue.send([_submit(0, ts)], lockstep=False)  # a retried step: not sent again
    assert "o0" not in again.venue.submitted


def test_a_reconciliation_while_sends_fail_leaves_the_breaker_open(gateway: Any) -> None:
    venue = _venue(gateway, Clock())
    gateway.rehearse("fail_sends", {"count": 5})
    venue.send([_submit(n, venue.venue.now_ns) for n in range(3)], lockstep=False)
    venue.request_reconcile()
    assert venue.health()["breaker_open"] is True


def test_a_shifted_position_shows_in_the_view_not_in_the_state_hash(gateway: Any) -> None:
    venue = _venue(gateway, Clock())
    before, hashed = venue.view()["positions"], venue.state_hash()
    gateway.rehearse("shift", {"instrument": "SIM-A", "qty": 5 * FIXED_SCALE})
    assert venue.view()["positions"] == before | {"SIM-A": 5 * FIXED_SCALE}
    assert venue.state_hash() == hashed
    gateway.rehearse("clear", {})
    assert venue.view()["positions"] == before


def test_unknown_faults_and_arguments_are_refused_by_name(gateway: Any) -> None:
    with pytest.raises(ConfigError, match="no such paper broker fault 'melt'"):
        gateway.rehearse("melt", {})
    with pytest.raises(ConfigError, match="missing \\['per_s'\\]"):
        gateway.rehearse("foreign", {"seconds": 1})
    with pytest.raises(ConfigError, match="unknown \\['n'\\]"):
        gateway.rehearse("stall", {"seconds": 1, "n": 2})
    real_time = gateway.setup
    gateway.setup = dataclasses.replace(real_time, lockstep=True)
    with pytest.raises(InvariantError, match="not a lockstep replay"):
        gateway.rehearse("stall", {"seconds": 1})
    gateway.setup = real_time
    gateway.venue = object.__new__(type("Broker", (), {"kind": "ib"}))
    with pytest.raises(InvariantError, match="paper broker only, not 'ib'"):
        gateway.rehearse("stall", {"seconds": 1})
