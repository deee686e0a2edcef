"""Loading CSV/Parquet files: real files, aliases, and every way a file is refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from backtest.data import DataRefused, load_file, read_file, to_messages
from runtime.errors import ConfigError, DataError
from runtime.messages import Bar, BookDeltas, BookSnapshot, Side, TradeTick

NS = 10**9
BAR_HEADER = "Date,Open,High,Low,Close,Volume\n"
GOOD_BARS = "2024-01-02,10,11,9,10.5,100\n2024-01-03,10.5,12,10,11,200\n"


def write(tmp_path: Path, text: str, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(path: Path, kind: str = "bars", **kwargs: str) -> DataError:
    kwargs.setdefault("timezone", "UTC")
    with pytest.raises(DataError) as info:
        load_file(path, kind, "X", **kwargs)
    return info.value


def test_yahoo_daily_nvda(shared_data: Callable[[str], Path]) -> None:
    path = shared_data("backtrader__nvda-1999-2014.txt")
    result = read_file(path, "bars", "NVDA", timezone="America/New_York")
    assert result.rows == 4012
    assert result.ignored_columns == ("Adj Close",)
    first = to_messages("bars", result.table.slice(0, 1))[0]
    assert isinstance(first, Bar)
    # 1999-01-22 closes at the next midnight in New York (05:00 UTC)
    assert first.ts_event == 917_067_600 * NS and first.interval_ns == 86_400 * NS
    assert (first.open, first.high, first.low, first.close) == (
        1_750_000_000, 1_953_125_000, 1_552_083_000, 1_640_625_000)
    assert first.volume == 67_867_200 * NS
    assert any("gap(s) between bars" in w for w in result.warnings)


def test_binance_trades_parquet(shared_data: Callable[[str], Path]) -> None:
    path = shared_data("nautilus_trader__btcusdt-trades.parquet")
    table = load_file(path, "trades", "BTCUSDT.BINANCE")
    assert table.num_rows == 2001
    first, second = to_messages("trades", table.slice(0, 2))
    assert isinstance(first, TradeTick)
    assert first.ts_event == 1_610_064_000_278 * 10**6
    assert first.price == 39_432_480_000_000 and first.size == 263_000  # 0.000263 exactly
    assert first.aggressor is Side.SELL and second.aggressor is Side.BUY  # buyer_maker True/False
    assert first.trade_id == "553287559"


def test_binance_depth_snapshot_and_diff(shared_data: Callable[[str], Path]) -> None:
    snap = load_file(shared_data("nautilus_trader__btcusdt-depth-snap.csv"), "book",
                     "BTCUSDT.BINANCE")
    diff = load_file(shared_data("nautilus_trader__btcusdt-depth-update.csv"), "book", "BTCUSDT")
    [snapshot] = to_messages("book", snap)
    [deltas] = to_messages("book", diff)
    assert isinstance(snapshot, BookSnapshot) and len(snapshot.bids) == 100
    assert snapshot.bids[0] == (20_377 * NS, 1_770_000_000)
    assert isinstance(deltas, BookDeltas) and (len(deltas.asks), len(deltas.bids)) == (77, 23)
    assert deltas.prev_update_id == 2_098_041_693_400


def test_aliases_and_quotes(tmp_path: Path) -> None:
    path = write(tmp_path, "time,bid,bid_qty,ask,ask_qty\n"
                           "2024-01-02T09:30:00-05:00,10.01,100,10.02,200\n"
                           "2024-01-02T14:30:00Z,10.01,100,10.03,50\n")
    table = load_file(path, "quotes", "X")
    assert table.column("ts_event").to_pylist() == [1_704_205_800 * NS] * 2
    assert table.column("seq").to_pylist() == [0, 1]
    assert table.column("ask_price").to_pylist() == [10_020_000_000, 10_030_000_000]


@pytest.mark.parametrize(("text", "kind", "message", "row"), [
    ("Date,Open,High,Low,Volume\n2024-01-02,1,1,1,1\n", "bars",
     "missing column(s) close for bars (found: Date, Open, High, Low, Volume)", None),
    (BAR_HEADER.replace("Volume", "Volume,Colour") + "2024-01-02,1,1,1,1,1,red\n", "bars",
     "unexpected column 'Colour' for bars (expected: ts_event, open, high, low, close, volume)",
     None),
    (BAR_HEADER + "2024-01-02,10,11,9,ten,1\n", "bars", "Close: not a number: 'ten'", 1),
    (BAR_HEADER + GOOD_BARS + "2024-01-04,10,NaN,9,10,1\n", "bars", "High: NaN", 3),
    (BAR_HEADER + "2024-01-02,10,11,9,,1\n", "bars", "Close: missing value", 1),
    (BAR_HEADER + "2024-01-02,10.0000000001,11,9,10,1\n", "bars",
     "Open: 10.0000000001 has more than 9 decimals", 1),
    (BAR_HEADER + GOOD_BARS + "2024-01-01,10,11,9,10,1\n", "bars",
     "time goes backwards: 2024-01-02T00:00:00Z after 2024-01-04T00:00:00Z", 3),
    (BAR_HEADER + GOOD_BARS + "2024-01-03,10,11,9,10,1\n", "bars",
     "a second bar at 2024-01-04T00:00:00Z", 3),
    (BAR_HEADER + "2024-01-02,10,11,0,10,1\n", "bars", "low 0 is not positive", 1),
    (BAR_HEADER + "2024-01-02,10,9,11,10,1\n", "bars", "high 9 is below low 11", 1),
    (BAR_HEADER + "2024-01-02,12,11,9,10,1\n", "bars", "open 12 is outside [low 9, high 11]", 1),
    (BAR_HEADER + "2024-01-02,10,11,9,10,-1\n", "bars", "volume -1 is negative", 1),
    ("ts,bid,bid_size,ask,ask_size\n2024-01-02T00:00:00Z,10,1,10,1\n", "quotes",
     "crossed quote: bid 10 >= ask 10", 1),
    ("ts,price,qty,id\n2024-01-02T00:00:00Z,1,1,a\n2024-01-02T00:00:01Z,1,2,a\n", "trades",
     "duplicate trade_id 'a' (first at row 1)", 2),
    ("ts,price,qty,side\n2024-01-02T00:00:00Z,1,1,maybe\n", "trades",
     "side: expected buy/sell/unknown, got 'maybe'", 1),
    ("ts,side,price,size\n2024-01-02T00:00:00Z,x,1,1\n", "book",
     "side: expected bid/ask (b/a, buy/sell, 1/-1), got 'x'", 1),
    ("ts,price,size\n2024-01-02T00:00:00Z,1,1\n2024-01-02T00:00:00Z,1,1\n", "trades",
     "duplicate of the previous row at 2024-01-02T00:00:00Z", 2),
    ("ts,price,size\n2024-13-02 00:00:00,1,1\n", "trades", "ts: not a time: '2024-13-02 00:00:00'",
     1),
])
def test_refusals_name_the_file_and_row(tmp_path: Path, text: str, kind: str, message: str,
                                        row: int | None) -> None:
    path = write(tmp_path, text)
    error = refused(path, kind)
    where = f"{path} row {row}" if row is not None else str(path)
    assert str(error) == f"{where}: {message}"
    assert (error.source, error.row) == (str(path), row)


def test_naive_times_need_a_timezone(tmp_path: Path) -> None:
    path = write(tmp_path, BAR_HEADER + GOOD_BARS)
    with pytest.raises(DataError) as info:
        load_file(path, "bars", "X")
    assert str(info.value) == (f"{path}: Date: times such as '2024-01-02' have no time zone: "
                               "pass --timezone (e.g. --timezone America/New_York or UTC)")
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        load_file(path, "bars", "X", timezone="Mars/Olympus")


def test_intraday_bars_need_an_interval(tmp_path: Path) -> None:
    path = write(tmp_path, "ts,o,h,l,c,v\n2024-01-02T00:00:00Z,1,1,1,1,1\n")
    assert str(refused(path)) == (
        f"{path}: bars need their length: pass --interval (e.g. 1m, 1h, 1d)")
    table = load_file(path, "bars", "X", interval="1m")
    assert table.column("ts_event").to_pylist() == [1_704_153_660 * NS]  # open + 1 minute
    closing = load_file(path, "bars", "X", interval="1m", bar_stamp="close")
    assert closing.column("ts_event").to_pylist() == [1_704_153_600 * NS]


def test_every_problem_is_listed_on_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, BAR_HEADER + "2024-01-02,10,9,11,10,1\n2024-01-03,x,11,9,10,1\n")
    with pytest.raises(DataRefused) as info:
        load_file(path, "bars", "X", timezone="UTC")
    assert str(info.value) == f"{path} row 2: Open: not a number: 'x'"  # parse problems first
    path = write(tmp_path, BAR_HEADER + "2024-01-02,10,9,11,10,1\n2024-01-03,10,11,0,10,-5\n")
    with pytest.raises(DataRefused) as info:
        load_file(path, "bars", "X", timezone="UTC")
    assert str(info.value) == (
        f"{path} row 1: high 9 is below low 11 (file refused, 3 problems; also "
        "row 2: low 0 is not positive; row 2: volume -5 is negative)")
    assert len(info.value.problems) == 3
    assert "\n" not in str(info.value)


def test_gaps_are_reported_not_refused(tmp_path: Path) -> None:
    path = write(tmp_path, BAR_HEADER + GOOD_BARS + "2024-01-09,11,12,10,11,300\n")
    result = read_file(path, "bars", "X", timezone="UTC")
    assert result.rows == 3
    assert result.warnings == (
        "1 gap(s) between bars (a step longer than the interval; weekends and holidays count); "
        "the longest: 2024-01-04T00:00:00Z → 2024-01-10T00:00:00Z (rows 2-3)",)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope.csv: no such file$"):
        load_file(tmp_path / "nope.csv", "bars", "X")


def test_wrong_instrument_column(tmp_path: Path) -> None:
    path = write(tmp_path, "ts,price,size,instrument_id\n2024-01-02T00:00:00Z,1,1,Y\n")
    assert str(refused(path, "trades")) == f"{path} row 1: instrument_id 'Y' is not 'X'"
