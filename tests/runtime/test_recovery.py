"""Restore = snapshot + journal tail, and the restored state hash equals the original."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.journal import Journal
from runtime.kernel import Kernel
from runtime.messages import Bar, OrderAccepted, SubmitOrder
from runtime.recovery import JournaledKernel
from tests.runtime.test_kernel import REG, Flipper, bar, fill_for


def factory() -> Kernel:
    return Kernel(registry=REG, strategies=[Flipper("flip", {"size": 10}, instruments=("X",))],
                  initial_cash=10**13, namespace="rec", seed=3)


def drive(jk: JournaledKernel, bars: range) -> None:
    for i in bars:
        for msg in jk.handle(bar(i, 100 + i % 7)):
            if isinstance(msg, SubmitOrder):
                jk.handle(OrderAccepted(seq=0, ts_event=msg.ts_event, ts_init=msg.ts_event,
                                        client_order_id=msg.client_order_id,
                                        strategy_id=msg.strategy_id,
                                        instrument_id=msg.instrument_id, venue_order_id="v"))
                jk.handle(fill_for(msg, 100 + i % 7, f"f{i}"))


def test_restore_from_tail_only(tmp_path: Path) -> None:
    with Journal(tmp_path / "k.journal", batch_size=7) as journal:
        jk = JournaledKernel(factory(), journal, snapshot_every=10**9)
        jk.start(0)
        drive(jk, range(1, 40))
        expected = jk.kernel.state_hash()
    with Journal(tmp_path / "k.journal") as journal:
        restored = JournaledKernel.restore(factory, journal)
        assert restored.kernel.state_hash() == expected
        assert restored.kernel.portfolio.identity_gap() == 0


def test_restore_from_snapshot_plus_tail_and_continue(tmp_path: Path) -> None:
    with Journal(tmp_path / "k.journal", batch_size=5) as journal:
        jk = JournaledKernel(factory(), journal, snapshot_every=25)
        jk.start(0)
        drive(jk, range(1, 60))
        expected = jk.kernel.state_hash()
        reference = factory()
    with Journal(tmp_path / "k.journal") as journal:
        assert journal.restore().snapshot is not None
        restored = JournaledKernel.restore(factory, journal)
        assert restored.kernel.state_hash() == expected
        # ... and a restored kernel keeps issuing fresh, never reused, client order ids
        ids_before = set(restored.kernel.orders)
        drive(restored, range(60, 64))
        assert not ids_before & (set(restored.kernel.orders) - ids_before)
        assert len(restored.kernel.orders) > len(ids_before)
    del reference


def test_restore_reapplies_its_owners_blobs_in_order_and_refuses_unknown_ones(
        tmp_path: Path) -> None:
    """``blobs``: an owner's own records (an operator's change) re-applied where the journal
    holds them, between the inputs they came between; a kind nobody handles is an error."""
    from runtime.errors import InvariantError
    from runtime.journal import Blob

    seen: list[tuple[bytes, int]] = []
    with Journal(tmp_path / "k.journal") as journal:
        jk = JournaledKernel(factory(), journal, snapshot_every=10**9)
        jk.start(0)
        drive(jk, range(1, 5))
        journal.append(Blob("owner.op", b"one"))
        drive(jk, range(5, 9))
        expected = jk.kernel.state_hash()
    with Journal(tmp_path / "k.journal") as journal:
        restored = JournaledKernel.restore(
            factory, journal, blobs={"owner.op": lambda k, p: seen.append((p, k.now))})
        assert restored.kernel.state_hash() == expected
    assert [p for p, _ in seen] == [b"one"]
    assert bar(4).ts_event <= seen[0][1] < bar(5).ts_event  # after bar 4's inputs, before 5
    with Journal(tmp_path / "k.journal") as journal, \
            pytest.raises(InvariantError, match=r"unknown journal record kind 'owner\.op'"):
        JournaledKernel.restore(factory, journal)


def test_compacted_restore_reads_a_bounded_tail_and_keeps_the_market_count(
        tmp_path: Path) -> None:
    """``compact=True``: each snapshot drops the entries it covers, so the journal holds at
    most ``snapshot_every`` entries however long the kernel ran; the restored state hash and
    the count of market data handled (the owner's feed position) equal the original's."""
    with Journal(tmp_path / "k.journal", batch_size=5) as journal:
        jk = JournaledKernel(factory(), journal, snapshot_every=25, compact=True)
        jk.start(0)
        drive(jk, range(1, 300))
        expected, seen = jk.kernel.state_hash(), jk.market_seen
        last = journal.last_seq
    assert seen == 299  # one bar per step; orders and reports are not market data
    with Journal(tmp_path / "k.journal") as journal:
        snapshot, snapshot_seq, _ = journal.restore()
        assert snapshot is not None and last - snapshot_seq < 25
        assert len(list(journal.entries())) == last - snapshot_seq  # the rest was compacted
        restored = JournaledKernel.restore(factory, journal, snapshot_every=25, compact=True)
        assert restored.kernel.state_hash() == expected
        assert restored.market_seen == seen
        drive(restored, range(300, 310))
        assert restored.market_seen == seen + 10


def test_without_compaction_the_market_count_comes_from_the_whole_journal(
        tmp_path: Path) -> None:
    with Journal(tmp_path / "k.journal") as journal:
        jk = JournaledKernel(factory(), journal, snapshot_every=10**9)
        jk.start(0)
        drive(jk, range(1, 50))
    with Journal(tmp_path / "k.journal") as journal:
        assert JournaledKernel.restore(factory, journal).market_seen == 49


def test_restore_with_linked_orders_and_last_prices(tmp_path: Path) -> None:
    """Open brackets, trailing stops and the last prices come back from snapshot + tail."""
    from runtime.messages import OrderSide, OrderType
    from runtime.risk import RiskLimits
    from runtime.strategy import Strategy
    from runtime.values import fixed

    class Protected(Strategy):  # type: ignore[type-arg]
        def on_bar(self, bar: Bar) -> None:
            if not self.open_orders(bar.instrument_id):
                self.bracket(bar.instrument_id, OrderSide.BUY, 10 * 10**9,
                             take_profit=bar.close + fixed(50), stop_loss=bar.close - fixed(50))
                self.trailing_stop(bar.instrument_id, OrderSide.SELL, 10**9, ticks=3)

    def make() -> Kernel:
        return Kernel(registry=REG, strategies=[Protected("p", instruments=("X",))],
                      risk_limits=RiskLimits(max_order_notional=10**6), initial_cash=10**13,
                      namespace="lnk", seed=1)

    with Journal(tmp_path / "k.journal", batch_size=3) as journal:
        jk = JournaledKernel(make(), journal, snapshot_every=7)
        jk.start(0)
        for i in range(1, 20):  # the venue accepts everything and fills market orders only
            todo = list(jk.handle(bar(i, 100 + i % 7)))
            while todo:
                msg = todo.pop(0)
                if isinstance(msg, SubmitOrder):
                    todo += jk.handle(OrderAccepted(
                        seq=0, ts_event=msg.ts_event, ts_init=msg.ts_event,
                        client_order_id=msg.client_order_id, strategy_id=msg.strategy_id,
                        instrument_id=msg.instrument_id, venue_order_id="v"))
                    if msg.order_type is OrderType.MARKET:
                        todo += jk.handle(fill_for(msg, 100 + i % 7, f"f{msg.client_order_id}"))
        expected = jk.kernel.state_hash()
        assert jk.kernel.linked.watches and jk.kernel.prices.price
    with Journal(tmp_path / "k.journal") as journal:
        assert journal.restore().snapshot is not None
        restored = JournaledKernel.restore(make, journal)
        assert restored.kernel.state_hash() == expected
        assert restored.kernel.linked.watches == jk.kernel.linked.watches
