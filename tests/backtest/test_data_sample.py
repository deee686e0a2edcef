"""Synthetic sample data: deterministic per seed, valid, and internally consistent."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from backtest.data import SCHEMAS, SampleSpec, generate_sample, table_hash, to_messages
from backtest.data.validate import validate
from runtime.messages import BookDeltas, BookSnapshot

SPEC = SampleSpec(instruments=("AAA", "BBB"), days=2, session_minutes=20)


@pytest.fixture(scope="module")
def sample() -> dict[str, pa.Table]:
    return generate_sample(np.random.default_rng(11), SPEC)


def hashes(tables: dict[str, pa.Table]) -> dict[str, str]:
    return {kind: table_hash(kind, table) for kind, table in tables.items()}


def test_same_seed_same_rows_other_seed_other_rows(sample: dict[str, pa.Table]) -> None:
    assert hashes(generate_sample(np.random.default_rng(11), SPEC)) == hashes(sample)
    other = hashes(generate_sample(np.random.default_rng(12), SPEC))
    assert all(other[kind] != digest for kind, digest in hashes(sample).items())


def test_every_kind_is_canonical_and_passes_the_import_checks(
        sample: dict[str, pa.Table]) -> None:
    for kind, table in sample.items():
        assert table.schema == SCHEMAS[kind]
        for instrument_id in SPEC.instruments:
            part = table.filter(pc.equal(table.column("instrument_id"), instrument_id))
            assert part.num_rows > 0
            columns = {n: part.column(n).to_numpy(zero_copy_only=False) for n in part.column_names}
            problems, notes = validate(kind, columns)
            assert problems == [], (kind, instrument_id)
            warnings = notes.messages()
            assert len(warnings) == (kind == "bars"), warnings  # bars: the overnight gap
    assert sample["bars"].num_rows == 2 * 2 * 20  # instruments × days × minutes
    assert sample["quotes"].num_rows == 2 * 2 * 20 * 60


def test_the_book_top_is_the_quote(sample: dict[str, pa.Table]) -> None:
    def only_a(t: pa.Table) -> pa.Table:
        return t.filter(pc.equal(t.column("instrument_id"), "AAA"))

    quotes = to_messages("quotes", only_a(sample["quotes"]))
    updates = to_messages("book", only_a(sample["book"]))
    assert isinstance(updates[0], BookSnapshot)
    assert sum(isinstance(u, BookSnapshot) for u in updates) == SPEC.days
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    by_time = {q.ts_event: q for q in quotes}
    for update in updates:
        if isinstance(update, BookSnapshot):
            bids, asks = {}, {}
        else:
            assert isinstance(update, BookDeltas)
        for levels, book in ((update.bids, bids), (update.asks, asks)):
            for price, size in levels:
                book.pop(price, None) if size == 0 else book.__setitem__(price, size)
        quote = by_time[update.ts_event]
        assert (max(bids), bids[max(bids)]) == (quote.bid_price, quote.bid_size)
        assert (min(asks), asks[min(asks)]) == (quote.ask_price, quote.ask_size)


def test_bars_summarise_the_trades(sample: dict[str, pa.Table]) -> None:
    trades = sample["trades"].filter(pc.equal(sample["trades"].column("instrument_id"), "BBB"))
    bars = sample["bars"].filter(pc.equal(sample["bars"].column("instrument_id"), "BBB"))
    assert pc.sum(bars.column("volume")).as_py() == pc.sum(trades.column("size")).as_py()
    assert pc.max(bars.column("high")).as_py() == pc.max(trades.column("price")).as_py()
