"""Backtest streams read from the store: a bar dataset is one instrument at one interval."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from backtest.config import InstrumentConfig, load_config
from backtest.data import SCHEMAS
from backtest.feed import load_feed
from backtest.store import Store, open_store
from runtime.errors import ConfigError, DataError

MINUTE = 60 * 10**9
START = 1_704_205_800 * 10**9  # 2024-01-02T14:30:00Z


def bars(interval_ns: int, n: int, price: int) -> pa.Table:
    ts = [START + (i + 1) * interval_ns for i in range(n)]
    fixed = [price * 10**9] * n
    return pa.table({"ts_event": ts, "ts_init": ts, "seq": [0] * n, "instrument_id": ["X"] * n,
                     "open": fixed, "high": fixed, "low": fixed, "close": fixed,
                     "volume": [10**9] * n, "interval_ns": [interval_ns] * n},
                    schema=SCHEMAS["bars"])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with open_store(f"chdb://{tmp_path_factory.mktemp('feed') / 'ch'}") as opened:
        opened.write_market("bars", bars(MINUTE, 120, 10))
        opened.write_market("bars", bars(60 * MINUTE, 2, 20))
        yield opened


def config(instrument: str = "X", **stream: Any) -> Any:
    return load_config({
        "instruments": [{"id": instrument}],
        "data": [{"kind": "bars", "instrument": instrument, **stream}],
        "strategies": [{"id": "s", "class": "backtest.strategies.sma_cross:SmaCross",
                       "instruments": [instrument], "params": {"fast": 2, "slow": 3, "size": 1}}],
        "venue": {"latency": {"kind": "constant", "entry_ns": 0, "response_ns": 0},
                  "fills": {"kind": "bars", "price": "next_open", "path": "auto",
                            "max_participation": 1},
                  "slippage": {"kind": "ticks", "ticks": 0},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 0}},
    })


def test_bars_of_one_interval_are_read_and_never_interleaved(store: Store) -> None:
    for interval, n, price in (("1m", 120, 10), ("1h", 2, 20)):
        feed = load_feed(config(interval=interval), store)
        messages = feed.messages
        assert len(messages) == n
        assert {m.open for m in messages} == {price * 10**9}  # type: ignore[attr-defined]


def test_two_stored_intervals_and_none_configured_is_refused(store: Store) -> None:
    with pytest.raises(ConfigError, match=r"data\.X\.interval: the store holds bars of X at "
                                          r"1m, 1h: say which with interval:"):
        load_feed(config(), store)


def test_datasets_list_each_interval(store: Store, tmp_path: Path) -> None:
    listed = [(d.kind, d.instrument_id, d.interval_ns, d.rows) for d in store.list_datasets()
              if d.instrument_id == "X"]
    assert listed == [("bars", "X", MINUTE, 120), ("bars", "X", 60 * MINUTE, 2)]


def test_prices_off_the_tick_are_refused_never_rounded(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "eur.csv"
    path.write_text("timestamp,open,high,low,close,volume\n"
                    "2024-01-02T00:00:00Z,1.1072,1.1080,1.1065,1.1075,10\n")
    with pytest.raises(DataError, match=(
            rf"^{path} row 1: open 1.1072 is not a multiple of the tick 0.01 of X .*the data has "
            r"4 decimals: set price_precision: 4 on the instrument")):
        load_feed(config(path=str(path), interval="1m"), store)
    precise = config(path=str(path), interval="1m").model_copy(update={"instruments": (
        InstrumentConfig(id="X", price_precision=4),)})
    [bar] = load_feed(precise, store).messages
    assert bar.open == 1_107_200_000  # type: ignore[attr-defined]
    odd = bars(MINUTE, 1, 10).set_column(3, "instrument_id", pa.array(["ODD"]))
    store.write_market("bars", odd.set_column(4, "open", pa.array([10_005_000_000])))
    with pytest.raises(DataError, match=r"^the store's bars of ODD row 1: open 10.005 is not"):
        load_feed(config("ODD"), store)


def test_a_file_with_no_rows_in_the_range_says_so(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("timestamp,open,high,low,close,volume\n2024-01-02T00:00:00Z,1,1,1,1,1\n")
    with pytest.raises(DataError, match=r"b\.csv: no rows in \[2025-01-01, the end\)$"):
        load_feed(config(path=str(path), interval="1m", start="2025-01-01"), store)
    with pytest.raises(DataError, match=r"holds no bars for NONE in \[2025-01-01, the end\); "):
        load_feed(config("NONE", start="2025-01-01"), store)
