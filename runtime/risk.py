"""Pre-trade risk: rules that only ever block or reduce, and the trading state.

A denial is an :class:`~runtime.messages.OrderDenied` event with a ``reason_code``; the engine
never raises for a refused order. Trading states: ``ACTIVE``; ``REDUCING`` (close-only: orders
that would grow or flip a position are reduced to the closing quantity or denied); ``HALTED``
(nothing new is sent; cancels still pass). The kill switch is ``halt()``.

Every order is valued at the latest market price of its instrument (:class:`LastPrices`: last
trade, mid or bar close, whatever came last), never below it; with a notional or exposure rule
on and no price yet, the order is denied with ``no_market_data``. An order that only reduces the
position (counting the open orders on its side) skips the position, notional and exposure rules
and the loss cooldown: an exit is never trapped by the limits it relieves.

Exchange calendars (an instrument's ``calendar``, ``runtime/calendar.py``): an order for an
instrument outside its trading windows is denied with ``session`` (the reason names the calendar
and the next open; pre/post-market windows count only when the calendar was resolved with them),
and the trading day behind the daily counters (daily loss, trades per day, strategies' daily
budgets) rolls at the calendar's session boundary, not at UTC midnight. Instruments without a
calendar are not checked here (the venue refuses by hand-written sessions) and their day is the
UTC day. All calendared instruments of a session with daily limits must share one calendar.

Reason codes: ``halted``, ``session``, ``reducing``, ``reduce_only``, ``instrument.<rule>``
(tick/lot/min rules),
``max_order_notional``, ``max_position``, ``max_position_notional``, ``gross_exposure``,
``daily_loss``, ``trades_per_day``, ``order_rate``, ``cooldown``, ``stale_data``,
``no_market_data``, ``price_band``, ``aux_missing`` and ``aux_stale`` (a strategy's declared
auxiliary data is absent or older than its TTL: its entries wait, its exits pass).

Per-strategy budgets (``RiskLimits.strategies``, YAML ``risk: {strategies: {<id>: {...}}}``):
position, position notional and gross exposure limits, and a daily and a total loss limit, for
one strategy's own positions and PnL, checked after the account's rules. A strategy's position
counts its open orders on the order's side; its PnL is its fills' cash flows plus its positions
at the market. A strategy whose loss reached a limit is close-only (orders that grow one of its
positions are denied) for the rest of the day (daily) or of the run (total). Reason codes:
``strategy.max_position``, ``strategy.max_position_notional``, ``strategy.max_gross_exposure``,
``strategy.max_daily_loss``, ``strategy.max_loss``; each reason names the strategy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, Protocol

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from runtime.calendar import SessionCalendar
from runtime.errors import ConfigError
from runtime.instruments import InstrumentRegistry
from runtime.ledger import denial_of
from runtime.messages import (
    OrderDenied,
    OrderFilled,
    OrderSide,
    SubmitOrder,
    TradingState,
    TradingStateChanged,
)
from runtime.orders import Order, OrderStatus
from runtime.portfolio import Portfolio
from runtime.prices import LastPrices
from runtime.values import fixed, from_fixed

__all__ = ["DAY_NS", "RiskEngine", "RiskLimits", "StrategyBudget"]

DAY_NS = 86_400 * 10**9
_S = 10**9


class StrategyBudget(BaseModel):
    """One strategy's risk budget, in human units; ``None`` turns a rule off. Its positions,
    exposure and PnL are the strategy's own (its fills), not the account's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_position: Decimal | None = Field(None, gt=0, description="max |position| per instrument")
    max_position_notional: Decimal | None = Field(None, gt=0)
    max_gross_exposure: Decimal | None = Field(None, gt=0)
    max_daily_loss: Decimal | None = Field(None, gt=0, description="close-only for the day")
    max_loss: Decimal | None = Field(None, gt=0, description="since the start: close-only")


class RiskLimits(BaseModel):
    """Risk limits, in human units (money in the account currency). ``None`` turns a rule off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_order_notional: Decimal | None = Field(None, gt=0)
    max_position: Decimal | None = Field(None, gt=0, description="max |position| per instrument")
    max_position_notional: Decimal | None = Field(None, gt=0)
    max_gross_exposure: Decimal | None = Field(None, gt=0)
    max_daily_loss: Decimal | None = Field(None, gt=0)
    daily_loss_action: TradingState = TradingState.REDUCING
    max_trades_per_day: int | None = Field(
        None, gt=0, description="orders approved per trading day"
    )
    max_orders_per_window: int | None = Field(None, gt=0)
    order_window_s: float = Field(1.0, gt=0)
    cooldown_after_loss_s: float | None = Field(None, gt=0)
    stale_data_s: float | None = Field(None, gt=0)
    price_band_pct: Decimal | None = Field(None, gt=0, description="limit vs last price, percent")
    #: per-strategy budgets by strategy id, checked after the account's limits above
    strategies: dict[str, StrategyBudget] = Field(default_factory=dict)


class _Raw(msgspec.Struct, frozen=True):
    max_order_notional: int | None
    max_position: int | None
    max_position_notional: int | None
    max_gross_exposure: int | None
    max_daily_loss: int | None
    stale_ns: int | None
    cooldown_ns: int | None
    window_ns: int
    band_pct: int | None


def _raw(limits: RiskLimits) -> _Raw:
    def f(value: Decimal | None) -> int | None:
        return None if value is None else fixed(value)

    def ns(value: float | None) -> int | None:
        return None if value is None else int(value * _S)

    return _Raw(
        f(limits.max_order_notional),
        f(limits.max_position),
        f(limits.max_position_notional),
        f(limits.max_gross_exposure),
        f(limits.max_daily_loss),
        ns(limits.stale_data_s),
        ns(limits.cooldown_after_loss_s),
        int(limits.order_window_s * _S),
        f(limits.price_band_pct),
    )


class _Ledger:
    """One budgeted strategy's own book: positions and the cash its fills moved (fees in), so
    its PnL is ``cash + positions at the market``; and its PnL when the day started."""

    __slots__ = ("budget", "cash", "day_start_pnl", "positions", "raw")

    def __init__(self, budget: StrategyBudget) -> None:
        self.budget = budget

        def f(value: Decimal | None) -> int | None:
            return None if value is None else fixed(value)

        self.raw = (
            f(budget.max_position),
            f(budget.max_position_notional),
            f(budget.max_gross_exposure),
            f(budget.max_daily_loss),
            f(budget.max_loss),
        )
        self.positions: dict[str, int] = {}
        self.cash = 0
        self.day_start_pnl = 0

    def state(self) -> dict[str, Any]:
        return {
            "positions": dict(sorted((k, v) for k, v in self.positions.items() if v)),
            "cash": self.cash,
            "day_start_pnl": self.day_start_pnl,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.positions = {str(k): int(v) for k, v in state["positions"].items()}
        self.cash = int(state["cash"])
        self.day_start_pnl = int(state["day_start_pnl"])


class _HasOpenOrders(Protocol):
    open: dict[str, Order]


#: instrument -> (open buy leaves, open sell leaves), protective legs (stops, take-profits, the
#: exits of a bracket) left out: they only ever close what is held, and are canceled or resized
#: when the position they protect changes; orders being canceled are left out too
PendingFn = Callable[[str], tuple[int, int]]


class RiskEngine:
    """Pre-trade checks over the portfolio, open orders and market data freshness."""

    def __init__(
        self,
        limits: RiskLimits,
        registry: InstrumentRegistry,
        portfolio: Portfolio,
        pending: PendingFn,
        prices: LastPrices,
    ) -> None:
        self.limits = limits
        raw = self._raw = _raw(limits)
        # which groups of rules can refuse anything (the others are skipped in check)
        self._watches_data = raw.stale_ns is not None or raw.band_pct is not None
        self._limits_rate = (
            limits.max_trades_per_day is not None or limits.max_orders_per_window is not None
        )
        self._limits_exposure = any(
            v is not None
            for v in (
                raw.max_order_notional,
                raw.max_position,
                raw.max_position_notional,
                raw.max_gross_exposure,
            )
        )
        self.registry = registry
        self._day_calendar = _day_calendar(limits, registry)
        self.portfolio = portfolio
        self.pending = pending
        self.prices = prices
        self.state = TradingState.ACTIVE
        self.state_reason = ""
        self.day = -1
        self.day_start_equity = portfolio.equity()
        self.trades_today = 0
        self.recent_orders: deque[int] = deque()
        self.cooldown_until_ns = 0
        self.denials = 0
        # per-strategy budgets: each budgeted strategy's own book, kept from its fills
        self.ledgers = {sid: _Ledger(b) for sid, b in sorted(limits.strategies.items())}
        self._fill_prices: dict[str, int] = {}  # last fill price per instrument (marks' fallback)
        self._orders: _HasOpenOrders | None = None
        self._aux_gate: Callable[[str, int], tuple[str, str] | None] | None = None

    def bind_aux(self, gate: Callable[[str, int], tuple[str, str] | None]) -> None:
        """``gate(strategy_id, now_ns)``: why a strategy's auxiliary data is too old to open
        risk on (:meth:`runtime.auxdata.AuxState.stale`); checked for orders that open or grow
        a position, never for exits."""
        self._aux_gate = gate

    def bind_orders(self, owner: _HasOpenOrders) -> None:
        """Who keeps the open orders (the kernel; read as ``owner.open`` at each check, so a
        restore that replaces the dict is seen, and the engine pickles with its kernel):
        per-strategy budgets count a strategy's open orders toward its position."""
        self._orders = owner

    def _open_orders(self) -> Iterable[Order]:
        return () if self._orders is None else self._orders.open.values()

    def on_fill(self, fill: OrderFilled) -> None:
        """A fill into its strategy's budget book (a no-op for strategies without a budget)."""
        ledger = self.ledgers.get(fill.strategy_id)
        if ledger is None:
            return
        self._fill_prices[fill.instrument_id] = fill.last_price
        signed = fill.position_change  # a fee in kind is not held; its value is in fill.fee
        notional = self.registry.get(fill.instrument_id).notional(fill.last_price, signed)
        ledger.cash -= notional + fill.fee
        ledger.positions[fill.instrument_id] = (
            ledger.positions.get(fill.instrument_id, 0) + signed
        )

    def strategy_pnl(self, strategy_id: str) -> int:
        """A budgeted strategy's PnL since the start (fixed point): its fills' cash flows, fees
        in, plus its positions at the latest market price."""
        ledger = self.ledgers[strategy_id]
        value = 0
        for instrument_id, quantity in ledger.positions.items():
            if quantity:
                mark = self.prices.price.get(instrument_id) or self._fill_prices[instrument_id]
                value += self.registry.get(instrument_id).notional(mark, quantity)
        return ledger.cash + value

    # --- state ------------------------------------------------------------------------------
    def set_state(
        self, state: TradingState, reason: str, now_ns: int
    ) -> TradingStateChanged | None:
        if state is self.state:
            return None
        self.state, self.state_reason = state, reason
        return TradingStateChanged(
            seq=0, ts_event=now_ns, ts_init=now_ns, state=state, reason=reason
        )

    def halt(self, reason: str, now_ns: int) -> TradingStateChanged | None:
        """The kill switch."""
        return self.set_state(TradingState.HALTED, reason, now_ns)

    def trading_day(self, now_ns: int) -> int:
        """The day the daily counters belong to (days since the epoch): the session label of
        the instruments' calendar, else the UTC day."""
        if self._day_calendar is not None:
            day = self._day_calendar.trading_day(now_ns)
            if day is not None:
                return day
        return now_ns // DAY_NS

    def on_clock(self, now_ns: int) -> TradingStateChanged | None:
        """Roll the trading day and check the daily loss; call on fills and periodically."""
        day = self.trading_day(now_ns)
        if day != self.day:
            self.day, self.trades_today = day, 0
            self.day_start_equity = self.portfolio.equity()
            for strategy_id, ledger in self.ledgers.items():
                ledger.day_start_pnl = self.strategy_pnl(strategy_id)
        limit = self._raw.max_daily_loss
        if limit is None or self.state is TradingState.HALTED:
            return None
        loss = self.day_start_equity - self.portfolio.equity()
        if loss >= limit and self.state is not self.limits.daily_loss_action:
            return self.set_state(
                self.limits.daily_loss_action,
                f"daily loss {from_fixed(loss)} reached limit {from_fixed(limit)}",
                now_ns,
            )
        return None

    def on_realized(self, realized_delta: int, now_ns: int) -> None:
        if realized_delta < 0 and self._raw.cooldown_ns is not None:
            self.cooldown_until_ns = now_ns + self._raw.cooldown_ns

    # --- the check --------------------------------------------------------------------------
    def check(self, cmd: SubmitOrder, now_ns: int) -> tuple[SubmitOrder | None, OrderDenied | None]:
        """Approve (possibly reduced) or deny one order."""
        if self.trading_day(now_ns) != self.day:
            self.on_clock(now_ns)  # roll the trading day (counters, day-start equity)
        if self.state is TradingState.HALTED:
            return self._deny(cmd, now_ns, "halted", f"trading is halted: {self.state_reason}")
        calendar = self.registry.get(cmd.instrument_id).calendar
        if calendar is not None:
            closed = calendar.why_closed(now_ns)
            if closed is not None:
                return self._deny(cmd, now_ns, "session", f"{cmd.instrument_id}: {closed}")
        position = self.portfolio.quantity(cmd.instrument_id)
        buys, sells = self.pending(cmd.instrument_id)
        # an order that by itself only reduces the position is never denied by the position,
        # notional or exposure rules (an exit must not be trapped by the limits it relieves)
        increases = not _only_reduces(cmd, position, buys, sells)
        if cmd.parent_id and cmd.protective:
            increases = False  # a native bracket's exit: the venue holds it until the entry
            # fills, and its OCA group keeps it within what the entry filled
        if self.state is TradingState.REDUCING or cmd.reduce_only:
            cmd, denial = self._reduce_only(cmd, now_ns, position, buys, sells)
            if denial is not None:
                return None, denial
            increases = False
        instrument = self.registry.get(cmd.instrument_id)
        violation = instrument.check_order(quantity=cmd.quantity, price=cmd.price)
        if violation is not None:
            return self._deny(cmd, now_ns, f"instrument.{violation.rule}", violation.message)
        # each group runs only when a rule in it is on (or a cooldown runs): off, it finds nothing
        reason = self._freshness(cmd, now_ns) if self._watches_data else None
        if reason is None and increases and self._aux_gate is not None:
            reason = self._aux_gate(cmd.strategy_id, now_ns)
        if reason is None and self._limits_rate:
            reason = self._rates(now_ns)
        if (
            reason is None
            and increases
            and (self._limits_exposure or now_ns < self.cooldown_until_ns)
        ):
            reason = self._exposure(cmd, position, buys, sells, now_ns)
        if reason is None and cmd.strategy_id in self.ledgers and not (
            self.state is TradingState.REDUCING or cmd.reduce_only
        ):
            reason = self._budget(cmd)
        if reason is not None:
            return self._deny(cmd, now_ns, *reason)
        self.trades_today += 1
        if self.limits.max_orders_per_window is not None:  # kept (and pruned) for it only
            self.recent_orders.append(now_ns)
        return cmd, None

    def _reduce_only(
        self, cmd: SubmitOrder, now_ns: int, position: int, buys: int, sells: int
    ) -> tuple[SubmitOrder, OrderDenied | None]:
        closable = (-position - buys) if cmd.side is OrderSide.BUY else (position - sells)
        instrument = self.registry.get(cmd.instrument_id)
        closable = instrument.quantize_quantity(max(closable, 0))
        code = "reducing" if self.state is TradingState.REDUCING else "reduce_only"
        if closable <= 0:
            _, denial = self._deny(
                cmd,
                now_ns,
                code,
                f"close-only: order would not reduce position {from_fixed(position)}",
            )
            return cmd, denial
        if cmd.quantity > closable:
            cmd = msgspec.structs.replace(cmd, quantity=closable)
        return cmd, None

    def _freshness(self, cmd: SubmitOrder, now_ns: int) -> tuple[str, str] | None:
        last = self.prices.ts.get(cmd.instrument_id)
        stale = self._raw.stale_ns
        if stale is not None:
            if last is None:
                return "no_market_data", f"no market data yet for {cmd.instrument_id}"
            if now_ns - last > stale:
                return "stale_data", (
                    f"last data for {cmd.instrument_id} is "
                    f"{(now_ns - last) / _S:.3f}s old (limit {stale / _S:g}s)"
                )
        band = self._raw.band_pct
        if band is not None and cmd.price is not None:
            ref = self.prices.price.get(cmd.instrument_id)
            if ref and abs(cmd.price - ref) * 100 * 10**9 > band * ref:
                return "price_band", (
                    f"price {from_fixed(cmd.price)} is more than "
                    f"{from_fixed(band)}% from last {from_fixed(ref)}"
                )
        return None

    def _rates(self, now_ns: int) -> tuple[str, str] | None:
        limits = self.limits
        if limits.max_trades_per_day is not None and self.trades_today >= limits.max_trades_per_day:
            return (
                "trades_per_day",
                f"{self.trades_today} orders today (limit {limits.max_trades_per_day})",
            )
        if limits.max_orders_per_window is not None:
            window = self._raw.window_ns
            while self.recent_orders and self.recent_orders[0] <= now_ns - window:
                self.recent_orders.popleft()
            if len(self.recent_orders) >= limits.max_orders_per_window:
                return "order_rate", (
                    f"{len(self.recent_orders)} orders in the last "
                    f"{limits.order_window_s:g}s (limit {limits.max_orders_per_window})"
                )
        return None

    def _exposure(
        self, cmd: SubmitOrder, position: int, buys: int, sells: int, now_ns: int
    ) -> tuple[str, str] | None:
        raw = self._raw
        if now_ns < self.cooldown_until_ns:
            return (
                "cooldown",
                f"cooling down after a loss for {(self.cooldown_until_ns - now_ns) / _S:.3f}s",
            )
        market = self.prices.price.get(cmd.instrument_id)
        if market is None:
            return "no_market_data", (
                f"no market price yet for {cmd.instrument_id}: the order cannot be valued"
            )
        # never below the market: a marketable limit fills there, and the position is marked
        # there once filled; a stop becomes a market order at its trigger
        price = max(cmd.price or cmd.trigger_price or 0, market)
        instrument = self.registry.get(cmd.instrument_id)
        notional = instrument.notional(price, cmd.quantity)
        if raw.max_order_notional is not None and notional > raw.max_order_notional:
            return "max_order_notional", (
                f"order notional {from_fixed(notional)} > limit "
                f"{from_fixed(raw.max_order_notional)}"
            )
        worst = (
            position + buys + cmd.quantity
            if cmd.side is OrderSide.BUY
            else position - sells - cmd.quantity
        )
        if raw.max_position is not None and abs(worst) > raw.max_position:
            return "max_position", (
                f"position would reach {from_fixed(worst)} (limit {from_fixed(raw.max_position)})"
            )
        worst_notional = abs(instrument.notional(price, worst))
        if raw.max_position_notional is not None and worst_notional > raw.max_position_notional:
            return "max_position_notional", (
                f"position notional would reach "
                f"{from_fixed(worst_notional)} (limit "
                f"{from_fixed(raw.max_position_notional)})"
            )
        if raw.max_gross_exposure is not None:
            gross = self.portfolio.gross_exposure() + notional
            if gross > raw.max_gross_exposure:
                return "gross_exposure", (
                    f"gross exposure would reach {from_fixed(gross)} "
                    f"(limit {from_fixed(raw.max_gross_exposure)})"
                )
        return None

    def _budget(self, cmd: SubmitOrder) -> tuple[str, str] | None:
        """The order against its strategy's own budget; only orders that grow one of the
        strategy's positions (counting its open orders on their side) can be refused."""
        sid, inst = cmd.strategy_id, cmd.instrument_id
        ledger = self.ledgers[sid]
        max_pos, max_pos_notional, max_gross, max_daily, max_loss = ledger.raw
        position = ledger.positions.get(inst, 0)
        buys = sells = 0
        for order in self._open_orders():
            if (
                order.strategy_id == sid
                and order.instrument_id == inst
                and not order.protective
                and order.status is not OrderStatus.PENDING_CANCEL
                and order.client_order_id != cmd.client_order_id
            ):
                if order.side is OrderSide.BUY:
                    buys += order.quantity - order.filled_qty
                else:
                    sells += order.quantity - order.filled_qty
        if _only_reduces(cmd, position, buys, sells):
            return None
        who = f"strategy {sid}"
        if max_loss is not None or max_daily is not None:
            pnl = self.strategy_pnl(sid)
            if max_loss is not None and -pnl >= max_loss:
                return "strategy.max_loss", (
                    f"{who}: loss {from_fixed(-pnl)} reached its budget "
                    f"{from_fixed(max_loss)}: close-only"
                )
            daily = ledger.day_start_pnl - pnl
            if max_daily is not None and daily >= max_daily:
                return "strategy.max_daily_loss", (
                    f"{who}: loss today {from_fixed(daily)} reached its budget "
                    f"{from_fixed(max_daily)}: close-only until tomorrow"
                )
        worst = position + buys + cmd.quantity if cmd.side is OrderSide.BUY else (
            position - sells - cmd.quantity
        )
        if max_pos is not None and abs(worst) > max_pos:
            return "strategy.max_position", (
                f"{who}: position in {inst} would reach {from_fixed(worst)} "
                f"(budget {from_fixed(max_pos)})"
            )
        if max_pos_notional is None and max_gross is None:
            return None
        market = self.prices.price.get(inst)
        if market is None:
            return "no_market_data", (
                f"{who}: no market price yet for {inst}: the order cannot be valued"
            )
        price = max(cmd.price or cmd.trigger_price or 0, market)
        instrument = self.registry.get(inst)
        worst_notional = abs(instrument.notional(price, worst))
        if max_pos_notional is not None and worst_notional > max_pos_notional:
            return "strategy.max_position_notional", (
                f"{who}: position notional in {inst} would reach {from_fixed(worst_notional)} "
                f"(budget {from_fixed(max_pos_notional)})"
            )
        if max_gross is not None:
            gross = worst_notional
            for other, quantity in ledger.positions.items():
                if other != inst and quantity:
                    mark = self.prices.price.get(other) or self._fill_prices[other]
                    gross += abs(self.registry.get(other).notional(mark, quantity))
            if gross > max_gross:
                return "strategy.max_gross_exposure", (
                    f"{who}: gross exposure would reach {from_fixed(gross)} "
                    f"(budget {from_fixed(max_gross)})"
                )
        return None

    def _deny(
        self, cmd: SubmitOrder, now_ns: int, code: str, reason: str
    ) -> tuple[None, OrderDenied]:
        self.denials += 1
        return None, denial_of(cmd, now_ns, code, reason)

    # --- state for hashing ------------------------------------------------------------------
    def state_dict(self) -> dict[str, object]:
        state = self._state_dict()
        if self.ledgers:  # only with budgets: runs without any keep their state (and hash)
            state["budgets"] = {sid: ledger.state() for sid, ledger in self.ledgers.items()}
            state["fill_prices"] = dict(sorted(self._fill_prices.items()))
        return state

    def _state_dict(self) -> dict[str, object]:
        return {
            "state": str(self.state),
            "reason": self.state_reason,
            "day": self.day,
            "day_start_equity": self.day_start_equity,
            "trades_today": self.trades_today,
            "recent_orders": list(self.recent_orders),
            "cooldown_until": self.cooldown_until_ns,
            "denials": self.denials,
            "prices": self.prices.state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.state = TradingState(state["state"])
        self.state_reason = str(state["reason"])
        self.day = int(state["day"])
        self.day_start_equity = int(state["day_start_equity"])
        self.trades_today = int(state["trades_today"])
        self.recent_orders = deque(int(x) for x in state["recent_orders"])
        self.cooldown_until_ns = int(state["cooldown_until"])
        self.denials = int(state["denials"])
        self.prices.load_state(state.get("prices", {}))
        budgets = state.get("budgets", {})
        for strategy_id, ledger in self.ledgers.items():
            if strategy_id in budgets:
                ledger.load(budgets[strategy_id])
        self._fill_prices = {str(k): int(v) for k, v in state.get("fill_prices", {}).items()}


def _day_calendar(limits: RiskLimits, registry: InstrumentRegistry) -> SessionCalendar | None:
    """The one calendar the trading day follows; several distinct ones with daily limits on
    are refused (whose day would the counters keep?)."""
    calendars = {i.calendar.name: i.calendar for i in registry if i.calendar is not None}
    distinct = {c.labels + c.closes: name for name, c in sorted(calendars.items())}
    daily = (
        limits.max_daily_loss is not None
        or limits.max_trades_per_day is not None
        or any(b.max_daily_loss is not None for b in limits.strategies.values())
    )
    if len(distinct) > 1 and daily:
        raise ConfigError(
            f"daily risk limits need one trading day, but the instruments trade by calendars "
            f"{', '.join(sorted(calendars))} with different sessions",
            field="risk",
        )
    return next(iter(calendars.values()), None)


def _only_reduces(cmd: SubmitOrder, position: int, buys: int, sells: int) -> bool:
    """Filled in full, with the open orders on its side, the order moves the position toward
    zero without crossing it (open orders on its side count, so a run of small exits cannot
    flip a position past the limits; protective legs are not in ``pending``)."""
    if cmd.side is OrderSide.BUY:
        return position < 0 and buys + cmd.quantity <= -position
    return position > 0 and sells + cmd.quantity <= position
