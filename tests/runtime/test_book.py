"""L2Book: reads, sequencing and gaps, never crossed (hypothesis), real Binance data."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.book import L2Book
from runtime.messages import BookDeltas, BookSnapshot
from runtime.values import fixed

ID = "BTCUSDT.BINANCE"


def deltas(bids=(), asks=(), *, first=-1, last=-1, prev=-1, ts=0) -> BookDeltas:  # type: ignore[no-untyped-def]
    return BookDeltas(seq=0, ts_event=ts, ts_init=ts, instrument_id=ID, bids=tuple(bids),
                      asks=tuple(asks), first_update_id=first, last_update_id=last,
                      prev_update_id=prev)


def snapshot(bids=(), asks=(), *, last=-1) -> BookSnapshot:  # type: ignore[no-untyped-def]
    return BookSnapshot(seq=0, ts_event=0, ts_init=0, instrument_id=ID, bids=tuple(bids),
                        asks=tuple(asks), last_update_id=last)


def test_reads_are_sorted_best_first_and_exact() -> None:
    book = L2Book(ID)
    book.apply_snapshot(snapshot([(100, 5), (99, 7), (101, 1)], [(103, 2), (102, 4)], last=10))
    assert book.synced
    assert book.best_bid() == (101, 1) and book.best_ask() == (102, 4)
    assert book.bids(2) == [(101, 1), (100, 5)]
    assert book.asks() == [(102, 4), (103, 2)]
    assert book.size_at(1, 99) == 7 and book.size_at(-1, 103) == 2 and book.size_at(1, 50) == 0
    assert book.mid() == 101 and book.spread() == 1
    assert book.apply_deltas(deltas([(101, 0)], [(102, 9)], first=11, last=12, prev=10))
    assert book.best_bid() == (100, 5) and book.best_ask() == (102, 9)
    assert book.last_update_id == 12


def test_chain_by_prev_update_id_and_gap_clears_and_unsyncs() -> None:
    book = L2Book(ID)
    book.apply_snapshot(snapshot([(100, 1)], [(101, 1)], last=10))
    assert book.apply_deltas(deltas([(100, 2)], first=5, last=12, prev=4))  # bridges snapshot 10
    assert book.apply_deltas(deltas([(100, 3)], first=13, last=15, prev=12))
    assert not book.apply_deltas(deltas([(100, 4)], first=20, last=22, prev=18))  # 15 != 18
    assert not book.synced and book.gap_count == 1 and book.best_bid() is None


def test_first_update_id_rule_when_prev_is_unknown() -> None:
    book = L2Book(ID)
    book.apply_snapshot(snapshot([(100, 1)], [(101, 1)], last=10))
    assert book.apply_deltas(deltas([(100, 2)], first=11, last=11))
    assert book.apply_deltas(deltas([(100, 3)], first=12, last=14))
    assert not book.apply_deltas(deltas([(100, 3)], first=16, last=17))


def test_diffs_older_than_the_snapshot_are_skipped() -> None:
    book = L2Book(ID)
    book.apply_snapshot(snapshot([(100, 1)], [(101, 1)], last=10))
    assert book.apply_deltas(deltas([(100, 9)], first=3, last=8, prev=2))
    assert book.best_bid() == (100, 1)


def test_seeding_from_diffs_becomes_synced_when_both_sides_have_levels() -> None:
    book = L2Book(ID)
    assert not book.synced
    assert book.apply_deltas(deltas([(100, 1)], first=5, last=6, prev=4))
    assert not book.synced  # no asks yet
    assert book.apply_deltas(deltas([], [(101, 1)], first=7, last=8, prev=6))
    assert book.synced
    strict = L2Book(ID, seed_from_diffs=False)
    assert not strict.apply_deltas(deltas([(100, 1)], [(101, 1)], first=5, last=6))
    assert not strict.synced


def test_uncrossing_removes_untouched_stale_levels() -> None:
    book = L2Book(ID)
    book.apply_snapshot(snapshot([(100, 1), (99, 1)], [(101, 1), (102, 1), (104, 1)], last=1))
    assert book.apply_deltas(deltas([(102, 5)], first=2, last=2, prev=1))  # bid through 101, 102
    assert book.best_bid() == (102, 5) and book.best_ask() == (104, 1)
    assert book.stale_removed == 2


def test_depth_cap_keeps_the_best_levels() -> None:
    book = L2Book(ID, depth=2)
    book.apply_snapshot(snapshot([(100, 1), (99, 1), (98, 1)], [(101, 1), (102, 1), (103, 1)]))
    assert book.bids() == [(100, 1), (99, 1)] and book.asks() == [(101, 1), (102, 1)]


levels = st.lists(st.tuples(st.integers(90, 110), st.integers(0, 3)), max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(levels, levels), min_size=1, max_size=40), st.integers(1, 5) | st.none())
def test_book_is_never_crossed_and_sides_stay_sorted(updates, depth) -> None:  # type: ignore[no-untyped-def]
    book = L2Book(ID, depth=depth)
    for i, (bids, asks) in enumerate(updates):
        assert book.apply_deltas(deltas(bids, asks, first=i + 1, last=i + 1, prev=i))
        bb, ba = book.best_bid(), book.best_ask()
        if bb is not None and ba is not None:
            assert bb[0] < ba[0]
        b, a = book.bids(), book.asks()
        assert [p for p, _ in b] == sorted((p for p, _ in b), reverse=True)
        assert [p for p, _ in a] == sorted(p for p, _ in a)
        assert all(s > 0 for _, s in b + a)
        if depth is not None:
            assert len(b) <= depth and len(a) <= depth


def _nautilus_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_real_binance_update_that_does_not_chain_from_the_snapshot_is_a_gap(
    shared_data: Callable[[str], Path],
) -> None:
    snap = _nautilus_rows(shared_data("nautilus_trader__btcusdt-depth-snap.csv"))
    update = _nautilus_rows(shared_data("nautilus_trader__btcusdt-depth-update.csv"))

    def side(rows: list[dict[str, str]], s: str) -> list[tuple[int, int]]:
        return [(fixed(r["price"]), fixed(r["qty"])) for r in rows if r["side"] == s]

    book = L2Book(ID)
    book.apply_snapshot(snapshot(side(snap, "b"), side(snap, "a"),
                                 last=int(snap[0]["last_update_id"])))
    assert book.best_bid() == (fixed("20377.00"), fixed("1.770"))
    u = update[0]
    diff = deltas(side(update, "b"), side(update, "a"), first=int(u["first_update_id"]),
                  last=int(u["last_update_id"]), prev=int(u["pu"]))
    assert book.apply_deltas(diff) is False
    assert not book.synced and book.gap_count == 1


def test_real_capture_prefix_seeds_a_book_that_is_never_crossed(
    shared_data: Callable[[str], Path],
) -> None:
    path = shared_data("hftbacktest__btcusdt_20240808.gz")
    book = L2Book(ID)
    applied = 0
    with gzip.open(path, "rb") as f:
        for line in f:
            msg = orjson.loads(line[20:])
            data = msg.get("data")
            if data is None or data.get("e") != "depthUpdate":
                continue
            d = deltas([(fixed(p), fixed(q)) for p, q in data["b"]],
                       [(fixed(p), fixed(q)) for p, q in data["a"]],
                       first=data["U"], last=data["u"], prev=data["pu"], ts=data["T"] * 10**6)
            assert book.apply_deltas(d)  # the capture has no gaps
            applied += 1
            bb, ba = book.best_bid(), book.best_ask()
            if bb and ba:
                assert bb[0] < ba[0]
            if applied == 300:
                break
    assert book.synced and book.gap_count == 0
    assert fixed("50000") < book.mid() < fixed("70000")  # type: ignore[operator]
