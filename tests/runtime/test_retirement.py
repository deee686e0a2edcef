"""Retirement of closed orders (``runtime.retirement``): a kernel that runs for weeks holds
about a day of orders, and snapshots stay flat, while every fill stays counted; late and
duplicate reports of retired orders are recognised as ours and ignored; the same inputs give
the same state hash, through a snapshot and a restore too."""

from __future__ import annotations

import pickle

import pytest

from runtime.errors import InvariantError
from runtime.instruments import Instrument, InstrumentRegistry
from runtime.kernel import Kernel
from runtime.messages import (
    Bar,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    SubmitOrder,
)
from runtime.retirement import DEFAULT_RETIRE_AFTER_NS, SWEEP_NS, RetiredOrders
from runtime.strategy import Qty, Strategy, StrategyParams
from runtime.values import fixed

Q = 10**9
REG = InstrumentRegistry([Instrument(instrument_id="X", price_precision=2)])
STEP_NS = 10 * 60 * 10**9  # a bar every ten minutes
PER_DAY = 144
DAY_NS = 24 * 3600 * 10**9


class Params(StrategyParams):
    size: Qty = 10 * Q


class Flipper(Strategy[Params]):
    """Long on odd bars, flat on even ones: an order a bar."""

    def on_start(self) -> None:
        self.n = 0

    def on_bar(self, bar: Bar) -> None:
        self.n += 1
        self.target_position(bar.instrument_id, self.params.size if self.n % 2 else 0)


def bar(i: int) -> Bar:
    price = fixed(100 + i % 7)
    return Bar(seq=i, ts_event=i * STEP_NS, ts_init=i * STEP_NS, instrument_id="X", open=price,
               high=price, low=price, close=price, volume=1000 * Q, interval_ns=STEP_NS)


def kernel(**kw: object) -> Kernel:
    k = Kernel(registry=REG, strategies=[Flipper("flip", instruments=("X",))],
               initial_cash=fixed(1_000_000), namespace="t1", seed=3, **kw)  # type: ignore[arg-type]
    k.start(0)
    return k


def accepted(cmd: SubmitOrder) -> OrderAccepted:
    return OrderAccepted(seq=0, ts_event=cmd.ts_event, ts_init=cmd.ts_event,
                         client_order_id=cmd.client_order_id, strategy_id=cmd.strategy_id,
                         instrument_id=cmd.instrument_id, venue_order_id="v")


def filled(cmd: SubmitOrder, fill_id: str) -> OrderFilled:
    return OrderFilled(seq=0, ts_event=cmd.ts_event + 1, ts_init=cmd.ts_event + 1,
                       client_order_id=cmd.client_order_id, strategy_id=cmd.strategy_id,
                       instrument_id=cmd.instrument_id, venue_order_id="v", fill_id=fill_id,
                       side=cmd.side, last_qty=cmd.quantity, last_price=fixed(100),
                       cum_qty=cmd.quantity, leaves_qty=0, fee=fixed("0.5"), currency="USD",
                       liquidity=Liquidity.TAKER)


def run(k: Kernel, start: int, stop: int, fills: dict[str, OrderFilled]) -> None:
    """Bars ``start`` .. ``stop - 1``; each order is accepted and filled at once."""
    for i in range(start, stop):
        for msg in k.handle(bar(i)):
            if isinstance(msg, SubmitOrder):
                k.handle(accepted(msg))
                fill = filled(msg, f"F{msg.client_order_id}")
                fills[msg.client_order_id] = fill
                k.handle(fill)


def test_held_orders_and_snapshot_stay_flat_over_weeks_while_every_fill_counts() -> None:
    k, keep, fills = kernel(), kernel(retire_after_ns=None), {}
    sizes, kept_sizes, held = [], [], []
    for day in range(21):
        run(k, day * PER_DAY + 1, (day + 1) * PER_DAY + 1, fills)
        run(keep, day * PER_DAY + 1, (day + 1) * PER_DAY + 1, {})
        sizes.append(len(pickle.dumps(k)))
        kept_sizes.append(len(pickle.dumps(keep)))
        held.append(len(k.orders))
    made = 21 * PER_DAY
    assert k.ledger.total == made == len(fills) == len(keep.orders)
    assert k.portfolio.n_fills == made
    assert k.ledger.fill_ids() == sorted(f.fill_id for f in fills.values())
    # a day of orders plus at most an hour's sweep interval, from day 2 on
    bound = (DEFAULT_RETIRE_AFTER_NS + SWEEP_NS) // STEP_NS + 1
    assert max(held[2:]) <= bound and min(held[2:]) >= PER_DAY
    assert k.ledger.retired.count == made - len(k.orders)
    # the snapshot grows by the retired orders' fill ids only (a few dozen bytes an order),
    # not by whole orders: a fraction of what a kernel keeping every order grows by
    assert (sizes[20] - sizes[13]) * 5 < kept_sizes[20] - kept_sizes[13], (sizes, kept_sizes)
    assert (sizes[20] - sizes[13]) / (7 * PER_DAY) < 40
    # nothing but what is held changed: the same account as the kernel keeping every order
    assert keep.portfolio.state() == k.portfolio.state()
    assert keep.ledger.state()["strategy_positions"] == k.ledger.state()["strategy_positions"]


def test_late_and_duplicate_reports_of_a_retired_order_are_ours_and_change_nothing() -> None:
    k, fills = kernel(), {}
    run(k, 1, 3 * PER_DAY, fills)
    old = "t1-flip-1"
    assert old not in k.orders and k.ledger.retired.knows(old)
    before, cash = k.state_hash(), k.portfolio.cash
    duplicate = fills[old]
    late_cancel = OrderCanceled(seq=0, ts_event=k.now, ts_init=k.now, client_order_id=old,
                                strategy_id="flip", instrument_id="X")
    again = SubmitOrder(seq=0, ts_event=k.now, ts_init=k.now, client_order_id=old,
                        strategy_id="flip", instrument_id="X", side=duplicate.side,
                        order_type="market", quantity=10 * Q)  # type: ignore[arg-type]
    assert k.handle(duplicate) == []
    assert k.handle(late_cancel) == []
    assert k.handle(again) == []  # a repeated submit: answered long ago, not approved again
    assert (k.late_reports, k.unknown_reports) == (3, 0)
    assert k.portfolio.cash == cash and k.portfolio.n_fills == len(fills)
    assert k.state_hash() == before
    # ids never made here stay unknown: another strategy's, and one above the watermark
    for cid in ("t1-other-1", f"t1-flip-{10**6}", "odd"):
        k.handle(OrderCanceled(seq=0, ts_event=k.now, ts_init=k.now, client_order_id=cid,
                               strategy_id="flip", instrument_id="X"))
    assert (k.late_reports, k.unknown_reports) == (3, 3)


def test_same_inputs_same_hash_and_a_restore_continues_as_the_original() -> None:
    a, b = kernel(), kernel()
    run(a, 1, 3 * PER_DAY + 5, {})
    run(b, 1, 3 * PER_DAY + 5, {})
    assert a.ledger.retired.count > 0
    assert a.state_hash() == b.state_hash()
    snapshot: Kernel = pickle.loads(pickle.dumps(a))  # what a journaled kernel snapshots
    assert snapshot.state_hash() == a.state_hash()
    loaded = kernel()
    loaded.load_state(a.state())
    assert loaded.state_hash() == a.state_hash()
    for k in (a, snapshot):
        run(k, 3 * PER_DAY + 5, 5 * PER_DAY, {})
    assert snapshot.state_hash() == a.state_hash()
    assert snapshot.ledger.retired.count == a.ledger.retired.count > 0


def test_an_order_still_followed_or_open_never_retires() -> None:
    k = kernel()
    out = k.handle(bar(1))
    cmd = next(m for m in out if isinstance(m, SubmitOrder))
    k.handle(accepted(cmd))  # open, never filled: the strategy's target holds it
    later = 3 * DAY_NS // STEP_NS
    for i in range(2, later):
        k.handle(bar(i))
    assert cmd.client_order_id in k.orders and k.orders[cmd.client_order_id].is_open
    assert k.ledger.retired.count == 0


def test_kept_retired_orders_list_every_order_in_creation_order() -> None:
    k = kernel(keep_retired=True)
    run(k, 1, 3 * PER_DAY, {})
    every = k.all_orders()
    assert len(every) == k.ledger.total > len(k.orders)
    assert [o.client_order_id for o in every] == [f"t1-flip-{n}" for n in range(1, len(every) + 1)]
    assert k.retired_orders is not None and "retired_orders" not in k.state()


def test_retired_orders_state_round_trips() -> None:
    retired = RetiredOrders()
    for cid, fill_ids in (("ns-a-3", {"f1"}), ("ns-a-1", set()), ("ns-b-2", {"f2", "f3"}),
                          ("plain", {"f4"})):
        retired.add(cid, fill_ids)
    again = RetiredOrders()
    again.load_state(retired.state())
    assert again.state() == retired.state()
    assert again.count == 4 and again.fill_ids == {"f1", "f2", "f3", "f4"}
    assert again.knows("ns-a-2") and not again.knows("ns-a-4") and again.knows("plain")
    assert not again.knows("ns-c-1") and not again.knows("other")


def test_a_negative_retirement_age_is_refused() -> None:
    with pytest.raises(InvariantError, match="retire_after_ns"):
        kernel(retire_after_ns=-1)




def test_retired_fill_ids_are_kept_compressed_and_read_back_whole() -> None:
    """Beyond a chunk of ids, the retired fill ids are compressed (a few bytes an id, not a
    string in a set), and read back, pickled or restored, exactly as they were; a snapshot
    pickled before they were compressed (a set in ``fill_ids``) loads too."""
    from runtime.retirement import FILL_CHUNK

    retired = RetiredOrders()
    n = 3 * FILL_CHUNK + 5
    for i in range(n):
        retired.add(f"S1-s-{i}", {f"F-S1-s-{i}-0", f"F-S1-s-{i}-1"})
    ids = {f"F-S1-s-{i}-{k}" for i in range(n) for k in (0, 1)}
    assert retired.fill_ids == ids
    packed = len(pickle.dumps(retired))
    assert packed < 5 * len(ids)  # a pickled set of these strings: ~16 bytes an id
    again = pickle.loads(pickle.dumps(retired))
    assert again.state() == retired.state()
    restored = RetiredOrders()
    restored.load_state(retired.state())
    assert restored.fill_ids == ids and restored.state() == retired.state()
    old = RetiredOrders.__new__(RetiredOrders)
    old.__setstate__((None, {"count": 2, "watermarks": {"S1-s": 2}, "others": set(),
                             "fill_ids": {"F-1", "F-2"}}))
    assert old.fill_ids == {"F-1", "F-2"} and old.knows("S1-s-2") and old.count == 2
