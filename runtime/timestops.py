"""Time stops: cancel an order, a linked list or a parent order after a duration, and with
``close`` also close the strategy's position on its instrument.

A stop is due at ``due_ns``; it fires at the first market message of its instrument at or after
that time (as a trailing stop moves: on the data, never on a wall clock), once. What is already
closed by then is left alone; the close-out is a reduce-only market order for the position the
strategy holds once each of its open orders on the instrument is closed: the stop cancels them
when it fires and sends the close-out at the first market message after the last cancel is
confirmed (an exit that fills meanwhile is counted, so the close-out never flips the position).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from runtime.errors import ConfigError
from runtime.ledger import cancel_of
from runtime.messages import (
    Message,
    OrderSide,
    OrderType,
    SubmitOrder,
    TimeInForce,
)
from runtime.orders import ClientOrderIdGenerator, OrderStatus
from runtime.watches import TIME_STOPS, Watches, unwatch, watch

if TYPE_CHECKING:
    from runtime.execution import ExecutionAlgorithms
    from runtime.ledger import OrderLedger
    from runtime.linked import LinkedOrders

__all__ = ["TimeStop", "TimeStops"]

_CANCELING = OrderStatus.PENDING_CANCEL


class TimeStop(msgspec.Struct, frozen=True, kw_only=True):
    strategy_id: str
    instrument_id: str
    target: str = ""  # an order, list or parent id (what is canceled); "" for none
    due_ns: int
    close: bool = False
    closing: bool = False  # fired; the close-out waits for the cancels to be confirmed


class TimeStops:
    """The time stops of one kernel, per instrument (in the kernel's :attr:`watches` under
    :data:`~runtime.watches.TIME_STOPS`: it asks only for instruments that have one)."""

    def __init__(
        self,
        ids: ClientOrderIdGenerator,
        ledger: OrderLedger,
        linked: LinkedOrders,
        algos: ExecutionAlgorithms,
        watches: Watches | None = None,
    ) -> None:
        self._ids, self._ledger, self._linked, self._algos = ids, ledger, linked, algos
        self._stops: list[TimeStop] = []
        self._counts: dict[str, int] = {}  # instrument -> stops waiting on it
        self.watches: Watches = {} if watches is None else watches

    def add(self, stop: TimeStop) -> None:
        if not stop.target and not stop.close:
            raise ConfigError("a time stop cancels an order, a list or a parent, or closes")
        self._stops.append(stop)
        self._counts[stop.instrument_id] = self._counts.get(stop.instrument_id, 0) + 1
        watch(self.watches, stop.instrument_id, TIME_STOPS)

    @property
    def pending(self) -> dict[str, int]:
        """Stops waiting, per instrument."""
        return dict(self._counts)

    def on_price(self, instrument_id: str, now: int) -> list[Message]:
        """What the stops due now on ``instrument_id`` do: cancels, and close-outs."""
        out: list[Message] = []
        if instrument_id not in self._counts:
            return out
        for stop in self._due(instrument_id, now):
            if not stop.closing:
                out += self._cancel_target(stop, now)
            if not stop.close:
                continue
            for pid in self._algos.working(stop.strategy_id, stop.instrument_id):
                out += self._algos.cancel(pid, now)
            open_orders = self._ledger.open_orders(stop.strategy_id, stop.instrument_id)
            if open_orders:  # canceled now; closed out once none is left
                out += [cancel_of(o, now) for o in open_orders if o.status is not _CANCELING]
                self.add(msgspec.structs.replace(stop, closing=True))
                continue
            position = self._ledger.positions.get((stop.strategy_id, stop.instrument_id), 0)
            out += self._close_out(stop, position, now)
        return out

    def _cancel_target(self, stop: TimeStop, now: int) -> list[Message]:
        target = stop.target
        if not target:
            return []
        if self._algos.is_parent(target):
            return self._algos.cancel(target, now)
        ids = self._linked.legs(target) or [target]
        orders = [self._ledger.open.get(cid) for cid in ids]
        return [
            cancel_of(o, now)
            for o in orders
            if o is not None and o.status is not _CANCELING
        ]

    def _due(self, instrument_id: str, now: int) -> list[TimeStop]:
        """The stops on ``instrument_id`` due at ``now``, taken off, in the order they were set."""
        fired = [s for s in self._stops if s.instrument_id == instrument_id and s.due_ns <= now]
        if fired:
            self._stops = [s for s in self._stops if s not in fired]
            left = self._counts[instrument_id] - len(fired)
            if left:
                self._counts[instrument_id] = left
            else:
                del self._counts[instrument_id]
                unwatch(self.watches, instrument_id, TIME_STOPS)
        return fired

    def _close_out(self, stop: TimeStop, position: int, now: int) -> list[Message]:
        """A reduce-only market order for ``position`` (none when flat)."""
        out: list[Message] = []
        if position:
            out.append(
                SubmitOrder(
                    seq=0,
                    ts_event=now,
                    ts_init=now,
                    client_order_id=self._ids.next(stop.strategy_id),
                    strategy_id=stop.strategy_id,
                    instrument_id=stop.instrument_id,
                    side=OrderSide.SELL if position > 0 else OrderSide.BUY,
                    order_type=OrderType.MARKET,
                    quantity=abs(position),
                    time_in_force=TimeInForce.GTC,
                    reduce_only=True,
                )
            )
        return out

    def state(self) -> list[Any]:
        return [msgspec.to_builtins(s) for s in self._stops]

    def load_state(self, state: list[Any]) -> None:
        for instrument_id in self._counts:  # this part's keys only: the map is shared
            unwatch(self.watches, instrument_id, TIME_STOPS)
        self._stops, self._counts = [], {}
        for saved in state:
            self.add(msgspec.convert(saved, TimeStop))
