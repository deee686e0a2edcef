"""Metrics against hand-computed values, round trips (partial fills, flips), baselines, JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.metrics import (
    buy_and_hold_equity,
    compare_baselines,
    compute_metrics,
    drawdown_series,
    infer_periods_per_year,
    metrics_to_json,
    no_trade_equity,
    round_trips,
)
from runtime.errors import DataError

DAY_NS = 86_400 * 1_000_000_000


def daily(values: list[float], start: str = "2024-01-01") -> pd.Series:
    index = pd.date_range(start, periods=len(values), freq="D", tz="UTC")
    return pd.Series(values, index=index, dtype="float64")


def fills_frame(rows: list[tuple[int, str, int, float, float, float]]) -> pd.DataFrame:
    columns = ["ts_event", "instrument_id", "side", "qty", "price", "fee"]
    return pd.DataFrame.from_records(rows, columns=columns)


def ns(series: pd.Series, i: int) -> int:
    return int(series.index[i].as_unit("ns").value)


# --------------------------------------------------------------------------- equity metrics


def test_small_series_by_hand() -> None:
    equity = daily([100.0, 110.0, 99.0, 120.0])
    m = compute_metrics(equity, None, periods_per_year=252)
    assert m["total_return"] == pytest.approx(0.20)
    assert m["max_drawdown"] == pytest.approx(0.10)  # 110 → 99
    assert m["max_drawdown_duration_periods"] == 2  # peak on day 1, back above it on day 3
    assert m["max_drawdown_duration_s"] == 2 * 86_400
    assert m["periods"] == 3
    rets = np.array([0.10, -0.10, 120 / 99 - 1])
    assert m["volatility"] == pytest.approx(rets.std(ddof=1) * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(rets.mean() / rets.std(ddof=1) * math.sqrt(252))
    years = 3 / 365.25
    assert m["cagr"] == pytest.approx(1.2 ** (1 / years) - 1)
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.10)


def test_drawdown_still_open_at_the_end_counts_to_the_last_point() -> None:
    m = compute_metrics(daily([100.0, 120.0, 90.0, 100.0, 110.0]), None, periods_per_year=252)
    assert m["max_drawdown"] == pytest.approx(0.25)
    assert m["max_drawdown_duration_periods"] == 3
    assert m["max_drawdown_duration_s"] == 3 * 86_400
    dd = drawdown_series(daily([100.0, 120.0, 90.0]))
    assert dd.tolist() == pytest.approx([0.0, 0.0, -0.25])


def test_known_sharpe_and_sortino_of_an_alternating_series() -> None:
    up, down, n = 0.02, -0.01, 100  # returns alternate up, down
    rets = np.tile([up, down], n // 2)
    equity = daily(list(100.0 * np.concatenate(([1.0], np.cumprod(1 + rets)))))
    m = compute_metrics(equity, None, periods_per_year=252)
    mean, sd = (up + down) / 2, math.sqrt(n / (n - 1)) * (up - down) / 2
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(252))
    downside = math.sqrt(down**2 / 2)  # half the periods lose `down`
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(252))
    assert m["volatility"] == pytest.approx(sd * math.sqrt(252))


def test_risk_free_rate_lowers_sharpe_by_its_per_period_rate() -> None:
    rets = np.tile([0.02, -0.01], 50)
    equity = daily(list(100.0 * np.concatenate(([1.0], np.cumprod(1 + rets)))))
    m = compute_metrics(equity, None, periods_per_year=252, risk_free=0.05)
    rf = 1.05 ** (1 / 252) - 1
    assert m["sharpe"] == pytest.approx((rets.mean() - rf) / rets.std(ddof=1) * math.sqrt(252))


def test_cagr_of_a_doubling_over_one_calendar_year() -> None:
    start = pd.Timestamp("2023-01-01", tz="UTC")
    equity = pd.Series([100.0, 200.0], index=[start, start + pd.Timedelta(days=365.25)])
    assert compute_metrics(equity, None, periods_per_year=1)["cagr"] == pytest.approx(1.0)


def test_int_ns_index_gives_the_same_metrics_as_datetimes() -> None:
    equity = daily([100.0, 104.0, 101.0, 107.0, 103.0])
    as_ints = pd.Series(equity.to_numpy(), index=pd.DatetimeIndex(equity.index).as_unit("ns").asi8)
    a = compute_metrics(equity, None)
    b = compute_metrics(as_ints, None)
    assert metrics_to_json(a) == metrics_to_json(b)


# --------------------------------------------------------------------------- edge cases and JSON


def test_flat_equity_without_fills_is_well_defined() -> None:
    m = compute_metrics(daily([1000.0] * 10), None)
    assert m["total_return"] == 0.0 and m["volatility"] == 0.0 and m["max_drawdown"] == 0.0
    assert m["max_drawdown_duration_s"] == 0.0 and m["exposure"] == 0.0
    assert m["fills"] == 0 and m["trades"] == 0 and m["fees_paid"] == 0.0
    assert m["turnover_total"] == 0.0
    for undefined in ("sharpe", "sortino", "calmar", "hit_rate", "profit_factor"):
        assert math.isnan(m[undefined]), undefined


def test_single_point_and_empty_series() -> None:
    one = compute_metrics(daily([500.0]), None)
    assert one["total_return"] == 0.0 and one["max_drawdown"] == 0.0
    assert math.isnan(one["cagr"]) and math.isnan(one["sharpe"]) and math.isnan(one["volatility"])
    empty = compute_metrics(pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float), None)
    assert math.isnan(empty["total_return"]) and empty["fills"] == 0
    json.loads(metrics_to_json(empty))


def test_metrics_to_json_is_strict_and_nan_safe() -> None:
    m = compute_metrics(daily([1000.0, 1000.0]), None)
    m["profit_factor"] = math.inf
    nested = {"strategy": m, "other": {"x": np.float64("nan"), "n": np.int64(3), "l": [-math.inf]}}
    text = metrics_to_json(nested)
    assert "NaN" not in text and "Infinity" not in text
    decoded = json.loads(text)
    assert decoded["strategy"]["sharpe"] is None
    assert decoded["strategy"]["profit_factor"] is None
    assert decoded["other"] == {"x": None, "n": 3, "l": [None]}


def test_bad_inputs_are_data_errors() -> None:
    with pytest.raises(DataError, match="NaN"):
        compute_metrics(daily([1.0, float("nan")]), None)
    with pytest.raises(DataError, match="sorted"):
        compute_metrics(daily([1.0, 2.0]).iloc[::-1], None)
    with pytest.raises(DataError, match="fee"):
        compute_metrics(
            daily([1.0, 2.0]),
            pd.DataFrame({"ts_event": [1], "side": [1]}).assign(
                instrument_id="A", qty=1.0, price=1.0
            ),
        )


# --------------------------------------------------------------------------- annualisation


def _ns(index: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(index.as_unit("ns").asi8)


def test_infer_periods_per_year() -> None:
    assert infer_periods_per_year(_ns(pd.bdate_range("2020-01-01", "2021-01-01"))) == 252
    days = pd.bdate_range("2024-01-01", "2024-03-01")
    session = [pd.date_range(d + pd.Timedelta("14.5h"), periods=390, freq="min") for d in days]
    assert infer_periods_per_year(np.concatenate([_ns(s) for s in session])) == 390 * 252
    assert infer_periods_per_year(_ns(session[0])) == 390 * 252  # one session alone
    crypto = pd.date_range("2024-01-01", periods=5000, freq="min")
    assert infer_periods_per_year(_ns(crypto)) == pytest.approx(1440 * 365.25)
    assert infer_periods_per_year(_ns(pd.date_range("2020-01-01", periods=60, freq="W"))) == 52
    assert infer_periods_per_year(_ns(pd.date_range("2020-01-01", periods=60, freq="MS"))) == 12
    assert math.isnan(infer_periods_per_year(np.array([5], dtype=np.int64)))


# --------------------------------------------------------------------------- round trips


def test_round_trips_with_partial_fills_and_a_flip() -> None:
    fills = fills_frame([
        (1, "A", 1, 60.0, 10.0, 1.0),   # open long in two partial fills
        (2, "A", 1, 40.0, 11.0, 1.0),
        (3, "A", -1, 50.0, 12.0, 1.0),  # partial close, FIFO against the 60 @ 10
        (4, "A", -1, 100.0, 13.0, 2.0),  # closes 50 (10 @ 10, 40 @ 11), flips short 50
        (5, "A", 1, 50.0, 12.0, 1.0),   # covers the short
    ])  # fmt: skip
    trips = round_trips(fills)
    assert len(trips) == 2
    long, short = trips.iloc[0], trips.iloc[1]
    assert (long.direction, long.entry_ts, long.exit_ts, long.qty) == (1, 1, 4, 100.0)
    assert long.entry_price == pytest.approx(10.4) and long.exit_price == pytest.approx(12.5)
    assert long.gross_pnl == pytest.approx(50 * 2 + 10 * 3 + 40 * 2)
    assert long.fees == pytest.approx(1 + 1 + 1 + 1)  # half the flip's fee
    assert (short.direction, short.entry_ts, short.exit_ts, short.qty) == (-1, 4, 5, 50.0)
    assert short.gross_pnl == pytest.approx(50.0) and short.fees == pytest.approx(2.0)
    assert short.net_pnl == pytest.approx(48.0)


def test_round_trips_are_per_instrument_and_open_positions_are_not_trips() -> None:
    fills = fills_frame([
        (1, "A", 1, 10.0, 100.0, 0.0), (2, "B", -1, 5.0, 50.0, 0.0),
        (3, "A", -1, 10.0, 90.0, 0.0), (4, "B", 1, 2.0, 40.0, 0.0),
    ])  # fmt: skip
    trips = round_trips(fills)
    assert trips["instrument_id"].tolist() == ["A"]
    assert trips["net_pnl"].tolist() == pytest.approx([-100.0])
    m = compute_metrics(daily([1000.0] * 5, "1970-01-01"), fills)
    assert m["open_positions"] == 1 and m["trades"] == 1 and m["fills"] == 4


def test_hit_rate_and_profit_factor_use_net_pnl() -> None:
    fills = fills_frame([
        (1, "A", 1, 1.0, 100.0, 1.0), (2, "A", -1, 1.0, 112.0, 1.0),  # +12 − 2 = +10
        (3, "A", -1, 1.0, 100.0, 0.5), (4, "A", 1, 1.0, 94.0, 0.5),   # short: +6 − 1 = +5
        (5, "A", 1, 2.0, 100.0, 0.0), (6, "A", -1, 2.0, 97.5, 0.0),   # −5
        (7, "A", 1, 1.0, 100.0, 1.0), (8, "A", -1, 1.0, 101.0, 1.0),  # +1 − 2 = −1
    ])  # fmt: skip
    m = compute_metrics(daily([1000.0] * 10, "1970-01-01"), fills)
    assert m["trades"] == 4 and m["fills"] == 8
    assert m["hit_rate"] == pytest.approx(0.5)
    assert m["gross_profit"] == pytest.approx(15.0) and m["gross_loss"] == pytest.approx(6.0)
    assert m["profit_factor"] == pytest.approx(2.5)
    assert m["fees_paid"] == pytest.approx(5.0)
    winners_only = compute_metrics(daily([1000.0] * 3, "1970-01-01"), fills.iloc[:2])
    assert winners_only["profit_factor"] == math.inf
    assert json.loads(metrics_to_json(winners_only))["profit_factor"] is None


def _flat_fills(draws: list[tuple[int, int, int]]) -> pd.DataFrame:
    rows, position = [], 0
    for i, (side, qty, price) in enumerate(draws):
        rows.append((i, "X", side, float(qty), float(price), qty * 0.01))
        position += side * qty
    if position:
        rows.append((len(rows), "X", -1 if position > 0 else 1, float(abs(position)), 100.0, 0.0))
    return fills_frame(rows)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, -1]), st.integers(1, 50), st.integers(50, 150)),
                min_size=1, max_size=30))  # fmt: skip
def test_round_trip_pnl_adds_up_to_the_cash_flows_of_a_flat_book(
    draws: list[tuple[int, int, int]],
) -> None:
    fills = _flat_fills(draws)
    trips = round_trips(fills)
    cash = float((-fills.side * fills.qty * fills.price).sum() - fills.fee.sum())
    assert trips["net_pnl"].sum() == pytest.approx(cash, abs=1e-6)
    assert trips["fees"].sum() == pytest.approx(fills.fee.sum(), abs=1e-9)
    assert (trips["exit_ts"] >= trips["entry_ts"]).all()


# --------------------------------------------------------------------------- exposure, turnover


def test_exposure_from_fills_and_from_position_values() -> None:
    equity = daily([1000.0] * 11)  # ten days
    fills = fills_frame([
        (ns(equity, 2), "A", 1, 1.0, 100.0, 0.0), (ns(equity, 6), "A", -1, 1.0, 100.0, 0.0),
    ])  # fmt: skip
    assert compute_metrics(equity, fills)["exposure"] == pytest.approx(0.4)
    values = pd.Series([0, 0, 100, 100, 100, 100, 0, 0, 0, 0, 0.0], index=equity.index)
    m = compute_metrics(equity, fills, position_values=values)
    assert m["exposure"] == pytest.approx(0.4)
    assert m["avg_gross_exposure"] == pytest.approx(0.4 * 0.1)


def test_turnover_total_and_annualised() -> None:
    equity = daily([1000.0] * 3)
    fills = fills_frame([
        (ns(equity, 0), "A", 1, 10.0, 100.0, 0.0), (ns(equity, 1), "A", -1, 10.0, 100.0, 0.0),
    ])  # fmt: skip
    m = compute_metrics(equity, fills)
    assert m["traded_notional"] == pytest.approx(2000.0)
    assert m["turnover_total"] == pytest.approx(2.0)
    assert m["turnover_annual"] == pytest.approx(2.0 / (2 / 365.25))


# --------------------------------------------------------------------------- baselines


def test_buy_and_hold_pays_its_entry_fee_and_no_trade_stays_flat() -> None:
    prices = daily([10.0, 11.0, 12.0])
    assert buy_and_hold_equity(prices, 1000.0).tolist() == pytest.approx([1000, 1100, 1200])
    with_fee = buy_and_hold_equity(prices, 1000.0, fee_fn=lambda q, p: 0.01 * q * p)
    # 99 units (1% fee on 100 units leaves room for 99), fee 9.90, cash left 0.10
    assert with_fee.tolist() == pytest.approx([990.1, 1089.1, 1188.1])
    flat = no_trade_equity(prices.index, 1000.0)
    assert flat.tolist() == [1000.0] * 3 and flat.index.equals(prices.index)


def test_compare_baselines_structure_and_values() -> None:
    equity = daily([1000.0, 1010.0, 1005.0, 1030.0])
    prices = daily([50.0, 55.0, 45.0, 60.0], start="2023-12-31")  # one extra leading day
    fills = fills_frame([
        (ns(equity, 0), "A", 1, 1.0, 50.0, 0.5), (ns(equity, 3), "A", -1, 1.0, 60.0, 0.5),
    ])  # fmt: skip
    result = compare_baselines(equity, fills, prices)
    assert set(result) == {"strategy", "buy_and_hold", "no_trade"}
    assert result["strategy"]["total_return"] == pytest.approx(0.03)
    bh = result["buy_and_hold"]  # sampled at the equity's days: 55, 45, 60, (60)
    assert bh["total_return"] == pytest.approx(60.0 / 55.0 - 1.0)
    assert bh["exposure"] == pytest.approx(1.0) and bh["fills"] == 1 and bh["trades"] == 0
    assert result["no_trade"]["total_return"] == 0.0
    assert result["no_trade"]["max_drawdown"] == 0.0
    assert math.isnan(result["no_trade"]["sharpe"])
    ppy = {name: m["periods_per_year"] for name, m in result.items()}
    assert set(ppy.values()) == {252.0}
    json.loads(metrics_to_json(result))
