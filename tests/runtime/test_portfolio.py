"""Portfolio: position = replay of fills; the accounting identity holds exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.instruments import Instrument, InstrumentRegistry
from runtime.messages import Liquidity, OrderFilled, OrderSide
from runtime.portfolio import Portfolio
from runtime.values import fixed

Q = 10**9
INSTRUMENTS = InstrumentRegistry(
    [
        Instrument(instrument_id="AAPL", price_precision=2, size_precision=0),
        Instrument(
            instrument_id="BTC",
            price_precision=2,
            size_precision=3,
            lot_size=fixed("0.001"),
            min_quantity=fixed("0.001"),
            multiplier=fixed(1),
        ),
        Instrument(
            instrument_id="TXF",
            price_precision=0,
            size_precision=0,
            multiplier=fixed(200),
            currency="TWD",
        ),
    ]
)


def mkfill(n: int, inst: str, side: OrderSide, qty: int, price: int, fee: int = 0,
           fee_qty: int = 0) -> OrderFilled:
    return OrderFilled(
        seq=n,
        ts_event=n,
        ts_init=n,
        client_order_id=f"r-s-{n}",
        strategy_id="s",
        instrument_id=inst,
        venue_order_id="v",
        fill_id=f"f{n}",
        side=side,
        last_qty=qty,
        last_price=price,
        cum_qty=qty,
        leaves_qty=0,
        fee=fee,
        currency="USD",
        liquidity=Liquidity.TAKER,
        fee_qty=fee_qty,
    )


def test_worked_example() -> None:
    p = Portfolio(INSTRUMENTS, initial_cash=fixed(10_000))
    p.apply_fill(mkfill(1, "AAPL", OrderSide.BUY, 10 * Q, fixed(100), fee=fixed(1)))
    p.apply_fill(mkfill(2, "AAPL", OrderSide.SELL, 4 * Q, fixed(110), fee=fixed(1)))
    pos = p.positions["AAPL"]
    assert pos.quantity == 6 * Q
    assert p.realized_pnl == fixed(40)
    assert pos.avg_price(fixed(1)) == fixed(100)
    p.mark("AAPL", fixed(105))
    assert p.unrealized_pnl() == fixed(30)
    assert p.cash == fixed(10_000 - 1000 - 1 + 440 - 1)
    assert p.equity() == fixed(10_000 + 40 + 30 - 2)
    assert p.identity_gap() == 0


def test_flip_long_to_short() -> None:
    p = Portfolio(INSTRUMENTS, initial_cash=0)
    p.apply_fill(mkfill(1, "TXF", OrderSide.BUY, 2 * Q, fixed(17000)))
    p.apply_fill(mkfill(2, "TXF", OrderSide.SELL, 5 * Q, fixed(17010)))
    pos = p.positions["TXF"]
    assert pos.quantity == -3 * Q
    assert p.realized_pnl == fixed(10 * 200 * 2)  # 10 points × 200 TWD × 2 contracts
    assert pos.avg_price(fixed(200)) == fixed(17010)
    assert p.identity_gap() == 0


FILLS = st.lists(
    st.tuples(
        st.sampled_from(["AAPL", "BTC", "TXF"]),
        st.sampled_from([OrderSide.BUY, OrderSide.SELL]),
        st.integers(1, 50),
        st.integers(1, 100_000),
        st.integers(0, 500),
        st.integers(1, 100_000),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(FILLS)
def test_position_is_replay_of_fills_and_identity_is_exact(fills: list) -> None:
    p = Portfolio(INSTRUMENTS, initial_cash=fixed(1_000_000))
    expected: dict[str, int] = {}
    fees = 0
    for n, (inst, side, lots, cents, fee_cents, mark_cents) in enumerate(fills):
        lot = INSTRUMENTS.get(inst).lot_size
        qty = lots * lot
        price = cents * 10**7  # two decimals
        fee = fee_cents * 10**7
        p.apply_fill(mkfill(n, inst, side, qty, price, fee))
        p.mark(inst, mark_cents * 10**7)
        expected[inst] = expected.get(inst, 0) + side * qty
        fees += fee
        assert p.identity_gap() == 0
    assert {k: v.quantity for k, v in p.positions.items()} == expected
    assert p.fees == fees


@settings(max_examples=200, deadline=None)
@given(FILLS)
def test_round_trip_realizes_all_cash_flows(fills: list) -> None:
    """Close everything at the end: realized PnL equals the sum of the trade cash flows."""
    p = Portfolio(INSTRUMENTS, initial_cash=0)
    for n, (inst, side, lots, cents, _fee, _mark) in enumerate(fills):
        p.apply_fill(mkfill(n, inst, side, lots * INSTRUMENTS.get(inst).lot_size, cents * 10**7))
    for inst, pos in list(p.positions.items()):
        if pos.quantity:
            side = OrderSide.SELL if pos.quantity > 0 else OrderSide.BUY
            p.apply_fill(mkfill(10_000, inst, side, abs(pos.quantity), fixed(500)))
    assert all(pos.cost_basis == 0 for pos in p.positions.values())
    assert p.realized_pnl == p.cash  # started with no cash, paid no fees


@settings(max_examples=200, deadline=None)
@given(FILLS, st.lists(st.tuples(st.sampled_from(["funding", "borrow"]),
                                 st.integers(-10**12, 10**12)), max_size=20))
def test_identity_holds_with_funding_and_borrow(fills: list, charges: list) -> None:
    """Carry moves cash without a fill: the identity's ``+ funding - borrow`` keeps it exact."""
    p = Portfolio(INSTRUMENTS, initial_cash=fixed(1_000_000))
    for n, (inst, side, lots, cents, fee_cents, mark_cents) in enumerate(fills):
        p.apply_fill(mkfill(n, inst, side, lots * INSTRUMENTS.get(inst).lot_size,
                            cents * 10**7, fee_cents * 10**7))
        p.mark(inst, mark_cents * 10**7)
        if n < len(charges):
            kind, amount = charges[n]
            p.apply_carry(inst, kind, -abs(amount) if kind == "borrow" else amount)
        assert p.identity_gap() == 0
    restored = Portfolio(INSTRUMENTS, initial_cash=0)
    restored.load_state(p.state())
    assert restored.state() == p.state()
    assert (restored.funding, restored.borrow) == (p.funding, p.borrow)


def test_a_fee_in_kind_is_not_held_and_is_a_fee() -> None:
    """A spot buy of 0.01 BTC at 60 000 whose 0.1 % fee the exchange takes in BTC: the account
    holds 0.00999 BTC, paid 600 USDT, and the fee's value (0.00001 BTC = 0.60) is a fee."""
    p = Portfolio(INSTRUMENTS, initial_cash=fixed(1_000))
    fee_qty = fixed("0.00001")
    fee = INSTRUMENTS.get("BTC").notional(fixed(60_000), fee_qty)
    p.apply_fill(mkfill(1, "BTC", OrderSide.BUY, fixed("0.01"), fixed(60_000), fee, fee_qty))
    pos = p.positions["BTC"]
    assert pos.quantity == fixed("0.00999")
    assert p.cash == fixed(400)  # the whole 0.01 was paid for
    assert p.fees == pos.fees == fixed("0.6")
    assert pos.avg_price(fixed(1)) == fixed(60_000)
    assert p.identity_gap() == 0
    assert p.account().total_pnl == -fixed("0.6")  # marked at the fill's price: the fee only
    # selling everything held closes the position; the sell's fee is in USDT, as charged
    p.apply_fill(mkfill(2, "BTC", OrderSide.SELL, fixed("0.00999"), fixed(61_000), fixed("0.6")))
    assert pos.quantity == 0 and pos.cost_basis == 0
    assert p.realized_pnl == fixed("9.99")  # 0.00999 × 1 000
    assert p.cash == fixed(400) + fixed("609.39") - fixed("0.6")
    assert p.account().total_pnl == fixed("9.99") - fixed("1.2")
    assert p.identity_gap() == 0


def test_a_fee_in_kind_on_a_sell_delivers_more_than_the_order() -> None:
    p = Portfolio(INSTRUMENTS, initial_cash=0)
    p.apply_fill(mkfill(1, "BTC", OrderSide.BUY, fixed(1), fixed(100)))
    p.apply_fill(mkfill(2, "BTC", OrderSide.SELL, fixed("0.5"), fixed(100), fixed("0.1"),
                        fee_qty=fixed("0.001")))
    assert p.positions["BTC"].quantity == fixed("0.499")
    assert p.cash == -fixed(100) + fixed(50)  # received the order's proceeds
    assert p.identity_gap() == 0


@settings(max_examples=200, deadline=None)
@given(FILLS, st.lists(st.integers(0, 3), min_size=40, max_size=40))
def test_identity_is_exact_with_fees_in_kind(fills: list, kinds: list) -> None:
    """Fills whose fee is (partly) taken in kind, valued at the fill's price as an adapter
    values it: the position is the replay of ``position_change``, the identity exact."""
    p = Portfolio(INSTRUMENTS, initial_cash=fixed(1_000_000))
    expected: dict[str, int] = {}
    for n, (inst, side, lots, cents, fee_cents, mark_cents) in enumerate(fills):
        instrument = INSTRUMENTS.get(inst)
        qty, price = lots * instrument.lot_size, cents * 10**7
        fee_qty = min(kinds[n] * instrument.lot_size, qty)
        fee = fee_cents * 10**7 + instrument.notional(price, qty) - instrument.notional(
            price, qty - fee_qty)
        fill = mkfill(n, inst, side, qty, price, fee, fee_qty)
        p.apply_fill(fill)
        p.mark(inst, mark_cents * 10**7)
        expected[inst] = expected.get(inst, 0) + side * qty - fee_qty
        assert fill.position_change == side * qty - fee_qty
        assert p.identity_gap() == 0
    assert {k: v.quantity for k, v in p.positions.items()} == expected


def test_a_fill_without_a_fee_in_kind_encodes_as_before() -> None:
    """``fee_qty`` 0 is left out of the encoding: journals written before it existed decode,
    and fills without it encode byte for byte as they did (state hashes over them unchanged)."""
    import msgspec

    from runtime.messages import decode, encode

    fill = mkfill(7, "BTC", OrderSide.BUY, fixed("0.01"), fixed(60_000), fixed("0.6"))
    fields = {name: getattr(fill, name) for name in fill.__struct_fields__ if name != "fee_qty"}
    before = msgspec.msgpack.encode({"type": "OrderFilled", **fields})  # the old layout
    assert encode(fill) == before
    assert decode(before) == fill and fill.fee_qty == 0
    in_kind = mkfill(8, "BTC", OrderSide.BUY, fixed("0.01"), fixed(60_000), fixed("0.6"),
                     fee_qty=fixed("0.00001"))
    assert decode(encode(in_kind)) == in_kind
