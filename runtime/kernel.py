"""The kernel: one deterministic core for backtests and for the actors.

It processes one message at a time, in the order given, and returns what it produced:
``handle(message) -> list[Message]``. Outputs are approved commands (``SubmitOrder``,
``CancelOrder``, ``ModifyOrder``) for the venue and events (``OrderDenied``, ``PositionChanged``,
``TradingStateChanged``) for the record. Order reports from the venue come back in through
``handle`` too, and so do an operator's commands (``SetTradingState``, ``CancelAllOrders``,
``ClosePositions``, ``SetStrategyEnabled``, ``SetStrategyParams``). Nothing here reads a clock,
a network or a global RNG; time is the ``ts_event`` of the message being handled (a report
moves the clock to its delivery time, ``ts_init``; an operator's command does not move it).

The kernel is composed of parts, each with one job:

* :class:`runtime.orderflow.OrderFlow`: intents through risk, reports into the ledger and the
  portfolio;
* :class:`runtime.ledger.OrderLedger`: orders, the open ones, positions and pending per strategy;
* :class:`runtime.timers.Timers` and the :class:`runtime.timers.Clock`;
* :class:`runtime.context.KernelContext`: what strategies call (their intents queue there);
* :class:`runtime.roster.Roster`: the strategies, who hears what, what an operator changed;
* an approval (:mod:`runtime.approval`): risk checks here (a backtest, the risk actor) or
  elsewhere (a strategy actor);
* the portfolio, the risk engine, last prices, linked orders, parent orders worked by
  execution algorithms (:mod:`runtime.execution`), time stops;
* books and features (:mod:`runtime.views`): computed here (a backtest) or read from views
  computed elsewhere (a paper session's book actors).
* :class:`runtime.carry.Carry` (funding and borrow on held positions) and
  :class:`runtime.auxdata.AuxState` (auxiliary data, and whether a strategy's is fresh).

Closed orders retire from the ledger once a day old in event time (``retire_after_ns``; the
rule, and what a retired order leaves behind, in :mod:`runtime.retirement`): the kernel sweeps
when its clock crosses an hour, on market data and reports, so what it holds stays bounded in a
session that runs for weeks.

``state()`` is the canonical state (orders, positions, cash, risk, id counters, and what an
operator changed) and ``state_hash()`` its hash: same inputs and seed ⇒ same hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, get_args

from runtime.approval import Approval, CheckElsewhere, CheckHere
from runtime.auxdata import AUX_TYPES, AuxNeed, AuxState
from runtime.carry import Carry
from runtime.context import KernelContext
from runtime.daygtc import DayOnlyGtc
from runtime.errors import InvariantError
from runtime.execution import ExecutionAlgorithms
from runtime.instruments import InstrumentRegistry
from runtime.ledger import OrderLedger, command_of
from runtime.linked import LinkedOrders
from runtime.messages import (
    AuxData,
    Bar,
    BookDeltas,
    BookSnapshot,
    BorrowRate,
    CancelAllOrders,
    CancelOrder,
    ClosePositions,
    FundingRate,
    Message,
    ModifyOrder,
    OperatorCommand,
    OrderEvent,
    QuoteTick,
    SetStrategyEnabled,
    SetStrategyParams,
    SetTradingState,
    SubmitOrder,
    TimerFired,
    TradeTick,
)
from runtime.operations import cancels, close_outs
from runtime.orderflow import OrderFlow
from runtime.orders import ClientOrderIdGenerator, Order
from runtime.portfolio import Account, Portfolio
from runtime.prices import LastPrices
from runtime.retirement import DEFAULT_RETIRE_AFTER_NS, SWEEP_NS, next_sweep
from runtime.risk import RiskEngine, RiskLimits
from runtime.roster import Roster
from runtime.statehash import sorted_json
from runtime.stops import EmulatedStops
from runtime.strategy import Strategy
from runtime.timers import Clock, Timers, idle_until_of
from runtime.timestops import TimeStops
from runtime.views import LocalBooks, ViewedBooks
from runtime.watches import Watches

if TYPE_CHECKING:
    from runtime.features import BookLike

__all__ = ["Kernel"]


def _refuse(value: object) -> object:
    raise InvariantError(f"kernel state holds a {type(value).__name__}: {value!r}")


_EMPTY: list[Message] = []
_ORDER_EVENTS = frozenset(get_args(OrderEvent))
_OPERATOR_COMMANDS = frozenset(get_args(OperatorCommand))
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
        risk_elsewhere: bool = False,
        books_elsewhere: bool = False,
        aux_needs: Mapping[str, Sequence[AuxNeed]] | None = None,
        native_lists: Collection[str] = (),
        emulated_stops: Collection[str] = (),
        native_trailing: Collection[str] = (),
        day_orders_only: Collection[str] = (),
        retire_after_ns: int | None = DEFAULT_RETIRE_AFTER_NS,
        keep_retired: bool = False,
    ) -> None:
        """``aux_needs``: the auxiliary data of strategies that run elsewhere (a risk actor's
        kernel checks their entries), beside what its own strategies declare. ``native_lists``:
        the instruments whose venue links orders itself (``runtime.linked``); the lists of all
        others are emulated here. ``emulated_stops``: the instruments whose venue has no stop
        orders: their stops are held here and released when triggered (``runtime.stops``).
        ``native_trailing``: the instruments whose venue trails stops off the last price itself
        (``runtime.linked``); trailing stops everywhere else are moved here.
        ``day_orders_only``: the instruments whose venue has no GTC: their GTC limits go out
        as one day order per session (``runtime.daygtc``).
        ``retire_after_ns``: how long (event time) a closed order stays in the ledger before
        it retires (``runtime.retirement``); ``None`` keeps every order. ``keep_retired``: the
        retired orders are kept in :attr:`retired_orders`, and retired parents' summaries in
        :attr:`algos`, outside the state (a backtest's results list every order; the risk
        actor archives them); a strategy host's kernel drops them."""
        if retire_after_ns is not None and retire_after_ns < 0:
            raise InvariantError(f"retire_after_ns must be >= 0, got {retire_after_ns}")
        self.registry = registry
        self.roster = Roster(strategies, registry)
        self.strategies = self.roster.strategies
        self.namespace = namespace
        self.seed = seed
        self.clock = Clock()
        self.timers = Timers()
        self.ids = ClientOrderIdGenerator(namespace)
        self.ledger = OrderLedger()
        self.portfolio = Portfolio(registry, initial_cash=initial_cash, currency=currency)
        self._positions = self.portfolio.positions  # same dict for the life of the kernel
        self.prices = LastPrices()  # latest price per instrument: what risk values orders at
        self.risk = RiskEngine(
            risk_limits or RiskLimits(),
            registry,
            self.portfolio,
            self.ledger.pending_sides,
            self.prices,
        )
        self.risk.bind_orders(self.ledger)  # per-strategy budgets count a strategy's open orders
        self.carry = Carry(registry, self.portfolio)
        self.aux = AuxState()
        for strategy_id, needs in (aux_needs or {}).items():
            self.aux.declare(strategy_id, needs)
        for strategy in self.strategies:
            self.aux.declare(strategy.strategy_id, strategy.aux_needs())
        self.risk.bind_aux(self.aux.stale)  # stale aux data holds a strategy's new entries
        # instruments with trailing or held stops, working parent orders or time stops: one map
        # they share (runtime/watches.py), so market data asks one question (the same dict)
        self._watches: Watches = {}
        self.linked = LinkedOrders(
            self.ids, registry, self.prices, self.ledger.get, watches=self._watches,
            native=native_lists, native_trailing=native_trailing,
        )
        self.algos = ExecutionAlgorithms(
            self.ids, registry, self.prices, self.ledger.get, seed=seed, watches=self._watches,
            keep_retired=keep_retired,
        )
        self.time_stops = TimeStops(
            self.ids, self.ledger, self.linked, self.algos, watches=self._watches
        )
        self.stops = EmulatedStops(
            self.ledger, registry, self.prices, self._watches, emulated_stops
        )
        self.gtc = DayOnlyGtc(  # a risk actor's kernel (no strategies) follows its hosts'
            self.ledger, registry, self._watches, day_orders_only,
            faces_venue=not risk_elsewhere, leads=bool(strategies))
        self.approval: Approval = (
            CheckElsewhere() if risk_elsewhere else CheckHere(self.risk, self.linked)
        )
        #: books and features: computed here, or views of the book actors' (``books_elsewhere``)
        self.books: LocalBooks | ViewedBooks = ViewedBooks() if books_elsewhere else LocalBooks()
        self._subs = self.roster.subs  # the same dict always
        # what strategies asked for, and what the kernel produced: the same lists always,
        # shared by its parts and drained in place
        self._intents: list[Message] = []
        self._out: list[Message] = []
        #: a strategy host (``risk_elsewhere``) knows the limits, for its strategies to read
        #: (``Strategy.limits``, ``.budget``, ``.pnl``), and enforces none: the risk actor does
        self._risk_here = not risk_elsewhere
        self.retire_after_ns = retire_after_ns
        self._next_sweep = 0 if retire_after_ns is not None else 2**63
        #: retired orders, oldest sweep first, when the owner keeps them (``keep_retired``)
        self.retired_orders: list[Order] | None = [] if keep_retired else None
        self._next_loss_check = (0 if self.risk.limits.max_daily_loss is not None
                                 and self._risk_here else 2**63)
        self.flow = OrderFlow(
            clock=self.clock,
            ledger=self.ledger,
            approval=self.approval,
            linked=self.linked,
            algos=self.algos,
            roster=self.roster,
            portfolio=self.portfolio,
            risk=self.risk,
            registry=registry,
            intents=self._intents,
            out=self._out,
            check_loss=self._check_loss,
            stops=self.stops,
            gtc=self.gtc,
        )
        self._drain = self.flow.drain
        self._take = self.flow.take
        self.context = KernelContext(
            clock=self.clock,
            ledger=self.ledger,
            timers=self.timers,
            ids=self.ids,
            linked=self.linked,
            algos=self.algos,
            time_stops=self.time_stops,
            registry=registry,
            portfolio=self.portfolio,
            features=self.books.features,
            intents=self._intents,
            take=self.flow.take,
            risk=self.risk,
            roster=self.roster,
        )
        for strategy in self.strategies:
            if strategy.wants_features:
                for instrument_id in strategy.instruments:
                    self.books.want(instrument_id)
        self._dispatch: dict[type, Callable[[Any], list[Message]]] = {
            Bar: self.on_bar,
            QuoteTick: self.on_quote,
            TradeTick: self.on_trade,
            BookDeltas: self.on_book,
            BookSnapshot: self.on_book,
            TimerFired: self._on_timer_message,
            SubmitOrder: self.flow.on_submit,
            CancelOrder: self.on_intent,
            ModifyOrder: self.on_intent,
        }
        self._dispatch.update(dict.fromkeys(AUX_TYPES, self.on_aux))
        self._dispatch.update(dict.fromkeys(_ORDER_EVENTS, self.on_order_event))
        self._dispatch.update(dict.fromkeys(_OPERATOR_COMMANDS, self.on_operator))

    # --- reads ---------------------------------------------------------------------------------
    @property
    def now(self) -> int:
        """The kernel's clock (ns): only the kernel moves it."""
        return self.clock.ns

    @property
    def orders(self) -> dict[str, Order]:
        return self.ledger.orders

    @property
    def open(self) -> dict[str, Order]:
        return self.ledger.open

    def next_timer_ns(self) -> int | None:
        return self.timers.next_due if len(self.timers) else None

    def unanswered(self) -> list[SubmitOrder]:
        """Intents sent to risk elsewhere and not answered yet (re-sent after a crash; risk
        dedupes them)."""
        return [command_of(o) for o in self.ledger.unanswered()]

    def account(self) -> Account:
        """The account this kernel keeps (read-only snapshot): cash, equity, PnL, fees."""
        return self.portfolio.account()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, ts_ns: int) -> list[Message]:
        self.clock.ns = ts_ns
        self.risk.on_clock(ts_ns)
        for strategy in self.strategies:
            strategy.bind(self.context, self.seed)
            strategy.on_start()
        return self._drain()

    def stop(self, ts_ns: int) -> list[Message]:
        self.clock.ns = max(self.clock.ns, ts_ns)
        for strategy in self.strategies:
            strategy.on_stop()
        return self._drain()

    def market_handlers(self) -> dict[type, Callable[[Any], list[Message]]]:
        """Handlers of market and auxiliary data by type, for runners that dispatch themselves
        (hot loops)."""
        kinds = (Bar, QuoteTick, TradeTick, BookDeltas, BookSnapshot, *AUX_TYPES)
        return {t: self._dispatch[t] for t in kinds}

    def report_handlers(self) -> dict[type, Callable[[Any], list[Message]]]:
        """Handlers of the venue's order reports by type (what :meth:`handle` would call)."""
        return dict.fromkeys(_ORDER_EVENTS, self.on_order_event)

    def handle(self, message: Message) -> list[Message]:
        """Process one message; returns the commands and events it produced."""
        handler = self._dispatch.get(type(message))
        if handler is None:
            raise InvariantError(f"kernel cannot handle {type(message).__name__}")
        return handler(message)

    # --- market data (hot path) -------------------------------------------------------------
    # Every kind takes one path: its latest price into ``prices`` (what risk values orders at),
    # then :meth:`_market` (the mark, the daily-loss check, trailing stops), then features and
    # the strategies that hear the instrument.
    def on_bar(self, bar: Bar) -> list[Message]:
        self.clock.ns = ts = bar.ts_event
        inst = bar.instrument_id
        self._market(inst, ts, self.prices.on_trade(inst, ts, bar.close))
        if inst in self._watches:
            self._watched(inst, ts, bar.volume)
        for strategy in self._subs.get(inst, ()):
            strategy.on_bar(bar)
        return self._drain() if self._intents or self._out else _EMPTY

    def on_quote(self, quote: QuoteTick) -> list[Message]:
        self.clock.ns = ts = quote.ts_event
        inst = quote.instrument_id
        self._market(inst, ts, self.prices.on_quote(inst, ts, quote.bid_price, quote.ask_price))
        if inst in self._watches:
            self._watched(inst, ts, 0)
        self.books.quote(quote)
        for strategy in self._subs.get(inst, ()):
            strategy.on_quote(quote)
        return self._drain() if self._intents or self._out else _EMPTY

    def on_trade(self, trade: TradeTick) -> list[Message]:
        self.clock.ns = ts = trade.ts_event
        inst = trade.instrument_id
        self._market(inst, ts, self.prices.on_trade(inst, ts, trade.price))
        if inst in self._watches:
            self._watched(inst, ts, trade.size)
        self.books.trade(trade)
        for strategy in self._subs.get(inst, ()):
            strategy.on_trade(trade)
        return self._drain() if self._intents or self._out else _EMPTY

    def on_book(self, update: BookDeltas | BookSnapshot) -> list[Message]:
        """A book update: its top of book (from the book kept here, or from the book actor's
        view of it) is the price, features follow, then the strategies hear it."""
        self.clock.ns = update.ts_event
        return self._book_changed(update, self.books.book(update))

    def on_book_view(self, update: BookDeltas, book: BookLike) -> list[Message]:
        """``update`` was applied to a book kept *outside* the kernel (``book``: the L2
        replay's compiled book): features, the mark and strategies follow it as in
        :meth:`on_book`, and the kernel's own books are left alone. ``update`` may be conflated
        (the levels that matter now, such as the top of book, not every change since the last)."""
        self.clock.ns = max(self.clock.ns, update.ts_event)
        self.books.book_view(update.instrument_id, book)
        bid, ask = book.best_bid(), book.best_ask()
        top = (bid[0], ask[0]) if bid is not None and ask is not None else None
        return self._book_changed(update, top)

    def _book_changed(
        self, update: BookDeltas | BookSnapshot, top: tuple[int, int] | None
    ) -> list[Message]:
        inst, ts = update.instrument_id, update.ts_event
        if top is not None:
            self._market(inst, ts, self.prices.on_quote(inst, ts, top[0], top[1]))
            if inst in self._watches:
                self._watched(inst, ts, 0)
        else:
            self.prices.on_data(inst, ts)  # data, but no price to value or mark at
        for strategy in self._subs.get(inst, ()):
            strategy.on_book(update)
        return self._drain() if self._intents or self._out else _EMPTY

    def _market(self, inst: str, ts: int, price: int) -> None:
        """What every market message with a price does: mark the position and check the daily
        loss (on every mark of a held position, at most once per simulated second between
        fills; each fill checks at once), then settle borrow once a midnight passed. The caller
        then runs :meth:`_watched` where the instrument is watched."""
        if ts >= self.carry.next_accrual_ns:  # a midnight passed: borrow on the shorts held
            self._out.extend(self.carry.accrue_until(ts))
        if ts >= self._next_sweep:
            self._retire(ts)
        pos = self._positions.get(inst)
        if pos is not None:
            pos.mark = price
            if pos.quantity and ts >= self._next_loss_check:
                self._check_loss(ts)

    def _watched(self, inst: str, ts: int, volume: int) -> None:
        """Release the held stops the price triggers, move trailing stops, work parent orders
        (with the ``volume`` traded) and fire time stops on ``inst``."""
        self._take(self.stops.on_price(inst, ts))
        self._take(self.linked.on_price(inst, ts))
        self._take(self.algos.on_market(inst, ts, volume))
        self._take(self.time_stops.on_price(inst, ts))
        self.flow.resubmit(self.gtc.on_price(inst, ts))

    # --- auxiliary data ------------------------------------------------------------------------
    def on_aux(self, message: AuxData) -> list[Message]:
        """Funding rates, open interest, mark/index prices and borrow rates: kept for freshness,
        a settled funding rate charged (:mod:`runtime.carry`), then heard by the strategies of
        the instrument (``on_aux``)."""
        self.clock.ns = ts = max(self.clock.ns, message.ts_event)
        if ts >= self.carry.next_accrual_ns:
            self._out.extend(self.carry.accrue_until(ts))
        self.aux.on_data(message)
        if type(message) is FundingRate:
            charge = self.carry.on_funding(message)
            if charge is not None:
                self._out.append(charge)
        elif type(message) is BorrowRate:
            self.carry.on_borrow_rate(message)
        for strategy in self._subs.get(message.instrument_id, ()):
            strategy.on_aux(message)
        return self._drain() if self._intents or self._out else _EMPTY

    # --- timers ------------------------------------------------------------------------------
    def on_timer(self, timer: TimerFired, *, idle_until: int | None = None) -> list[Message]:
        """Fire every timer due at or before ``timer.ts_event`` (engines pass the due time).

        ``idle_until``: the runner promises nothing else happens before that time (no data, no
        reports). A tick that produces nothing then skips the ticks after it up to the last one
        due by ``idle_until``: a silent market (a night, a weekend) costs two ticks, not
        thousands, and a strategy still hears the time just before activity resumes. A disabled
        strategy's timers keep their pace without it hearing them.
        """
        out: list[Message] = []
        timers, enabled = self.timers, self.roster.enabled
        while (due_timer := timers.pop_due(timer.ts_event)) is not None:
            due, _, strategy_id, name, interval = due_timer
            self.clock.ns = due
            if enabled(strategy_id):
                self.roster.by_id[strategy_id].on_timer(
                    TimerFired(seq=0, ts_event=due, ts_init=due, name=name)
                )
            produced = self._drain()
            following = due + interval
            if not produced and idle_until is not None and following < idle_until:
                following = due + ((idle_until - due) // interval) * interval
            timers.set(strategy_id, name, due_ns=following, interval_ns=interval)
            out.extend(produced)
        if self._intents or self._out:  # queued by strategies since the last input
            out.extend(self._drain())
        return out

    def _on_timer_message(self, timer: TimerFired) -> list[Message]:
        return self.on_timer(timer, idle_until=idle_until_of(timer))

    # --- orders (the order flow's) -------------------------------------------------------------
    def on_intent(self, intent: SubmitOrder | CancelOrder | ModifyOrder) -> list[Message]:
        """An order intent from a strategy that runs outside this kernel: through risk, exactly
        as if a local strategy had sent it; a denial goes back out as an event."""
        return self.flow.on_intent(intent)

    def on_order_event(self, event: Any) -> list[Message]:
        """A report from the venue (or risk's denial, for a strategy actor's kernel); borrow
        first for any midnight before it (the position charged is the one held then)."""
        if event.ts_init >= self.carry.next_accrual_ns:
            self._out.extend(self.carry.accrue_until(event.ts_init))
        if event.ts_init >= self._next_sweep:
            self._retire(event.ts_init)
        return self.flow.on_order_event(event)

    def _retire(self, ts: int) -> None:
        """The sweep (``runtime.retirement``): closed orders last changed ``retire_after_ns``
        before the hour ``ts`` is in, and followed by no part, retire; the next sweep at the
        next hour. The cutoff is the hour's, so any sweep within the hour retires the same."""
        after = self.retire_after_ns
        if after is None:
            return
        self._next_sweep = next_sweep(ts)
        cutoff = self._next_sweep - SWEEP_NS - after
        self.algos.retire(cutoff)  # closed parents first: their children are followed no more
        gone = self.ledger.retire(cutoff, self._followed)
        if gone and self.retired_orders is not None:
            self.retired_orders.extend(gone)

    def _followed(self, client_order_id: str) -> bool:
        """A part of the kernel still follows the order: it may not retire."""
        return (self.linked.tracks(client_order_id) or self.algos.tracks(client_order_id)
                or self.stops.holds(client_order_id) or self.gtc.follows(client_order_id))

    def all_orders(self) -> list[Order]:
        """Every order this kernel made or saw, by creation time: the retired ones it kept
        (``keep_retired``) and those it holds."""
        orders = [*(self.retired_orders or ()), *self.ledger.orders.values()]
        if self.retired_orders:
            orders.sort(key=lambda o: o.ts_init)  # stable: made at one time, in their order
        return orders

    @property
    def unknown_reports(self) -> int:
        """Reports of orders this kernel does not know (counted, otherwise ignored)."""
        return self.flow.unknown_reports

    @property
    def late_reports(self) -> int:
        """Reports (and repeated submits) of retired orders (counted, otherwise ignored)."""
        return self.flow.late_reports

    def _check_loss(self, ts: int) -> None:
        if not self._risk_here:  # the risk actor checks the daily loss and says so
            return
        if self.risk.limits.max_daily_loss is not None:
            self._next_loss_check = ts + _LOSS_CHECK_NS
        change = self.risk.on_clock(ts)
        if change is not None:
            self._out.append(change)

    # --- an operator's commands ----------------------------------------------------------------
    def check(self, command: OperatorCommand) -> None:
        """Refuse (:class:`runtime.errors.OperatorError`) a command this kernel cannot carry
        out as given, changing nothing: its owner checks before it journals the command."""
        if isinstance(command, SetStrategyEnabled):
            self.roster.get(command.strategy_id)
        elif isinstance(command, SetStrategyParams):
            self.roster.check_params(command.strategy_id, command.params)

    def on_operator(self, command: OperatorCommand) -> list[Message]:
        """Carry out an operator's command at the kernel's clock (see :mod:`runtime.messages`);
        the commands and events it produced (cancels and close-outs are checked by risk as any
        order is)."""
        now = self.clock.ns
        if isinstance(command, SetTradingState):
            change = self.risk.set_state(command.state, command.reason, now)
            if change is not None:
                self._out.append(change)
        elif isinstance(command, CancelAllOrders):
            self._take(self.algos.cancel_all(command.strategy_id, now))
            self._intents.extend(cancels(self.ledger.open.values(), command.strategy_id, now))
        elif isinstance(command, ClosePositions):
            self._take(self.algos.cancel_all("", now))
            self._intents.extend(
                close_outs(self._positions, self.ledger.open.values(), self.ids, now)
            )
        elif isinstance(command, SetStrategyEnabled):
            self.roster.set_enabled(command.strategy_id, command.enabled)
        else:
            self.roster.set_params(command.strategy_id, command.params)
        return self._drain()

    # --- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        state = {
            "namespace": self.namespace,
            **self.ledger.state(),
            "portfolio": self.portfolio.state(),
            "risk": self.risk.state_dict(),
            "linked": self.linked.state(),
            "algos": self.algos.state(),
            "time_stops": self.time_stops.state(),
            "ids": dict(sorted(self.ids.counters.items())),
        }
        stops = self.stops.state()
        if stops["held"]:  # only while stops are held here
            state["stops"] = stops
        gtc = self.gtc.state()
        if gtc:  # only while GTC orders are kept alive here
            state["gtc"] = gtc
        carry = self.carry.state()
        if carry is not None:  # only once funding or borrow mattered
            state["carry"] = carry
        operated = self.roster.state()
        if operated is not None:  # only once an operator changed a strategy
            state["operator"] = operated
        return state

    def state_hash(self) -> str:
        """sha256 of the canonical state: sorted-key compact JSON (``runtime.statehash.
        sorted_json``: json's bytes, written at C speed).

        The state holds only ints, strings, bools, None, lists and string-keyed dicts, where
        this encoding is canonical; ``runtime.statehash.state_hash`` (strict: it refuses
        floats) checks that in the tests.
        """
        return hashlib.sha256(sorted_json(self.state(), default=_refuse)).hexdigest()

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state` (a snapshot)."""
        self.ledger.load_state(state)
        self._watches.clear()  # the parts below put their own keys back
        self.portfolio.load_state(state["portfolio"])
        self.risk.load_state(state["risk"])
        if "linked" in state:  # snapshots from before linked orders have none
            self.linked.load_state(state["linked"])
        self.algos.load_state(state.get("algos", {}))
        self.time_stops.load_state(state.get("time_stops", []))
        self.stops.load_state(state.get("stops", {}))
        self.gtc.load_state(state.get("gtc", {}))
        self.ids.counters = dict(state["ids"])
        if self.retire_after_ns is not None:
            self._next_sweep = 0  # a sweep at the next input: the same as one an hour ago
        self.carry.load_state(state.get("carry"))
        self.roster.load_state(state.get("operator"))
