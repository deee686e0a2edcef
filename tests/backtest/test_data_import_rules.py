"""Import rules a user relies on: gzip, time columns, one epoch unit, instruments, books,
bar spacing, header-only files, clear time errors and batches that join up exactly."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pytest

from backtest.data import load_file, read_file, stream_file
from backtest.data import source as data_source
from runtime.errors import ConfigError, DataError

NS = 10**9
T0 = 1_704_205_800  # 2024-01-02T14:30:00Z


def write(tmp_path: Path, text: str, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refusal(path: Path, kind: str, **options: str) -> str:
    with pytest.raises(DataError) as info:
        load_file(path, kind, "X", **options)
    return str(info.value)


def test_gzipped_csv_is_read_whatever_its_name(tmp_path: Path) -> None:
    text = "timestamp,price,size\n2024-01-02T14:30:00Z,10.5,1\n2024-01-02T14:30:01Z,10.6,2\n"
    plain = load_file(write(tmp_path, text), "trades", "X")
    for name in ("t.csv.gz", "t.gz", "t.csv"):
        path = tmp_path / name
        path.write_bytes(gzip.compress(text.encode()))
        assert load_file(path, "trades", "X").equals(plain)


def test_timestamp_utc_and_a_named_time_column(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp_utc,price,size\n2024-01-02T14:30:00Z,10.5,1\n")
    assert load_file(path, "trades", "X").column("ts_event").to_pylist() == [T0 * NS]
    path = write(tmp_path, "when,price,size,time\n2024-01-02T14:30:00Z,10.5,1,x\n")
    result = read_file(path, "trades", "X", time_column="when")
    assert result.table.column("ts_event").to_pylist() == [T0 * NS]
    assert result.ignored_columns == ("time",)
    assert f"{path}: --time-column 'nope' is not a column of the file (found: when, price, " \
        "size, time)" in refusal(path, "trades", time_column="nope")
    path = write(tmp_path, "when,price,size\n2024-01-02T14:30:00Z,10.5,1\n")
    assert refusal(path, "trades") == (
        f"{path}: missing column(s) ts_event for trades (found: when, price, size); name the "
        "time column with --time-column (file refused, 2 problems; also unexpected column "
        "'when' for trades (expected: ts_event, price, size, aggressor, buyer_maker, trade_id))")


def test_mixed_epoch_units_are_refused_naming_the_rows(tmp_path: Path) -> None:
    path = write(tmp_path, f"ts,price,size\n{T0}000,1,1\n{T0 + 1},1,1\n{T0 + 2}000000,1,1\n")
    assert refusal(path, "trades") == (
        f"{path} row 2: ts: {T0 + 1} looks like seconds but row 1 is in milliseconds: one unit "
        f"per column (file refused, 2 problems; also row 3: ts: {T0 + 2}000000 looks like "
        "microseconds but row 1 is in milliseconds: one unit per column)")


def test_epoch_zero_and_year_2300_say_what_is_wrong(tmp_path: Path) -> None:
    path = write(tmp_path, "ts,price,size\n0,1,1\n")
    assert refusal(path, "trades") == (
        f"{path} row 1: ts: '0' is not a time (an epoch has at least 9 digits; a missing time "
        "written as 0?)")
    path = write(tmp_path, "ts,price,size\n2300-01-01T00:00:00Z,1,1\n")
    assert refusal(path, "trades") == (
        f"{path} row 1: ts: '2300-01-01T00:00:00Z' is out of range (times must lie between "
        "1677-09-21 and 2262-04-11)")
    path = write(tmp_path, "ts,price,size\n10413792000,1,1\n")  # 2300 in seconds
    assert "is out of range" in refusal(path, "trades")


def test_an_empty_instrument_id_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "ts,price,size\n2024-01-02T14:30:00Z,1,1\n")
    for empty in ("", "  "):
        with pytest.raises(ConfigError, match=r"^--instrument: give an instrument id"):
            load_file(path, "trades", empty)


def test_book_symbol_and_crossed_levels_are_checked(tmp_path: Path) -> None:
    header = "symbol,timestamp,side,price,qty,update_type\n"
    path = write(tmp_path, header + "ETHUSDT,2024-01-02T14:30:00Z,b,100,1,snap\n")
    with pytest.raises(DataError, match=r"row 1: symbol 'ETHUSDT' is not 'BTCUSDT.BINANCE'"):
        load_file(path, "book", "BTCUSDT.BINANCE")
    path = write(tmp_path, header + "BTCUSDT,2024-01-02T14:30:00Z,b,101,1,snap\n"
                                    "BTCUSDT,2024-01-02T14:30:00Z,a,100,1,snap\n")
    with pytest.raises(DataError, match=r"row 1: crossed book update: bid 101 >= ask 100$"):
        load_file(path, "book", "BTCUSDT.BINANCE")
    path = write(tmp_path, header + "BTCUSDT,2024-01-02T14:30:00Z,b,101,0,snap\n"
                                    "BTCUSDT,2024-01-02T14:30:00Z,a,100,1,snap\n")
    assert load_file(path, "book", "BTCUSDT").num_rows == 2  # a deleted level does not cross


def test_bars_closer_than_their_interval_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "ts,o,h,l,c,v\n2024-01-02T14:30:00Z,1,1,1,1,1\n"
                           "2024-01-02T14:31:00Z,1,1,1,1,1\n")
    assert refusal(path, "bars", interval="1h") == (
        f"{path} row 2: the bar at 2024-01-02T15:31:00Z is 1m after the previous one, less than "
        "its interval 1h: bars would overlap (check --interval)")
    assert load_file(path, "bars", "X", interval="1m").num_rows == 2


def test_daily_bars_across_a_dst_change_are_not_overlaps(tmp_path: Path) -> None:
    path = write(tmp_path, "Date,Open,High,Low,Close,Volume\n2024-03-08,1,1,1,1,1\n"
                           "2024-03-11,1,1,1,1,1\n2024-03-12,1,1,1,1,1\n")
    assert load_file(path, "bars", "X", timezone="America/New_York").num_rows == 3


def test_a_header_only_file_is_a_warning(tmp_path: Path) -> None:
    result = read_file(write(tmp_path, "ts,price,size\n"), "trades", "X")
    assert result.rows == 0
    assert result.warnings == ("the file has a header but no data rows: nothing to import",)


def test_a_directory_is_not_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r": is a directory, not a data file$"):
        load_file(tmp_path, "trades", "X")


def test_batches_join_up_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [f"2024-01-02T14:{30 + i // 180}:{i // 3 % 60:02d}Z,{10 + i % 7}.5,1,t{i}"
            for i in range(300)]
    path = write(tmp_path, "ts,price,size,id\n" + "\n".join(rows) + "\n")
    whole = load_file(path, "trades", "X")
    monkeypatch.setattr(data_source, "BLOCK_BYTES", 256)
    stream = stream_file(path, "trades", "X")
    parts = list(stream)
    assert len(parts) > 10
    assert pa.concat_tables(parts).equals(whole)
    assert whole.column("seq").to_pylist()[:6] == [0, 1, 2, 0, 1, 2]
    dup = write(tmp_path, "ts,price,size,id\n" + "\n".join([*rows, rows[5]]) + "\n", "d.csv")
    with pytest.raises(DataError) as info:
        list(stream_file(dup, "trades", "X"))
    assert "row 301: duplicate trade_id 't5' (first at row 6)" in str(info.value)
    assert "time goes backwards" in str(info.value)
