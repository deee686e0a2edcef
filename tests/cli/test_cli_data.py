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
    assert main(["data", "list"]) == 0
    assert "quotes  AA" in capsys.readouterr().out


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
