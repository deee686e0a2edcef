"""Venue-side checks of an order: the reason the simulated venue rejects it, or None."""

from __future__ import annotations

import msgspec

from runtime.instruments import Instrument
from runtime.messages import OrderType, SubmitOrder
from runtime.values import from_fixed

__all__ = ["Refusal", "check_modify", "check_submit"]


class Refusal(msgspec.Struct, frozen=True):
    """Why the venue refuses a command: a short code and a message naming the values."""

    code: str
    reason: str


_NEEDS_PRICE = (OrderType.LIMIT, OrderType.STOP_LIMIT)
_NEEDS_TRIGGER = (OrderType.STOP, OrderType.STOP_LIMIT)


def _check_values(
    instrument: Instrument, *, quantity: int, price: int | None, trigger: int | None
) -> Refusal | None:
    violation = instrument.check_order(quantity=quantity, price=price)
    if violation is None and trigger is not None:
        violation = instrument.check_order(quantity=quantity, price=trigger)
    if violation is not None:
        return Refusal(violation.rule, violation.message)
    return None


def check_submit(command: SubmitOrder, instrument: Instrument, ts_ns: int) -> Refusal | None:
    """Session, order type, post-only and the instrument's tick/lot/minimum rules."""
    closed = instrument.why_closed(ts_ns)
    if closed is not None:
        return Refusal("session", closed)
    kind = command.order_type
    if kind in _NEEDS_PRICE and command.price is None:
        return Refusal("order_type", f"a {kind.value} order needs a price")
    if kind in _NEEDS_TRIGGER and command.trigger_price is None:
        return Refusal("order_type", f"a {kind.value} order needs a trigger price")
    if command.post_only and kind is not OrderType.LIMIT:
        return Refusal("post_only", f"post-only needs a limit order, not {kind.value}")
    price = command.price if kind in _NEEDS_PRICE else None
    trigger = command.trigger_price if kind in _NEEDS_TRIGGER else None
    return _check_values(instrument, quantity=command.quantity, price=price, trigger=trigger)


def check_modify(
    instrument: Instrument,
    ts_ns: int,
    *,
    quantity: int,
    filled: int,
    price: int | None,
    trigger: int | None,
) -> Refusal | None:
    """A modify keeps the order's rules, stays in session and stays above the filled quantity."""
    closed = instrument.why_closed(ts_ns)
    if closed is not None:
        return Refusal("session", closed)
    if quantity <= filled:
        return Refusal(
            "quantity",
            f"new quantity {from_fixed(quantity)} is not above filled {from_fixed(filled)}",
        )
    return _check_values(instrument, quantity=quantity, price=price, trigger=trigger)
