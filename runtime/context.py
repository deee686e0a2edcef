"""The strategy context a kernel lends its strategies (:class:`runtime.strategy.StrategyContext`).

What a strategy asks for becomes an intent in the kernel's queue (``intents``), which the
kernel takes through risk after the strategy's hook returns; reads come from the kernel's parts
(the order ledger, the portfolio, the books' features). Nothing here changes an order or a position.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from runtime.execution import AlgoOrder, ExecutionAlgorithms
from runtime.instruments import Instrument, InstrumentRegistry
from runtime.ledger import cancel_of
from runtime.linked import Leg, LinkedOrders, OrderList
from runtime.messages import (
    Message,
    ModifyOrder,
    OrderSide,
    OrderType,
    SubmitOrder,
    TimeInForce,
)
from runtime.orders import ClientOrderIdGenerator, Order
from runtime.portfolio import Account, Portfolio
from runtime.timers import Clock, Timers
from runtime.timestops import TimeStop, TimeStops
from runtime.trailing import Trail

if TYPE_CHECKING:
    from runtime.ledger import OrderLedger
    from runtime.risk import RiskEngine, RiskLimits
    from runtime.roster import Roster

__all__ = ["KernelContext"]


class KernelContext:
    """A kernel's strategy context: intents into ``intents``, reads from its parts."""

    def __init__(
        self,
        *,
        clock: Clock,
        ledger: OrderLedger,
        timers: Timers,
        ids: ClientOrderIdGenerator,
        linked: LinkedOrders,
        algos: ExecutionAlgorithms,
        time_stops: TimeStops,
        registry: InstrumentRegistry,
        portfolio: Portfolio,
        features: Callable[[str], dict[str, float]],
        intents: list[Message],
        take: Callable[[list[Message]], None],
        risk: RiskEngine,
        roster: Roster,
    ) -> None:
        self.clock, self.ledger, self.timers, self.ids = clock, ledger, timers, ids
        self.risk, self.roster = risk, roster
        self.linked, self.registry, self.portfolio = linked, registry, portfolio
        self.algos, self.time_stops = algos, time_stops
        self._features = features  # the kernel's books' (``runtime.views``)
        self.intents = intents  # the kernel's queue: it drains it, in place
        self._take = take  # what linked orders produced, into the kernel's order flow

    def now_ns(self) -> int:
        return self.clock.ns

    # --- acting --------------------------------------------------------------------------------
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
    ) -> str:
        client_order_id = self.ids.next(strategy_id)
        now = self.clock.ns
        self.intents.append(
            SubmitOrder(
                seq=0,
                ts_event=now,
                ts_init=now,
                client_order_id=client_order_id,
                strategy_id=strategy_id,
                instrument_id=instrument_id,
                side=side,
                order_type=order_type,
                quantity=quantity,
                price=price,
                trigger_price=trigger_price,
                time_in_force=time_in_force,
                post_only=post_only,
                reduce_only=reduce_only,
                protective=protective,
            )
        )
        return client_order_id

    def submit_list(self, strategy_id: str, order_list: OrderList) -> str:
        """A linked order list (OTO, OCO, bracket), emulated in the kernel; its list id."""
        list_id, produced = self.linked.submit(strategy_id, order_list, self.clock.ns)
        self._take(produced)
        return list_id

    def trailing_stop(
        self,
        strategy_id: str,
        *,
        instrument_id: str,
        side: OrderSide,
        quantity: int,
        trail: Trail,
        protective: bool,
    ) -> str:
        """A stop whose trigger the core moves after the market; its client order id."""
        leg = Leg(side=side, order_type=OrderType.STOP, quantity=quantity, protective=protective)
        command = self.linked.trailing_stop(strategy_id, instrument_id, leg, trail, self.clock.ns)
        self.intents.append(command)
        return command.client_order_id

    def submit_algo(self, strategy_id: str, order: AlgoOrder) -> str:
        """A parent order worked by an execution algorithm in the kernel; its parent id."""
        parent_id, produced = self.algos.submit(strategy_id, order, self.clock.ns)
        self._take(produced)
        return parent_id

    def time_stop(
        self, strategy_id: str, *, instrument_id: str, after_ns: int, target: str, close: bool
    ) -> None:
        """Cancel ``target`` (an order, list or parent id) ``after_ns`` from now; ``close``:
        close the position on ``instrument_id`` too."""
        due = self.clock.ns + after_ns
        stop = TimeStop(
            strategy_id=strategy_id,
            instrument_id=instrument_id,
            target=target,
            due_ns=due,
            close=close,
        )
        self.time_stops.add(stop)

    def cancel(self, strategy_id: str, client_order_id: str) -> None:
        """Cancel an open order, or a working parent order and its children."""
        if self.algos.is_parent(client_order_id):
            if client_order_id in self.algos.working(strategy_id, None):
                self._take(self.algos.cancel(client_order_id, self.clock.ns))
            return
        order = self.ledger.open.get(client_order_id)
        if order is None or order.strategy_id != strategy_id:
            return  # already closed (or not this strategy's): nothing to cancel
        self.intents.append(cancel_of(order, self.clock.ns))

    def modify(
        self,
        strategy_id: str,
        client_order_id: str,
        *,
        quantity: int | None,
        price: int | None,
        trigger_price: int | None,
    ) -> None:
        order = self.ledger.open.get(client_order_id)
        if order is None or order.strategy_id != strategy_id:
            return
        now = self.clock.ns
        self.intents.append(
            ModifyOrder(
                seq=0,
                ts_event=now,
                ts_init=now,
                client_order_id=client_order_id,
                strategy_id=strategy_id,
                instrument_id=order.instrument_id,
                quantity=quantity,
                price=price,
                trigger_price=trigger_price,
            )
        )

    def set_timer(self, strategy_id: str, name: str, interval_ns: int) -> None:
        self.timers.set(
            strategy_id, name, due_ns=self.clock.ns + interval_ns, interval_ns=interval_ns
        )

    # --- reading -------------------------------------------------------------------------------
    def position(self, strategy_id: str, instrument_id: str) -> int:
        return self.ledger.positions.get((strategy_id, instrument_id), 0)

    def pending(self, strategy_id: str, instrument_id: str) -> int:
        return self.ledger.pending.get((strategy_id, instrument_id), 0)

    def committed(self, strategy_id: str, instrument_id: str) -> int:
        return self.ledger.committed_view(strategy_id).get(instrument_id, 0)

    def unreleased(self, strategy_id: str, instrument_id: str) -> int:
        """Signed quantity of working parent orders not yet released to children."""
        return self.algos.unreleased(strategy_id, instrument_id)

    def working_parents(self, strategy_id: str, instrument_id: str | None) -> list[str]:
        return self.algos.working(strategy_id, instrument_id)

    def committed_view(self, strategy_id: str) -> Mapping[str, int]:
        return self.ledger.committed_view(strategy_id)

    def protective_view(self, strategy_id: str) -> Mapping[str, int]:
        return self.ledger.protective_view(strategy_id)

    def open_orders(self, strategy_id: str, instrument_id: str | None) -> list[Order]:
        return self.ledger.open_orders(strategy_id, instrument_id)

    def protective_orders(self, strategy_id: str, instrument_id: str) -> list[Order]:
        return self.ledger.protective_orders(strategy_id, instrument_id)

    def features(self, instrument_id: str) -> dict[str, float]:
        return self._features(instrument_id)

    def instrument(self, instrument_id: str) -> Instrument:
        return self.registry.get(instrument_id)

    def account(self) -> Account:
        """The account the kernel keeps (read-only snapshot): cash, equity, PnL, fees."""
        return self.portfolio.account()

    def risk_limits(self) -> RiskLimits:
        """The risk limits the kernel checks orders against (the account's, and per-strategy
        budgets under ``strategies``)."""
        return self.risk.limits

    def strategy_pnl(self, strategy_id: str) -> int | None:
        """``strategy_id``'s PnL since the start (fixed point, fees in): its own book when it has
        a risk budget; the account's when it is the kernel's only strategy; else ``None``."""
        if strategy_id in self.risk.ledgers:
            return self.risk.strategy_pnl(strategy_id)
        if len(self.roster.strategies) == 1:
            return self.portfolio.account().total_pnl
        return None
