"""Auxiliary data through ``tradewind data``: a perpetual in the sample, a funding history
imported as Binance publishes it, and the mistakes refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backtest.data import SampleSpec, generate_sample
from cli.main import main


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRADEWIND_STORE_DSN", raising=False)
    return tmp_path


def test_sample_with_a_perpetual_and_a_funding_import(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    assert main(["data", "sample", "--instruments", "AA", "--perpetuals", "AA", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"]["bars"] == 2 * 390 and out["rows"]["funding"] == 3
    (tmp_path / "f.csv").write_text("fundingTime,fundingRate,markPrice\n"
                                    "1704182400000,0.00010000,42000.12345678\n"
                                    "1704211200000,-0.00002500,42100.5\n")
    assert main(["data", "import", "f.csv", "--instrument", "BTC-PERP", "--kind", "funding"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("imported 2 funding rows of BTC-PERP") and "prices" not in printed
    assert main(["data", "list", "--json"]) == 0
    listed = {(d["kind"], d["instrument_id"]): d["rows"]
              for d in json.loads(capsys.readouterr().out)["datasets"]}
    assert listed[("funding", "AA-PERP")] == 3 and listed[("bars", "AA-PERP")] == 390
    assert listed[("funding", "BTC-PERP")] == 2


@pytest.mark.parametrize(("argv", "text", "message"), [
    (["data", "sample", "--instruments", "AA", "--perpetuals", "BB"], None,
     "tradewind data: error: --perpetuals: BB not among --instruments\n"),
    (["data", "import", "f.csv", "--instrument", "P", "--kind", "funding"],
     "fundingTime,fundingRate\n1704182400000,0.0001000012345\n",
     "tradewind data: error: f.csv row 1: fundingRate: 0.0001000012345 has more than 9 "
     "decimals\n"),
    (["data", "import", "f.csv", "--instrument", "P", "--kind", "mark"],
     "timestamp,mark_price,index_price\n1704182400,-1,5\n", "mark_price"),
    (["data", "import", "f.csv", "--instrument", "P", "--kind", "borrow"],
     "timestamp,rate\n1704182400,-0.01\n", "rate"),
])
def test_aux_mistakes_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           argv: list[str], text: str | None,
                                           message: str | None) -> None:
    if text is not None:
        (tmp_path / "f.csv").write_text(text)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tradewind data: error: ")
    if message is not None:
        assert message in err


def test_the_generator_refuses_a_perpetual_of_an_unknown_instrument() -> None:
    with pytest.raises(ValueError, match="not among the instruments"):
        generate_sample(np.random.default_rng(1), SampleSpec(instruments=("A",),
                                                             perpetuals=("B",)))
