"""The strategy API: one class runs unchanged in a backtest and inside a strategy actor.

A strategy reacts through hooks (``on_start``, ``on_quote``, ``on_trade``, ``on_book``,
``on_bar``, ``on_aux``, ``on_order_event``, ``on_timer``, ``on_stop``) and acts through its
context, which the kernel (backtest) or the strategy actor (paper/live) provides. It does no
I/O, starts no threads, reads no wall clock and uses only ``self.rng`` for randomness.
Quantities, prices and money are the core's fixed-point ints; declare params with
:data:`Qty`/:data:`Price` to write them in human units in YAML, and convert computed values with
:meth:`Strategy.to_price`/:meth:`Strategy.to_qty` (onto the instrument's grid) and
:meth:`Strategy.to_float`. ``self.account`` reads cash, equity and PnL. The reference for
authors is docs/strategy-guide.md.

::

    class SmaCross(Strategy[SmaCrossParams]):
        def on_start(self) -> None:
            self.fast = Sma(self.params.fast)
            self.slow = Sma(self.params.slow)

        def on_bar(self, bar: Bar) -> None:
            self.fast.update(bar.close)
            self.slow.update(bar.close)
            if not self.slow.ready:
                return
            want = self.params.size if self.fast.value > self.slow.value else 0
            self.target_position(bar.instrument_id, want)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    ClassVar,
    Generic,
    Protocol,
    Self,
    TypeVar,
    get_args,
)

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo

from runtime.algos import ExecAlgorithm
from runtime.errors import ConfigError, OperatorError
from runtime.execution import AlgoOrder
from runtime.linked import Contingency, Leg, OrderList
from runtime.messages import (
    AuxData,
    Bar,
    BookDeltas,
    BookSnapshot,
    Message,
    OrderSide,
    OrderType,
    QuoteTick,
    TimeInForce,
    TimerFired,
    TradeTick,
)
from runtime.trailing import Trail, TrailReference
from runtime.values import FIXED_PRECISION, FIXED_SCALE, Rounding, fixed

if TYPE_CHECKING:
    from runtime.auxdata import AuxNeed
    from runtime.instruments import Instrument
    from runtime.orders import Order
    from runtime.portfolio import Account
    from runtime.risk import RiskLimits, StrategyBudget

__all__ = ["NoParams", "Price", "Qty", "Strategy", "StrategyContext", "StrategyParams"]

_STOPS = (OrderType.STOP, OrderType.STOP_LIMIT)


def _scaled(value: Decimal | str | float | int) -> int:
    """A human-unit number as fixed point, rounded half-even to nine decimals (floats through
    their shortest repr, so ``0.1`` is ``0.1``)."""
    if isinstance(value, bool):
        raise ConfigError(f"expected a number, got {value!r}")
    if isinstance(value, int):
        return value * FIXED_SCALE
    dec = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not dec.is_finite():
        raise ConfigError(f"expected a finite number, got {value!r}")
    return int(dec.scaleb(FIXED_PRECISION).to_integral_value(ROUND_HALF_EVEN))


#: the validation context of params already in the core's units (an operator's change)
_CORE_UNITS = {"units": "core"}


def _to_fixed(value: Any, info: ValidationInfo) -> int:
    if info.context == _CORE_UNITS:  # already fixed point: an int, taken as it is
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"expected an integer in fixed-point units, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        return fixed(value)
    if isinstance(value, str | float | Decimal):
        return fixed(value)
    raise ValueError(f"expected a number, got {value!r}")


#: A quantity param written in human units (``size: 100``) and held as fixed point.
Qty = Annotated[int, BeforeValidator(_to_fixed)]
#: A price/money param written in human units and held as fixed point.
Price = Annotated[int, BeforeValidator(_to_fixed)]


class StrategyParams(BaseModel):
    """Base for strategy params: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def updated(self, changes: Mapping[str, Any]) -> Self:
        """These params with ``changes``, given in the core's units (``Qty``/``Price`` as
        fixed-point ints), checked by the model as a whole: strictly typed (no string for a
        number, no bool for an int), within each field's bounds, through its validators.
        :class:`OperatorError` names each field refused."""
        unknown = sorted(set(changes) - set(type(self).model_fields))
        if unknown:
            known = sorted(type(self).model_fields)
            raise OperatorError(f"unknown params {unknown}: {type(self).__name__} has {known}")
        try:
            data = json.dumps({**self.model_dump(mode="json"), **changes}, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise OperatorError(f"params must be finite plain values: {exc}") from None
        return self.from_core_json(data)

    def core_json(self) -> str:
        """The params as canonical JSON, in the core's units (what a kernel's state holds)."""
        return self.model_dump_json()

    @classmethod
    def from_core_json(cls, data: str) -> Self:
        """Inverse of :meth:`core_json`; :class:`OperatorError` naming the fields refused."""
        try:
            return cls.model_validate_json(data, strict=True, context=_CORE_UNITS)
        except ValidationError as exc:
            refused = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise OperatorError(f"{cls.__name__} refused {refused}") from None


class NoParams(StrategyParams):
    pass


class StrategyContext(Protocol):
    """What a strategy may ask of the engine that runs it (kernel or strategy actor).

    Optional: ``committed_view(strategy_id) -> Mapping[str, int]``, a live mapping of
    :meth:`committed` by instrument that stays valid while the strategy is bound (the kernel
    offers it); ``target_position`` then reads it directly, without a call per bar. Likewise
    ``protective_view(strategy_id)``: open protective legs per instrument, so
    ``target_position`` asks for :meth:`protective_orders` only where there are some.
    """

    def now_ns(self) -> int: ...
    def submit(
        self,
        strategy_id: str,
        *,
        instrument_id: str,
        side: OrderSide,
        quantity: int,
        order_type: OrderType,
        price: int | None,
        trigger_price: int | None,
        time_in_force: TimeInForce,
        post_only: bool,
        reduce_only: bool,
        protective: bool = False,
    ) -> str: ...
    def submit_list(self, strategy_id: str, order_list: OrderList) -> str: ...
    def submit_algo(self, strategy_id: str, order: AlgoOrder) -> str: ...
    def time_stop(
        self, strategy_id: str, *, instrument_id: str, after_ns: int, target: str, close: bool
    ) -> None: ...
    def unreleased(self, strategy_id: str, instrument_id: str) -> int:
        """Signed quantity of working parent orders not yet released to children."""
        ...

    def working_parents(self, strategy_id: str, instrument_id: str | None) -> list[str]: ...
    def trailing_stop(
        self,
        strategy_id: str,
        *,
        instrument_id: str,
        side: OrderSide,
        quantity: int,
        trail: Trail,
        protective: bool,
    ) -> str: ...
    def cancel(self, strategy_id: str, client_order_id: str) -> None: ...
    def modify(
        self,
        strategy_id: str,
        client_order_id: str,
        *,
        quantity: int | None,
        price: int | None,
        trigger_price: int | None,
    ) -> None: ...
    def position(self, strategy_id: str, instrument_id: str) -> int: ...
    def pending(self, strategy_id: str, instrument_id: str) -> int: ...
    def committed(self, strategy_id: str, instrument_id: str) -> int:
        """Position plus what open orders would add (what ``target_position`` trades from)."""
        ...

    def open_orders(self, strategy_id: str, instrument_id: str | None) -> list[Order]: ...
    def protective_orders(self, strategy_id: str, instrument_id: str) -> list[Order]: ...
    def features(self, instrument_id: str) -> dict[str, float]: ...
    def instrument(self, instrument_id: str) -> Instrument: ...
    def set_timer(self, strategy_id: str, name: str, interval_ns: int) -> None: ...
    def account(self) -> Account:
        """A read-only snapshot of the account the engine keeps."""
        ...

    def risk_limits(self) -> RiskLimits:
        """The risk limits orders are checked against (account, and budgets by strategy id)."""
        ...

    def strategy_pnl(self, strategy_id: str) -> int | None:
        """The strategy's own PnL (fixed point), or ``None`` where the engine keeps no book
        for it (no budget, and other strategies share the account)."""
        ...


P = TypeVar("P", bound=StrategyParams)


class Strategy(Generic[P]):
    """Base class of every strategy. Subclass as ``Strategy[MyParams]``."""

    params_type: ClassVar[type[StrategyParams]] = NoParams
    #: set True to have the engine maintain features for this strategy's instruments
    wants_features: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            args = get_args(base)
            if args and isinstance(args[0], type) and issubclass(args[0], StrategyParams):
                cls.params_type = args[0]

    def __init__(
        self,
        strategy_id: str,
        params: P | dict[str, Any] | None = None,
        instruments: tuple[str, ...] = (),
    ) -> None:
        if "-" in strategy_id or not strategy_id:
            raise ConfigError(f"strategy id {strategy_id!r} must be non-empty without '-'")
        self.strategy_id = strategy_id
        if params is None or isinstance(params, dict):
            params = self.params_type.model_validate(params or {})  # type: ignore[assignment]
        self.params: P = params  # type: ignore[assignment]
        self.instruments = tuple(instruments)
        self.rng: np.random.Generator = np.random.default_rng(0)
        self._ctx: StrategyContext | None = None
        self._committed: Mapping[str, int] | None = None
        self._protective: Mapping[str, int] | None = None

    def bind(self, ctx: StrategyContext, seed: int) -> None:
        """Called by the engine before ``on_start``: the context and the seeded generator."""
        self._ctx = ctx
        view = getattr(ctx, "committed_view", None)
        self._committed = view(self.strategy_id) if view is not None else None
        protective = getattr(ctx, "protective_view", None)
        self._protective = protective(self.strategy_id) if protective is not None else None
        digest = sum((i + 1) * b for i, b in enumerate(self.strategy_id.encode()))
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, digest]))

    @property
    def ctx(self) -> StrategyContext:
        if self._ctx is None:
            raise ConfigError(f"strategy {self.strategy_id} is not bound to an engine")
        return self._ctx

    # --- hooks (override what you need) ------------------------------------------------------
    def on_start(self) -> None: ...
    def on_quote(self, quote: QuoteTick) -> None: ...
    def on_trade(self, trade: TradeTick) -> None: ...
    def on_book(self, book: BookDeltas | BookSnapshot) -> None: ...
    def on_bar(self, bar: Bar) -> None: ...
    def on_order_event(self, event: Message) -> None: ...
    def on_timer(self, timer: TimerFired) -> None: ...
    def on_aux(self, data: AuxData) -> None:
        """Auxiliary data of one of its instruments: a funding rate, open interest, a mark or
        index price, a borrow rate (:mod:`runtime.messages`)."""

    def on_stop(self) -> None: ...

    def aux_needs(self) -> tuple[AuxNeed, ...]:
        """The auxiliary data this strategy needs fresh (read once, when the kernel is built):
        while any is missing or older than its TTL, risk denies its entries (``aux_stale``)
        and lets its exits through. Override to declare; by default it needs none."""
        return ()

    # --- acting -------------------------------------------------------------------------------
    @property
    def now_ns(self) -> int:
        return self.ctx.now_ns()

    def submit(
        self,
        instrument_id: str,
        side: OrderSide,
        quantity: int,
        *,
        order_type: OrderType = OrderType.MARKET,
        price: int | None = None,
        trigger_price: int | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        reduce_only: bool = False,
        protective: bool | None = None,
    ) -> str:
        """Send an order intent through risk; returns its client order id.

        ``protective``: the order only protects what is held (a stop-loss, a take-profit); it
        does not count toward :meth:`target_position`, which cancels or shrinks it as the
        position changes. By default a stop or stop-limit order that would reduce the current
        position is protective (an entry stop, placed flat or on the side that adds, is not).
        """
        if protective is None:
            protective = order_type in _STOPS and self.position(instrument_id) * side < 0
        return (self._ctx or self.ctx).submit(
            self.strategy_id,
            instrument_id=instrument_id,
            side=side,
            quantity=quantity,
            order_type=order_type,
            price=price,
            trigger_price=trigger_price,
            time_in_force=time_in_force,
            post_only=post_only,
            reduce_only=reduce_only,
            protective=protective,
        )

    def buy(self, instrument_id: str, quantity: int, price: int | None = None, **kw: Any) -> str:
        kind = OrderType.LIMIT if price is not None else OrderType.MARKET
        return self.submit(
            instrument_id, OrderSide.BUY, quantity, order_type=kind, price=price, **kw
        )

    def sell(self, instrument_id: str, quantity: int, price: int | None = None, **kw: Any) -> str:
        kind = OrderType.LIMIT if price is not None else OrderType.MARKET
        return self.submit(
            instrument_id, OrderSide.SELL, quantity, order_type=kind, price=price, **kw
        )

    # --- linked orders (emulated in the core: the same fills in a backtest and a session) ------
    def bracket(
        self,
        instrument_id: str,
        side: OrderSide,
        quantity: int,
        *,
        take_profit: int,
        stop_loss: int,
        stop_limit: int | None = None,
        entry_price: int | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        exit_time_in_force: TimeInForce = TimeInForce.GTC,
    ) -> str:
        """Enter (market, or limit at ``entry_price``); each fill of the entry releases, for the
        filled quantity, a take-profit limit at ``take_profit`` and a stop-loss triggered at
        ``stop_loss`` (a stop-limit at ``stop_limit`` when given) as an OCO pair. The exits are
        protective and ``exit_time_in_force`` (GTC: where the venue has day orders only, such
        as Shioaji, the core sends the take-profit again each session, ``runtime.daygtc``;
        DAY: the exits end with the trading day, and the list with them). Returns the list id
        (events: ``OrderListChanged``)."""
        exit_side = OrderSide(-side)
        entry = Leg(
            side=side,
            order_type=OrderType.MARKET if entry_price is None else OrderType.LIMIT,
            quantity=quantity,
            price=entry_price,
            time_in_force=time_in_force,
        )
        take = Leg(side=exit_side, order_type=OrderType.LIMIT, price=take_profit,
                   time_in_force=exit_time_in_force, protective=True)
        stop = Leg(
            side=exit_side,
            order_type=OrderType.STOP if stop_limit is None else OrderType.STOP_LIMIT,
            trigger_price=stop_loss,
            price=stop_limit,
            time_in_force=exit_time_in_force,
            protective=True,
        )
        legs = (entry, take, stop)
        return self._list(instrument_id, Contingency.BRACKET, legs)

    def oco(self, instrument_id: str, *legs: Leg) -> str:
        """Orders sent together; a fill of one cancels the others, or reduces them by the
        filled quantity. Returns the list id."""
        return self._list(instrument_id, Contingency.OCO, legs)

    def oto(self, instrument_id: str, parent: Leg, *children: Leg) -> str:
        """``parent`` now; each of its fills releases ``children`` for the filled quantity
        (their own ``quantity`` is left 0). Returns the list id."""
        return self._list(instrument_id, Contingency.OTO, (parent, *children))

    def _list(self, instrument_id: str, contingency: Contingency, legs: tuple[Leg, ...]) -> str:
        order_list = OrderList(instrument_id=instrument_id, contingency=contingency, legs=legs)
        return self.ctx.submit_list(self.strategy_id, order_list)

    def trailing_stop(
        self,
        instrument_id: str,
        side: OrderSide,
        quantity: int,
        *,
        offset: int = 0,
        ticks: int = 0,
        bps: int = 0,
        reference: TrailReference | str = TrailReference.LAST,
        protective: bool | None = None,
    ) -> str:
        """A stop ``offset`` (a price), ``ticks`` or ``bps`` away from ``reference`` (``last``,
        ``bid_ask`` or ``mid``) that follows the market, never back. Protective by default when
        it would reduce the position. Returns its client order id."""
        if protective is None:
            protective = self.position(instrument_id) * side < 0
        trail = Trail(offset=offset, ticks=ticks, bps=bps, reference=TrailReference(reference))
        return self.ctx.trailing_stop(
            self.strategy_id,
            instrument_id=instrument_id,
            side=side,
            quantity=quantity,
            trail=trail,
            protective=protective,
        )

    def time_stop(
        self, instrument_id: str, after_ns: int, *, cancel: str = "", close: bool = False
    ) -> None:
        """After ``after_ns``: cancel ``cancel`` (an order, list or parent order id) if still
        open, and with ``close`` close the position on ``instrument_id`` (its open orders
        canceled, then a reduce-only market order). Fires on the first market data of the
        instrument at or after that time."""
        if after_ns <= 0:
            raise ConfigError(f"time_stop: after_ns must be positive, not {after_ns}")
        self.ctx.time_stop(
            self.strategy_id,
            instrument_id=instrument_id,
            after_ns=after_ns,
            target=cancel,
            close=close,
        )

    # --- execution algorithms (worked in the core: the same children in a backtest and live) --
    def execute(
        self,
        instrument_id: str,
        side: OrderSide,
        quantity: int,
        algorithm: ExecAlgorithm,
        *,
        limit_price: int | None = None,
    ) -> str:
        """A parent order of ``quantity`` worked into child orders by ``algorithm``
        (:mod:`runtime.algos`: ``Twap``, ``Vwap``, ``Pov``, ``Iceberg``, ``Completion`` or your
        own); children are limits at ``limit_price`` when given. Returns the parent id (events:
        ``AlgoOrderChanged``; :meth:`cancel` it to cancel its children)."""
        order = AlgoOrder(
            instrument_id=instrument_id,
            side=side,
            quantity=quantity,
            algorithm=algorithm,
            limit_price=limit_price,
        )
        return self.ctx.submit_algo(self.strategy_id, order)

    def close_position(self, instrument_id: str) -> str | None:
        """Cancel this strategy's open orders on ``instrument_id`` (protective legs included)
        and close its position at market, reduce-only. ``None`` when already flat."""
        self.cancel_all(instrument_id)
        position = self.position(instrument_id)
        if position == 0:
            return None
        side = OrderSide.SELL if position > 0 else OrderSide.BUY
        return self.submit(instrument_id, side, abs(position), reduce_only=True)

    def cancel(self, client_order_id: str) -> None:
        """Cancel an open order, or a working parent order (and its open children)."""
        self.ctx.cancel(self.strategy_id, client_order_id)

    def cancel_all(self, instrument_id: str | None = None) -> None:
        for order in self.open_orders(instrument_id):
            self.cancel(order.client_order_id)

    def modify(
        self,
        client_order_id: str,
        *,
        quantity: int | None = None,
        price: int | None = None,
        trigger_price: int | None = None,
    ) -> None:
        self.ctx.modify(
            self.strategy_id,
            client_order_id,
            quantity=quantity,
            price=price,
            trigger_price=trigger_price,
        )

    def target_position(
        self, instrument_id: str, target: int, algorithm: ExecAlgorithm | None = None
    ) -> str | None:
        """Trade (market) toward a signed target position, counting orders still open.

        Protective legs (stops, take-profits, bracket exits) do not count: they are canceled
        when they would add to the target (a flat or flipped target cancels them all) and
        shrunk to the target's size when they would close more than it.

        With ``algorithm``, the difference is worked by it as a parent order (its id is
        returned); working parents count with what they have not released yet, and those on
        the other side are canceled first.
        """
        guard = self._protective
        if guard is None or guard.get(instrument_id):
            self._fit_protection(instrument_id, target)
        if algorithm is not None:
            return self._target_by(instrument_id, target, algorithm)
        committed = self._committed
        if committed is not None:
            delta = target - committed.get(instrument_id, 0)
        else:
            delta = target - self.ctx.committed(self.strategy_id, instrument_id)
        if delta == 0:
            return None
        side = OrderSide.BUY if delta > 0 else OrderSide.SELL
        return self.submit(instrument_id, side, abs(delta))

    def _target_by(self, instrument_id: str, target: int, algorithm: ExecAlgorithm) -> str | None:
        ctx = self.ctx
        delta = target - ctx.committed(self.strategy_id, instrument_id)
        if ctx.unreleased(self.strategy_id, instrument_id) == delta:
            return None  # the parents working already make up the difference (or none is)
        for parent_id in ctx.working_parents(self.strategy_id, instrument_id):
            ctx.cancel(self.strategy_id, parent_id)  # what they had not released is dropped
        if delta == 0:
            return None
        side = OrderSide.BUY if delta > 0 else OrderSide.SELL
        return self.execute(instrument_id, side, abs(delta), algorithm)

    def _fit_protection(self, instrument_id: str, target: int) -> None:
        ctx = self._ctx or self.ctx
        for order in ctx.protective_orders(self.strategy_id, instrument_id):
            if order.side * target >= 0:  # it would add to the target (or the target is flat)
                ctx.cancel(self.strategy_id, order.client_order_id)
            elif order.quantity - order.filled_qty > abs(target):
                ctx.modify(
                    self.strategy_id,
                    order.client_order_id,
                    quantity=order.filled_qty + abs(target),
                    price=None,
                    trigger_price=None,
                )

    # --- looking ------------------------------------------------------------------------------
    def position(self, instrument_id: str) -> int:
        return self.ctx.position(self.strategy_id, instrument_id)

    def open_orders(self, instrument_id: str | None = None) -> list[Order]:
        return self.ctx.open_orders(self.strategy_id, instrument_id)

    def features(self, instrument_id: str) -> dict[str, float]:
        return self.ctx.features(instrument_id)

    def instrument(self, instrument_id: str) -> Instrument:
        return self.ctx.instrument(instrument_id)

    def set_timer(self, name: str, interval_ns: int) -> None:
        self.ctx.set_timer(self.strategy_id, name, interval_ns)

    @property
    def account(self) -> Account:
        """Cash, equity, realized/unrealized PnL, fees and gross exposure (fixed point), as the
        engine keeps them now: in a backtest, the run's whole account."""
        return self.ctx.account()

    @property
    def limits(self) -> RiskLimits:
        """The account's risk limits (human units, ``Decimal``; ``None`` = no such rule), so
        sizes can stay under them. This strategy's own budget: :attr:`budget`."""
        return self.ctx.risk_limits()

    @property
    def budget(self) -> StrategyBudget | None:
        """This strategy's risk budget (``risk.strategies.<id>`` in the config), or ``None``."""
        return self.ctx.risk_limits().strategies.get(self.strategy_id)

    @property
    def pnl(self) -> int:
        """This strategy's PnL since the start (fixed point, fees in, open positions at the last
        price): its own book when it has a budget, else the account's when it trades alone.

        Raises :class:`~runtime.errors.ConfigError` when other strategies share the account and
        this one has no budget: give it one (``risk: {strategies: {<id>: {}}}``; an empty budget
        limits nothing and keeps the book)."""
        value = self.ctx.strategy_pnl(self.strategy_id)
        if value is None:
            raise ConfigError(
                f"strategy {self.strategy_id!r} shares the account with other strategies and has "
                f"no book of its own: give it a budget (risk: {{strategies: "
                f"{{{self.strategy_id}: {{}}}}}}) to read its PnL",
                field=f"risk.strategies.{self.strategy_id}",
            )
        return value

    # --- human units: the edge between a strategy's arithmetic and the core's fixed point ----
    def to_price(
        self,
        instrument_id: str,
        value: Decimal | str | float | int,
        rounding: Rounding = Rounding.HALF_EVEN,
    ) -> int:
        """A price in human units (``101.25``, ``entry - 2 * atr``) as a fixed-point price on
        the instrument's tick grid (``rounding``: DOWN/UP pick the tick below/above)."""
        return self.instrument(instrument_id).quantize_price(_scaled(value), rounding)

    def to_qty(
        self,
        instrument_id: str,
        value: Decimal | str | float | int,
        rounding: Rounding = Rounding.DOWN,
    ) -> int:
        """A quantity in human units (``100``, ``equity * 0.1 / price``) as a fixed-point
        quantity in whole lots (rounded down by default: never more than asked)."""
        return self.instrument(instrument_id).quantize_quantity(_scaled(value), rounding)

    @staticmethod
    def to_float(raw: int) -> float:
        """A fixed-point price, quantity or amount in human units (for arithmetic, logging)."""
        return raw / FIXED_SCALE
