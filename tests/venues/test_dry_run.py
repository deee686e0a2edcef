"""``tradewind paper --dry-run`` with the CCXT and Alpaca brokers: the credentials checked
against the account endpoint, the account and the redacted broker block printed, and a whole
session run with every order refused at the gateway (nothing reaches the fake)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import main
from tests.venues.broker_helpers import (
    FakeAlpacaThread,
    FakeBinanceThread,
    write_bars,
    write_broker_config,
)
from tests.venues.fake_alpaca import SECRET_KEY as ALPACA_SECRET
from tests.venues.fake_binance import SECRET as BINANCE_SECRET
from tests.venues.fake_binance import SymbolSpec, ccxt_urls

BTC = {"id": "BTC-PERP", "venue": "BINANCEUSDM", "asset_class": "future", "currency": "USDT",
       "price_precision": 2, "size_precision": 3, "lot_size": "0.001",
       "min_quantity": "0.001", "min_notional": "100"}
AAPL = {"id": "AAPL.NASDAQ", "venue": "NASDAQ", "price_precision": 2, "lot_size": 1,
        "min_quantity": 1}


@pytest.fixture
def binance() -> Iterator[FakeBinanceThread]:
    fake = FakeBinanceThread(symbols=(SymbolSpec(tick="0.01"),), auto_fill_price=50_000.0)
    yield fake
    fake.close()


def _ccxt(port: int) -> dict[str, object]:
    return {"kind": "ccxt", "exchange": "binanceusdm", "symbols": {"BTC-PERP": "BTC/USDT:USDT"},
            "urls": ccxt_urls(port), "api_key_env": "TW_TEST_CCXT_API_KEY",
            "secret_env": "TW_TEST_CCXT_SECRET"}


@pytest.mark.usefixtures("ray_local")
def test_ccxt_dry_run_session(binance: FakeBinanceThread, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    bars = write_bars(tmp_path / "data", "BTC-PERP")
    path = write_broker_config(tmp_path, bars, _ccxt(binance.port), instrument=BTC, size=0.003)
    code = main(["paper", "--config", str(path), "--dry-run", "--json",
                 "--session-id", "cxdry1"])
    out, err = capsys.readouterr()
    assert code == 0
    result = json.loads(out)
    assert result["broker"] == "ccxt" and result["fills"] == 0 and result["orders"] > 0
    assert binance.snapshot()["attempts"] == []  # nothing was ever sent
    assert binance.fake.signed_ok > 0  # the account endpoint took the signed credentials
    assert "dry run (ccxt, paper account)" in err and "USDT" in err
    assert "TW_TEST_CCXT_SECRET (set; value hidden)" in err
    assert "differs:" not in err  # the session's instrument is the exchange's
    assert "lot_size: '0.001'" in err  # the exchange's rules, printed as an instrument
    assert BINANCE_SECRET not in err + out
    rows = (tmp_path / "runs" / "cxdry1" / "orders.csv").read_text().splitlines()[1:]
    assert rows and all(",rejected," in r and r.endswith(
        "dry run: orders are never sent (broker.dry_run: true)") for r in rows)


@pytest.mark.usefixtures("ray_local")
def test_alpaca_dry_run_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeAlpacaThread(auto_fill_price=190.0)
    try:
        bars = write_bars(tmp_path / "data", "AAPL.NASDAQ")
        path = write_broker_config(tmp_path, bars, fake.broker_block(dry_run=True),
                                   instrument=AAPL, size=10)
        code = main(["paper", "--config", str(path), "--json", "--session-id", "apdry1"])
        out, err = capsys.readouterr()
        attempts = fake.snapshot()["attempts"]
    finally:
        fake.close()
    assert code == 0
    result = json.loads(out)
    assert result["broker"] == "alpaca" and result["fills"] == 0 and result["orders"] > 0
    assert attempts == []
    assert "account: PA3FAKE0001" in err and "TW_TEST_ALPACA_SECRET (set; value hidden)" in err
    assert ALPACA_SECRET not in err + out


def test_dry_run_with_credentials_the_account_refuses_is_one_clear_line(
        binance: FakeBinanceThread, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TW_TEST_CCXT_SECRET", "wrong-secret")
    bars = write_bars(tmp_path / "data", "BTC-PERP")
    path = write_broker_config(tmp_path, bars, _ccxt(binance.port), instrument=BTC, size=0.003)
    code = main(["paper", "--config", str(path), "--dry-run"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and "binanceusdm refused the credentials (-1022)" in err
    assert "wrong-secret" not in err
    assert not (tmp_path / "var").exists()


def test_instruments_that_differ_from_the_exchange_are_refused_before_the_session(
        binance: FakeBinanceThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bars = write_bars(tmp_path / "data", "BTC-PERP")
    path = write_broker_config(tmp_path, bars, _ccxt(binance.port),
                               instrument=BTC | {"lot_size": "0.01", "min_quantity": "0.01"},
                               size=0.03)
    code = main(["paper", "--config", str(path)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "instruments.BTC-PERP.lot_size: 0.01 here, 0.001 at the exchange" in err
