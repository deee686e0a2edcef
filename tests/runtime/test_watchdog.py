"""Watchdogs: each fires once per episode, with its configured action, and clears when healthy."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from backtest.calendars import CalendarConfig
from runtime.errors import ConfigError
from runtime.instruments import Instrument
from runtime.reconcile import FillDrift, OrderDrift, PositionDrift, ReconcileThresholds
from runtime.watchdog import (
    BrokerGap,
    BrokerPositions,
    DesyncRule,
    Health,
    WatchdogAction,
    WatchdogConfig,
    Watchdogs,
)

S = 10**9
Q = 10**9
XNYS = CalendarConfig(name="XNYS").resolve()
AAPL = Instrument(instrument_id="AAPL", calendar=XNYS)
BTC = Instrument(instrument_id="BTC")  # no calendar: trades around the clock


def utc(*parts: int) -> int:
    return int(dt.datetime(*parts, tzinfo=dt.UTC).timestamp()) * S


def dogs(**rules: object) -> Watchdogs:
    return Watchdogs(WatchdogConfig.model_validate(rules), [AAPL, BTC])


def test_silence_counts_only_while_the_calendar_says_the_market_is_open() -> None:
    w = dogs(market_data_silence={"after_s": 30, "action": "reduce_only"})
    since = utc(2026, 12, 7, 12, 0)  # Monday 07:00 New York: the stream opened pre-market
    heard = {"AAPL": since, "BTC": since}
    closed = Health(now_ns=utc(2026, 12, 7, 13, 0), stream_since_ns=since, market_last_ns=heard)
    trips = w.check(closed)  # an hour of silence: BTC trades, AAPL's market is closed
    assert [(t.watchdog, t.action) for t in trips] == [
        ("market_data_silence", WatchdogAction.REDUCE_ONLY)]
    assert "BTC" in trips[0].reason and "silent for 3600 s" in trips[0].reason
    opened = Health(now_ns=utc(2026, 12, 7, 14, 31), stream_since_ns=since, market_last_ns=heard)
    trips = w.check(opened)  # AAPL open for a minute, still silent; BTC already tripped
    assert [t.reason.split()[3] for t in trips] == ["AAPL"]
    assert w.check(opened) == []  # once per episode
    assert w.state()["market_data_silence"] == "tripped"
    fresh = {"AAPL": utc(2026, 12, 7, 14, 32), "BTC": utc(2026, 12, 7, 14, 32)}
    assert w.check(Health(now_ns=utc(2026, 12, 7, 14, 32), stream_since_ns=since,
                          market_last_ns=fresh)) == []
    assert w.state()["market_data_silence"] == "ok"


def test_no_stream_no_silence() -> None:
    w = dogs(market_data_silence={"after_s": 1})
    assert w.check(Health(now_ns=utc(2026, 12, 7, 15, 0))) == []  # a lockstep replay


def test_a_replay_asks_the_calendar_at_its_data_clock() -> None:
    """A replay of a Monday session run on a Saturday: the market it replays is open."""
    w = dogs(market_data_silence={"after_s": 5, "instruments": ["AAPL"]})
    saturday = utc(2026, 12, 12, 15, 0)
    health = Health(now_ns=saturday, stream_since_ns=saturday - 60 * S,
                    market_last_ns={"AAPL": saturday - 10 * S})
    assert w.check(health) == []  # asked at the wall clock: the market is closed
    replayed = Health(now_ns=saturday, stream_since_ns=saturday - 60 * S,
                      market_last_ns={"AAPL": saturday - 10 * S},
                      session_ns=utc(2026, 12, 7, 15, 0))
    trips = w.check(replayed)
    assert [t.reason.split()[3] for t in trips] == ["AAPL"]
    assert "silent for 10 s while its market is open" in trips[0].reason


def test_silence_watches_only_the_instruments_it_names() -> None:
    w = dogs(market_data_silence={"after_s": 5, "instruments": ["AAPL"]})
    now = utc(2026, 12, 7, 15, 0)  # both markets open; BTC never heard: not watched
    assert w.check(Health(now_ns=now, stream_since_ns=now - 60 * S,
                          market_last_ns={"AAPL": now - S})) == []
    with pytest.raises(ConfigError, match="ETH: not an instrument of the session"):
        dogs(market_data_silence={"after_s": 5, "instruments": ["AAPL", "ETH"]})


def test_stale_order_stream_trips_after_the_broker_owes_an_answer_too_long() -> None:
    w = dogs(order_stream_stale={"after_s": 20, "action": "cancel_all_and_halt"})
    t0 = utc(2026, 12, 7, 15, 0)
    assert w.check(Health(now_ns=t0 + 10 * S, exec_waiting_since_ns=t0)) == []
    trips = w.check(Health(now_ns=t0 + 21 * S, exec_waiting_since_ns=t0))
    assert [(t.watchdog, t.action) for t in trips] == [
        ("order_stream_stale", WatchdogAction.CANCEL_ALL_AND_HALT)]
    assert "21 s" in trips[0].reason
    assert w.check(Health(now_ns=t0 + 22 * S, exec_waiting_since_ns=None)) == []
    assert w.state()["order_stream_stale"] == "ok"


def test_unknown_order_storm_cancels_first_then_takes_its_action_if_it_persists() -> None:
    w = dogs(unknown_order_storm={"reports": 5, "window_s": 10, "action": "halt"})
    t0 = utc(2026, 12, 7, 15, 0)
    assert w.check(Health(now_ns=t0, foreign_reports=100)) == []  # a baseline, not a storm
    assert w.check(Health(now_ns=t0 + 1 * S, foreign_reports=103)) == []
    first = w.check(Health(now_ns=t0 + 2 * S, foreign_reports=106))
    assert [t.action for t in first] == [WatchdogAction.CANCEL_ALL]
    assert "6 reports" in first[0].reason
    assert w.check(Health(now_ns=t0 + 5 * S, foreign_reports=110)) == []  # reconciling
    persists = w.check(Health(now_ns=t0 + 12 * S, foreign_reports=120))
    assert [t.action for t in persists] == [WatchdogAction.HALT]
    assert w.check(Health(now_ns=t0 + 13 * S, foreign_reports=125)) == []
    calm = w.check(Health(now_ns=t0 + 30 * S, foreign_reports=125))
    assert calm == [] and w.state()["unknown_order_storm"] == "ok"


def test_a_short_burst_that_stops_is_answered_with_cancels_only() -> None:
    w = dogs(unknown_order_storm={"reports": 3, "window_s": 5})
    t0 = 0
    assert [t.action for t in w.check(Health(now_ns=t0, foreign_reports=0))] == []
    assert [t.action for t in w.check(Health(now_ns=t0 + S, foreign_reports=4))] == [
        WatchdogAction.CANCEL_ALL]
    assert w.check(Health(now_ns=t0 + 7 * S, foreign_reports=4)) == []


def test_inventory_desync_counts_only_drifts_that_last_and_is_on_by_default() -> None:
    w = Watchdogs(WatchdogConfig(), [AAPL])
    thresholds = ReconcileThresholds()
    lost = FillDrift(fill_id="IB-7", known_to="gateway")
    assert w.desync([lost], thresholds) == []  # one run: it may be a report in flight
    trips = w.desync([lost], thresholds)
    assert [(t.watchdog, t.action) for t in trips] == [
        ("inventory_desync", WatchdogAction.CANCEL_ALL_AND_HALT)]
    assert "fill IB-7 known to the gateway only" in trips[0].reason
    assert w.desync([lost], thresholds) == []  # once per episode
    assert w.desync([], thresholds) == [] and w.state()["inventory_desync"] == "ok"


def test_fills_in_flight_never_confirm_a_desync() -> None:
    """A busy session: every run catches some fill between the broker and risk, never the same
    one, and positions apart by the fill in flight at that moment (the same size each time)."""
    w = Watchdogs(WatchdogConfig(), [AAPL])
    thresholds = ReconcileThresholds()
    for run in range(20):
        drifts = [FillDrift(fill_id=f"IB-{run}", known_to="gateway"),
                  PositionDrift(instrument_id="AAPL", gateway=(run + 1) * Q, risk=run * Q,
                                lots=1)]
        assert w.desync(drifts, thresholds) == []


def test_a_fill_in_flight_of_unknown_size_excuses_a_position_drift_only_while_it_flies() -> None:
    w = Watchdogs(WatchdogConfig(), [AAPL])
    thresholds = ReconcileThresholds()
    drift = PositionDrift(instrument_id="AAPL", gateway=5 * Q, risk=3 * Q, lots=2)
    assert [w.desync([drift], thresholds, in_flight={"IB-7": None}) for _ in range(5)] == [
        []] * 5
    assert w.desync([drift], thresholds) == []  # landed: the first run of its own
    assert [t.watchdog for t in w.desync([drift], thresholds)] == ["inventory_desync"]


def test_a_position_apart_by_the_same_amount_while_both_trade_is_a_desync() -> None:
    w = Watchdogs(WatchdogConfig(inventory_desync={"action": "halt", "confirm_runs": 3}), [AAPL])
    thresholds = ReconcileThresholds(halt_position_drift_lots=0)
    for run, last in ((0, []), (1, []), (2, [WatchdogAction.HALT])):
        drift = PositionDrift(instrument_id="AAPL", gateway=(5 + run) * Q, risk=(3 + run) * Q,
                              lots=2)
        assert [t.action for t in w.desync([drift], thresholds)] == last
    small = Watchdogs(WatchdogConfig(), [AAPL])
    within = ReconcileThresholds(halt_position_drift_lots=5)  # within: a drift event, no trip
    drift = PositionDrift(instrument_id="AAPL", gateway=5 * Q, risk=3 * Q, lots=2)
    assert [small.desync([drift], within) for _ in range(5)] == [[]] * 5
    off = Watchdogs(WatchdogConfig(inventory_desync=None), [AAPL])
    assert off.desync([drift], thresholds) == off.desync([drift], thresholds) == []


def test_orders_open_at_one_side_only_are_not_inventory() -> None:
    """A restarted adapter shows risk's open orders only once it has reconciled."""
    w = Watchdogs(WatchdogConfig(), [AAPL])
    orphan = OrderDrift(client_order_id="s-sma-4", open_at="risk")
    assert [w.desync([orphan], ReconcileThresholds()) for _ in range(5)] == [[]] * 5


def test_actions_are_checked_at_load() -> None:
    with pytest.raises(ValidationError, match="action must be one of"):
        WatchdogConfig.model_validate({"order_stream_stale": {"after_s": 5,
                                                              "action": "cancel_all"}})
    with pytest.raises(ValidationError):
        WatchdogConfig.model_validate({"order_stream_stale": {"after_s": 0}})


def test_low_disk_halts_before_a_journal_write_fails_and_clears_above_the_limit() -> None:
    w = Watchdogs(WatchdogConfig(), [AAPL])  # on by default: 256 MB, halt
    assert w.check(Health(now_ns=0, disk_free_bytes=300 * 2**20)) == []
    trips = w.check(Health(now_ns=1, disk_free_bytes=100 * 2**20))
    assert [(t.watchdog, t.action) for t in trips] == [("disk_low", WatchdogAction.HALT)]
    assert "100 MB free" in trips[0].reason
    assert w.check(Health(now_ns=2, disk_free_bytes=50 * 2**20)) == []
    assert w.check(Health(now_ns=3, disk_free_bytes=2**30)) == []
    assert w.state()["disk_low"] == "ok"
    assert w.check(Health(now_ns=4)) == []  # not measured: nothing to say


def test_a_fill_in_flight_is_excused_for_in_flight_runs_only() -> None:
    """A stalled feed: the same fills stay in flight run after run. Past ``in_flight_runs``
    they no longer excuse anything (an unvalued one no longer hides a position drift): they
    are fills known to the gateway only, confirmed in ``confirm_runs``; a fill in flight that
    changes each run (a busy, moving feed) never trips."""
    rule = DesyncRule(in_flight_runs=3, confirm_runs=2)
    w = Watchdogs(WatchdogConfig(inventory_desync=rule), [AAPL])
    thresholds = ReconcileThresholds()
    drift = PositionDrift(instrument_id="AAPL", gateway=5 * Q, risk=3 * Q, lots=2)
    stuck = {"IB-1": None, "IB-2": ("AAPL", Q)}
    assert [w.desync([drift], thresholds, in_flight=stuck) for _ in range(4)] == [[]] * 4
    (trip,) = w.desync([drift], thresholds, in_flight=stuck)
    assert trip.action is WatchdogAction.CANCEL_ALL_AND_HALT
    assert "fill IB-1 reported by the gateway has not reached risk in 5 reconciliations" in (
        trip.reason)
    assert w.desync([], thresholds) == [] and w.state()["inventory_desync"] == "ok"
    moving = Watchdogs(WatchdogConfig(inventory_desync=rule), [AAPL])
    for run in range(20):
        assert moving.desync([drift], thresholds, in_flight={f"IB-{run}": None}) == []


def test_a_released_disk_reserve_cancels_and_halts_until_it_is_held_again() -> None:
    w = dogs()  # on by default, with cancel_all_and_halt
    now = utc(2026, 12, 7, 15, 0)
    assert w.check(Health(now_ns=now)) == [] and w.state()["disk_full"] == "ok"
    note = "/var/s1/risk.journal: SQLITE_FULL: database or disk is full"
    trips = w.check(Health(now_ns=now, disk_full=note))
    assert [(t.watchdog, t.action) for t in trips] == [
        ("disk_full", WatchdogAction.CANCEL_ALL_AND_HALT)]
    assert note in trips[0].reason and "reserve was released" in trips[0].reason
    assert w.check(Health(now_ns=now, disk_full=note)) == []  # once per episode
    assert w.state()["disk_full"] == "tripped"
    assert w.check(Health(now_ns=now)) == [] and w.state()["disk_full"] == "ok"
    assert dogs(disk_full=None).state()["disk_full"] == "off"
    halt = dogs(disk_full={"action": "halt", "reserve_mb": 4})
    assert [t.action for t in halt.check(Health(now_ns=now, disk_full=note))] == [
        WatchdogAction.HALT]


def test_silence_is_counted_to_when_the_stream_was_read() -> None:
    """A health reply that took long to arrive (a busy actor beside it) is not silence."""
    w = dogs(market_data_silence={"after_s": 2, "instruments": ["BTC"]})
    read = utc(2026, 12, 7, 15, 0)
    late = Health(now_ns=read + 5 * S, stream_since_ns=read - 60 * S,
                  market_last_ns={"BTC": read - S}, market_now_ns=read)
    assert w.check(late) == []
    silent = Health(now_ns=read + 5 * S, stream_since_ns=read - 60 * S,
                    market_last_ns={"BTC": read - 3 * S}, market_now_ns=read)
    assert [t.reason.split()[3] for t in w.check(silent)] == ["BTC"]


def test_a_broker_gap_confirms_over_the_adapters_runs_and_an_unsettled_run_keeps_its_count(
) -> None:
    """The broker's own position apart from our fills trips after ``confirm_runs`` of the
    adapter's reconciliations that find it (looking twice at one run counts once); a run that
    could not compare the instrument (a fill of ours raced the read) neither confirms nor clears
    it; a settled run without it clears it."""
    w, thresholds = dogs(), ReconcileThresholds()
    gap = BrokerGap(instrument_id="BTC", broker=0, ours=3 * Q, lots=3)

    def run(n: int, *gaps: BrokerGap, unsettled: frozenset[str] = frozenset()) -> list[str]:
        found = BrokerPositions(run=n, gaps=gaps, unsettled=unsettled)
        return [t.reason for t in w.desync([], thresholds, broker=found)]

    assert run(1, gap) == [] and run(1, gap) == []  # one run, looked at twice
    assert run(2, unsettled=frozenset({"BTC"})) == []  # raced: the count stands at 1
    (reason,) = run(3, gap)
    assert "position BTC: the broker 0 vs our fills 3 (3 lot(s) apart)" in reason
    assert run(4) == [] and run(5, gap) == []  # settled and clean: cleared, counting again
    assert run(6, unsettled=frozenset({"AAPL"})) == []  # another instrument unsettled: cleared
    assert run(7, gap) == []
    assert len(run(8, gap)) == 1
