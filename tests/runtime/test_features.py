"""FeatureSet against hand-computed values."""

from __future__ import annotations

import itertools
import math

import pytest

from runtime.book import L2Book
from runtime.features import FeatureSet
from runtime.messages import BookSnapshot, QuoteTick, TradeTick
from runtime.values import fixed

ID = "X"
S = 1_000_000_000


def quote(bid: str, bsz: str, ask: str, asz: str, ts: int) -> QuoteTick:
    return QuoteTick(seq=0, ts_event=ts, ts_init=ts, instrument_id=ID, bid_price=fixed(bid),
                     bid_size=fixed(bsz), ask_price=fixed(ask), ask_size=fixed(asz))


def trade(price: str, size: str, ts: int) -> TradeTick:
    return TradeTick(seq=0, ts_event=ts, ts_init=ts, instrument_id=ID, price=fixed(price),
                     size=fixed(size))


def test_top_of_book_features_from_a_book() -> None:
    book = L2Book(ID)
    book.apply_snapshot(BookSnapshot(
        seq=0, ts_event=5, ts_init=5, instrument_id=ID,
        bids=((fixed(100), fixed(3)), (fixed(99), fixed(1))),
        asks=((fixed(101), fixed(1)), (fixed(102), fixed(5))), last_update_id=1))
    fs = FeatureSet(ID, imbalance_levels=2)
    fs.on_book(book)
    snap = fs.snapshot()
    assert snap["mid"] == 100.5 and snap["spread"] == 1.0
    assert snap["microprice"] == pytest.approx((100 * 1 + 101 * 3) / 4)  # 100.75
    assert snap["imbalance"] == pytest.approx((4 - 6) / 10)


def test_order_flow_imbalance_follows_cont_kukanov_stoikov() -> None:
    fs = FeatureSet(ID, ofi_window_ns=10 * S)
    fs.on_quote(quote("100", "5", "101", "4", 0))
    fs.on_quote(quote("100", "7", "101", "4", 1))  # bid size +2 at same price: e = +2
    assert fs.snapshot()["ofi"] == pytest.approx(2.0)
    fs.on_quote(quote("100.5", "1", "101", "3", 2))  # bid up: +1; ask size 4 -> 3: +1
    assert fs.snapshot()["ofi"] == pytest.approx(4.0)
    fs.on_quote(quote("100.5", "1", "100.9", "2", 3))  # ask down: -2
    assert fs.snapshot()["ofi"] == pytest.approx(2.0)
    fs.on_quote(quote("100", "6", "100.9", "2", 4))  # bid down: -1 (old bid size)
    assert fs.snapshot()["ofi"] == pytest.approx(1.0)
    fs.on_quote(quote("100", "6", "100.9", "2", 12 * S))  # window drops everything before
    assert fs.snapshot()["ofi"] == 0.0


def test_realized_vol_is_root_sum_of_squared_mid_log_returns_in_window() -> None:
    fs = FeatureSet(ID, vol_window_ns=10 * S)
    mids = [100.0, 101.0, 100.0, 102.0]
    for i, m in enumerate(mids):
        fs.on_quote(quote(str(m - 0.5), "1", str(m + 0.5), "1", i * S))
    expected = math.sqrt(sum(math.log(b / a) ** 2 for a, b in itertools.pairwise(mids)))
    assert fs.snapshot()["realized_vol"] == pytest.approx(expected, rel=1e-12)


def test_session_and_rolling_vwap() -> None:
    fs = FeatureSet(ID, vwap_window_ns=10 * S)
    fs.on_trade(trade("100", "1", 0))
    fs.on_trade(trade("102", "3", 5 * S))
    assert fs.snapshot()["vwap_session"] == pytest.approx((100 + 306) / 4)
    fs.on_trade(trade("110", "1", 12 * S))  # the first trade leaves the 10 s window
    snap = fs.snapshot()
    assert snap["vwap_rolling"] == pytest.approx((306 + 110) / 4)
    assert snap["vwap_session"] == pytest.approx((100 + 306 + 110) / 5)
    assert snap["last_trade_price"] == 110.0


def test_unknown_features_are_nan() -> None:
    snap = FeatureSet(ID).snapshot()
    assert math.isnan(snap["mid"]) and math.isnan(snap["vwap_session"])


def _walk(n: int, seed: int, *, late: float = 0.0) -> list[QuoteTick]:
    """Quotes of a random walk; a share ``late`` of them half a second out of time order."""
    import random

    rng = random.Random(seed)
    out, ts, bid = [], 0, 10_000
    for _ in range(n):
        ts += rng.choice([1, 1_000, S // 100, S // 3]) if rng.random() >= late else -S // 2
        bid += rng.choice([-1, 0, 0, 1])
        out.append(quote(f"{bid / 100:.2f}", str(rng.randint(1, 9)), f"{(bid + 1) / 100:.2f}",
                         str(rng.randint(1, 9)), ts))
    return out


def test_windows_match_sums_over_their_entries_across_compaction() -> None:
    """Past thousands of evictions (the windows cut their evicted prefix), OFI and realized
    vol still equal the sums over the entries inside the window (time in order)."""
    fs = FeatureSet(ID, ofi_window_ns=S, vol_window_ns=2 * S)
    entries: list[tuple[int, float, float]] = []  # ts, ofi contribution, squared return
    prev: QuoteTick | None = None
    for k, q in enumerate(_walk(30_000, 1)):
        fs.on_quote(q)
        newest = q.ts_event
        if prev is not None:
            e = ((q.bid_size if q.bid_price >= prev.bid_price else 0)
                 - (prev.bid_size if q.bid_price <= prev.bid_price else 0)
                 - (q.ask_size if q.ask_price <= prev.ask_price else 0)
                 + (prev.ask_size if q.ask_price >= prev.ask_price else 0))
            mids = (prev.bid_price + prev.ask_price, q.bid_price + q.ask_price)
            r2 = math.log(mids[1] / mids[0]) ** 2 if mids[1] != mids[0] else None
            entries.append((q.ts_event, e / 1e9, math.nan if r2 is None else r2))
        prev = q
        if k % 997 == 0:
            ofi = sum(e for ts, e, _ in entries if ts > newest - S)
            var = sum(r2 for ts, _, r2 in entries if ts > newest - 2 * S and r2 == r2)
            snap = fs.snapshot()
            assert snap["ofi"] == pytest.approx(ofi, abs=1e-6)
            assert snap["realized_vol"] == pytest.approx(math.sqrt(var), abs=1e-9)


def test_a_pickled_feature_set_goes_on_exactly_as_the_original() -> None:
    import pickle

    kept, moved = FeatureSet(ID, ofi_window_ns=S), FeatureSet(ID, ofi_window_ns=S)
    for k, q in enumerate(_walk(20_000, 2, late=0.05)):
        kept.on_quote(q)
        moved.on_quote(q)
        if k % 1_500 == 0:
            moved = pickle.loads(pickle.dumps(moved, protocol=pickle.HIGHEST_PROTOCOL))
        if k % 7 == 0:
            trade_ = trade("100", "1", q.ts_event)
            kept.on_trade(trade_)
            moved.on_trade(trade_)
        assert repr(moved.values()) == repr(kept.values())
