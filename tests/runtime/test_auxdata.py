"""Auxiliary data a strategy declares: while it is missing or stale, risk holds the strategy's
entries and lets its exits through; funding estimates charge nothing, a funding time is charged
once; the kernel's state carries funding and borrow."""

from __future__ import annotations

import msgspec
import pytest

from runtime.auxdata import AuxNeed
from runtime.errors import ConfigError
from runtime.kernel import Kernel
from runtime.messages import (
    Bar,
    BorrowRate,
    CarryCharged,
    FundingRate,
    Message,
    OrderDenied,
    OrderSide,
    SubmitOrder,
    decode,
    encode,
)
from runtime.strategy import Strategy
from runtime.values import fixed
from tests.runtime.test_kernel import REG, fill_for

Q = 10**9
H = 3600 * 10**9


class Needy(Strategy):  # type: ignore[type-arg]
    """Targets ``want`` on every bar; needs X's funding no older than an hour."""

    want = 0

    def aux_needs(self) -> tuple[AuxNeed, ...]:
        return (AuxNeed(kind="funding", instrument_id="X", ttl_ns=H),)

    def on_start(self) -> None:
        self.heard: list[Message] = []

    def on_bar(self, bar: Bar) -> None:
        self.target_position(bar.instrument_id, self.want)

    def on_aux(self, data: object) -> None:
        self.heard.append(data)  # type: ignore[arg-type]


def _bar(ts: int, close: int = 100) -> Bar:
    px = fixed(close)
    return Bar(seq=0, ts_event=ts, ts_init=ts, instrument_id="X", open=px, high=px, low=px,
               close=px, volume=1000 * Q, interval_ns=60 * 10**9)


def _funding(ts: int, rate: str, funding_ts: int, mark: int = 0) -> FundingRate:
    return FundingRate(seq=0, ts_event=ts, ts_init=ts, instrument_id="X", rate=fixed(rate),
                       funding_ts=funding_ts, mark_price=fixed(mark))


def _kernel() -> tuple[Kernel, Needy]:
    strategy = Needy("s", instruments=("X",))
    kernel = Kernel(registry=REG, strategies=[strategy], initial_cash=fixed(100_000),
                    namespace="aux", seed=1)
    kernel.start(0)
    return kernel, strategy


def _only(kind: type, out: list[Message]) -> Message:
    [one] = [m for m in out if isinstance(m, kind)]
    return one


def test_entries_wait_for_fresh_aux_data_and_exits_never_do() -> None:
    k, s = _kernel()
    s.want = 10 * Q
    denied = _only(OrderDenied, k.handle(_bar(H)))
    assert denied.reason_code == "aux_missing"  # type: ignore[attr-defined]
    k.handle(_funding(H + 1, "0.0001", 8 * H))  # an estimate: fresh data, nothing charged
    assert [type(m) for m in s.heard] == [FundingRate]
    buy = _only(SubmitOrder, k.handle(_bar(H + 30 * 60 * 10**9)))
    assert isinstance(buy, SubmitOrder) and buy.quantity == 10 * Q
    k.handle(fill_for(buy, 100, "f1"))
    s.want = 20 * Q  # two hours after the last rate: stale, the entry waits
    denied = _only(OrderDenied, k.handle(_bar(3 * H + 1)))
    assert denied.reason_code == "aux_stale"  # type: ignore[attr-defined]
    assert "funding" in denied.reason and "X" in denied.reason  # type: ignore[attr-defined]
    s.want = 0  # the exit passes, stale or not
    sell = _only(SubmitOrder, k.handle(_bar(3 * H + 2)))
    assert isinstance(sell, SubmitOrder) and sell.side is OrderSide.SELL
    assert sell.quantity == 10 * Q


def test_a_funding_time_is_charged_once_and_estimates_never() -> None:
    k, s = _kernel()
    s.want = 10 * Q
    k.handle(_funding(0, "0.0001", 8 * H))
    buy = _only(SubmitOrder, k.handle(_bar(60 * 10**9)))
    k.handle(fill_for(buy, 100, "f1"))  # long 10 at 100
    assert not [m for m in k.handle(_funding(4 * H, "0.0002", 8 * H)) if
                isinstance(m, CarryCharged)]  # published before its time: an estimate
    charge = _only(CarryCharged, k.handle(_funding(8 * H, "0.0002", 8 * H, mark=110)))
    assert isinstance(charge, CarryCharged)
    assert (charge.kind, charge.amount, charge.price) == ("funding", -fixed("0.22"), fixed(110))
    again = k.handle(_funding(8 * H + 5, "0.0002", 8 * H))  # the same funding, re-published
    assert not [m for m in again if isinstance(m, CarryCharged)]
    account = k.account()
    assert account.funding == -fixed("0.22")
    assert account.cash == fixed(100_000) - fixed(1000) - account.fees - fixed("0.22")
    assert k.portfolio.identity_gap() == 0
    assert k.state()["carry"]["funded"] == {"X": 8 * H}
    assert k.state()["portfolio"]["funding"] == -fixed("0.22")


def test_carry_survives_a_snapshot_and_changes_the_state_hash() -> None:
    k, s = _kernel()
    s.want = -10 * Q
    k.handle(_funding(0, "0.0001", 8 * H))
    sell = _only(SubmitOrder, k.handle(_bar(60 * 10**9)))
    k.handle(fill_for(sell, 100, "f1"))
    before = k.state_hash()
    k.handle(BorrowRate(seq=0, ts_event=2 * H, ts_init=2 * H, instrument_id="X",
                        rate=fixed("0.36")))
    charged = [m for m in k.handle(_bar(24 * H + 1)) if isinstance(m, CarryCharged)]
    # short 10 at 100, 36% a year: 1000 * 0.36 / 360 for the one midnight passed
    assert [(c.kind, c.amount, c.ts_event) for c in charged] == [("borrow", -fixed(1), 24 * H)]
    assert k.state_hash() != before
    restored, _ = _kernel()
    restored.load_state(k.state())
    assert restored.state_hash() == k.state_hash()
    assert restored.account().borrow == fixed(1)


def test_aux_messages_round_trip_the_wire_and_needs_are_checked() -> None:
    rate = _funding(5, "-0.00012345", 8 * H, mark=101)
    assert decode(encode(rate)) == rate
    assert msgspec.structs.asdict(decode(encode(rate)))["rate"] == -123_450
    with pytest.raises(ConfigError, match="unknown auxiliary data kind"):
        AuxNeed(kind="funding_rate", instrument_id="X", ttl_ns=H)
    with pytest.raises(ConfigError, match="ttl"):
        AuxNeed(kind="funding", instrument_id="X", ttl_ns=0)


def test_carry_of_an_unknown_kind_is_a_bug() -> None:
    from runtime.errors import InvariantError

    k, _ = _kernel()
    with pytest.raises(InvariantError, match="unknown carry kind 'rebate'"):
        k.portfolio.apply_carry("X", "rebate", 5)
    assert k.portfolio.cash == fixed(100_000)
