"""The kernel: one deterministic core for backtests and for the actors.

It processes one message at a time, in the order given, and returns what it produced:
``handle(message) -> list[Message]``. Outputs are approved commands (``SubmitOrder``,
``CancelOrder``, ``ModifyOrder``) for the venue and events (``OrderDenied``, ``PositionChanged``,
``TradingStateChanged``) for the record. Order reports from the venue come back in through
``handle`` too. Nothing here reads a clock, a network or a global RNG; time is the ``ts_event``
of the message being handled.

``state()`` is the canonical state (orders, positions, cash, risk, id counters) and
``state_hash()`` its hash: same inputs and seed ⇒ same hash.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, get_args

from runtime.errors import InvariantError
from runtime.instruments import Instrument, InstrumentRegistry
from runtime.linked import Leg, LinkedOrders, OrderList
from runtime.messages import (
    Bar,
    BookDeltas,
    BookSnapshot,
    CancelOrder,
    Message,
    ModifyOrder,
    OrderDenied,
    OrderEvent,
    OrderFilled,
    OrderListChanged,
    OrderSide,
    OrderType,
    PositionChanged,
    QuoteTick,
    SubmitOrder,
    TimeInForce,
    TimerFired,
    TradeTick,
    TradingState,
    TradingStateChanged,
)
from runtime.orders import TERMINAL, ClientOrderIdGenerator, Order, OrderStatus, Trigger
from runtime.portfolio import Account, Portfolio
from runtime.prices import LastPrices
from runtime.risk import RiskEngine, RiskLimits
from runtime.strategy import Strategy
from runtime.trailing import Trail

if TYPE_CHECKING:
    from runtime.features import BookLike

__all__ = ["Kernel"]


def _refuse(value: object) -> object:
    raise InvariantError(f"kernel state holds a {type(value).__name__}: {value!r}")


_EMPTY: list[Message] = []
_ORDER_EVENTS = frozenset(get_args(OrderEvent))
_LOSS_CHECK_NS = 10**9  # daily-loss check at most once per simulated second between fills


class Kernel:
    """Orders, portfolio, risk, books/features and strategies, wired together."""

    def __init__(
        self,
        *,
        registry: InstrumentRegistry,
        strategies: Sequence[Strategy[Any]],
        risk_limits: RiskLimits | None = None,
        initial_cash: int,
        currency: str = "USD",
        namespace: str,
        seed: int = 0,
    ) -> None:
        self.registry = registry
        self.strategies = list(strategies)
        self.namespace = namespace
        self.seed = seed
        self.now = 0
        self.ids = ClientOrderIdGenerator(namespace)
        self.orders: dict[str, Order] = {}
        self.open: dict[str, Order] = {}
        self.portfolio = Portfolio(registry, initial_cash=initial_cash, currency=currency)
        self._positions = self.portfolio.positions  # same dict for the life of the kernel
        self.prices = LastPrices()  # latest price per instrument: what risk values orders at
        self.risk = RiskEngine(
            risk_limits or RiskLimits(),
            registry,
            self.portfolio,
            self._pending_sides,
            self.prices,
        )
        self.risk.bind_orders(self)  # per-strategy budgets count a strategy's open orders
        self.linked = LinkedOrders(self.ids, registry, self.prices, self._order)
        self._watches = self.linked.watches  # instruments with trailing stops (same dict always)
        self.strategy_positions: dict[tuple[str, str], int] = {}
        self.strategy_pending: dict[tuple[str, str], int] = {}
        # position + pending per strategy, then instrument, kept with them: what target_position
        # trades from, read on every bar (through committed_view: the inner dicts live as long
        # as the kernel)
        self._committed: dict[str, dict[str, int]] = {}
        # open protective legs per strategy, then instrument (protective_view; same dicts always)
        self._protective: dict[str, dict[str, int]] = {}
        self._by_id = {s.strategy_id: s for s in self.strategies}
        if len(self._by_id) != len(self.strategies):
            ids = [s.strategy_id for s in self.strategies]
            repeated = next(i for i in ids if ids.count(i) > 1)
            raise InvariantError(f"strategy ids must be unique: {repeated!r} appears twice")
        self._subs: dict[str, list[Strategy[Any]]] = {}
        for strategy in self.strategies:
            for instrument_id in strategy.instruments:
                registry.get(instrument_id)  # unknown instruments fail at start, clearly
                self._subs.setdefault(instrument_id, []).append(strategy)
        self._features: dict[str, Any] = {}
        self._books: dict[str, Any] = {}
        for strategy in self.strategies:
            if strategy.wants_features:
                for instrument_id in strategy.instruments:
                    self.enable_features(instrument_id)
        self._timers: list[tuple[int, int, str, str, int]] = []
        self.timers = self._timers  # the heap itself: runners peek at timers[0][0] cheaply
        self._timer_seq = 0
        self._intents: list[Message] = []
        self._out: list[Message] = []
        self._next_loss_check = 0 if self.risk.limits.max_daily_loss is not None else 2**63
        self.unknown_reports = 0
        self._dispatch: dict[type, Callable[[Any], list[Message]]] = {
            Bar: self.on_bar,
            QuoteTick: self.on_quote,
            TradeTick: self.on_trade,
            BookDeltas: self.on_book,
            BookSnapshot: self.on_book,
            TimerFired: self.on_timer,
        }

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, ts_ns: int) -> list[Message]:
        self.now = ts_ns
        self.risk.on_clock(ts_ns)
        for strategy in self.strategies:
            strategy.bind(self, self.seed)
            strategy.on_start()
        return self._drain()

    def stop(self, ts_ns: int) -> list[Message]:
        self.now = max(self.now, ts_ns)
        for strategy in self.strategies:
            strategy.on_stop()
        return self._drain()

    def market_handlers(self) -> dict[type, Callable[[Any], list[Message]]]:
        """Handlers by message type, for runners that dispatch themselves (hot loops)."""
        return dict(self._dispatch)

    def report_handlers(self) -> dict[type, Callable[[Any], list[Message]]]:
        """Handlers of the venue's order reports by type (what :meth:`handle` would call)."""
        return dict.fromkeys(_ORDER_EVENTS, self.on_order_event)

    def handle(self, message: Message) -> list[Message]:
        """Process one message; returns the commands and events it produced."""
        handler = self._dispatch.get(type(message))
        if handler is not None:
            return handler(message)
        if type(message) in _ORDER_EVENTS:
            return self.on_order_event(message)
        if isinstance(message, TradingStateChanged):
            return self.set_trading_state(message.state, message.reason, message.ts_event)
        if isinstance(message, SubmitOrder | CancelOrder | ModifyOrder):
            return self.on_intent(message)
        raise InvariantError(f"kernel cannot handle {type(message).__name__}")

    # --- market data (hot path) -------------------------------------------------------------
    # Every kind takes one path: its latest price into ``prices`` (what risk values orders at),
    # then :meth:`_market` (marks, the daily-loss check), then features and strategies.
    def on_bar(self, bar: Bar) -> list[Message]:
        self.now = ts = bar.ts_event
        inst = bar.instrument_id
        self._market(inst, ts, self.prices.on_trade(inst, ts, bar.close))
        for strategy in self._subs.get(inst, ()):
            strategy.on_bar(bar)
        return self._drain() if self._intents or self._out else _EMPTY

    def on_quote(self, quote: QuoteTick) -> list[Message]:
        self.now = ts = quote.ts_event
        inst = quote.instrument_id
        self._market(inst, ts, self.prices.on_quote(inst, ts, quote.bid_price, quote.ask_price))
        features = self._features.get(inst)
        if features is not None:
            features.on_quote(quote)
        for strategy in self._subs.get(inst, ()):
            strategy.on_quote(quote)
        return self._drain() if self._intents or self._out else _EMPTY

    def on_trade(self, trade: TradeTick) -> list[Message]:
        self.now = ts = trade.ts_event
        inst = trade.instrument_id
        self._market(inst, ts, self.prices.on_trade(inst, ts, trade.price))
        features = self._features.get(inst)
        if features is not None:
            features.on_trade(trade)
        for strategy in self._subs.get(inst, ()):
            strategy.on_trade(trade)
        return self._drain() if self._intents or self._out else _EMPTY

    def on_book(self, update: BookDeltas | BookSnapshot) -> list[Message]:
        self.now = update.ts_event
        book = self.book(update.instrument_id)
        if isinstance(update, BookSnapshot):
            book.apply_snapshot(update)
        else:
            book.apply_deltas(update)
        return self._book_changed(update, book, book.synced)

    def on_book_view(self, update: BookDeltas, book: BookLike) -> list[Message]:
        """``update`` was applied to a book kept *outside* the kernel (``book``: e.g. the L2
        replay's compiled book): features, the mark and strategies follow it as in
        :meth:`on_book`, and the kernel's own book is left alone. ``update`` may be conflated
        (the levels that matter now, such as the top of book, not every change since the last)."""
        self.now = max(self.now, update.ts_event)
        return self._book_changed(update, book, True)

    def _book_changed(
        self, update: BookDeltas | BookSnapshot, book: BookLike, synced: bool
    ) -> list[Message]:
        inst, ts = update.instrument_id, update.ts_event
        bid, ask = book.best_bid(), book.best_ask()
        if synced and bid is not None and ask is not None:
            self._market(inst, ts, self.prices.on_quote(inst, ts, bid[0], ask[0]))
        else:
            self.prices.on_data(inst, ts)  # data, but no price to value or mark at
        features = self._features.get(inst)
        if features is not None and synced:
            features.on_book(book)
        for strategy in self._subs.get(inst, ()):
            strategy.on_book(update)
        return self._drain() if self._intents or self._out else _EMPTY

    def _market(self, inst: str, ts: int, price: int) -> None:
        """What every market message does once its price is known: mark the position and check
        the daily loss (at most once per simulated second between fills)."""
        pos = self._positions.get(inst)
        if pos is not None:
            pos.mark = price
            if pos.quantity and ts >= self._next_loss_check:
                self._check_loss(ts)
        if inst in self._watches:
            self._take(self.linked.on_price(inst, ts))

    def book(self, instrument_id: str) -> Any:
        book = self._books.get(instrument_id)
        if book is None:
            from runtime.book import L2Book

            book = self._books[instrument_id] = L2Book(instrument_id)
        return book

    # --- timers ------------------------------------------------------------------------------
    def set_timer(self, strategy_id: str, name: str, interval_ns: int) -> None:
        if interval_ns <= 0:
            raise InvariantError(f"timer {name}: interval must be positive")
        self._timer_seq += 1
        heapq.heappush(
            self._timers, (self.now + interval_ns, self._timer_seq, strategy_id, name, interval_ns)
        )

    def next_timer_ns(self) -> int | None:
        return self._timers[0][0] if self._timers else None

    def on_timer(self, timer: TimerFired, *, idle_until: int | None = None) -> list[Message]:
        """Fire every timer due at or before ``timer.ts_event`` (engines pass the due time).

        ``idle_until``: the runner promises nothing else happens before that time (no data, no
        reports). A tick that produces nothing then skips the ticks after it up to the last one
        due by ``idle_until``: a silent market (a night, a weekend) costs two ticks, not
        thousands, and a strategy still hears the time just before activity resumes.
        """
        out: list[Message] = []
        while self._timers and self._timers[0][0] <= timer.ts_event:
            due, _, strategy_id, name, interval = heapq.heappop(self._timers)
            self.now = due
            self._by_id[strategy_id].on_timer(
                TimerFired(seq=0, ts_event=due, ts_init=due, name=name)
            )
            produced = self._drain()
            following = due + interval
            if not produced and idle_until is not None and following < idle_until:
                following = due + ((idle_until - due) // interval) * interval
            self._timer_seq += 1
            heapq.heappush(self._timers, (following, self._timer_seq, strategy_id, name, interval))
            out.extend(produced)
        return out

    # --- intents from strategies hosted elsewhere (strategy actors) ------------------------
    def on_intent(self, intent: SubmitOrder | CancelOrder | ModifyOrder) -> list[Message]:
        """An order intent from a strategy that runs outside this kernel: through risk, exactly
        as if a local strategy had sent it; a denial goes back out as an event."""
        self.now = max(self.now, intent.ts_event)
        self._intents.append(intent)
        return self._drain()

    # --- order events from the venue ---------------------------------------------------------
    def on_order_event(self, event: Any) -> list[Message]:
        order = self.orders.get(event.client_order_id)
        if order is None:
            self.unknown_reports += 1
            return _EMPTY
        if event.ts_event > self.now:
            self.now = event.ts_event
        # what this order adds to its strategy's pending quantity, before and after the report:
        # kept incrementally (an open order's signed leaves; a closed one adds nothing)
        was_open = order.client_order_id in self.open
        before = (order.quantity - order.filled_qty) * order.side if was_open else 0
        if not order.apply(event):
            return _EMPTY  # duplicate report
        key = (order.strategy_id, order.instrument_id)
        if type(event) is OrderFilled:
            self._on_fill(event, key)
        if order.status in TERMINAL:
            if was_open:
                del self.open[order.client_order_id]
                if order.protective:
                    self._count_protective(order, -1)
            after = 0
        else:
            after = (order.quantity - order.filled_qty) * order.side if was_open else 0
        if after != before:
            self._add_pending(key, after - before, order.protective)
        strategy = self._by_id.get(order.strategy_id)
        if strategy is not None:
            strategy.on_order_event(event)
        if self.linked.tracks(order.client_order_id):
            self._take(self.linked.on_event(order, event, self.now))
        return self._drain() if self._intents or self._out else _EMPTY

    def _on_fill(self, fill: OrderFilled, key: tuple[str, str]) -> None:
        self.risk.on_fill(fill)  # the strategy's budget book
        before = self.portfolio.realized_pnl
        pos = self.portfolio.apply_fill(fill)
        realized = self.portfolio.realized_pnl - before
        if realized < 0:  # only a loss starts the risk cooldown
            self.risk.on_realized(realized, fill.ts_event)
        signed = fill.last_qty * fill.side
        self.strategy_positions[key] = self.strategy_positions.get(key, 0) + signed
        self._add_committed(key, signed)
        instrument = self.registry.get(fill.instrument_id)
        self._out.append(
            PositionChanged(
                seq=0,
                ts_event=fill.ts_event,
                ts_init=fill.ts_event,
                instrument_id=fill.instrument_id,
                quantity=pos.quantity,
                avg_price=pos.avg_price(instrument.multiplier),
                realized_pnl=pos.realized_pnl,
            )
        )
        self._check_loss(fill.ts_event)

    def _check_loss(self, ts: int) -> None:
        if self.risk.limits.max_daily_loss is not None:
            self._next_loss_check = ts + _LOSS_CHECK_NS
        change = self.risk.on_clock(ts)
        if change is not None:
            self._out.append(change)

    def set_trading_state(self, state: TradingState, reason: str, ts_ns: int) -> list[Message]:
        """Operator or supervisor action (halt, resume, reduce-only)."""
        self.now = max(self.now, ts_ns)
        change = self.risk.set_state(state, reason, ts_ns)
        if change is not None:
            self._out.append(change)
        return self._drain()

    # --- the strategy context (strategies call these) ----------------------------------------
    def now_ns(self) -> int:
        return self.now

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
        self._intents.append(
            SubmitOrder(
                seq=0,
                ts_event=self.now,
                ts_init=self.now,
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
        """A linked order list (OTO, OCO, bracket), emulated here; returns its list id."""
        list_id, produced = self.linked.submit(strategy_id, order_list, self.now)
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
        """A stop whose trigger the core moves after the market; returns its client order id."""
        leg = Leg(side=side, order_type=OrderType.STOP, quantity=quantity, protective=protective)
        command = self.linked.trailing_stop(strategy_id, instrument_id, leg, trail, self.now)
        self._intents.append(command)
        return command.client_order_id

    def cancel(self, strategy_id: str, client_order_id: str) -> None:
        order = self.open.get(client_order_id)
        if order is None or order.strategy_id != strategy_id:
            return  # already closed (or not this strategy's): nothing to cancel
        self._intents.append(
            CancelOrder(
                seq=0,
                ts_event=self.now,
                ts_init=self.now,
                client_order_id=client_order_id,
                strategy_id=strategy_id,
                instrument_id=order.instrument_id,
            )
        )

    def modify(
        self,
        strategy_id: str,
        client_order_id: str,
        *,
        quantity: int | None,
        price: int | None,
        trigger_price: int | None,
    ) -> None:
        order = self.open.get(client_order_id)
        if order is None or order.strategy_id != strategy_id:
            return
        self._intents.append(
            ModifyOrder(
                seq=0,
                ts_event=self.now,
                ts_init=self.now,
                client_order_id=client_order_id,
                strategy_id=strategy_id,
                instrument_id=order.instrument_id,
                quantity=quantity,
                price=price,
                trigger_price=trigger_price,
            )
        )

    def position(self, strategy_id: str, instrument_id: str) -> int:
        return self.strategy_positions.get((strategy_id, instrument_id), 0)

    def pending(self, strategy_id: str, instrument_id: str) -> int:
        return self.strategy_pending.get((strategy_id, instrument_id), 0)

    def committed(self, strategy_id: str, instrument_id: str) -> int:
        return self.committed_view(strategy_id).get(instrument_id, 0)

    def committed_view(self, strategy_id: str) -> Mapping[str, int]:
        """A live, read-only view of :meth:`committed` per instrument for one strategy (the same
        mapping for the life of the kernel, restores included): strategies read it every bar."""
        return self._view(strategy_id)

    def _view(self, strategy_id: str) -> dict[str, int]:
        view = self._committed.get(strategy_id)
        if view is None:
            view = self._committed[strategy_id] = {}
        return view

    def protective_view(self, strategy_id: str) -> Mapping[str, int]:
        """A live, read-only count of the strategy's open protective legs per instrument (the
        same mapping for the life of the kernel): ``target_position`` looks for legs to fit only
        where there are some."""
        return self._protective.setdefault(strategy_id, {})

    def _count_protective(self, order: Order, n: int) -> None:
        view = self._protective.setdefault(order.strategy_id, {})
        view[order.instrument_id] = view.get(order.instrument_id, 0) + n

    def protective_orders(self, strategy_id: str, instrument_id: str) -> list[Order]:
        """The strategy's open protective legs on one instrument (what ``target_position``
        cancels or shrinks)."""
        return [
            o
            for o in self.open.values()
            if o.protective and o.strategy_id == strategy_id and o.instrument_id == instrument_id
        ]

    def open_orders(self, strategy_id: str, instrument_id: str | None) -> list[Order]:
        return [
            o
            for o in self.open.values()
            if o.strategy_id == strategy_id
            and (instrument_id is None or o.instrument_id == instrument_id)
        ]

    def features(self, instrument_id: str) -> dict[str, float]:
        features = self._features.get(instrument_id)
        if features is None:
            from runtime.features import FeatureSet

            features = self._features[instrument_id] = FeatureSet(instrument_id)
        snapshot: dict[str, float] = features.snapshot()
        return snapshot

    def instrument(self, instrument_id: str) -> Instrument:
        return self.registry.get(instrument_id)

    def enable_features(self, instrument_id: str) -> None:
        self.features(instrument_id)

    def account(self) -> Account:
        """The account this kernel keeps (read-only snapshot): cash, equity, PnL, fees."""
        return self.portfolio.account()

    # --- intents through risk ----------------------------------------------------------------
    def _drain(self) -> list[Message]:
        while self._intents:
            intents, self._intents = self._intents, []
            for intent in intents:
                self._process_intent(intent)
        if not self._out:
            return _EMPTY
        out, self._out = self._out, []
        return out

    def _process_intent(self, intent: Message) -> None:
        if isinstance(intent, SubmitOrder):
            order = Order(intent)
            self.orders[intent.client_order_id] = order
            linked = self.linked.tracks(intent.client_order_id)
            refusal = self.linked.refusal(intent) if linked else None
            approved: SubmitOrder | None = None
            denial: OrderDenied | None = None
            if refusal is not None:
                denial = self._refused(intent, *refusal)
            else:
                approved, denial = self.risk.check(intent, self.now)
            if denial is not None:
                order.apply(denial)
                self._out.append(denial)
                strategy = self._by_id.get(intent.strategy_id)
                if strategy is not None:
                    strategy.on_order_event(denial)
                if linked:
                    self._take(self.linked.on_event(order, denial, self.now))
                return
            assert approved is not None
            if approved.quantity != order.quantity:
                order.quantity = approved.quantity  # reduced by a close-only rule
            order.transition(Trigger.SUBMIT)
            self.open[intent.client_order_id] = order
            if order.protective:
                self._count_protective(order, 1)
            # a new open order adds its signed leaves (the signed_leaves property, inlined)
            leaves = (order.quantity - order.filled_qty) * order.side
            self._add_pending((intent.strategy_id, intent.instrument_id), leaves, order.protective)
            self._out.append(approved)
        elif isinstance(intent, CancelOrder):
            live = self.open.get(intent.client_order_id)
            if live is not None and live.status is not OrderStatus.PENDING_CANCEL:
                live.transition(Trigger.PENDING_CANCEL)
                self._out.append(intent)
        elif isinstance(intent, ModifyOrder):
            live = self.open.get(intent.client_order_id)
            if live is not None and live.status in (
                OrderStatus.ACCEPTED,
                OrderStatus.PARTIALLY_FILLED,
            ):
                live.transition(Trigger.PENDING_UPDATE)
                self._out.append(intent)

    def _refused(self, intent: SubmitOrder, code: str, reason: str) -> OrderDenied:
        return OrderDenied(
            seq=0,
            ts_event=self.now,
            ts_init=self.now,
            client_order_id=intent.client_order_id,
            strategy_id=intent.strategy_id,
            instrument_id=intent.instrument_id,
            reason_code=code,
            reason=reason,
        )

    def _take(self, produced: list[Message]) -> None:
        """What linked orders produced: list events out (and to their strategy), commands
        into the intents risk checks."""
        for message in produced:
            if isinstance(message, OrderListChanged):
                self._out.append(message)
                strategy = self._by_id.get(message.strategy_id)
                if strategy is not None:
                    strategy.on_order_event(message)
            else:
                self._intents.append(message)

    def _order(self, client_order_id: str) -> Order | None:
        return self.orders.get(client_order_id)

    def _recompute_pending(self, key: tuple[str, str]) -> None:
        """Pending quantity of one (strategy, instrument) from scratch, on a cleared pending
        (restores; the event path keeps it incrementally)."""
        strategy_id, instrument_id = key
        for o in self.open.values():
            if o.instrument_id == instrument_id and o.strategy_id == strategy_id:
                self._add_pending(key, o.signed_leaves, o.protective)

    def _add_pending(self, key: tuple[str, str], delta: int, protective: bool = False) -> None:
        """Open orders' signed leaves; a protective leg's are pending but not committed (the
        target of ``target_position`` is what the strategy holds, not what its stops close)."""
        self.strategy_pending[key] = self.strategy_pending.get(key, 0) + delta
        if not protective:
            self._add_committed(key, delta)

    def _add_committed(self, key: tuple[str, str], delta: int) -> None:
        strategy_id, instrument_id = key
        view = self._committed.get(strategy_id) or self._view(strategy_id)
        view[instrument_id] = view.get(instrument_id, 0) + delta

    def _pending_sides(self, instrument_id: str) -> tuple[int, int]:
        """Open leaves per side that risk counts: not protective legs (they only close), nor
        orders already being canceled (an exit must not wait for their cancel to confirm)."""
        buys = sells = 0
        for order in self.open.values():  # open orders are never terminal: leaves = qty - filled
            if (
                order.instrument_id == instrument_id
                and not order.protective
                and order.status is not OrderStatus.PENDING_CANCEL
            ):
                if order.side is OrderSide.BUY:
                    buys += order.quantity - order.filled_qty
                else:
                    sells += order.quantity - order.filled_qty
        return buys, sells

    # --- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "orders": [self.orders[k].state() for k in sorted(self.orders)],
            "portfolio": self.portfolio.state(),
            "risk": self.risk.state_dict(),
            "linked": self.linked.state(),
            "ids": dict(sorted(self.ids.counters.items())),
            "strategy_positions": sorted(
                [[*list(k), v] for k, v in self.strategy_positions.items()]
            ),
        }

    def state_hash(self) -> str:
        """sha256 of the canonical state: sorted-key compact JSON (C-fast on 100k orders).

        The state holds only ints, strings, bools, None, lists and string-keyed dicts, where
        this encoding is canonical; ``runtime.statehash.state_hash`` (strict: it refuses
        floats) checks that in the tests.
        """
        encoded = json.dumps(
            self.state(), sort_keys=True, separators=(",", ":"), allow_nan=False, default=_refuse
        )
        return hashlib.sha256(encoded.encode()).hexdigest()

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state` (a snapshot)."""
        self.orders = {o["id"]: Order.from_state(o) for o in state["orders"]}
        self.open = {k: o for k, o in self.orders.items() if o.is_open}
        self.portfolio.load_state(state["portfolio"])
        self.risk.load_state(state["risk"])
        if "linked" in state:  # snapshots from before linked orders have none
            self.linked.load_state(state["linked"])
        self.ids.counters = dict(state["ids"])
        self.strategy_positions = {(a, b): v for a, b, v in state["strategy_positions"]}
        self.strategy_pending = {}
        for view in self._committed.values():
            view.clear()  # cleared in place: strategies hold these mappings
        for key, quantity in self.strategy_positions.items():
            self._add_committed(key, quantity)
        for key in {(o.strategy_id, o.instrument_id) for o in self.orders.values()}:
            self._recompute_pending(key)
        for counts in self._protective.values():
            counts.clear()  # in place, as committed
        for order in self.open.values():
            if order.protective:
                self._count_protective(order, 1)
