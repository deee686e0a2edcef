"""Stop and stop-limit orders held in the core, for venues that have no native stops
(Shioaji; most CCXT exchanges): the venue never sees the stop, only what it releases.

The kernel is composed with the instruments whose venue has no stops
(``Kernel(emulated_stops=...)``, from the broker's ``native_stops`` declaration); a backtest
and the paper venue keep their native stops unless told otherwise, so their fills do not move.

The rules, each in one place:

- **Held** (:meth:`EmulatedStops.hold`): a new stop on such an instrument is not checked by
  risk and not sent (one without a trigger, or a stop-limit without a price, is denied, and so
  is a linked leg its list refuses, as risk would); the core accepts it itself (an
  ``OrderAccepted`` with venue order id :data:`HELD`), so the strategy sees an open order it
  can modify and cancel. A cancel or a modify of a held stop is answered here
  (``OrderCanceled``, ``OrderUpdated``) and never reaches the venue. A trailing stop
  (:mod:`runtime.linked`) moves its held trigger the same way: one mechanism.
- **Triggered** (:meth:`EmulatedStops.on_price`): on each market message of the instrument
  (the shared watch map, :mod:`runtime.watches`), the price the kernel holds for it
  (:class:`runtime.prices.LastPrices`: a trade's price, a bar's close, a quote's mid: the
  price risk values orders at and the strategy sees) is compared with the trigger: a sell
  stop triggers at or below it, a buy stop at or above it. The stop is then **released**
  under its own client order id as a market order (a stop) or a limit at its limit price (a
  stop-limit), with its time in force: the order becomes a new order of that type (status
  initialized) and goes through risk as any new order does (:meth:`release`), then to the
  venue; a denial denies the stop, and its linked legs follow as for any denied leg.
- **Expired**: a held DAY stop expires (``OrderExpired``, from the core) at the first market
  message of a later trading day than the one it was submitted on
  (:meth:`runtime.instruments.Instrument.trading_day`: the day rolls at the session's last
  close), before that message can trigger it. Other times in force are held until triggered
  or canceled; the released order carries the stop's time in force to the venue.
- Once released, a stop is the venue's: it is never released twice (a crash and a restore
  keep the released order's type, and the held set is part of the kernel's state).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from runtime.instruments import InstrumentRegistry
from runtime.ledger import OrderLedger
from runtime.messages import (
    CancelOrder,
    Message,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderType,
    OrderUpdated,
    SubmitOrder,
    TimeInForce,
)
from runtime.orders import Order, OrderStatus
from runtime.prices import LastPrices
from runtime.watches import Watches, owned, unwatch, watch

__all__ = ["HELD", "EmulatedStops"]

#: the venue order id of a stop the core holds (it has none at a venue)
HELD = "held-in-core"
_STOPS = (OrderType.STOP, OrderType.STOP_LIMIT)
_LIVE = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
_KEY = "held:"  # a held stop's key in the shared watch map: "held:" + its client order id


class EmulatedStops:
    """The stops held in one kernel, for the instruments whose venue has none."""

    def __init__(
        self,
        ledger: OrderLedger,
        registry: InstrumentRegistry,
        prices: LastPrices,
        watches: Watches,
        instruments: Collection[str] = (),
    ) -> None:
        self._ledger, self._registry = ledger, registry
        self._prices, self.watches = prices, watches
        self._instruments = frozenset(instruments)
        self._held: dict[str, str] = {}  # stop id -> its instrument
        self._keys: dict[str, str] = {}  # its key in the shared watch map -> stop id
        self._releasing: set[str] = set()  # triggered, its release not yet through risk

    def emulates(self, command: SubmitOrder) -> bool:
        """Whether a new order is a stop this kernel holds instead of sending."""
        return command.order_type in _STOPS and command.instrument_id in self._instruments

    def refusal(self, command: SubmitOrder) -> tuple[str, str] | None:
        """``(reason_code, reason)`` when a stop cannot be held: it has no trigger (it would
        never release), or a stop-limit has no limit price."""
        if command.trigger_price is None:
            return "invalid_order", f"a {command.order_type} order needs a trigger price"
        if command.order_type is OrderType.STOP_LIMIT and command.price is None:
            return "invalid_order", "a stop_limit order needs a limit price"
        return None

    def holds(self, client_order_id: str) -> bool:
        return client_order_id in self._held

    def releasing(self, command: SubmitOrder) -> bool:
        """Whether ``command`` is the release of a held stop (not a new order)."""
        return command.client_order_id in self._releasing

    # --- the core answers for the venue ---------------------------------------------------------
    def hold(self, order: Order, now: int) -> OrderAccepted:
        """Start holding ``order`` (already opened in the ledger): the acceptance to apply."""
        self._watch(order.client_order_id, order.instrument_id)
        return OrderAccepted(
            seq=0, ts_event=now, ts_init=now, client_order_id=order.client_order_id,
            strategy_id=order.strategy_id, instrument_id=order.instrument_id,
            venue_order_id=HELD,
        )

    def answer(self, intent: CancelOrder | ModifyOrder, order: Order, now: int) -> Message:
        """What a venue would answer a cancel or modify of a held stop."""
        if isinstance(intent, CancelOrder):
            self._drop(order.client_order_id)
            return OrderCanceled(
                seq=0, ts_event=now, ts_init=now, client_order_id=order.client_order_id,
                strategy_id=order.strategy_id, instrument_id=order.instrument_id,
                reason="canceled while held in the core (never sent)",
            )
        return OrderUpdated(
            seq=0, ts_event=now, ts_init=now, client_order_id=order.client_order_id,
            strategy_id=order.strategy_id, instrument_id=order.instrument_id,
            quantity=order.quantity if intent.quantity is None else intent.quantity,
            price=order.price if intent.price is None else intent.price,
            trigger_price=(
                order.trigger_price if intent.trigger_price is None else intent.trigger_price
            ),
        )

    def closed(self, client_order_id: str) -> None:
        """A held stop closed (canceled here, or by a restore's reconciliation)."""
        self._drop(client_order_id)

    # --- triggers -------------------------------------------------------------------------------
    def on_price(self, instrument_id: str, now: int) -> list[Message]:
        """The releases of the held stops on ``instrument_id`` that the latest price triggers
        and the expiries of held DAY stops whose trading day is over, in client order id order
        (deterministic)."""
        price = self._prices.price.get(instrument_id)
        if price is None:
            return []
        out: list[Message] = []
        day: int | None = None
        for key in owned(self.watches, instrument_id, self._keys):
            cid = self._keys[key]
            order = self._ledger.get(cid)
            if order is None or order.is_closed:
                self._drop(cid)
                continue
            if order.status not in _LIVE or order.trigger_price is None:
                continue  # nothing of it is pending here; a held stop is always live
            if order.time_in_force is TimeInForce.DAY:
                instrument = self._registry.get(instrument_id)
                day = instrument.trading_day(now) if day is None else day
                if day > instrument.trading_day(order.ts_init):
                    self._drop(cid)
                    out.append(OrderExpired(
                        seq=0, ts_event=now, ts_init=now, client_order_id=cid,
                        strategy_id=order.strategy_id, instrument_id=instrument_id))
                    continue
            if (price - order.trigger_price) * order.side < 0:
                continue  # a sell stop triggers at or below, a buy stop at or above
            self._drop(cid)
            self._releasing.add(cid)
            out.append(self._release_of(order, now))
        return out

    def release(self, command: SubmitOrder) -> None:
        """The release of a held stop is on its way through risk."""
        self._releasing.discard(command.client_order_id)

    @staticmethod
    def _release_of(order: Order, now: int) -> SubmitOrder:
        limit = order.order_type is OrderType.STOP_LIMIT
        return SubmitOrder(
            seq=0, ts_event=now, ts_init=now, client_order_id=order.client_order_id,
            strategy_id=order.strategy_id, instrument_id=order.instrument_id, side=order.side,
            order_type=OrderType.LIMIT if limit else OrderType.MARKET,
            quantity=order.quantity - order.filled_qty,
            price=order.price if limit else None, trigger_price=None,
            time_in_force=order.time_in_force, post_only=False,
            reduce_only=order.reduce_only, protective=order.protective,
        )

    def _watch(self, cid: str, instrument_id: str) -> None:
        """A key of its own in the shared map (a trailing stop's id is there already)."""
        self._held[cid] = instrument_id
        self._keys[_KEY + cid] = cid
        watch(self.watches, instrument_id, _KEY + cid)

    def _drop(self, cid: str) -> None:
        instrument = self._held.pop(cid, None)
        if instrument is not None:
            del self._keys[_KEY + cid]
            unwatch(self.watches, instrument, _KEY + cid)

    # --- state (inside the kernel's state hash) -------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"held": dict(sorted(self._held.items()))}

    def load_state(self, state: dict[str, Any]) -> None:
        for cid in list(self._held):  # this part's keys only: the map is shared
            self._drop(cid)
        self._releasing.clear()  # a release is answered in the same drain: none across a restore
        for cid, instrument in state.get("held", {}).items():
            self._watch(cid, instrument)
