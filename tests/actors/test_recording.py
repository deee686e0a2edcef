"""Recorder rows and the spill spool, without Ray: exact values, routing, spill/drain, no dupes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from actors.recording import (
    TABLES_OF,
    MarketSampler,
    decode_batch,
    encode_batch,
    row_key,
    to_tables,
)
from actors.spool import Spool, SpoolConfig, SpoolMode
from backtest.store import Store, open_store
from runtime.errors import DataError, StoreError
from runtime.messages import (
    Bar,
    BookDeltas,
    BookSnapshot,
    CancelOrder,
    Liquidity,
    Message,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderType,
    OrderUpdated,
    PositionChanged,
    QuoteTick,
    Side,
    SubmitOrder,
    TimeInForce,
    TimerFired,
    TradeTick,
    TradingState,
    TradingStateChanged,
)
from runtime.values import fixed

T = {"ts_event": 1_700_000_000_000_000_000, "ts_init": 1_700_000_000_000_000_123}
IDS = {"client_order_id": "S1-demo-1", "strategy_id": "demo", "instrument_id": "SIM-A"}


def submit(n: int = 1, **kw: Any) -> SubmitOrder:
    fields = {**T, **IDS, "client_order_id": f"S1-demo-{n}", "seq": 0, "side": OrderSide.BUY,
              "order_type": OrderType.LIMIT, "quantity": fixed("2"), "price": fixed("101.25"),
              "time_in_force": TimeInForce.DAY, **kw}
    return SubmitOrder(**fields)


def fill(n: int, *, seq: int = 0) -> OrderFilled:
    return OrderFilled(
        seq=seq, **T, **IDS, venue_order_id="V-1", fill_id=f"F-{n}", side=OrderSide.SELL,
        last_qty=fixed("0.5"), last_price=fixed("99.999999999"), cum_qty=fixed("1.5"),
        leaves_qty=fixed("0.5"), fee=fixed("-0.000000001"), currency="USD",
        liquidity=Liquidity.MAKER,
    )


def quote(n: int, instrument: str = "SIM-A") -> QuoteTick:
    return QuoteTick(seq=n, ts_event=1_000 + n, ts_init=1_000 + n, instrument_id=instrument,
                     bid_price=fixed("100.5") + n, bid_size=fixed("3"),
                     ask_price=fixed("100.75"), ask_size=2**63 - 1)


def every_kind() -> list[Message]:
    return [
        submit(), CancelOrder(seq=1, **T, **IDS),
        ModifyOrder(seq=2, **T, **IDS, quantity=fixed("1"), price=None, trigger_price=fixed("9")),
        OrderAccepted(seq=3, **T, **IDS, venue_order_id="V-1"),
        OrderDenied(seq=4, **T, **IDS, reason_code="max_position", reason="too big"),
        OrderRejected(seq=5, **T, **IDS, reason="no", venue_code="201"),
        OrderCanceled(seq=6, **T, **IDS), OrderCancelRejected(seq=7, **T, **IDS, reason="late"),
        OrderExpired(seq=8, **T, **IDS), OrderUpdated(seq=9, **T, **IDS, quantity=fixed("3")),
        fill(1, seq=10),
        PositionChanged(seq=0, **T, instrument_id="SIM-A", quantity=fixed("-1.5"),
                        avg_price=fixed("99.999999999"), realized_pnl=fixed("-12.5")),
        TradingStateChanged(seq=0, **T, state=TradingState.HALTED, reason="kill file"),
        quote(1),
        TradeTick(seq=0, **T, instrument_id="SIM-A", price=fixed("100.6"), size=fixed("7"),
                  aggressor=Side.SELL, trade_id="t1"),
        Bar(seq=0, **T, instrument_id="SIM-A", open=1, high=4, low=0, close=2, volume=9,
            interval_ns=60_000_000_000),
        BookDeltas(seq=5, **T, instrument_id="SIM-A", bids=((fixed("100"), 0),),
                   asks=((fixed("101"), fixed("2")), (fixed("102"), 1)),
                   first_update_id=11, last_update_id=12, prev_update_id=10),
        BookSnapshot(seq=9, **T, instrument_id="SIM-B", bids=((fixed("1"), 1),), asks=(),
                     last_update_id=40),
        TimerFired(seq=0, **T, name="tick"),
    ]


# --- conversion ---------------------------------------------------------------------------------


def test_every_message_type_lands_in_its_tables() -> None:
    tables = to_tables("S1", every_kind())
    counts = {name: t.num_rows for name, t in tables.items()}
    assert counts == {"orders": 10, "fills": 1, "risk_events": 2, "positions": 1, "quotes": 1,
                      "trades": 1, "bars": 1, "book_deltas": 4}
    events = tables["orders"].column("event").to_pylist()
    assert sorted(events) == sorted(cls.__name__ for cls, t in TABLES_OF.items() if "orders" in t)
    assert TimerFired not in TABLES_OF


def test_order_rows_carry_exact_values_and_readable_reasons() -> None:
    rows = {r["event"]: r for r in to_tables("S1", every_kind())["orders"].to_pylist()}
    sub = rows["SubmitOrder"]
    assert (sub["session_id"], sub["client_order_id"], sub["side"], sub["order_type"],
            sub["time_in_force"], sub["quantity"], sub["price"], sub["trigger_price"]) == (
        "S1", "S1-demo-1", 1, "limit", "day", 2_000_000_000, 101_250_000_000, None)
    modify = rows["ModifyOrder"]
    assert modify["price"] is None and modify["trigger_price"] == 9 * 10**9
    assert rows["OrderAccepted"]["venue_order_id"] == "V-1"
    assert rows["OrderDenied"]["reason"] == "max_position: too big"
    assert rows["OrderRejected"]["reason"] == "no [201]"
    assert rows["CancelOrder"]["side"] == 0 and rows["CancelOrder"]["order_type"] == ""
    assert all(r["seq"] >= 0 for r in rows.values())
    assert len({r["seq"] for r in rows.values()}) == len(rows)  # row keys never collide


def test_fill_risk_and_position_rows() -> None:
    tables = to_tables("S1", every_kind())
    (f,) = tables["fills"].to_pylist()
    assert f == {"session_id": "S1", **T, "seq": 10, "fill_id": "F-1", **IDS,
                 "venue_order_id": "V-1", "side": -1, "last_qty": 500_000_000,
                 "last_price": 99_999_999_999, "cum_qty": 1_500_000_000,
                 "leaves_qty": 500_000_000, "fee": -1, "currency": "USD", "liquidity": "maker",
                 "fee_qty": 0}
    risk = {r["event"]: r for r in tables["risk_events"].to_pylist()}
    assert risk["OrderDenied"]["reason_code"] == "max_position"
    assert risk["OrderDenied"]["trading_state"] == ""
    assert (risk["TradingStateChanged"]["trading_state"], risk["TradingStateChanged"]["reason"]) \
        == ("halted", "kill file")
    (p,) = tables["positions"].to_pylist()
    assert (p["quantity"], p["avg_price"], p["realized_pnl"]) == (-1_500_000_000, 99_999_999_999,
                                                                   -12_500_000_000)


def test_market_rows_follow_the_store_convention() -> None:
    tables = to_tables("S1", every_kind())
    (q,) = tables["quotes"].to_pylist()
    assert q == {"ts_event": 1001, "ts_init": 1001, "seq": 1, "instrument_id": "SIM-A",
                 "bid_price": 100_500_000_001, "bid_size": 3 * 10**9,
                 "ask_price": 100_750_000_000, "ask_size": 2**63 - 1}
    assert tables["trades"].column("aggressor").to_pylist() == [-1]
    book = tables["book_deltas"].to_pylist()
    assert [(r["instrument_id"], r["seq"], r["side"], r["size"], r["is_snapshot"]) for r in book] \
        == [("SIM-A", 5, 1, 0, False), ("SIM-A", 6, -1, 2 * 10**9, False),
            ("SIM-A", 7, -1, 1, False), ("SIM-B", 9, 1, 1, True)]
    assert book[3]["first_update_id"] == book[3]["last_update_id"] == 40


def test_row_key_is_content_derived() -> None:
    assert row_key(submit()) == row_key(submit())
    assert row_key(submit()) != row_key(submit(ts_init=T["ts_init"] + 1))
    assert 0 <= row_key(submit()) < 2**63


def test_batches_round_trip_and_garbage_is_a_data_error() -> None:
    batch = every_kind()
    assert decode_batch(encode_batch(batch)) == batch
    with pytest.raises(DataError, match="not a recorder batch"):
        decode_batch(b"\x01\x02garbage")


def test_market_sampling_keeps_every_nth_per_instrument() -> None:
    messages = [quote(i, "SIM-A") for i in range(10)] + [quote(i, "SIM-B") for i in range(4)]
    tables = to_tables("S1", messages, sampler=MarketSampler(3))
    kept = tables["quotes"].select(["instrument_id", "seq"]).to_pylist()
    assert [(r["instrument_id"], r["seq"]) for r in kept] == [
        ("SIM-A", 0), ("SIM-A", 3), ("SIM-A", 6), ("SIM-A", 9), ("SIM-B", 0), ("SIM-B", 3)]
    assert "quotes" not in to_tables("S1", messages, sampler=MarketSampler(0))


# --- the spool: spill, drain, crash -------------------------------------------------------------


class FakeStore:
    """Counts what is written; fails while ``down`` (optionally after ``fail_after`` tables)."""

    def __init__(self) -> None:
        self.down = False
        self.inserted: list[tuple[str, pa.Table]] = []

    def insert_tables(self, tables: dict[str, pa.Table]) -> None:
        if self.down:
            raise StoreError("the store is unavailable")
        self.inserted.extend(tables.items())

    def rows(self, table: str) -> list[dict[str, Any]]:
        return [r for name, t in self.inserted if name == table for r in t.to_pylist()]


def pump(spool: Spool, sink: Any, now: float = 0.0, *, force: bool = True) -> int:
    """Write chunks until nothing is queued or a write fails; returns chunks written."""
    written = 0
    while spool.pending_events() and (force or spool.due(now)):
        spool.retry_now()
        chunk = spool.next_chunk()
        assert chunk is not None
        try:
            sink.insert_tables(chunk.tables)
        except StoreError as exc:
            spool.failed(chunk, exc, now_s=now)
            return written
        spool.written(chunk, now_s=now, latency_s=0.0)
        written += 1
    return written


def fills(start: int, n: int) -> bytes:
    return encode_batch([fill(i, seq=i) for i in range(start, start + n)])


@pytest.fixture
def spill(tmp_path: Path) -> Path:
    return tmp_path / "spill.journal"


def test_writes_in_chunks_when_healthy(spill: Path) -> None:
    spool = Spool("S1", spill, SpoolConfig(batch_rows=25, flush_interval_s=1.0), now_s=0.0)
    store = FakeStore()
    spool.accept(fills(0, 10), now_s=0.0)
    assert not spool.due(0.5) and spool.due(1.0)  # old enough
    for k in range(1, 3):
        spool.accept(fills(10 * k, 10), now_s=0.6)
    assert spool.due(0.6)  # 30 >= batch_rows
    assert pump(spool, store) == 2  # 20 + 10 (chunks hold whole entries)
    assert [r["fill_id"] for r in store.rows("fills")] == [f"F-{i}" for i in range(30)]
    stats = spool.snapshot_stats(1.0)
    assert (stats["events_written"], stats["events_spilled"], stats["pending_events"]) == (30, 0, 0)
    assert stats["spill_entries"] == 0 and spool.mode is SpoolMode.HEALTHY


def test_store_fails_mid_batch_then_drains_in_order(spill: Path) -> None:
    spool = Spool("S1", spill, SpoolConfig(batch_rows=10), now_s=0.0)
    store = FakeStore()
    spool.accept(fills(0, 10), now_s=0.0)
    pump(spool, store)
    store.down = True
    spool.accept(fills(10, 10), now_s=1.0)
    assert pump(spool, store, now=1.0) == 0  # the write fails: spilled
    assert spool.mode is SpoolMode.DRAINING
    for k in range(2, 5):
        spool.accept(fills(10 * k, 10), now_s=2.0)
    stats = spool.snapshot_stats(2.5)
    assert (stats["events_spilled"], stats["pending_events"], stats["store_errors"]) == (40, 40, 1)
    assert stats["lag_s"] == pytest.approx(1.5) and stats["spill_entries"] == 4
    store.down = False
    assert pump(spool, store, now=3.0) == 4
    assert [r["fill_id"] for r in store.rows("fills")] == [f"F-{i}" for i in range(50)]
    assert spool.mode is SpoolMode.HEALTHY and spool.snapshot_stats(3.0)["outages"] == 1


def test_restart_reopens_the_journal_and_drains_what_is_left(spill: Path) -> None:
    store = FakeStore()
    spool = Spool("S1", spill, SpoolConfig(batch_rows=10), now_s=0.0)
    spool.accept(fills(0, 10), now_s=0.0)
    pump(spool, store)
    for k in range(1, 4):
        spool.accept(fills(10 * k, 10), now_s=0.0)  # accepted, never written: then a crash
    del spool  # no close: as after SIGKILL, only committed journal entries remain
    again = Spool("S1", spill, SpoolConfig(batch_rows=10), now_s=5.0)
    assert again.mode is SpoolMode.DRAINING and again.pending_events() == 30
    pump(again, store, now=5.0)
    assert [r["fill_id"] for r in store.rows("fills")] == [f"F-{i}" for i in range(40)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with open_store(f"chdb://{tmp_path_factory.mktemp('recording') / 'ch'}") as opened:
        yield opened


class RealSink:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False

    def insert_tables(self, tables: dict[str, pa.Table]) -> None:
        if self.down:
            raise StoreError("down")
        for name, table in tables.items():
            self.store.insert_arrow(name, table)


def final_count(store: Store, table: str, session_id: str) -> int:
    sql = f"SELECT count() FROM {table} FINAL WHERE session_id = '{session_id}'"
    return int(store.command(sql))


def test_redrain_after_a_crash_mid_drain_writes_each_row_once(spill: Path, store: Store) -> None:
    session = "S-crash-mid-drain"
    sink = RealSink(store)
    spool = Spool(session, spill, SpoolConfig(batch_rows=100), now_s=0.0)
    events = [m for i in range(60) for m in (submit(i), fill(i, seq=i), OrderAccepted(
        seq=i, **T, **{**IDS, "client_order_id": f"S1-demo-{i}"}, venue_order_id=f"V{i}"))]
    sink.down = True
    for k in range(0, len(events), 30):
        spool.accept(encode_batch(events[k:k + 30]), now_s=0.0)
        pump(spool, sink)
    sink.down = False
    chunk = spool.next_chunk()  # the drain writes a chunk, then the process dies before marking
    assert chunk is not None
    sink.insert_tables(chunk.tables)
    del spool
    again = Spool(session, spill, SpoolConfig(batch_rows=100), now_s=0.0)
    assert again.pending_events() == len(events)  # the watermark did not move
    pump(again, sink)
    assert final_count(store, "orders", session) == 120
    assert final_count(store, "fills", session) == 60
    raw = int(store.command(f"SELECT count() FROM orders WHERE session_id = '{session}'"))
    assert raw > 120  # the chunk really was written twice; FINAL shows each row once
