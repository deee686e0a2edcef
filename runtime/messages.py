"""Typed, frozen, slotted messages: market data, commands (imperative) and events (past tense).

Operator commands (halt, resume, reduce-only, cancel everything, close every position, a
strategy's enabled flag and params) are messages too: the kernel handles them like any input,
so they are journaled where they are applied and their effect is part of the state hash.

Every message carries ``seq`` (the producer's sequence number), ``ts_event`` (when it happened at
its source) and ``ts_init`` (when Tradewind created it), both integer nanoseconds since the epoch.
Prices, sizes and money are fixed-point ints (:mod:`runtime.values`). Messages are msgspec
``Struct``\\ s: compact, fast, and serialisable (tagged) for journals and Ray.
"""

from __future__ import annotations

import enum
from typing import TypeAlias

import msgspec

__all__ = [
    "AlgoOrderChanged",
    "AlgoStatus",
    "AuxData",
    "Bar",
    "BookDeltas",
    "BookSnapshot",
    "BorrowRate",
    "CancelAllOrders",
    "CancelOrder",
    "CarryCharged",
    "ClosePositions",
    "Command",
    "Event",
    "FundingRate",
    "IndexMarkPrice",
    "Liquidity",
    "MarketData",
    "Message",
    "ModifyOrder",
    "OpenInterest",
    "OperatorCommand",
    "OrderAccepted",
    "OrderCancelRejected",
    "OrderCanceled",
    "OrderDenied",
    "OrderEvent",
    "OrderExpired",
    "OrderFilled",
    "OrderListChanged",
    "OrderListStatus",
    "OrderRejected",
    "OrderSide",
    "OrderStatusUnknown",
    "OrderType",
    "OrderUpdated",
    "ParamValue",
    "PositionChanged",
    "QuoteTick",
    "SetStrategyEnabled",
    "SetStrategyParams",
    "SetTradingState",
    "Side",
    "SubmitOrder",
    "TimeInForce",
    "TimerFired",
    "TradeTick",
    "TradingState",
    "TradingStateChanged",
    "decode",
    "encode",
]


class OrderSide(enum.IntEnum):
    BUY = 1
    SELL = -1

    @property
    def sign(self) -> int:
        return int(self)


class Side(enum.IntEnum):
    """Aggressor side of a trade (NONE when the venue does not say)."""

    NONE = 0
    BUY = 1
    SELL = -1


class OrderType(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(enum.StrEnum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class OrderListStatus(enum.StrEnum):
    """What happened to a linked order list (OTO, OCO, bracket) as a whole."""

    SUBMITTED = "submitted"  # its first legs went to risk
    RELEASED = "released"  # a parent's fill released children for the filled quantity
    CANCELED = "canceled"  # a leg was denied, rejected or canceled: its dependents are canceled
    COMPLETED = "completed"  # every leg is closed


class AlgoStatus(enum.StrEnum):
    """Where a parent order worked by an execution algorithm stands (its children are orders)."""

    WORKING = "working"  # accepted by the core: its algorithm releases children
    DENIED = "denied"  # refused before any child went out (no market data, bad parameters)
    COMPLETED = "completed"  # its children filled its whole quantity
    CANCELED = "canceled"  # canceled by the strategy: its open children are canceled
    FAILED = "failed"  # a child was refused, or the algorithm could not do what it promised


class Liquidity(enum.StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class TradingState(enum.StrEnum):
    ACTIVE = "active"
    REDUCING = "reducing"  # close-only
    HALTED = "halted"


class Message(msgspec.Struct, frozen=True, tag=True, gc=False):
    """Fields are keyword-only on every message except the three market data ticks below,
    which the data loader builds positionally (``seq, ts_event, ts_init, instrument_id, …``
    in declaration order: measurably cheaper for millions of rows)."""

    seq: int
    ts_event: int
    ts_init: int


# --- market data -------------------------------------------------------------------------------


class QuoteTick(Message, frozen=True, tag=True, gc=False):
    instrument_id: str
    bid_price: int
    bid_size: int
    ask_price: int
    ask_size: int


class TradeTick(Message, frozen=True, tag=True, gc=False):
    instrument_id: str
    price: int
    size: int
    aggressor: Side = Side.NONE
    trade_id: str = ""


class Bar(Message, frozen=True, tag=True, gc=False):
    """An OHLCV bar; ``ts_event`` is the bar's *close* time, ``interval_ns`` its length."""

    instrument_id: str
    open: int
    high: int
    low: int
    close: int
    volume: int
    interval_ns: int


Level: TypeAlias = tuple[int, int]  # (price, size); size 0 removes the level


class BookDeltas(Message, frozen=True, kw_only=True, tag=True, gc=False):
    """One venue update of an L2 book: levels set to a new size (0 deletes).

    ``first_update_id``/``last_update_id`` is the venue's update-id range of this message and
    ``prev_update_id`` the last id of the message before it (-1 when the venue does not say):
    the book detects gaps from them.
    """

    instrument_id: str
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()
    first_update_id: int = -1
    last_update_id: int = -1
    prev_update_id: int = -1


class BookSnapshot(Message, frozen=True, kw_only=True, tag=True, gc=False):
    instrument_id: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    last_update_id: int = -1


MarketData: TypeAlias = QuoteTick | TradeTick | Bar | BookDeltas | BookSnapshot


# --- auxiliary data ----------------------------------------------------------------------------
# What a venue publishes beside prices. Rates are fixed-point fractions (``fixed("0.0001")`` is
# 0.01%). A feed of these goes stale like any data: a strategy declares what it needs
# (:class:`runtime.auxdata.AuxNeed`) and is held from new entries while any of it is stale.


class FundingRate(Message, frozen=True, kw_only=True, tag=True, gc=False):
    """The funding rate of a perpetual for the funding at ``funding_ts``.

    A *settled* rate (``ts_event >= funding_ts``: a venue's funding history, replayed) charges
    or pays every open position of the instrument once, at ``mark_price`` (or its last mark
    when 0): ``-notional * rate`` (a long pays a positive rate). A rate published before its
    funding time (a live ``premiumIndex`` poll: ``funding_ts`` is the next funding) is an
    estimate: it informs strategies and charges nothing.
    """

    instrument_id: str
    rate: int  # per funding period, fixed-point fraction (signed)
    funding_ts: int  # ns: the funding time this rate is for
    mark_price: int = 0  # fixed point; 0 = not published with the rate


class OpenInterest(Message, frozen=True, kw_only=True, tag=True, gc=False):
    instrument_id: str
    open_interest: int  # contracts (base units), fixed point


class IndexMarkPrice(Message, frozen=True, kw_only=True, tag=True, gc=False):
    """A derivative's mark price and its underlying index (0 = not published)."""

    instrument_id: str
    mark_price: int
    index_price: int = 0


class BorrowRate(Message, frozen=True, kw_only=True, tag=True, gc=False):
    """The annual cost of borrowing an instrument to hold it short (fixed-point fraction):
    from here on, short positions accrue it daily (:mod:`runtime.carry`)."""

    instrument_id: str
    rate: int


AuxData: TypeAlias = FundingRate | OpenInterest | IndexMarkPrice | BorrowRate


# --- commands ----------------------------------------------------------------------------------


class SubmitOrder(Message, frozen=True, kw_only=True, tag=True, gc=False):
    client_order_id: str
    strategy_id: str
    instrument_id: str
    side: OrderSide
    order_type: OrderType
    quantity: int
    price: int | None = None  # limit price (LIMIT, STOP_LIMIT)
    trigger_price: int | None = None  # stop trigger (STOP, STOP_LIMIT)
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    #: a protective leg (a stop, a take-profit, an exit of a bracket): it only closes what is
    #: held, so it counts toward neither the strategy's target nor risk's worst-case position;
    #: ``target_position`` cancels or shrinks it as the position it protects changes
    protective: bool = False
    #: a leg of a list the venue links natively (``runtime.linked``; an empty string: none):
    #: the client order id of the order that releases it when it fills (the venue holds it
    #: until then), and the group whose legs the venue cancels or reduces as one fills
    parent_id: str = ""
    oca_group: str = ""
    #: a trailing stop the venue trails itself (``runtime.linked``; the broker declares it):
    #: the distance from the last price, as a price (fixed point) or in basis points of it;
    #: ``trigger_price`` is the initial stop. Both 0: not a venue-trailed stop
    trail_amount: int = 0
    trail_bps: int = 0


class CancelOrder(Message, frozen=True, kw_only=True, tag=True, gc=False):
    client_order_id: str
    strategy_id: str
    instrument_id: str


class ModifyOrder(Message, frozen=True, kw_only=True, tag=True, gc=False):
    client_order_id: str
    strategy_id: str
    instrument_id: str
    quantity: int | None = None
    price: int | None = None
    trigger_price: int | None = None


Command: TypeAlias = SubmitOrder | CancelOrder | ModifyOrder


# --- operator commands -------------------------------------------------------------------------
# ``ts_event``/``ts_init``: when the operator acted, on the clock of the actor that took the
# command (the data clock in a session); a kernel handles them at its own clock.


class SetTradingState(Message, frozen=True, kw_only=True, tag=True, gc=False):
    """Halt (nothing new is sent), reduce-only (close only) or resume (active)."""

    state: TradingState
    reason: str


class CancelAllOrders(Message, frozen=True, kw_only=True, tag=True, gc=False):
    """Cancel every open order (of one strategy when ``strategy_id`` is set)."""

    reason: str
    strategy_id: str = ""


class ClosePositions(Message, frozen=True, kw_only=True, tag=True, gc=False):
    """A market order closing each open position whose instrument has no order working (the
    cancels of a flatten come first), from the ``operator`` strategy id, through risk."""

    reason: str


#: a strategy param as the core holds it (fixed-point ints for prices and quantities)
ParamValue: TypeAlias = bool | int | float | str | None


class SetStrategyEnabled(Message, frozen=True, kw_only=True, tag=True, gc=False):
    """A disabled strategy sees no market data or timers (its order events still reach it)."""

    strategy_id: str
    enabled: bool


class SetStrategyParams(Message, frozen=True, kw_only=True, tag=True, gc=False):
    """New values for some of a strategy's params, in the core's units (fixed point where the
    params model declares ``Qty``/``Price``), checked against its params model."""

    strategy_id: str
    params: dict[str, ParamValue]


OperatorCommand: TypeAlias = (
    SetTradingState | CancelAllOrders | ClosePositions | SetStrategyEnabled | SetStrategyParams
)


# --- events ------------------------------------------------------------------------------------


class OrderAccepted(Message, frozen=True, kw_only=True, tag=True, gc=False):
    client_order_id: str
    strategy_id: str
    instrument_id: str
    venue_order_id: str


class OrderDenied(Message, frozen=True, kw_only=True, tag=True, gc=False):
    """Our own risk check refused the order (it never reached a venue)."""

    client_order_id: str
    strategy_id: str
    instrument_id: str
    reason_code: str
    reason: str


class OrderRejected(Message, frozen=True, kw_only=True, tag=True, gc=False):
    """The venue refused the order."""

    client_order_id: str
    strategy_id: str
    instrument_id: str
    reason: str
    venue_code: str = ""


class OrderFilled(Message, frozen=True, kw_only=True, tag=True, gc=False, omit_defaults=True):
    """One execution of an order. ``last_qty``/``cum_qty``/``leaves_qty`` are the order's
    quantities. ``fee`` is the whole fee as money in ``currency``, however it was paid;
    ``fee_qty`` is the part of it the venue took *in kind*, in the instrument's own units (a
    spot buy whose fee is deducted from the base asset received: the account gets
    ``last_qty - fee_qty``). The fee in kind is already in ``fee`` at its value; what the
    account holds changes by :attr:`position_change`, not by ``last_qty``. ``fee_qty`` is
    omitted from the encoding when 0, so fills without it encode (and hash) as before."""

    client_order_id: str
    strategy_id: str
    instrument_id: str
    venue_order_id: str
    fill_id: str
    side: OrderSide
    last_qty: int
    last_price: int
    cum_qty: int
    leaves_qty: int
    fee: int  # money, in the instrument's currency, fixed point (includes the fee in kind)
    currency: str
    liquidity: Liquidity
    fee_qty: int = 0  # instrument units paid as fee in kind, fixed point (>= 0)

    @property
    def position_change(self) -> int:
        """Signed change of what the account holds: ``side * last_qty - fee_qty``."""
        return self.last_qty * self.side - self.fee_qty


class OrderCanceled(Message, frozen=True, kw_only=True, tag=True, gc=False):
    client_order_id: str
    strategy_id: str
    instrument_id: str
    reason: str = ""


class OrderCancelRejected(Message, frozen=True, kw_only=True, tag=True, gc=False):
    client_order_id: str
    strategy_id: str
    instrument_id: str
    reason: str


class OrderExpired(Message, frozen=True, kw_only=True, tag=True, gc=False):
    client_order_id: str
    strategy_id: str
    instrument_id: str


class OrderUpdated(Message, frozen=True, kw_only=True, tag=True, gc=False):
    client_order_id: str
    strategy_id: str
    instrument_id: str
    quantity: int
    price: int | None = None
    trigger_price: int | None = None


class OrderStatusUnknown(Message, frozen=True, kw_only=True, tag=True, gc=False):
    """A broker adapter cannot tell whether a command reached the venue (timeout, lost session).

    Not a state change of the order: it tells the gateway to reconcile before anything is resent
    (an order whose outcome is unknown is never sent again). The reconciliation that follows
    produces the real reports (ack, fills, reject or cancel) or confirms that the order never
    arrived (then an ``OrderRejected`` with ``venue_code="not_found"``). Runners route it to the
    reconciler, not to the kernel's order state machine.
    """

    client_order_id: str
    strategy_id: str
    instrument_id: str
    command: str  # "submit" | "cancel" | "modify"
    reason: str


class PositionChanged(Message, frozen=True, kw_only=True, tag=True, gc=False):
    instrument_id: str
    quantity: int  # signed: long > 0, short < 0
    avg_price: int
    realized_pnl: int


class TradingStateChanged(Message, frozen=True, kw_only=True, tag=True, gc=False):
    state: TradingState
    reason: str


class CarryCharged(Message, frozen=True, kw_only=True, tag=True, gc=False):
    """Cash moved by holding a position, not by trading it: ``funding`` on a perpetual at a
    funding time, ``borrow`` on a short for one day. ``amount`` is the signed cash change
    (received > 0, paid < 0); ``quantity`` the position it was charged on, ``price`` the mark
    used and ``rate`` the rate applied (per funding period; per year for borrow)."""

    instrument_id: str
    kind: str  # "funding" | "borrow"
    quantity: int
    price: int
    rate: int
    amount: int
    currency: str


class TimerFired(Message, frozen=True, kw_only=True, tag=True, gc=False):
    name: str


class OrderListChanged(Message, frozen=True, kw_only=True, tag=True, gc=False):
    """A linked order list changed as a whole (its legs' own events come as usual);
    ``client_order_ids``: the legs concerned (released, canceled, or all)."""

    list_id: str
    strategy_id: str
    instrument_id: str
    status: OrderListStatus
    client_order_ids: tuple[str, ...] = ()
    reason: str = ""


class AlgoOrderChanged(Message, frozen=True, kw_only=True, tag=True, gc=False):
    """A parent order worked by an execution algorithm changed status (its children's own
    events come as usual). ``arrival_price``: the mid (or latest price) when it was submitted;
    ``avg_price``: its children's average fill price (``None`` before a fill)."""

    parent_id: str
    strategy_id: str
    instrument_id: str
    algorithm: str
    status: AlgoStatus
    side: OrderSide
    quantity: int
    filled_qty: int
    arrival_price: int | None = None
    avg_price: int | None = None
    reason: str = ""


OrderEvent: TypeAlias = (
    OrderAccepted
    | OrderDenied
    | OrderRejected
    | OrderFilled
    | OrderCanceled
    | OrderCancelRejected
    | OrderExpired
    | OrderUpdated
    | OrderStatusUnknown
)
Event: TypeAlias = (
    OrderEvent
    | PositionChanged
    | TradingStateChanged
    | TimerFired
    | OrderListChanged
    | AlgoOrderChanged
    | CarryCharged
)

AnyMessage: TypeAlias = MarketData | AuxData | Command | OperatorCommand | Event

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(AnyMessage)


def encode(message: Message) -> bytes:
    """Compact binary encoding (msgpack, tagged) for journals and the wire."""
    return _ENCODER.encode(message)


def decode(data: bytes) -> AnyMessage:
    """Inverse of :func:`encode`."""
    message: AnyMessage = _DECODER.decode(data)
    return message
