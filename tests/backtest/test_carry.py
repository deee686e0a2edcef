"""Funding on perpetuals and borrow on shorts, charged in a backtest to the exact amount."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backtest.api import run_backtest
from runtime.messages import Bar
from runtime.strategy import NoParams, Strategy
from runtime.values import fixed

H = 3600 * 10**9
DAY = 24 * H
T0 = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z, a Monday


class HoldThenExit(Strategy[NoParams]):
    """Holds ``target`` from the first bar; flat from the bar at ``exit_h`` hours on."""

    target = fixed(2)
    exit_h = 30

    def on_bar(self, bar: Bar) -> None:
        late = bar.ts_event >= T0 + self.exit_h * H
        self.target_position(bar.instrument_id, 0 if late else self.target)


class ShortThenCover(HoldThenExit):
    target = fixed(-10)
    exit_h = 24 * 6  # covers on Sunday


def _bars(path: Path, hours: int, price: str) -> Path:
    rows = ["timestamp,open,high,low,close,volume"]
    rows += [f"{(T0 + h * H) // 10**9},{price},{price},{price},{price},1000" for h in range(hours)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _config(tmp_path: Path, instrument: dict[str, Any], data: list[dict[str, Any]],
            strategy: str) -> dict[str, Any]:
    return {
        "name": "carry", "seed": 1, "initial_cash": 10_000,
        "instruments": [instrument],
        "data": data,
        "strategies": [{"id": "s", "class": f"{__name__}:{strategy}",
                        "instruments": [instrument["id"]]}],
        "venue": {"latency": {"kind": "constant", "entry_ns": 0, "response_ns": 0},
                  "fills": {"kind": "bars", "price": "next_open"},
                  "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 0}},
        "output_dir": str(tmp_path / "runs"),
    }


@pytest.fixture
def perp_run(tmp_path: Path) -> Any:
    bars = _bars(tmp_path / "perp.csv", 48, "100")
    funding = tmp_path / "funding.csv"
    # Binance's funding history: fundingTime, fundingRate, markPrice (settled rates); the
    # 00:00 rate comes before the position opens; the 40:00 one after it closed
    funding.write_text(
        "fundingTime,fundingRate,markPrice\n"
        f"{T0 // 10**6},0.0003,100\n"
        f"{(T0 + 8 * H) // 10**6},0.0001,100\n"
        f"{(T0 + 16 * H) // 10**6},-0.0002,101\n"
        f"{(T0 + 24 * H) // 10**6},0.00015,0\n"
        f"{(T0 + 40 * H) // 10**6},0.0005,100\n"
    )
    instrument = {"id": "BTC-PERP", "asset_class": "crypto", "price_precision": 2,
                  "size_precision": 3, "lot_size": "0.001", "min_quantity": "0.001"}
    data = [{"kind": "bars", "instrument": "BTC-PERP", "path": str(bars), "interval": "1h"},
            {"kind": "funding", "instrument": "BTC-PERP", "path": str(funding)}]
    return run_backtest(_config(tmp_path, instrument, data, "HoldThenExit"), write=True)


def test_funding_is_charged_on_the_open_position_at_each_funding_time(perp_run: Any) -> None:
    carry = perp_run.carry
    assert list(carry["kind"]) == ["funding"] * 3
    # long 2 from 01:00 (the bar at 00:00 fills at the next open) to 31:00:
    # 08:00 pays 2*100*0.0001; 16:00 receives 2*101*0.0002 (its own mark); 00:00 pays
    # 2*100*0.00015 at the last mark (the rate came without one)
    assert list(carry["amount"]) == [-0.02, 0.0404, -0.03]
    assert list(carry["ts_event"]) == [T0 + 8 * H, T0 + 16 * H, T0 + 24 * H]
    strategy = perp_run.metrics["strategy"]
    assert strategy["funding"] == pytest.approx(-0.0096)
    assert strategy["borrow_paid"] == 0
    # the equity curve carries the cash: flat price, no fees, so equity moves by funding only
    assert perp_run.equity["equity"].iloc[-1] == pytest.approx(10_000 - 0.0096)
    assert perp_run.account.funding == fixed("-0.0096")
    assert perp_run.account.equity == fixed(10_000) - fixed("0.0096")


def test_funding_is_in_the_report_files_and_the_state_hash(perp_run: Any) -> None:
    run_dir = perp_run.run_dir
    assert (run_dir / "carry.csv").read_text().count("funding") == 3
    report = (run_dir / "report.html").read_text()
    assert "Funding (received − paid)" in report and 'id="carry"' in report
    assert report.count("<td class=\"\">Funding</td>") == 3
    assert perp_run.manifest["state_hash"] == perp_run.state_hash


def test_the_same_run_twice_gives_the_same_state_and_a_rate_change_another(
    tmp_path: Path, perp_run: Any
) -> None:
    bars = _bars(tmp_path / "b.csv", 48, "100")
    funding = tmp_path / "f.csv"
    lines = ["fundingTime,fundingRate,markPrice",
             f"{(T0 + 8 * H) // 10**6},0.0001,100",
             f"{(T0 + 16 * H) // 10**6},-0.0002,101",
             f"{(T0 + 24 * H) // 10**6},0.00015,0"]
    funding.write_text("\n".join(lines) + "\n")
    instrument = {"id": "BTC-PERP", "asset_class": "crypto", "price_precision": 2,
                  "size_precision": 3, "lot_size": "0.001", "min_quantity": "0.001"}
    data = [{"kind": "bars", "instrument": "BTC-PERP", "path": str(bars), "interval": "1h"},
            {"kind": "funding", "instrument": "BTC-PERP", "path": str(funding)}]
    config = _config(tmp_path, instrument, data, "HoldThenExit")
    a = run_backtest(config, write=False)
    b = run_backtest(config, write=False)
    assert a.state_hash == b.state_hash
    assert list(a.carry["amount"]) == [-0.02, 0.0404, -0.03]
    lines[2] = f"{(T0 + 16 * H) // 10**6},-0.0003,101"
    funding.write_text("\n".join(lines) + "\n")
    c = run_backtest(config, write=False)
    assert list(c.carry["amount"]) == [-0.02, 0.0606, -0.03]
    assert c.state_hash != a.state_hash


def test_borrow_accrues_daily_on_a_short_from_the_configured_rate(tmp_path: Path) -> None:
    bars = _bars(tmp_path / "stk.csv", 24 * 7, "50")
    instrument = {"id": "STK", "price_precision": 2, "borrow_rate_pct": "3.6"}
    data = [{"kind": "bars", "instrument": "STK", "path": str(bars), "interval": "1h"}]
    result = run_backtest(_config(tmp_path, instrument, data, "ShortThenCover"), write=False)
    carry = result.carry
    # short 10 at 50 from Monday 01:00 to Sunday 01:00: six midnights, 500 * 3.6% / 360 each
    assert list(carry["kind"]) == ["borrow"] * 6
    assert list(carry["amount"]) == [-0.05] * 6
    assert list(carry["ts_event"]) == [T0 + d * DAY for d in range(1, 7)]
    assert result.metrics["strategy"]["borrow_paid"] == pytest.approx(0.3)
    assert result.account.borrow == fixed("0.3")
    assert result.equity["equity"].iloc[-1] == pytest.approx(10_000 - 0.3)


def test_a_borrow_rate_series_overrides_the_configured_rate(tmp_path: Path) -> None:
    bars = _bars(tmp_path / "stk.csv", 24 * 7, "50")
    borrow = tmp_path / "borrow.csv"
    # from Wednesday noon the stock is hard to borrow: 36% a year
    borrow.write_text(f"timestamp,rate\n{(T0 + 2 * DAY + 12 * H) // 10**9},0.36\n")
    instrument = {"id": "STK", "price_precision": 2, "borrow_rate_pct": "3.6"}
    data = [{"kind": "bars", "instrument": "STK", "path": str(bars), "interval": "1h"},
            {"kind": "borrow", "instrument": "STK", "path": str(borrow)}]
    result = run_backtest(_config(tmp_path, instrument, data, "ShortThenCover"), write=False)
    assert list(result.carry["amount"]) == [-0.05, -0.05, -0.5, -0.5, -0.5, -0.5]
    assert list(result.carry["rate"]) == [0.036, 0.036, 0.36, 0.36, 0.36, 0.36]
