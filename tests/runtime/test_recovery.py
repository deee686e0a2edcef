"""Restore = snapshot + journal tail with the market data re-read from the feed's log, and the
restored state hash (and the strategies' own state) equals the original."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest

from runtime.errors import ConfigError, DataError, InvariantError
from runtime.journal import Blob, Journal, JournalReader
from runtime.kernel import Kernel
from runtime.messages import Bar, MarketData, OrderAccepted, OrderSide, SubmitOrder
from runtime.recovery import (
    DROP,
    MARK,
    FeedJournal,
    JournaledKernel,
    check_snapshot,
    snapshot_position,
)
from runtime.snapshots import SNAPSHOT_VERSION
from runtime.strategy import Strategy
from runtime.values import fixed
from tests.runtime.test_kernel import REG, Flipper, bar, fill_for

FEED: list[MarketData] = [bar(i, 100 + i % 7) for i in range(1, 400)]  # index i - 1


class ListFeed:
    """A feed's log over a list (what ``actors.feed_log.FeedLog`` is over its files)."""

    def __init__(self, messages: Sequence[MarketData]) -> None:
        self.messages = list(messages)
        self.reads = 0

    def read(self, start: int, stop: int) -> Sequence[MarketData]:
        self.reads += stop - start
        if stop > len(self.messages):
            raise DataError(f"the feed's log ends at index {len(self.messages)}")
        return self.messages[start:stop]


def factory() -> Kernel:
    return Kernel(registry=REG, strategies=[Flipper("flip", {"size": 10}, instruments=("X",))],
                  initial_cash=10**13, namespace="rec", seed=3)


def new(journal: Journal, snapshot_every: int = 10**9) -> JournaledKernel:
    return JournaledKernel.restore(factory, journal, ListFeed(FEED),
                                   snapshot_every=snapshot_every)


def drive(jk: JournaledKernel, bars: range) -> None:
    for i in bars:
        assert jk.position == i - 1
        for msg in jk.handle(FEED[i - 1]):
            if isinstance(msg, SubmitOrder):
                jk.handle(OrderAccepted(seq=0, ts_event=msg.ts_event, ts_init=msg.ts_event,
                                        client_order_id=msg.client_order_id,
                                        strategy_id=msg.strategy_id,
                                        instrument_id=msg.instrument_id, venue_order_id="v"))
                jk.handle(fill_for(msg, 100 + i % 7, f"f{i}"))
        jk.flush()


def strategy_state(jk: JournaledKernel) -> tuple[int, list[int]]:
    (flipper,) = jk.kernel.strategies
    assert isinstance(flipper, Flipper)
    return flipper.n, list(flipper.seen)


def test_restore_from_tail_only_reads_market_data_from_the_feed(tmp_path: Path) -> None:
    """The journal holds the kernel's own inputs and feed markers, no market data; a restore
    re-reads the bars from the feed's log and comes back with the same state."""
    with Journal(tmp_path / "k.journal", batch_size=7) as journal:
        jk = new(journal)
        jk.start(0)
        drive(jk, range(1, 40))
        expected, strategy = jk.kernel.state_hash(), strategy_state(jk)
        kinds = {type(r).__name__ if not isinstance(r, Blob) else r.kind
                 for _, r in journal.entries()}
    assert "Bar" not in kinds and MARK in kinds
    with Journal(tmp_path / "k.journal") as journal:
        feed = ListFeed(FEED)
        restored = JournaledKernel.restore(factory, journal, feed, snapshot_every=10**9)
        assert restored.kernel.state_hash() == expected
        assert strategy_state(restored) == strategy
        assert restored.position == 39 and feed.reads == 39
        assert restored.kernel.portfolio.identity_gap() == 0


def test_snapshot_holds_the_strategy_whole_and_compaction_bounds_the_tail(
        tmp_path: Path) -> None:
    """A snapshot every 25 inputs (market data included) pickles the kernel with its
    strategies (their own attributes too, which a JSON snapshot of the kernel never held); the
    entries it covers are deleted, so a restore reads one snapshot and a short tail."""
    with Journal(tmp_path / "k.journal", batch_size=5) as journal:
        jk = new(journal, snapshot_every=25)
        jk.start(0)
        drive(jk, range(1, 300))
        expected, strategy = jk.kernel.state_hash(), strategy_state(jk)
        last = journal.last_seq
    with Journal(tmp_path / "k.journal") as journal:
        snapshot, snapshot_seq, _ = journal.restore()
        assert snapshot is not None
        tail = list(journal.entries())
        assert len(tail) == last - snapshot_seq < 25  # the rest was compacted
        feed = ListFeed(FEED)
        restored = JournaledKernel.restore(factory, journal, feed, snapshot_every=25)
        assert restored.kernel.state_hash() == expected
        assert strategy_state(restored) == strategy
        assert restored.position == 299 and feed.reads < 25
        # ... and goes on: fresh, never reused, client order ids; the position moves on
        ids_before = set(restored.kernel.orders)
        drive(restored, range(300, 310))
        assert restored.position == 309
        assert len(restored.kernel.orders) > len(ids_before)


def test_restore_reapplies_its_owners_blobs_in_order_and_refuses_unknown_ones(
        tmp_path: Path) -> None:
    """``blobs``: an owner's own records (an operator's change) re-applied where the journal
    holds them, between the market data they came between; a kind nobody handles is an
    error."""
    seen: list[tuple[bytes, int]] = []
    with Journal(tmp_path / "k.journal") as journal:
        jk = new(journal)
        jk.start(0)
        drive(jk, range(1, 5))
        jk.append(Blob("owner.op", b"one"))
        drive(jk, range(5, 9))
        expected = jk.kernel.state_hash()
    with Journal(tmp_path / "k.journal") as journal:
        restored = JournaledKernel.restore(
            factory, journal, ListFeed(FEED), snapshot_every=10**9,
            blobs={"owner.op": lambda k, p: seen.append((p, k.now))})
        assert restored.kernel.state_hash() == expected
    assert [p for p, _ in seen] == [b"one"]
    assert bar(4).ts_event <= seen[0][1] < bar(5).ts_event  # after bar 4's inputs, before 5
    with Journal(tmp_path / "k.journal") as journal, \
            pytest.raises(InvariantError, match=r"unknown journal record kind 'owner\.op'"):
        new(journal)


def test_a_position_reached_without_own_inputs_is_journaled_before_the_commit(
        tmp_path: Path) -> None:
    """Market data alone (no order, no report) still leaves its position in the journal at the
    next commit: what a component answered after it is never replayed short."""
    with Journal(tmp_path / "k.journal") as journal:
        jk = new(journal)
        jk.start(0)
        jk.handle(FEED[0])
        jk.handle(FEED[1])
        jk.flush()
    with Journal(tmp_path / "k.journal") as journal:
        assert new(journal).position == 2


def test_a_feed_log_shorter_than_the_journal_is_an_error(tmp_path: Path) -> None:
    with Journal(tmp_path / "k.journal") as journal:
        jk = new(journal)
        jk.start(0)
        drive(jk, range(1, 30))
    with Journal(tmp_path / "k.journal") as journal, \
            pytest.raises(DataError, match="ends at index 20"):
        JournaledKernel.restore(factory, journal, ListFeed(FEED[:20]), snapshot_every=10**9)


def test_a_feed_log_holding_other_data_is_an_error_not_a_silent_replay(tmp_path: Path) -> None:
    with Journal(tmp_path / "k.journal") as journal:
        jk = new(journal)
        jk.start(0)
        drive(jk, range(1, 30))
    changed = list(FEED)
    changed[28] = msgspec.structs.replace(changed[28], ts_event=changed[28].ts_event + 1)
    with Journal(tmp_path / "k.journal") as journal, \
            pytest.raises(DataError, match="another message at index 28"):
        JournaledKernel.restore(factory, journal, ListFeed(changed), snapshot_every=10**9)


def test_restore_with_linked_orders_and_last_prices(tmp_path: Path) -> None:
    """Open brackets, trailing stops and the last prices come back from snapshot + tail."""
    from runtime.messages import OrderType
    from runtime.risk import RiskLimits

    def make() -> Kernel:
        return Kernel(registry=REG, strategies=[Protected("p", instruments=("X",))],
                      risk_limits=RiskLimits(max_order_notional=10**6), initial_cash=10**13,
                      namespace="lnk", seed=1)

    with Journal(tmp_path / "k.journal", batch_size=3) as journal:
        jk = JournaledKernel.restore(make, journal, ListFeed(FEED), snapshot_every=7)
        jk.start(0)
        for i in range(1, 20):  # the venue accepts everything and fills market orders only
            todo = list(jk.handle(FEED[i - 1]))
            while todo:
                msg = todo.pop(0)
                if isinstance(msg, SubmitOrder):
                    todo += jk.handle(OrderAccepted(
                        seq=0, ts_event=msg.ts_event, ts_init=msg.ts_event,
                        client_order_id=msg.client_order_id, strategy_id=msg.strategy_id,
                        instrument_id=msg.instrument_id, venue_order_id="v"))
                    if msg.order_type is OrderType.MARKET:
                        todo += jk.handle(fill_for(msg, 100 + i % 7, f"f{msg.client_order_id}"))
        jk.flush()
        expected = jk.kernel.state_hash()
        assert jk.kernel.linked.watches and jk.kernel.prices.price
    with Journal(tmp_path / "k.journal") as journal:
        assert journal.restore().snapshot is not None
        restored = JournaledKernel.restore(make, journal, ListFeed(FEED), snapshot_every=7)
        assert restored.kernel.state_hash() == expected
        assert restored.kernel.linked.watches == jk.kernel.linked.watches


class Protected(Strategy):  # type: ignore[type-arg]
    def on_bar(self, bar: Bar) -> None:
        if not self.open_orders(bar.instrument_id):
            self.bracket(bar.instrument_id, OrderSide.BUY, 10 * 10**9,
                         take_profit=bar.close + fixed(50), stop_loss=bar.close - fixed(50))
            self.trailing_stop(bar.instrument_id, OrderSide.SELL, 10**9, ticks=3)


class Unpicklable(Flipper):
    def on_start(self) -> None:
        super().on_start()
        self.rule = lambda x: x > 0  # a lambda does not pickle


def test_a_strategy_that_does_not_pickle_is_refused_by_name() -> None:
    kernel = Kernel(registry=REG, strategies=[Unpicklable("odd", {"size": 1},
                                                          instruments=("X",))],
                    initial_cash=10**13, namespace="u", seed=0)
    kernel.start(0)
    with pytest.raises(ConfigError, match=r"strategy 'odd' \(tests\.runtime\.test_recovery:"
                                          r"Unpicklable\) cannot be snapshotted"):
        check_snapshot(kernel)
    fine = factory()
    fine.start(0)
    check_snapshot(fine)  # a plain strategy passes


def _replayed(path: Path) -> tuple[list[tuple[int, int]], int]:
    runs: list[tuple[int, int]] = []

    def market(start: int, msgs: Sequence[MarketData]) -> None:
        runs.append((start, len(msgs)))

    def record(entry: object) -> None:
        raise AssertionError(f"unexpected {entry!r}")

    with Journal(path) as journal:
        fj = FeedJournal.restore(journal, ListFeed(FEED), snapshot_every=10**9,
                                 load=lambda _: None, market=market, record=record)
        return runs, fj.position


def test_skipped_market_data_is_skipped_again_on_restore(tmp_path: Path) -> None:
    """An owner that passed over messages (a real-time step's conflated quotes) moves its
    position over them and notes them before the marker: a restore hands it the rest, in runs
    of consecutive indices, and the position after all of them."""
    with Journal(tmp_path / "k.journal") as journal:
        fj = FeedJournal(journal, snapshot_every=10**9)
        for msg in FEED[:10]:
            fj.market(msg)
        fj.drop([2, 3, 7])
        fj.flush()
        for msg in FEED[10:13]:
            fj.market(msg)
        fj.drop([12])
        fj.flush()
    assert _replayed(tmp_path / "k.journal") == ([(0, 2), (4, 3), (8, 2), (10, 2)], 13)


@pytest.mark.parametrize(("dropped", "error"), [
    ([10], r"skipped feed index 10 outside 0\.\.9"),
    ([3, 3], r"skipped feed index 3 outside 4\.\.9"),
    (None, r"skipped feed indices \[4\] with no marker after them"),
])
def test_skipped_indices_the_journal_cannot_place_are_refused(
        tmp_path: Path, dropped: list[int] | None, error: str) -> None:
    """A skip record that names an index its marker does not cover (or that no marker
    follows) is a broken journal: the restore refuses it, never guesses."""
    with Journal(tmp_path / "k.journal") as journal:
        fj = FeedJournal(journal, snapshot_every=10**9)
        for msg in FEED[:10]:
            fj.market(msg)
        if dropped is not None:
            fj.journal.append(Blob(DROP, struct.pack(f">{len(dropped)}q", *dropped)))
        fj.flush()
        if dropped is None:
            fj.drop([4])
            fj.flush()
    with pytest.raises(InvariantError, match=error):
        _replayed(tmp_path / "k.journal")


# --- snapshot versions --------------------------------------------------------------------

_OLD_HEADER = struct.Struct(">qqq")  # an unversioned snapshot: its position, ts_event, seq


class Gone:
    """Pickles as a module that no longer exists: a snapshot written by older code."""

    def __reduce__(self) -> tuple[object, ...]:
        import importlib

        return (importlib.import_module, ("runtime.kernel_of_older_code",))


def rewrite_snapshot(path: Path, *, version: int | None, state: object = None) -> None:
    """Put back the latest snapshot of the journal at ``path`` as another writer would have:
    with ``version`` (None: unversioned, as before versions) and ``state`` pickled (None: the
    state it holds)."""
    import pickle
    import zlib

    with Journal(path) as journal:
        snapshot, upto, _ = journal.restore()
        assert snapshot is not None
        if snapshot[:3] == b"\xffTW":
            _, _, position, ts, seq = struct.unpack_from(">3sIqqq", snapshot)
            body = snapshot[struct.calcsize(">3sIqqq"):]
        else:  # unversioned already
            position, ts, seq = _OLD_HEADER.unpack_from(snapshot)
            body = snapshot[_OLD_HEADER.size:]
        if state is not None:
            body = zlib.compress(pickle.dumps(state))
        head = (_OLD_HEADER.pack(position, ts, seq) if version is None
                else struct.pack(">3sIqqq", b"\xffTW", version, position, ts, seq))
        journal.snapshot(head + body, upto_seq=upto)


def _position(path: Path) -> int:
    reader = JournalReader(path)
    try:
        return snapshot_position(reader)
    finally:
        reader.close()


def _snapshotted(path: Path) -> str:
    with Journal(path, batch_size=5) as journal:
        jk = new(journal, snapshot_every=25)
        jk.start(0)
        drive(jk, range(1, 120))
        return jk.kernel.state_hash()


def test_a_snapshot_of_another_version_is_refused_naming_the_journal_and_both_versions(
        tmp_path: Path) -> None:
    path = tmp_path / "risk.journal"
    _snapshotted(path)
    rewrite_snapshot(path, version=SNAPSHOT_VERSION + 1)
    with Journal(path) as journal, pytest.raises(DataError) as caught:
        JournaledKernel.restore(factory, journal, ListFeed(FEED), snapshot_every=25)
    assert str(caught.value) == (f"{path}: its snapshot has version {SNAPSHOT_VERSION + 1}; "
                                 f"this code reads version {SNAPSHOT_VERSION}")


def test_an_unversioned_snapshot_is_recognised_loaded_when_it_can_be_refused_when_not(
        tmp_path: Path) -> None:
    path = tmp_path / "risk.journal"
    expected = _snapshotted(path)
    positions = [_position(path)]
    rewrite_snapshot(path, version=None)  # as written before versions, by code like this
    positions.append(_position(path))  # the old header's position, as retention reads it
    assert positions[0] == positions[1] > 0
    with Journal(path) as journal:
        restored = JournaledKernel.restore(factory, journal, ListFeed(FEED), snapshot_every=25)
        assert restored.kernel.state_hash() == expected
    rewrite_snapshot(path, version=None, state=Gone())  # ... by code whose classes are gone
    with Journal(path) as journal, pytest.raises(DataError) as caught:
        JournaledKernel.restore(factory, journal, ListFeed(FEED), snapshot_every=25)
    message = str(caught.value)
    assert message.startswith(f"{path}: its snapshot (no version (written before snapshots "
                              f"carried one); this code reads version {SNAPSHOT_VERSION}) "
                              "does not load with this code: ModuleNotFoundError")
    assert "Traceback" not in message and isinstance(caught.value.__cause__, ImportError)
