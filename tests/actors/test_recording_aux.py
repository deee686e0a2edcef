"""Auxiliary data a broker streams is recorded into the store's tables and replays from there
exactly as it was streamed (what a backtest then charges funding from)."""

from __future__ import annotations

from pathlib import Path

from actors.recording import TABLES_OF, decode_batch, encode_batch, to_tables
from backtest.data import to_messages
from backtest.store import open_store
from runtime.messages import BorrowRate, FundingRate, IndexMarkPrice, OpenInterest
from runtime.values import fixed

H = 3600 * 10**9


def _streamed() -> list[object]:
    return [
        FundingRate(seq=1, ts_event=8 * H, ts_init=8 * H + 5, instrument_id="BTC-PERP",
                    rate=fixed("-0.00012345"), funding_ts=8 * H, mark_price=fixed("50012.5")),
        FundingRate(seq=2, ts_event=9 * H, ts_init=9 * H, instrument_id="BTC-PERP",
                    rate=fixed("0.0001"), funding_ts=16 * H),
        OpenInterest(seq=3, ts_event=9 * H, ts_init=9 * H, instrument_id="BTC-PERP",
                     open_interest=fixed("10659.509")),
        IndexMarkPrice(seq=4, ts_event=9 * H, ts_init=9 * H, instrument_id="BTC-PERP",
                       mark_price=fixed("50012.5"), index_price=fixed("50001.25")),
        BorrowRate(seq=5, ts_event=9 * H, ts_init=9 * H, instrument_id="AAPL",
                   rate=fixed("0.0325")),
    ]


def test_aux_data_round_trips_recorder_store_and_replay(tmp_path: Path) -> None:
    streamed = _streamed()
    assert all(type(m) in TABLES_OF for m in streamed)
    batch = decode_batch(encode_batch(streamed))  # type: ignore[arg-type]
    tables = to_tables("S1", batch)
    assert set(tables) == {"funding_rates", "open_interest", "mark_prices", "borrow_rates"}
    with open_store(f"chdb://{tmp_path / 'ch'}") as store:
        for name, table in tables.items():
            store.insert_arrow(name, table)
            store.insert_arrow(name, table)  # a retried insert: still one row each
        funding = store.read_market("funding", "BTC-PERP")
        assert funding.num_rows == 2
        replayed = to_messages("funding", funding)
        replayed += to_messages("open_interest", store.read_market("open_interest", "BTC-PERP"))
        replayed += to_messages("mark", store.read_market("mark", "BTC-PERP"))
        replayed += to_messages("borrow", store.read_market("borrow", "AAPL"))
        listed = {(d.kind, d.instrument_id, d.rows) for d in store.list_datasets()}
    assert replayed == streamed
    assert ("funding", "BTC-PERP", 2) in listed and ("borrow", "AAPL", 1) in listed
