"""Where a trailing stop's trigger belongs now: a pure function of the trail and the prices.

The reference is ``last`` (the last trade or bar close), ``bid_ask`` (the bid for a sell stop,
the ask for a buy stop) or ``mid``; where the data has no such price (bars carry no quotes) the
latest price is the reference. The trigger sits ``offset`` (a price), ``ticks`` (at the tick
size that applies at the reference) or ``bps`` (basis points of the reference) away from it, on
the side the stop protects, rounded away from the market onto the tick grid.
"""

from __future__ import annotations

import enum

import msgspec

from runtime.errors import ConfigError
from runtime.instruments import Instrument
from runtime.messages import OrderSide
from runtime.prices import LastPrices
from runtime.values import Rounding

__all__ = ["Trail", "TrailReference", "trigger_price"]


class TrailReference(enum.StrEnum):
    LAST = "last"
    BID_ASK = "bid_ask"
    MID = "mid"


class Trail(msgspec.Struct, frozen=True, kw_only=True):
    """Exactly one of ``offset`` (a price, fixed point), ``ticks`` or ``bps`` (basis points)."""

    offset: int = 0
    ticks: int = 0
    bps: int = 0
    reference: TrailReference = TrailReference.LAST

    def __post_init__(self) -> None:
        given = [v for v in (self.offset, self.ticks, self.bps) if v]
        if len(given) != 1 or given[0] < 0:
            raise ConfigError("a trailing stop takes one positive offset, ticks or bps")


def trigger_price(
    trail: Trail, side: OrderSide, instrument: Instrument, prices: LastPrices
) -> int | None:
    """The trigger of a ``side`` stop trailing now; ``None`` with no price yet."""
    reference = _reference(instrument.instrument_id, side, trail.reference, prices)
    if reference is None:
        return None
    if trail.offset:
        distance = trail.offset
    elif trail.ticks:
        distance = trail.ticks * instrument.tick_at(reference)
    else:
        distance = reference * trail.bps // 10_000
    rounding = Rounding.FLOOR if side is OrderSide.SELL else Rounding.CEILING
    return instrument.quantize_price(reference + distance * side, rounding)


def _reference(
    instrument_id: str, side: OrderSide, kind: TrailReference, prices: LastPrices
) -> int | None:
    found: int | None
    if kind is TrailReference.LAST:
        found = prices.last.get(instrument_id)
    elif kind is TrailReference.MID:
        found = prices.mid(instrument_id)
    else:  # a sell stop trails the bid, a buy stop the ask
        found = (prices.bid if side is OrderSide.SELL else prices.ask).get(instrument_id)
    return found if found is not None else prices.price.get(instrument_id)
