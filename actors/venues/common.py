"""What every broker adapter shares: rate limits, the circuit breaker, live opt-in, credentials
and the journal-before-send log.

* :class:`TokenBucket` — ``rate`` tokens per second up to ``capacity``; adapters configure them
  *below* each broker's published limit. :class:`CommandQueue` sends cancels ahead of new orders.
* :class:`CircuitBreaker` — opens after ``threshold`` consecutive failures and blocks new orders
  (cancels still go out); it closes only when a reconciliation comes back clean.
* :func:`check_live` — live trading needs ``live: true`` in the config *and* ``--confirm-live``;
  paper accounts are a separate mode that needs neither.
* :class:`Secret` / :func:`env_secret` — credentials only from the environment; ``repr``/``str``
  never show the value.
* :class:`SendLog` — the journal-before-send helper: every command is appended durably before it
  goes to the broker, broker ids are appended the moment the broker returns them, and a command
  whose outcome is unknown is marked so and never sent again.
"""

from __future__ import annotations

import enum
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import msgspec

from runtime.errors import ConfigError, InvariantError
from runtime.journal import Blob, Journal
from runtime.messages import (
    CancelOrder,
    Command,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatusUnknown,
    OrderUpdated,
    SubmitOrder,
)
from runtime.values import fixed, from_fixed

if TYPE_CHECKING:
    from actors.venues.reports import ReportBook

__all__ = [
    "ORPHAN_WAIT_S",
    "BreakerState",
    "CircuitBreaker",
    "CommandQueue",
    "Mode",
    "OrderIds",
    "Secret",
    "SendLog",
    "TokenBucket",
    "amend_key",
    "check_live",
    "env_secret",
    "position_drifts",
    "take_baseline",
    "to_fixed",
]

Clock = Callable[[], float]

#: how long a broker event that names no order of ours waits for its order's id (a submit's
#: answer that the event beat, a stop's trigger) before it counts as an event of an order this
#: session never sent (the unknown-order-storm watchdog reads the count)
ORPHAN_WAIT_S = 5.0


def to_fixed(value: float | Decimal | str) -> int:
    """A broker number (float or text) to fixed point, through its shortest decimal form."""
    return fixed(Decimal(str(value)))


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` banked; starts full."""

    def __init__(self, *, rate: float, capacity: float, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or capacity < 1:
            raise ConfigError(f"bad token bucket rate={rate} capacity={capacity}")
        self.rate, self.capacity, self._clock = rate, capacity, clock
        self._tokens = capacity
        self._last = clock()

    @classmethod
    def per_window(
        cls, count: int, window_s: float, *, clock: Clock = time.monotonic
    ) -> TokenBucket:
        """``count`` per ``window_s`` seconds, burst at most ``count``."""
        return cls(rate=count / window_s, capacity=count, clock=clock)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def try_take(self, n: float = 1) -> bool:
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def wait_s(self, n: float = 1) -> float:
        """Seconds until ``n`` tokens are available (0 when they are now)."""
        self._refill()
        return max(0.0, (n - self._tokens) / self.rate)


class CommandQueue:
    """Commands waiting for a token: cancels first, then modifies, then new orders (FIFO each)."""

    def __init__(self) -> None:
        self._cancels: deque[Command] = deque()
        self._modifies: deque[Command] = deque()
        self._submits: deque[Command] = deque()

    def push(self, command: Command) -> None:
        if isinstance(command, CancelOrder):
            self._cancels.append(command)
        elif isinstance(command, ModifyOrder):
            self._modifies.append(command)
        else:
            self._submits.append(command)

    def push_front(self, command: Command) -> None:
        """Back to the head of its queue (a send the broker refused before processing it)."""
        if isinstance(command, CancelOrder):
            self._cancels.appendleft(command)
        elif isinstance(command, ModifyOrder):
            self._modifies.appendleft(command)
        else:
            self._submits.appendleft(command)

    def pop(self) -> Command | None:
        for queue in (self._cancels, self._modifies, self._submits):
            if queue:
                return queue.popleft()
        return None

    def __len__(self) -> int:
        return len(self._cancels) + len(self._modifies) + len(self._submits)

    def waiting_submits(self) -> tuple[Command, ...]:
        """The new orders still waiting for a token, in the order they will go."""
        return tuple(self._submits)

    def submit_ids(self) -> set[str]:
        """Client order ids of new orders still waiting for a token."""
        return {c.client_order_id for c in self._submits}


class BreakerState(enum.StrEnum):
    CLOSED = "closed"  # orders flow
    OPEN = "open"  # new orders blocked until a clean reconciliation


class CircuitBreaker:
    """Blocks new orders after ``threshold`` consecutive failures; closes only on a clean
    reconciliation (:meth:`reconciled`), never by time alone."""

    def __init__(self, *, threshold: int = 3) -> None:
        self.threshold = threshold
        self.failures = 0
        self.state = BreakerState.CLOSED
        self.reason = ""

    @property
    def allows_new_orders(self) -> bool:
        return self.state is BreakerState.CLOSED

    def failure(self, reason: str) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.trip(reason)

    def trip(self, reason: str) -> None:
        self.state, self.reason = BreakerState.OPEN, reason

    def success(self) -> None:
        """A command went through: the failure streak ends (an open breaker stays open)."""
        self.failures = 0

    def reconciled(self, *, clean: bool) -> None:
        if clean:
            self.state, self.failures, self.reason = BreakerState.CLOSED, 0, ""


class Mode(enum.StrEnum):
    PAPER = "paper"  # the simulated venue, or a broker's paper/simulation account
    LIVE = "live"


def check_live(*, live: bool, confirm_live: bool, paper_account: bool) -> Mode:
    """The opt-in rule: a live (real-money) account needs the config flag *and* the command-line
    confirmation; a paper account needs neither and refuses ``live: true`` (ambiguous intent)."""
    if paper_account:
        if live:
            raise ConfigError("live: true with a paper account: pick one", field="live")
        return Mode.PAPER
    if not live:
        raise ConfigError(
            "this broker account trades real money: set live: true in the config and pass "
            "--confirm-live, or use a paper account",
            field="live",
        )
    if not confirm_live:
        raise ConfigError("live trading needs --confirm-live on the command line", field="live")
    return Mode.LIVE


class Secret:
    """A credential: the value is read with :meth:`reveal`; printing shows only the name."""

    __slots__ = ("_value", "name")

    def __init__(self, name: str, value: str) -> None:
        self.name, self._value = name, value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name}=***)"

    __str__ = __repr__


def env_secret(name: str, *, environ: dict[str, str] | None = None) -> Secret:
    """A credential from the environment (never from YAML); a clear error naming the variable."""
    value = (os.environ if environ is None else environ).get(name, "")
    if not value:
        raise ConfigError(f"set the environment variable {name} (credentials never go in YAML)")
    return Secret(name, value)


# --- journal before send ---------------------------------------------------------------------

_IDS: Final = "venue.ids"
_UNKNOWN: Final = "venue.unknown"
_SENT: Final = "venue.sent"
_CLOSED: Final = "venue.closed"
_UNSENT: Final = "venue.unsent"
_BASELINE: Final = "venue.baseline"


class OrderIds(msgspec.Struct, kw_only=True):
    """Everything the adapter knows about one order, rebuilt from the journal after a restart."""

    command: SubmitOrder
    broker_ids: dict[str, str] = msgspec.field(default_factory=dict)
    sent: bool = False  # the send call returned (or raised): the broker may have it
    unknown: bool = False  # outcome unknown: never resend, reconcile
    closed: bool = False  # a terminal report was given (filled, canceled, rejected)
    fills: list[OrderFilled] = msgspec.field(default_factory=list)  # fills reported


class _IdsRecord(msgspec.Struct, frozen=True):
    client_order_id: str
    ids: dict[str, str]


class _BaselineRecord(msgspec.Struct, frozen=True):
    positions: dict[str, int]  # instrument id -> fixed-point quantity held before our fills


_REPORTS = (
    OrderAccepted,
    OrderRejected,
    OrderCanceled,
    OrderCancelRejected,
    OrderExpired,
    OrderUpdated,
    OrderStatusUnknown,
)


def amend_key(command: Command) -> tuple[str, str, int]:
    """The identity of a cancel or modify (a retried call carries the same one)."""
    return (type(command).__name__, command.client_order_id, command.ts_event)


class SendLog:
    """Journal-before-send over a :class:`runtime.journal.Journal` (one per adapter).

    With :meth:`report` as the report book's ``on_report``, every report is journaled as it is
    made: ``reports`` holds them all, in order, after a restart (the gateway hands them out by
    index), and ``fills`` per order are the reported fills."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.orders: dict[str, OrderIds] = {}
        self.reports: list[OrderEvent] = []
        self.amends: set[tuple[str, str, int]] = set()  # cancels/modifies journaled (sent)
        self._by_broker: dict[tuple[str, str], str] = {}
        # the account's positions at the first reconciliation, before any fill of ours: None
        # until taken (a fresh journal); journaled, so a restart keeps the starting point
        self.baseline: dict[str, int] | None = None
        self._restore()

    def _restore(self) -> None:
        for _, record in self.journal.entries():
            if isinstance(record, SubmitOrder):
                self.orders[record.client_order_id] = OrderIds(command=record)
            elif isinstance(record, CancelOrder | ModifyOrder):
                self.amends.add(amend_key(record))
            elif isinstance(record, _REPORTS):
                self.reports.append(record)
            elif isinstance(record, OrderFilled):
                self.reports.append(record)
                if record.client_order_id in self.orders:
                    self.orders[record.client_order_id].fills.append(record)
            elif isinstance(record, Blob) and record.kind == _BASELINE:
                base = msgspec.msgpack.decode(record.payload, type=_BaselineRecord)
                self.baseline = dict(base.positions)
            elif isinstance(record, Blob):
                rec = msgspec.msgpack.decode(record.payload, type=_IdsRecord)
                order = self.orders.get(rec.client_order_id)
                if order is None:
                    continue
                if record.kind == _IDS:
                    self._remember(order, rec.ids)
                elif record.kind == _SENT:
                    order.sent = True
                elif record.kind == _UNKNOWN:
                    order.unknown = True
                elif record.kind == _CLOSED:
                    order.closed = True
                elif record.kind == _UNSENT:
                    self._forget(rec.client_order_id)

    @property
    def needs_baseline(self) -> bool:
        """No starting point yet and no order of ours: the next reconciliation takes one. (A
        journal with orders but no baseline predates baselines: it keeps the old rule.)"""
        return self.baseline is None and not self.orders

    def set_baseline(self, positions: dict[str, int]) -> None:
        """Journal the account's starting positions durably (taken once per journal)."""
        if self.baseline is not None:
            raise InvariantError("the baseline of this journal was taken already")
        self.baseline = dict(positions)
        payload = msgspec.msgpack.encode(_BaselineRecord(self.baseline))
        self.journal.append(Blob(_BASELINE, payload), durable=True)

    def before_send(self, command: Command) -> bool:
        """Append ``command`` durably; ``False`` when a submit with this id was journaled before
        (it must not be sent again: reconcile instead)."""
        if isinstance(command, SubmitOrder):
            if command.client_order_id in self.orders:
                return False
            self.orders[command.client_order_id] = OrderIds(command=command)
        else:
            self.amends.add(amend_key(command))
        self.journal.append(command, durable=True)
        return True

    def report(self, report: OrderEvent) -> None:
        """Journal a report the moment it is made (durably): a fill also counts for its order
        (dedupe and positions after a restart)."""
        self.journal.append(report, durable=True)
        self.reports.append(report)
        if isinstance(report, OrderFilled):
            order = self.orders.get(report.client_order_id)
            if order is not None:
                order.fills.append(report)

    def _blob(self, kind: str, client_order_id: str, ids: dict[str, str] | None = None) -> None:
        payload = msgspec.msgpack.encode(_IdsRecord(client_order_id, ids or {}))
        self.journal.append(Blob(kind, payload), durable=True)

    def sent(self, client_order_id: str) -> None:
        self._order(client_order_id).sent = True
        self._blob(_SENT, client_order_id)

    def broker_ids(self, client_order_id: str, **ids: str) -> None:
        """Save broker ids (order id, perm id, seqno, ordno...) the moment they are known."""
        order = self._order(client_order_id)
        new = {k: str(v) for k, v in ids.items() if v and order.broker_ids.get(k) != str(v)}
        if new:
            self._remember(order, new)
            self._blob(_IDS, client_order_id, new)

    def unsent(self, client_order_id: str) -> None:
        """The broker refused the send before processing it (a rate limit's 429): the order
        provably did not go in, so it may be sent again (``before_send`` accepts it)."""
        order = self._order(client_order_id)
        if order.sent or order.unknown or order.fills:
            raise InvariantError(f"{client_order_id} may be at the broker: never unsent")
        self._forget(client_order_id)
        self._blob(_UNSENT, client_order_id)

    def _forget(self, client_order_id: str) -> None:
        del self.orders[client_order_id]
        for key in [k for k, v in self._by_broker.items() if v == client_order_id]:
            del self._by_broker[key]

    def mark_unknown(self, client_order_id: str) -> None:
        self._order(client_order_id).unknown = True
        self._blob(_UNKNOWN, client_order_id)

    def closed(self, client_order_id: str) -> None:
        order = self.orders.get(client_order_id)
        if order is not None and not order.closed:
            order.closed = True
            self._blob(_CLOSED, client_order_id)

    def fill(self, fill: OrderFilled) -> None:
        """Journal a reported fill: after a restart it is known (dedupe, positions)."""
        order = self.orders.get(fill.client_order_id)
        if order is not None:
            order.fills.append(fill)
            self.journal.append(fill, durable=True)

    def find(self, kind: str, broker_id: str) -> str | None:
        """The client order id behind a broker id (e.g. ``("perm_id", "123")``)."""
        return self._by_broker.get((kind, str(broker_id)))

    def unknown(self) -> Iterator[OrderIds]:
        return (o for o in self.orders.values() if o.unknown)

    def _remember(self, order: OrderIds, ids: dict[str, str]) -> None:
        order.broker_ids.update(ids)
        for kind, value in ids.items():
            self._by_broker[(kind, value)] = order.command.client_order_id

    def _order(self, client_order_id: str) -> OrderIds:
        try:
            return self.orders[client_order_id]
        except KeyError:
            raise InvariantError(f"no journaled submit for {client_order_id}") from None


def take_baseline(
    send_log: SendLog, book: ReportBook, broker: dict[str, int], instruments: Iterable[str]
) -> None:
    """At the first reconciliation of a fresh journal, what the broker holds beyond our fills was
    there before us: journal it (a restart keeps it) and count it into the book's positions."""
    if not send_log.needs_baseline:
        return
    ours = book.positions()
    start = {i: broker.get(i, 0) - ours.get(i, 0) for i in sorted(set(instruments))}
    start = {i: q for i, q in start.items() if q}
    send_log.set_baseline(start)
    book.set_baseline(start)


def position_drifts(
    broker_name: str, broker: dict[str, int], ours: dict[str, int], instruments: Iterable[str]
) -> list[str]:
    """One line per instrument whose broker position differs from the replay of our fills (in
    human units: ``position AAPL.NASDAQ: IB 109 vs fills 99``)."""
    return [
        f"position {iid}: {broker_name} {from_fixed(broker.get(iid, 0))} "
        f"vs fills {from_fixed(ours.get(iid, 0))}"
        for iid in sorted(set(instruments))
        if broker.get(iid, 0) != ours.get(iid, 0)
    ]
