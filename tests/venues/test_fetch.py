"""``tradewind fetch`` and the paced historical downloads, against the fakes (real IB formats)."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actors.venues.history import IbHistory
from cli import fetch as fetch_cli
from cli.main import main
from runtime.errors import DataError
from runtime.values import fixed
from tests.venues.fake_ib import FakeIbGateway
from tests.venues.fake_shioaji import FakeShioaji, import_sj


def ndjson(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def epoch(text: str) -> int:
    moment = dt.datetime.fromisoformat(text)
    return int((moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp())


class GatewayThread:
    """The fake gateway on its own loop in a thread, so the CLI can ``asyncio.run`` its own."""

    def __init__(self, fake: FakeIbGateway) -> None:
        import threading

        self.fake, self.loop = fake, asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(fake.start(), self.loop).result(5)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRADEWIND_STORE_DSN", raising=False)
    return tmp_path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_ib_bars_into_the_store(
    shared_data: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ndjson(shared_data("nautilus_trader__bars.json.gz"))
    fake = FakeIbGateway(
        bars=[
            (str(epoch(r["date"])), r["open"], r["high"], r["low"], r["close"], r["volume"])
            for r in rows
        ]
    )
    gateway = GatewayThread(fake)
    try:
        out = run_json(
            capsys,
            "fetch",
            "--broker",
            "ib",
            "--instrument",
            "X.NASDAQ",
            "--symbol",
            "X",
            "--kind",
            "bars",
            "--port",
            str(gateway.port),
            "--end",
            "2021-01-06T00:00:00Z",
            "--json",
        )
    finally:
        gateway.close()
    assert out["rows"] == len(rows) == 405
    assert out["first_ts"] == (epoch(rows[0]["date"]) + 60) * 10**9  # a bar closes a minute later
    from backtest.store import open_store

    with open_store(None) as store:
        table = store.read_market("bars", "X.NASDAQ")
    assert table.num_rows == 405
    assert table.column("close").to_pylist()[0] == fixed(str(rows[0]["close"]))


def test_ib_quotes_are_paged(
    shared_data: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ticks = ndjson(shared_data("nautilus_trader__bid_ask_ticks.json.gz"))
    fake = FakeIbGateway(
        bid_ask=[
            (epoch(t["time"]), t["priceBid"], t["priceAsk"], t["sizeBid"], t["sizeAsk"])
            for t in ticks
        ]
    )
    gateway = GatewayThread(fake)
    try:
        out = run_json(
            capsys,
            "fetch",
            "--broker",
            "ib",
            "--instrument",
            "Y.NASDAQ",
            "--kind",
            "quotes",
            "--port",
            str(gateway.port),
            "--start",
            "2022-03-01T00:00:00Z",
            "--end",
            "2022-03-03T00:00:00Z",
            "--json",
        )
    finally:
        gateway.close()
    distinct = {
        (epoch(t["time"]), t["priceBid"], t["sizeBid"], t["priceAsk"], t["sizeAsk"]) for t in ticks
    }
    assert out["rows"] == len(distinct)
    assert sum(1 for msg_id, _ in fake.requests if msg_id == 96) == 2  # 1,000 per page


def test_pacing_violations_back_off_and_retry() -> None:
    async def scenario() -> tuple[int, int, list[float]]:
        import ib_async

        fake = FakeIbGateway(bars=[("1609838880", 1, 2, 0.5, 1.5, 10)], pacing_violations=2)
        port = await fake.start()
        ib = ib_async.IB()
        await ib.connectAsync("127.0.0.1", port, clientId=5, readonly=True)
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        history = IbHistory(ib, backoff_s=1.0, sleep=sleep)
        rows = await history.bars(
            ib_async.Stock("X", "SMART", "USD"),
            end=dt.datetime(2021, 1, 6, tzinfo=dt.UTC),
            duration="1 D",
            bar_size="1 min",
        )
        fake.pacing_violations = 10
        with pytest.raises(DataError, match="pacing"):
            await IbHistory(ib, backoff_s=0.0, max_retries=2, sleep=sleep).bars(
                ib_async.Stock("X", "SMART", "USD"),
                end=dt.datetime(2021, 1, 6, tzinfo=dt.UTC),
                duration="1 D",
                bar_size="1 min",
            )
        ib.disconnect()
        await fake.stop()
        return len(rows), history.violations, slept

    rows, violations, slept = asyncio.run(scenario())
    assert (rows, violations) == (1, 2)
    assert slept[:2] == [1.0, 2.0]  # doubling backoff


def test_shioaji_kbars_into_the_store(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sj = import_sj(str(in_tmp))
    fake = FakeShioaji(sj)
    monkeypatch.setattr(fetch_cli, "make_shioaji", lambda config: (sj, fake))
    out = run_json(
        capsys,
        "fetch",
        "--broker",
        "shioaji",
        "--instrument",
        "2330.TWSE",
        "--kind",
        "bars",
        "--start",
        "2026-11-20",
        "--json",
    )
    assert out["rows"] == 1
    assert out["first_ts"] == 1_760_000_060_000_000_000 - 8 * 3600 * 10**9  # Taipei → UTC
    assert "kbars" in fake.calls
