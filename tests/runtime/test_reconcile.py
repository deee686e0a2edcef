"""Reconciliation: drifts and the recommended trading state; properties with hypothesis."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runtime.messages import Liquidity, OrderFilled, OrderSide, TradingState
from runtime.reconcile import (
    FillDrift,
    OrderDrift,
    PositionDrift,
    ReconcileThresholds,
    View,
    as_of,
    landed,
    reconcile,
)
from runtime.values import fixed

LOT = fixed("1")
DEFAULT = ReconcileThresholds(halt_position_drift_lots=2)

instruments = st.sampled_from(["A", "B", "C", "D"])
ids = st.sampled_from([f"x{i}" for i in range(8)])
views = st.builds(
    View.of,
    st.dictionaries(instruments, st.integers(-5, 5).map(lambda q: q * LOT // 2)),
    st.frozensets(ids),
    st.frozensets(ids),
)
thresholds = st.builds(
    ReconcileThresholds,
    halt_position_drift_lots=st.integers(0, 4),
    position_drift_state=st.sampled_from(list(TradingState)),
    orphan_order_state=st.sampled_from(list(TradingState)),
    fill_drift_state=st.sampled_from(list(TradingState)),
)


def swapped(drift: object) -> object:
    other = {"gateway": "risk", "risk": "gateway"}
    if isinstance(drift, PositionDrift):
        return PositionDrift(instrument_id=drift.instrument_id, gateway=drift.risk,
                             risk=drift.gateway, lots=drift.lots)
    if isinstance(drift, OrderDrift):
        return OrderDrift(client_order_id=drift.client_order_id, open_at=other[drift.open_at])
    assert isinstance(drift, FillDrift)
    return FillDrift(fill_id=drift.fill_id, known_to=other[drift.known_to])


@given(views, views, thresholds)
def test_no_drift_iff_the_views_are_identical(g: View, r: View, t: ReconcileThresholds) -> None:
    report = reconcile(g, r, thresholds=t)
    assert report.clean == (g == r)
    if report.clean:
        assert report.state is TradingState.ACTIVE and report.reasons == ()


@given(views, views, thresholds)
def test_reporting_is_symmetric(g: View, r: View, t: ReconcileThresholds) -> None:
    forward, backward = reconcile(g, r, thresholds=t), reconcile(r, g, thresholds=t)
    assert {swapped(d) for d in forward.drifts} == set(backward.drifts)
    assert forward.state == backward.state


@given(views, views)
def test_every_difference_is_reported_once_with_both_values(g: View, r: View) -> None:
    report = reconcile(g, r, thresholds=DEFAULT)
    positions = {d.instrument_id: d for d in report.drifts if isinstance(d, PositionDrift)}
    for instrument in g.positions.keys() | r.positions.keys():
        if g.position(instrument) != r.position(instrument):
            d = positions.pop(instrument)
            assert (d.gateway, d.risk) == (g.position(instrument), r.position(instrument))
    assert not positions
    orders = [d.client_order_id for d in report.drifts if isinstance(d, OrderDrift)]
    fills = [d.fill_id for d in report.drifts if isinstance(d, FillDrift)]
    assert sorted(orders) == sorted(g.open_orders ^ r.open_orders)
    assert sorted(fills) == sorted(g.fills ^ r.fills)


@given(views, views, thresholds)
def test_the_state_is_the_most_severe_rule_that_fired(
    g: View, r: View, t: ReconcileThresholds
) -> None:
    report = reconcile(g, r, thresholds=t)
    fired = [TradingState.ACTIVE]
    for d in report.drifts:
        if isinstance(d, FillDrift):
            fired.append(t.fill_drift_state)
        elif isinstance(d, OrderDrift):
            fired.append(t.orphan_order_state)
        else:
            over = d.lots > t.halt_position_drift_lots
            fired.append(TradingState.HALTED if over else t.position_drift_state)
    order = [TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED]
    assert report.state == max(fired, key=order.index)


def test_default_rules() -> None:
    base = View.of({"A": 3 * LOT}, ["o1"], ["f1"])
    assert reconcile(base, base, thresholds=DEFAULT).state is TradingState.ACTIVE
    orphan = View.of({"A": 3 * LOT}, [], ["f1"])
    assert reconcile(base, orphan, thresholds=DEFAULT).state is TradingState.REDUCING
    small = View.of({"A": 1 * LOT}, ["o1"], ["f1"])  # 2 lots: within the threshold
    assert reconcile(base, small, thresholds=DEFAULT).state is TradingState.REDUCING
    large = View.of({"A": -LOT // 2}, ["o1"], ["f1"])  # 3.5 lots ⇒ 4 > 2
    report = reconcile(base, large, thresholds=DEFAULT)
    assert report.state is TradingState.HALTED
    assert report.drifts == (PositionDrift(instrument_id="A", gateway=3 * LOT, risk=-LOT // 2,
                                           lots=4),)
    unknown_fill = View.of({"A": 3 * LOT}, ["o1"], ["f1", "f2"])
    report = reconcile(base, unknown_fill, thresholds=DEFAULT)
    assert report.state is TradingState.HALTED
    assert report.events() == [{"fill_id": "f2", "known_to": "risk", "kind": "fill_drift",
                                "recommended_state": "halted",
                                "message": "fill f2 known to the risk only"}]
    (event,) = reconcile(base, large, thresholds=DEFAULT).events()
    assert event["message"] == "position A: gateway 3 vs risk -0.5 (4 lot(s) apart)"


def test_lot_sizes_per_instrument_and_zero_positions_are_no_positions() -> None:
    t = ReconcileThresholds(halt_position_drift_lots=1, lot_sizes={"TW": fixed("1000")})
    report = reconcile(View.of({"TW": fixed("1500")}), View.of({"TW": fixed("1000")}),
                       thresholds=t)
    assert report.drifts[0].lots == 1 and report.state is TradingState.REDUCING  # type: ignore[union-attr]
    assert reconcile(View.of({"A": 0}), View.of(), thresholds=t).clean
    assert View.from_dict({"positions": {"A": 0, "B": 5}, "open_orders": ["o"]}) == View.of(
        {"B": 5}, ["o"])


def _fill(fill_id: str, qty: int) -> OrderFilled:
    return OrderFilled(seq=1, ts_event=1, ts_init=1, client_order_id="o", strategy_id="s",
                       instrument_id="SIM-A", venue_order_id="v", fill_id=fill_id,
                       side=OrderSide.BUY if qty > 0 else OrderSide.SELL, last_qty=abs(qty),
                       last_price=1, cum_qty=abs(qty), leaves_qty=0, fee=0, currency="USD",
                       liquidity=Liquidity.TAKER)


def test_as_of_takes_fills_beyond_the_watermark_out_of_fills_and_positions() -> None:
    reports = [_fill("f1", 5), _fill("f2", 3), _fill("f3", -2)]
    gateway = View.of({"SIM-A": 6 + 4}, (), ["f1", "f2", "f3", "f4"])  # f4: not reported yet
    view = as_of(gateway, reports, 1)
    assert view.fills == {"f1"} and view.in_flight == {
        "f2": ("SIM-A", 3), "f3": ("SIM-A", -2), "f4": None}
    assert view.positions == {"SIM-A": 10 - 3 + 2} and _unvalued(view) == 1
    assert View.from_dict(view.to_dict()) == view
    assert as_of(gateway, reports, 3).in_flight == {"f4": None}
    whole = View.of({"SIM-A": 6}, (), ["f1", "f2", "f3"])
    assert as_of(whole, reports, 3) == whole  # nothing in flight: the view itself
    risk = View.of({"SIM-A": 5}, (), ["f1"])
    assert reconcile(as_of(gateway, reports, 1), risk, thresholds=ReconcileThresholds()).drifts \
        == (PositionDrift(instrument_id="SIM-A", gateway=9, risk=5, lots=1),)


def test_fills_in_flight_that_risk_holds_already_landed() -> None:
    """The watermark was read before risk's view: risk may hold fills beyond it. Those go
    back into the gateway's fills and positions; the others stay in flight."""
    reports = [_fill("f1", 5), _fill("f2", 3), _fill("f3", -2)]
    gateway = as_of(View.of({"SIM-A": 6 + 4}, (), ["f1", "f2", "f3", "f4"]), reports, 1)
    risk = View.of({"SIM-A": 8}, (), ["f1", "f2"])
    view = landed(gateway, risk)
    assert view.fills == {"f1", "f2"} and view.in_flight == {"f3": ("SIM-A", -2), "f4": None}
    assert view.positions == {"SIM-A": 12} and _unvalued(view) == 1
    assert landed(gateway, View.of({"SIM-A": 5}, (), ["f1"])) == gateway
    everything = View.of({"SIM-A": 10}, (), ["f1", "f2", "f3", "f4"])
    assert landed(as_of(everything, reports, 3), everything) == everything


def _unvalued(view: View) -> int:
    """Fills in flight whose quantity is still in the view's positions."""
    return sum(v is None for v in view.in_flight.values())
