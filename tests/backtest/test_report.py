"""The HTML report: one self-contained file with charts, metrics, trades, escaped text."""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.metrics import buy_and_hold_equity, compare_baselines, compute_metrics
from backtest.report import data_text, write_report
from backtest.report_charts import (
    MarketAxis,
    downsample_minmax,
    fmt_duration,
    fmt_pct,
    svg_time_chart,
)

CHROMIUM = Path("/usr/bin/chromium")
EVIL = '<script>alert("x")</script>'


@pytest.fixture
def run() -> dict[str, object]:
    """A small hourly run: a long/flat strategy on a random walk, with its baselines."""
    rng = np.random.default_rng(3)
    n = 3000
    index = pd.date_range("2023-03-01", periods=n, freq="h", tz="UTC")
    prices = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.003, n))), index=index)
    held = (np.arange(n) // 100) % 2  # in the market every other 100 hours
    steps = np.flatnonzero(np.diff(held, prepend=0))
    ts = index.as_unit("ns").asi8
    px = prices.to_numpy()
    fills = pd.DataFrame({
        "ts_event": ts[steps], "instrument_id": f"AAA{EVIL}",
        "side": np.where(held[steps] > 0, 1, -1), "qty": 10.0, "price": px[steps], "fee": 1.0,
    })  # fmt: skip
    trade = np.diff(held, prepend=0) * 10.0
    cash = 10_000 - np.cumsum(trade * px + np.abs(trade) / 10.0)
    equity = pd.Series(cash + held * 10.0 * px, index=index)
    metrics = compare_baselines(equity, fills, prices)
    manifest = {
        "strategy": {"class": f"strategies.x:Evil{EVIL}", "params": {"n": 100}},
        "dataset": "var/data/aaa.parquet", "config_hash": "cfg123abc", "seed": 7,
        "code_version": "abc1234",
    }  # fmt: skip
    orders = pd.DataFrame({"ts_init": fills.ts_event, "client_order_id": "O<1>", "qty": fills.qty})
    return {
        "run_id": f"run-1{EVIL}", "manifest": manifest, "metrics": metrics, "equity": equity,
        "fills": fills, "orders": orders,
        "baseline_equity": {"Buy & hold": buy_and_hold_equity(prices, 10_000)},
        "prices": {f"AAA{EVIL}": prices},
    }  # fmt: skip


def test_writes_one_self_contained_file_with_charts_and_metrics(
    tmp_path: Path, run: dict[str, object]
) -> None:
    out = write_report(tmp_path / "sub" / "report.html", **run)  # type: ignore[arg-type]
    assert out == tmp_path / "sub" / "report.html" and out.is_file()
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]
    page = out.read_text(encoding="utf-8")
    assert page.count('<svg class="chart"') == 3  # price, equity and underwater charts
    assert "<path d=" in page and "Date (UTC)" in page
    for label in ("Sharpe ratio", "Max drawdown", "Hit rate", "Buy &amp; hold", "No trade"):
        assert label in page
    strategy = run["metrics"]["strategy"]  # type: ignore[index]
    assert fmt_pct(strategy["total_return"]) in page
    assert "cfg123abc" in page and "abc1234" in page and ">7<" in page
    # No network, no scripts: only the SVG namespace URL appears.
    assert re.findall(r"https?://[^\s\"']+", page) == ["http://www.w3.org/2000/svg"] * 3
    assert not re.search(r"<script|<link|src=|@import", page, re.IGNORECASE)


def test_text_from_the_run_is_escaped(tmp_path: Path, run: dict[str, object]) -> None:
    page = write_report(tmp_path / "r.html", **run).read_text()  # type: ignore[arg-type]
    assert EVIL not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "O&lt;1&gt;" in page and "O<1>" not in page


def test_long_tables_show_first_and_last_rows(tmp_path: Path, run: dict[str, object]) -> None:
    page = write_report(tmp_path / "r.html", **{**run, "max_rows": 3}).read_text()  # type: ignore[arg-type]
    n_fills = len(run["fills"])  # type: ignore[arg-type]
    assert f"Showing the first and last 3 of {n_fills:,} fills." in page
    assert f"… {n_fills - 6:,} fills not shown …" in page
    assert "round trips not shown" in page


def test_flat_metrics_no_fills_and_a_single_point(tmp_path: Path) -> None:
    equity = pd.Series([1000.0], index=pd.DatetimeIndex(["2024-01-02"], tz="UTC"))
    page = write_report(
        tmp_path / "r.html", run_id="solo", manifest={}, metrics=compute_metrics(equity, None),
        equity=equity, fills=None,
    ).read_text()  # fmt: skip
    assert "No round trips." in page and "No fills." in page and "Orders" not in page
    assert page.count('<svg class="chart"') == 2 and "—" in page


def test_downsampling_keeps_spikes_and_ends() -> None:
    n = 1_000_000
    ts = np.arange(n, dtype=np.int64) * 60_000_000_000
    values = np.sin(np.arange(n) / 5000.0)
    values[123_457] = 50.0
    values[765_432] = -50.0
    small_ts, small = downsample_minmax(ts, values, max_points=2000)
    assert small.size <= 2002
    assert small.max() == 50.0 and small.min() == -50.0
    assert small_ts[0] == ts[0] and small_ts[-1] == ts[-1]
    assert (np.diff(small_ts) > 0).all()
    chart = svg_time_chart({"x": pd.Series(values, index=ts)}, y_title="X")
    assert chart.count(" L") < 2100


def test_duration_formatting() -> None:
    assert fmt_duration(90) == "1m 30s"
    assert fmt_duration(1800) == "30m"
    assert fmt_duration(3 * 86_400 + 7200) == "3d 2h"
    assert fmt_duration(float("nan")) == "—"


# --------------------------------------------------------------------------- headless Chromium


def _png_size_and_colours(png: bytes) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values in the decompressed image data."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    idat, pos = b"", 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        if png[pos + 4 : pos + 8] == b"IDAT":
            idat += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return width, height, len(set(raw[:2_000_000]))


def _distinct_colours(path: Path) -> int | None:
    try:
        from PIL import Image  # optional
    except ImportError:
        return None
    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    return len(colours) if colours is not None else 1 << 20


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)"
)
def test_chromium_renders_the_report(tmp_path: Path, run: dict[str, object]) -> None:
    report = write_report(tmp_path / "report.html", **run)  # type: ignore[arg-type]
    dom = _chromium("--dump-dom", report.as_uri(), profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('<svg class="chart"') == 3
    assert dom.stdout.count('class="buy"') > 10 and 'id="prices"' in dom.stdout
    assert '<table class="metrics">' in dom.stdout and "Sharpe ratio" in dom.stdout
    assert "<script>" not in dom.stdout
    png = tmp_path / "report.png"
    shot = _chromium(
        f"--screenshot={png}", "--window-size=1280,2000", report.as_uri(),
        profile=tmp_path / "profile-shot",
    )  # fmt: skip
    assert shot.returncode == 0 and png.is_file(), shot.stderr[-2000:]
    width, height, distinct_bytes = _png_size_and_colours(png.read_bytes())
    assert (width, height) == (1280, 2000)
    assert png.stat().st_size > 50_000  # a blank page compresses to a few kB
    assert distinct_bytes > 64
    colours = _distinct_colours(png)
    assert colours is None or colours > 50


def test_axis_labels_get_the_decimals_their_step_needs() -> None:
    index = pd.date_range("2024-03-05 01:00", periods=4, freq="min", tz="UTC")
    chart = svg_time_chart({"dd": pd.Series([0.0, -0.004, -0.013, 0.0], index=index)},
                           y_title="Drawdown", y_percent=True, area=True)  # fmt: skip
    assert ">-0.5%<" in chart and ">-1.5%<" in chart and ">-0%<" not in chart
    assert ">01:01<" in chart  # minute ticks on an intraday axis


def test_the_price_chart_marks_each_fill_and_the_equity_chart_draws_buy_and_hold(
    tmp_path: Path, run: dict[str, object]
) -> None:
    page = write_report(tmp_path / "r.html", **run).read_text()  # type: ignore[arg-type]
    fills = run["fills"]
    buys = int((fills["side"] > 0).sum())  # type: ignore[index]
    assert page.count('<path class="buy"') == buys
    assert page.count('<path class="sell"') == len(fills) - buys  # type: ignore[arg-type]
    prices = page[page.index('id="prices"'):page.index('id="equity"')]
    assert "AAA&lt;script&gt;" in prices and "▲" in prices
    equity = page[page.index('id="equity"'):page.index('id="drawdown"')]
    assert "Buy &amp; hold" in equity and 'stroke-dasharray="6 4"' in equity


def test_the_header_names_the_data_readably(tmp_path: Path, run: dict[str, object]) -> None:
    manifest = {"strategy_params": {"s": {"class": "my_mod:Trend", "params": {"n": 3}}},
                "data": [{"kind": "bars", "instrument": "ES", "path": "es.csv.gz",
                          "interval": "1m", "bar_stamp": "close", "start": "2024-01-02"},
                         {"kind": "quotes", "instrument": "NQ"},
                         {"kind": "bars", "instrument": "SIM-A", "sample_days": 3}]}  # fmt: skip
    assert data_text(manifest) == (
        "bars ES 1m from es.csv.gz (stamped at the close), 2024-01-02 → …\n"
        "quotes NQ from the store\nbars SIM-A sample data, 3 days"
    )
    page = write_report(tmp_path / "r.html", **{**run, "manifest": manifest}).read_text()  # type: ignore[arg-type]
    header = page[: page.index('class="kpis"')]
    assert "s: Trend(n=3)" in header and "quotes NQ from the store" in header
    assert "{" not in header.split("<style>")[0] + header.split("</style>")[1]


def _sessions(days: int) -> pd.DatetimeIndex:
    """Minute bars 14:30-21:00 UTC on the weekdays of ``days`` calendar days from a Friday."""
    stamps = [
        pd.date_range(day + pd.Timedelta("14:30:00"), day + pd.Timedelta("20:59:00"), freq="min")
        for day in pd.date_range("2024-03-01", periods=days, freq="D", tz="UTC")
        if day.day_of_week < 5
    ]
    return stamps[0].append(stamps[1:])


def test_an_intraday_axis_leaves_out_nights_and_weekends() -> None:
    index = _sessions(4)  # Friday and Monday
    axis = MarketAxis(index.as_unit("ns").asi8)
    assert axis.compressed and len(axis.breaks) == 1
    friday_close, monday_open = index[389], index[390]
    assert int(axis.breaks[0]) == monday_open.value
    step = float(axis(np.array([monday_open.value]))[0] - axis(np.array([friday_close.value]))[0])
    assert step == 60e9  # one minute, not a weekend
    assert axis.span == (len(index) - 1) * 60e9
    chart = svg_time_chart({"eq": pd.Series(np.arange(len(index), dtype=float), index=index)},
                           y_title="Equity")  # fmt: skip
    assert chart.count('class="break"') == 1 and "closed hours left out" in chart
    assert ">03-01 14:30<" in chart and ">03-04" in chart


def test_a_24_7_or_daily_axis_stays_in_calendar_time() -> None:
    hourly = pd.date_range("2024-03-01", periods=200, freq="h", tz="UTC")
    daily = pd.bdate_range("2024-01-01", periods=300, tz="UTC")
    for index in (hourly, daily):
        axis = MarketAxis(index.as_unit("ns").asi8)
        assert not axis.compressed
        assert axis.span == index[-1].value - index[0].value


def test_exposure_counts_market_time_not_nights_and_weekends() -> None:
    index = _sessions(4)
    n = len(index)
    held = np.zeros(n)
    held[389] = 1.0  # bought on Friday's last bar, sold at Monday's open: held one bar
    equity = pd.Series(1000.0, index=index)
    metrics = compute_metrics(equity, None, position_values=pd.Series(held * 100.0, index=index))
    assert metrics["exposure"] == pytest.approx(1 / (n - 1))
