"""The L2 replay engine: compiled book reconstruction between wake-ups, Python only to act.

``L2ReplayEngine(events, config, strategy).run()`` replays :class:`~backtest.l2.data.L2Events`
through :mod:`backtest.l2.kernel` in segments of ``timer_interval_ns``; between segments it hands
responses to the strategy and sends its commands, stamped to reach the venue ``entry_latency_ns``
later. Venue responses (acks, fills, cancels, post-only expiries) reach the strategy
``response_latency_ns`` after the venue produced them. Same events and config ⇒ same fills.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from backtest.l2 import kernel as k
from backtest.l2.data import L2Events
from backtest.l2.strategy import L2Fill, L2Strategy, LocalOrder, LocalOrderStatus
from backtest.l2.venue import CompiledVenue, ResponseRow
from runtime.errors import ConfigError, InvariantError
from runtime.messages import OrderSide
from runtime.values import Rounding, mul_fixed

__all__ = ["L2ReplayConfig", "L2ReplayEngine", "L2ReplayResult"]

_STATUS_BY_RESP = {
    k.RESP_ACK: LocalOrderStatus.OPEN,
    k.RESP_CANCELED: LocalOrderStatus.CANCELED,
    k.RESP_EXPIRED: LocalOrderStatus.EXPIRED,
}


@dataclass(frozen=True, kw_only=True)
class L2ReplayConfig:
    """Every model is named; nothing defaults to zero latency."""

    instrument_id: str
    entry_latency_ns: int  # constant order-entry latency, local → venue
    response_latency_ns: int  # constant response latency, venue → local
    queue_model: Literal["risk_averse"]  # cancels from the back (see backtest.l2.kernel)
    fill_model: Literal["partial", "no_partial"]  # at the queue front: trade size or whole order
    timer_interval_ns: int = 100_000_000
    maker_fee_rate: int = 0  # fixed-point fraction of notional (negative = rebate)
    response_capacity: int = 1 << 16

    def __post_init__(self) -> None:
        if self.entry_latency_ns < 0 or self.response_latency_ns < 0:
            raise ConfigError("latencies must be >= 0", field="entry/response_latency_ns")
        if self.timer_interval_ns <= 0:
            raise ConfigError("must be > 0", field="timer_interval_ns")
        if self.queue_model != "risk_averse":
            raise ConfigError(f"unknown queue model {self.queue_model!r}", field="queue_model")
        if self.fill_model not in ("partial", "no_partial"):
            raise ConfigError(f"unknown fill model {self.fill_model!r}", field="fill_model")


@dataclass
class L2ReplayResult:
    fills: list[L2Fill]
    equity_ts: np.ndarray  # int64 local ns, one per wake-up
    equity: np.ndarray  # int64 fixed-point money: cash - fees + position * mid
    position: int
    cash: int
    fees: int
    events: int
    wakeups: int
    orders: dict[str, int] = field(default_factory=dict)  # counts by outcome


class L2ReplayEngine:
    """Replays one instrument's L2 events against one strategy. Also its :class:`OrderSink`."""

    def __init__(self, events: L2Events, config: L2ReplayConfig, strategy: L2Strategy) -> None:
        self.events, self.config, self.strategy = events, config, strategy
        self._venue = CompiledVenue(
            events,
            response_latency_ns=config.response_latency_ns,
            partial_fills=config.fill_model == "partial",
            response_capacity=config.response_capacity,
        )
        self._orders: dict[int, LocalOrder] = {}
        self._pending: list[tuple[int, int, ResponseRow]] = []  # (local ts, seq, response)
        self._seq = 0
        self._next_id = 1
        self._now = 0
        self.position = 0
        self.cash = 0
        self.fees = 0
        self.fills: list[L2Fill] = []
        self.counts = {
            "submitted": 0,
            "cancel_requests": 0,
            "canceled": 0,
            "expired": 0,
            "cancel_rejected": 0,
            "filled": 0,
        }

    # --- OrderSink -------------------------------------------------------------------------

    def open_orders(self) -> list[LocalOrder]:
        return list(self._orders.values())

    def submit_limit(
        self, *, side: OrderSide, price: int, quantity: int, post_only: bool = True
    ) -> int:
        if not post_only:
            raise ConfigError("the L2 replay venue takes post-only limit orders only")
        if quantity <= 0 or price <= 0:
            raise InvariantError(f"bad order: price={price} quantity={quantity}")
        oid = self._next_id
        self._next_id += 1
        self._orders[oid] = LocalOrder(oid, side, price, quantity)
        self._venue.send_new(
            self._now + self.config.entry_latency_ns,
            order_id=oid,
            side=int(side),
            price=price,
            qty=quantity,
        )
        self.counts["submitted"] += 1
        return oid

    def cancel(self, order_id: int) -> None:
        order = self._orders.get(order_id)
        if order is None or order.status is not LocalOrderStatus.OPEN:
            return  # nothing cancelable: pending, already canceling or closed
        order.status = LocalOrderStatus.PENDING_CANCEL
        self._venue.send_cancel(
            self._now + self.config.entry_latency_ns, order_id=order_id, side=int(order.side)
        )
        self.counts["cancel_requests"] += 1

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> L2ReplayResult:
        venue, interval = self._venue, self.config.timer_interval_ns
        start, end = venue.start_ns, venue.end_ns
        wakes = np.arange(start + interval, end + interval, interval, dtype=np.int64)
        equity = np.zeros(len(wakes), dtype=np.int64)
        processed = 0
        for w, ts in enumerate(wakes.tolist()):
            self._now = ts
            processed += venue.advance(ts)
            self._collect_responses()
            self._deliver(ts)
            view = venue.local_view(ts)
            self.strategy.on_timer(ts, view, self)
            mid = view.mid()
            equity[w] = (
                self.cash
                - self.fees
                + (mul_fixed(self.position, mid, Rounding.HALF_EVEN) if mid is not None else 0)
            )
        return L2ReplayResult(
            fills=self.fills,
            equity_ts=wakes,
            equity=equity,
            position=self.position,
            cash=self.cash,
            fees=self.fees,
            events=processed,
            wakeups=len(wakes),
            orders=dict(self.counts),
        )

    def _collect_responses(self) -> None:
        for row in self._venue.take_responses():
            self._seq += 1
            bisect.insort(self._pending, (row[0], self._seq, row))

    def _deliver(self, now: int) -> None:
        cut = bisect.bisect_right(self._pending, (now, 1 << 62))
        ready, self._pending = self._pending[:cut], self._pending[cut:]
        for _, _, row in ready:
            self._apply_response(row)
        for oid in [o.order_id for o in self._orders.values() if o.closed]:
            del self._orders[oid]

    def _apply_response(self, row: ResponseRow) -> None:
        ts_local, ts_exch, kind, oid, price, qty, leaves = row
        order = self._orders.get(oid)
        if order is None:
            return
        if kind == k.RESP_FILL:
            self._on_fill(order, ts_local, ts_exch, price, qty, leaves)
        elif kind == k.RESP_CANCEL_REJECTED:
            self.counts["cancel_rejected"] += 1  # it filled first; the fill report follows
        else:
            if kind == k.RESP_ACK and order.status is not LocalOrderStatus.PENDING_NEW:
                return  # a cancel is already on its way
            order.status = _STATUS_BY_RESP[kind]
            if kind == k.RESP_CANCELED:
                self.counts["canceled"] += 1
            elif kind == k.RESP_EXPIRED:
                self.counts["expired"] += 1

    def _on_fill(
        self, order: LocalOrder, ts_local: int, ts_exch: int, price: int, qty: int, leaves: int
    ) -> None:
        notional = mul_fixed(price, qty)
        fee = mul_fixed(notional, self.config.maker_fee_rate, Rounding.HALF_EVEN)
        self.position += order.side.sign * qty
        self.cash -= order.side.sign * notional
        self.fees += fee
        order.leaves = leaves
        if leaves <= 0:
            order.status = LocalOrderStatus.FILLED
            self.counts["filled"] += 1
        fill = L2Fill(
            ts_exch=ts_exch,
            ts_local=ts_local,
            order_id=order.order_id,
            side=order.side,
            price=price,
            qty=qty,
            leaves_qty=leaves,
            maker=True,
            fee=fee,
        )
        self.fills.append(fill)
        self.strategy.on_fill(fill)
