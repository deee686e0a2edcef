"""``tradewind data`` through cli.main.main: summaries, --json, one-line errors, exit 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.main import main


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRADEWIND_STORE_DSN", raising=False)
    return tmp_path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:  # type: ignore[type-arg]
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_sample_then_list_in_the_default_store(capsys: pytest.CaptureFixture[str],
                                               in_tmp: Path) -> None:
    out = run_json(capsys, "data", "sample", "--seed", "3", "--instruments", "AA,BB")
    assert out["store"] == f"chdb://{in_tmp.resolve()}/var/clickhouse"
    assert out["rows"]["bars"] == 2 * 390
    listed = run_json(capsys, "data", "list")
    rows = {(d["kind"], d["instrument_id"]): d["rows"] for d in listed["datasets"]}
    assert set(rows) == {(k, i) for k in ("bars", "book", "quotes", "trades") for i in ("AA", "BB")}
    assert sum(rows.values()) == sum(out["rows"].values())
    assert {(d["kind"], d["interval_ns"]) for d in listed["datasets"]} >= {("bars", 60 * 10**9),
                                                                           ("quotes", None)}
    assert main(["data", "list"]) == 0
    table = [line.split()[:3] for line in capsys.readouterr().out.splitlines()]
    assert ["bars", "AA", "1m"] in table and ["quotes", "AA", "-"] in table


def test_importing_a_file_twice_keeps_each_row_once(
        capsys: pytest.CaptureFixture[str], shared_data: Callable[[str], Path]) -> None:
    path = str(shared_data("backtrader__nvda-1999-2014.txt"))
    argv = ["data", "import", path, "--instrument", "NVDA", "--kind", "bars",
            "--timezone", "America/New_York"]
    first = run_json(capsys, *argv)
    second = run_json(capsys, *argv)
    assert first["accepted"] == second["accepted"] == 4012
    assert first["dataset_hash"] == second["dataset_hash"]
    assert first["ignored_columns"] == ["Adj Close"]
    [nvda] = run_json(capsys, "data", "list")["datasets"]
    assert (nvda["kind"], nvda["rows"]) == ("bars", 4012)
    assert main(["data", "import", "--kind", "trades", "--instrument", "BTC",
                 str(shared_data("nautilus_trader__btcusdt-trades.parquet"))]) == 0
    assert capsys.readouterr().out.startswith("imported 2001 trades rows of BTC from ")


def test_a_bad_file_is_one_line_exit_2_and_writes_nothing(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,10,11,9,10,1\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,10,11,9,10,1\n"
                   "2024-01-03,10,9,11,10,1\n")
    argv = ["data", "import", "--kind", "bars", "--instrument", "X", "--timezone", "UTC"]
    assert main([*argv, str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"tradewind data: error: {bad} row 2: high 9 is below low 11\n")
    assert run_json(capsys, "data", "list")["datasets"] == []
    assert main([*argv, str(good)]) == 0


@pytest.mark.parametrize(("argv", "message"), [
    (["data", "list", "--store", "ftp://x"],
     "tradewind data: error: unsupported store DSN 'ftp://x': use chdb://<dir> (embedded) or "
     "http(s)://host:port\n"),
    (["data", "sample", "--days", "0"],
     "tradewind data: error: --days: must be at least 1, got 0\n"),
    (["data", "import", "nope.csv", "--kind", "bars", "--instrument", "X"],
     "tradewind data: error: nope.csv: no such file\n"),
    (["data", "import", "f.csv", "--kind", "bars", "--instrument", "X", "--timezone", "Nowhere"],
     None),
])
def test_user_mistakes_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                            argv: list[str], message: str | None) -> None:
    (tmp_path / "f.csv").write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,1,1,1,1,1\n")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tradewind data: error: ")
    if message is not None:
        assert err == message


TRADES_A = ("timestamp,trade_id,price,quantity\n"
            "2024-01-02T14:30:00Z,a1,10.00,1\n2024-01-02T14:30:01Z,a2,10.01,1\n"
            "2024-01-02T14:30:01Z,a3,10.02,1\n2024-01-02T14:30:01Z,a4,10.03,1\n")
TRADES_B = ("timestamp,trade_id,price,quantity\n"
            "2024-01-02T14:30:01Z,b2,10.05,2\n2024-01-02T14:30:01Z,b3,10.06,2\n")


def _trade_ids(capsys: pytest.CaptureFixture[str]) -> list[str]:
    from backtest.store import open_store
    with open_store() as store:
        return store.read_market("trades", "X").column("trade_id").to_pylist()  # type: ignore[no-any-return]


def test_an_overlapping_import_is_refused_naming_the_range_and_replace(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(TRADES_A)
    (tmp_path / "b.csv").write_text(TRADES_B)
    argv = ["data", "import", "--kind", "trades", "--instrument", "X"]
    assert main([*argv, "a.csv"]) == 0
    assert main([*argv, "a.csv"]) == 0  # the same rows again: idempotent
    capsys.readouterr()
    assert main([*argv, "b.csv"]) == 2
    err = capsys.readouterr().err
    assert err == ("tradewind data: error: the store already holds 3 trades rows of 'X' between "
                   "2024-01-02T14:30:01Z and 2024-01-02T14:30:01Z that the new rows do not "
                   "repeat exactly: nothing was written; pass --replace to replace that whole "
                   "range with the new rows\n")
    assert _trade_ids(capsys) == ["a1", "a2", "a3", "a4"]
    out = run_json(capsys, *argv, "b.csv", "--replace")
    assert out["replaced"] == 3
    assert _trade_ids(capsys) == ["a1", "b2", "b3"]


def test_overlapping_bars_with_other_values_are_refused(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    header = "Date,Open,High,Low,Close,Volume\n"
    (tmp_path / "a.csv").write_text(header + "".join(
        f"2024-01-0{d},10,11,9,10,1\n" for d in (2, 3, 4, 5)))
    (tmp_path / "b.csv").write_text(header + "".join(
        f"2024-01-0{d},20,21,19,20,1\n" for d in (3, 4, 5, 8)))
    argv = ["data", "import", "--kind", "bars", "--instrument", "X", "--timezone", "UTC"]
    assert main([*argv, "a.csv"]) == 0
    assert main([*argv, "b.csv"]) == 2
    assert "holds 3 bars rows (1d) of 'X' between 2024-01-04" in capsys.readouterr().err
    from backtest.store import open_store
    with open_store() as store:
        assert store.read_market("bars", "X").column("open").to_pylist() == [10 * 10**9] * 4


def test_sample_again_with_other_days_is_refused_not_mixed(
        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["data", "sample", "--instruments", "AA"]
    assert main(argv) == 0
    assert main(argv) == 0  # same seed and days: the same rows
    capsys.readouterr()
    assert main([*argv, "--days", "2"]) == 2
    assert "pass --replace" in capsys.readouterr().err
    out = run_json(capsys, *argv, "--days", "2", "--replace")
    listed = {d["kind"]: d["rows"] for d in run_json(capsys, "data", "list")["datasets"]}
    assert listed == out["rows"]


def test_import_gzip_with_a_named_time_column_and_a_header_only_file(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import gzip
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(
        b"when,price,size\n2024-01-02T14:30:00Z,1.1072,1\n"))
    out = run_json(capsys, "data", "import", "t.csv.gz", "--kind", "trades", "--instrument", "X",
                   "--time-column", "when")
    assert (out["accepted"], out["price_decimals"], out["warnings"]) == (1, 4, [])
    (tmp_path / "empty.csv").write_text("ts,price,size\n")
    assert main(["data", "import", "empty.csv", "--kind", "trades", "--instrument", "Y"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("imported 0 trades rows of Y from empty.csv")
    assert lines[1] == "warning: the file has a header but no data rows: nothing to import"


@pytest.mark.parametrize(("argv", "message"), [
    (["--instrument", "", "f.csv"], "--instrument: give an instrument id (it is empty)"),
    (["--instrument", "X", "."], ".: is a directory, not a data file"),
])
def test_more_user_mistakes_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                   argv: list[str], message: str) -> None:
    (tmp_path / "f.csv").write_text("ts,price,size\n2024-01-02T14:30:00Z,1,1\n")
    assert main(["data", "import", "--kind", "trades", *argv]) == 2
    assert capsys.readouterr().err == f"tradewind data: error: {message}\n"
