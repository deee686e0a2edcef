"""Execution algorithms: how a parent order is worked into child orders over time.

An algorithm is a small ``msgspec`` struct: its parameters, then the progress it keeps (all
integers, so it lives inside the kernel's state hash). The core
(:class:`runtime.execution.ExecutionAlgorithms`) calls it at the parent's submission
(:meth:`ExecAlgorithm.start`, with a seeded generator), then on each market message of the
instrument and each event of a child (:meth:`ExecAlgorithm.decide`): it answers with the
:class:`Slice` s to send now. The core sizes nothing itself; it only refuses a slice that would
take the parent beyond its quantity.

Chosen by name in the order, as the venue models are: :func:`algorithm` registers a class under
its ``name`` (a user's own algorithm too, without touching the kernel) and
:func:`algorithm_type` finds it again (a restore rebuilds each parent's algorithm so).

The built-in ones, each with its rule in its ``decide``:

* ``twap``: ``slices`` equal parts (in lots) at equal intervals over ``horizon_ns``, each time
  moved by up to ``jitter_bps`` of an interval by the generator passed in;
* ``vwap``: the parent's quantity spread over ``horizon_ns`` by a volume ``profile`` (weights
  per equal bucket; :func:`volume_profile` builds one from history or the session so far);
* ``pov``: ``rate_bps`` of the volume traded since submission, each child capped at
  ``max_child_qty``;
* ``iceberg``: one visible limit child of ``display_qty`` at the parent's limit price, refilled
  when it fills;
* ``completion``: one marketable limit at the parent's price cap, FOK (all or nothing) or FAK
  (fill and kill): the parent fails with the unfilled quantity, and never trades beyond its cap.

A slice goes out at the first market message of the instrument at or after its time: an
algorithm never acts on a clock the data has not reached, in a backtest or a session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import msgspec
import numpy as np

from runtime.errors import ConfigError
from runtime.instruments import Instrument
from runtime.messages import OrderSide, OrderType, TimeInForce
from runtime.values import Rounding

__all__ = [
    "Completion",
    "ExecAlgorithm",
    "Iceberg",
    "MarketView",
    "ParentView",
    "Pov",
    "Slice",
    "Twap",
    "Vwap",
    "algorithm",
    "algorithm_type",
    "volume_profile",
]


class Slice(msgspec.Struct, frozen=True, kw_only=True):
    """A child order an algorithm asks for (the parent's side and instrument)."""

    quantity: int
    order_type: OrderType = OrderType.MARKET
    price: int | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False


@dataclass(frozen=True, slots=True)
class ParentView:
    """The parent as an algorithm sees it: ``filled_qty`` is its children's fills,
    ``working_qty`` the leaves of its open children."""

    side: OrderSide
    quantity: int
    filled_qty: int
    working_qty: int
    start_ns: int
    limit_price: int | None

    @property
    def remaining(self) -> int:
        """Not yet released to a child."""
        return self.quantity - self.filled_qty - self.working_qty


@dataclass(frozen=True, slots=True)
class MarketView:
    """The market as the core has it now: ``volume`` traded since the parent's submission."""

    now_ns: int
    volume: int
    instrument: Instrument

    def lots(self, quantity: int) -> int:
        """``quantity`` rounded down to whole lots."""
        return self.instrument.quantize_quantity(max(quantity, 0), Rounding.DOWN)


class ExecAlgorithm(msgspec.Struct, kw_only=True):
    """Base of every execution algorithm: parameters first, then its own progress."""

    name: ClassVar[str] = ""
    #: the parent must carry a limit price (the iceberg's price, the completion order's cap)
    needs_limit: ClassVar[bool] = False

    def check(self) -> None:
        """Refuse (:class:`ConfigError`) parameters that make no sense."""

    def start(self, parent: ParentView, market: MarketView, rng: np.random.Generator) -> None:
        """At submission: plan (``rng``: seeded per parent, so the plan is deterministic)."""

    def decide(self, parent: ParentView, market: MarketView) -> list[Slice]:
        """The children to send now (an empty list: nothing yet)."""
        raise NotImplementedError

    def failure(self, parent: ParentView, market: MarketView) -> str:
        """Why the parent cannot complete any more ("" while it can)."""
        return ""


A = TypeVar("A", bound=type[ExecAlgorithm])
_REGISTRY: dict[str, type[ExecAlgorithm]] = {}


def algorithm(cls: A) -> A:
    """Register an algorithm class under its ``name`` (a decorator)."""
    name = cls.name
    if not name or _REGISTRY.get(name, cls) is not cls:
        raise ConfigError(f"execution algorithm {cls.__name__}: name {name!r} empty or taken")
    _REGISTRY[name] = cls
    return cls


def algorithm_type(name: str) -> type[ExecAlgorithm]:
    found = _REGISTRY.get(name)
    if found is None:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown execution algorithm {name!r} (known: {known})")
    return found


def _child(parent: ParentView, quantity: int) -> list[Slice]:
    """A market child (a limit at the parent's price when it has one) for ``quantity``."""
    quantity = min(quantity, parent.remaining)
    if quantity <= 0:
        return []
    if parent.limit_price is None:
        return [Slice(quantity=quantity)]
    return [Slice(quantity=quantity, order_type=OrderType.LIMIT, price=parent.limit_price)]


def _split(total_lots: int, parts: Sequence[int]) -> list[int]:
    """``total_lots`` split in proportion to ``parts``, cumulative, in whole lots, exact."""
    weight = sum(parts)
    running, out = 0, []
    for part in parts:
        running += part
        out.append(total_lots * running // weight)
    return out


@algorithm
class Twap(ExecAlgorithm, kw_only=True):
    name: ClassVar[str] = "twap"
    horizon_ns: int
    slices: int
    jitter_bps: int = 0  # of one interval, either way
    due_ns: list[int] = msgspec.field(default_factory=list)
    cumulative: list[int] = msgspec.field(default_factory=list)  # quantity due by each time

    def check(self) -> None:
        if self.horizon_ns <= 0 or self.slices <= 0 or not 0 <= self.jitter_bps <= 5_000:
            raise ConfigError(
                "twap: horizon_ns and slices must be positive, jitter_bps within 0..5000"
            )

    def start(self, parent: ParentView, market: MarketView, rng: np.random.Generator) -> None:
        interval = self.horizon_ns // self.slices
        spread = interval * self.jitter_bps // 10_000
        last = parent.start_ns + self.horizon_ns - 1
        times = []
        for i in range(self.slices):
            moved = int(rng.integers(-spread, spread + 1)) if spread else 0
            times.append(min(max(parent.start_ns + i * interval + moved, parent.start_ns), last))
        lot = market.instrument.lot_size
        self.due_ns = sorted(times)
        self.cumulative = [q * lot for q in _split(parent.quantity // lot, [1] * self.slices)]

    def decide(self, parent: ParentView, market: MarketView) -> list[Slice]:
        due = 0
        for ts, cumulative in zip(self.due_ns, self.cumulative, strict=True):
            if ts > market.now_ns:
                break
            due = cumulative
        return _child(parent, due - parent.filled_qty - parent.working_qty)


@algorithm
class Vwap(ExecAlgorithm, kw_only=True):
    name: ClassVar[str] = "vwap"
    horizon_ns: int
    profile: list[int]  # relative volume per equal bucket of the horizon

    def check(self) -> None:
        if self.horizon_ns <= 0 or not self.profile or min(self.profile) < 0:
            raise ConfigError("vwap: a positive horizon_ns and a profile of weights >= 0")
        if sum(self.profile) <= 0:
            raise ConfigError("vwap: the profile's weights sum to 0")

    def decide(self, parent: ParentView, market: MarketView) -> list[Slice]:
        elapsed = market.now_ns - parent.start_ns
        n, weight = len(self.profile), sum(self.profile)
        if elapsed >= self.horizon_ns:
            due = parent.quantity
        else:
            bucket = elapsed * n // self.horizon_ns
            into = elapsed * n - bucket * self.horizon_ns  # the bucket's part done, x horizon
            done = sum(self.profile[:bucket]) * self.horizon_ns + self.profile[bucket] * into
            due = market.lots(parent.quantity * done // (weight * self.horizon_ns))
        return _child(parent, due - parent.filled_qty - parent.working_qty)


@algorithm
class Pov(ExecAlgorithm, kw_only=True):
    name: ClassVar[str] = "pov"
    rate_bps: int  # share of the volume traded since submission
    max_child_qty: int = 0  # 0: no cap per child

    def check(self) -> None:
        if not 0 < self.rate_bps <= 10_000 or self.max_child_qty < 0:
            raise ConfigError("pov: rate_bps within 1..10000, max_child_qty >= 0")

    def decide(self, parent: ParentView, market: MarketView) -> list[Slice]:
        due = market.lots(market.volume * self.rate_bps // 10_000)
        quantity = due - parent.filled_qty - parent.working_qty
        if self.max_child_qty:
            quantity = min(quantity, market.lots(self.max_child_qty))
        return _child(parent, quantity)


@algorithm
class Iceberg(ExecAlgorithm, kw_only=True):
    name: ClassVar[str] = "iceberg"
    needs_limit: ClassVar[bool] = True
    display_qty: int

    def check(self) -> None:
        if self.display_qty <= 0:
            raise ConfigError("iceberg: display_qty must be positive")

    def decide(self, parent: ParentView, market: MarketView) -> list[Slice]:
        if parent.working_qty:
            return []  # one visible child at a time: refilled once it has filled
        return _child(parent, market.lots(self.display_qty))


@algorithm
class Completion(ExecAlgorithm, kw_only=True):
    name: ClassVar[str] = "completion"
    needs_limit: ClassVar[bool] = True
    time_in_force: TimeInForce = TimeInForce.FOK  # FOK: all or nothing; IOC: fill and kill
    sent: bool = False

    def check(self) -> None:
        if self.time_in_force not in (TimeInForce.FOK, TimeInForce.IOC):
            raise ConfigError(
                f"completion: time_in_force fok or ioc (fill and kill), not {self.time_in_force}"
            )

    def decide(self, parent: ParentView, market: MarketView) -> list[Slice]:
        if self.sent:
            return []
        self.sent = True
        return [
            Slice(
                quantity=parent.quantity,
                order_type=OrderType.LIMIT,
                price=parent.limit_price,
                time_in_force=self.time_in_force,
            )
        ]

    def failure(self, parent: ParentView, market: MarketView) -> str:
        if self.sent and not parent.working_qty and parent.filled_qty < parent.quantity:
            return (
                f"completion {self.time_in_force}: filled {parent.filled_qty} of "
                f"{parent.quantity} within the cap {parent.limit_price}"
            )
        return ""


def volume_profile(
    ts_ns: Sequence[int] | np.ndarray,
    volume: Sequence[int] | np.ndarray,
    *,
    start_ns: int,
    horizon_ns: int,
    buckets: int,
    period_ns: int = 86_400 * 10**9,
) -> list[int]:
    """Volume weights for :class:`Vwap`: the volume of ``ts_ns``/``volume`` (history, or the
    bars a strategy has seen in the session so far) that fell, in any earlier period (a day by
    default), in each of ``buckets`` equal parts of the window ``start_ns .. +horizon_ns``.
    All zero (no volume in that window) gives equal weights."""
    if buckets <= 0 or horizon_ns <= 0:
        raise ConfigError("volume_profile: buckets and horizon_ns must be positive")
    ts = np.asarray(ts_ns, dtype=np.int64)
    vol = np.asarray(volume, dtype=np.int64)
    offset = (ts - start_ns) % period_ns
    inside = (offset < horizon_ns) & (ts < start_ns)
    which = offset[inside] * buckets // horizon_ns
    weights = np.zeros(buckets, dtype=np.int64)
    np.add.at(weights, which, vol[inside])
    if not weights.any():
        return [1] * buckets
    return [int(w) for w in weights]
