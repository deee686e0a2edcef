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
* :class:`SendLog` (``actors.venues.send_log``, here for the adapters' imports) — the
  journal-before-send helper: every command is appended durably before it goes to the broker,
  broker ids are appended the moment the broker returns them, a command whose outcome is unknown
  is marked so and never sent again, and the log is compacted behind snapshots.
"""

from __future__ import annotations

import enum
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from actors.venues.send_log import OrderIds, SendLog, amend_key, take_baseline
from runtime.errors import ConfigError
from runtime.messages import CancelOrder, Command, ModifyOrder
from runtime.values import fixed, from_fixed

__all__ = [
    "ORPHAN_WAIT_S",
    "BreakerState",
    "CircuitBreaker",
    "CommandQueue",
    "Mode",
    "OrderIds",
    "PositionCheck",
    "PositionLine",
    "Secret",
    "SendLog",
    "TokenBucket",
    "amend_key",
    "broker_positions",
    "check_live",
    "env_secret",
    "note_reconciled",
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


class PositionLine(str):
    """A position drift line (:func:`position_drifts`) that keeps its numbers: the gateway
    hands them to the inventory-desync watchdog (``runtime.watchdog``)."""

    instrument_id: str
    broker: int
    ours: int

    def __new__(cls, text: str, instrument_id: str, broker: int, ours: int) -> PositionLine:
        line = super().__new__(cls, text)
        line.instrument_id, line.broker, line.ours = instrument_id, broker, ours
        return line


class PositionCheck:
    """The broker's positions against the replay of our fills, compared where they describe the
    same instant. Marked (:meth:`__init__`) just before the broker is asked for its positions;
    the reconciliation asks for orders, trades or executions *after* that, so a fill the broker
    had counted but not yet reported comes in before :meth:`drifts`. An instrument with a fill
    of ours recorded between the mark and :meth:`drifts` (a report that raced the read, or one
    the later queries brought in) is *unsettled*: the broker's number may be from before or
    after it, so this run neither finds a gap for it nor clears one (the watchdog's streak for
    it stands). The account's starting point (:func:`take_baseline`) is taken only in a run
    with nothing unsettled."""

    def __init__(self, book: Any) -> None:
        self._book = book
        self._marks: dict[str, int] = book.fill_marks()

    def drifts(self, broker_name: str, broker: dict[str, int], instruments: Iterable[str],
               send_log: SendLog) -> tuple[list[str], list[str]]:
        """(one :class:`PositionLine` per settled instrument whose broker position differs
        from ours, in human units: ``position AAPL.NASDAQ: IB 109 vs fills 99``; the unsettled
        instruments)."""
        names = sorted(set(instruments))
        marks = self._book.fill_marks()
        moved = [i for i in names if marks.get(i, 0) != self._marks.get(i, 0)]
        if moved and send_log.needs_baseline:
            return [], names
        take_baseline(send_log, self._book, broker, names)
        ours = self._book.positions()
        return [
            PositionLine(f"position {iid}: {broker_name} {from_fixed(broker.get(iid, 0))} "
                         f"vs fills {from_fixed(ours.get(iid, 0))}",
                         iid, broker.get(iid, 0), ours.get(iid, 0))
            for iid in names
            if iid not in moved and broker.get(iid, 0) != ours.get(iid, 0)
        ], moved


def note_reconciled(holder: Any, drifts: list[str], unsettled: Iterable[str] = ()) -> None:
    """An adapter's reconciliation ended with ``drifts`` (``holder``: its reconciler, or the
    venue that reconciles itself): ``last_drifts``, ``unsettled`` (instruments whose positions
    could not be compared, :class:`PositionCheck`), and ``reconciled`` counts them (the
    watchdog confirms a broker position drift over successive reconciliations)."""
    holder.last_drifts = drifts
    holder.unsettled = sorted(unsettled)
    holder.reconciled = getattr(holder, "reconciled", 0) + 1


def broker_positions(holder: Any) -> dict[str, Any]:
    """What the adapter's last reconciliation found the broker holding apart from our fills:
    ``{"run": reconciliations so far, "gaps": [[instrument, broker, ours], ...], "unsettled":
    [instrument, ...]}``."""
    return {"run": getattr(holder, "reconciled", 0),
            "unsettled": list(getattr(holder, "unsettled", [])),
            "gaps": [[d.instrument_id, d.broker, d.ours]
                     for d in getattr(holder, "last_drifts", []) if isinstance(d, PositionLine)]}
