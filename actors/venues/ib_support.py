"""Interactive Brokers helpers: the client library, config, contracts, error codes, reset window.

``ib_async`` (the maintained successor of ``ib_insync``) is used when installed, ``ib_insync`` as
a drop-in fallback (same API). Nothing here leaks library types past :mod:`actors.venues.ib`.

Error codes (TWS API message codes) are classified once, here:

* order rejects (``REJECT_CODES``): the order was refused; the Cancelled status that precedes
  the error is a reject, not a cancel;
* ``202`` "Order Canceled": a cancel confirmation;
* cancel rejects (``CANCEL_REJECT_CODES``): a cancel or modify for an order that cannot be
  canceled/modified;
* connectivity: ``1100`` lost (block new orders), ``1101``/``1102`` restored (reconcile), ``504``
  not connected; ``100`` message rate exceeded (a failure for the circuit breaker);
* historical pacing: ``162`` (pacing violation or no data), ``420`` (invalid real-time query).
"""

from __future__ import annotations

import datetime as dt
import importlib
from types import ModuleType
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from actors.venues.common import to_fixed
from runtime.errors import ConfigError
from runtime.messages import OrderSide, OrderType, SubmitOrder, TimeInForce
from runtime.values import from_fixed

__all__ = [
    "CANCELED_CODE",
    "CANCEL_REJECT_CODES",
    "CONNECTIVITY_LOST",
    "CONNECTIVITY_RESTORED",
    "OCA_REDUCE_WITH_BLOCK",
    "PACING_CODES",
    "RATE_EXCEEDED",
    "REJECT_CODES",
    "TRIGGER_LAST",
    "ContractSpec",
    "IbConfig",
    "build_order",
    "import_ib",
    "in_reset_window",
    "to_fixed",
    "to_ns",
]

REJECT_CODES = frozenset(
    {
        103,
        104,
        105,
        106,
        107,
        109,
        110,
        111,
        113,
        116,
        117,
        118,
        119,
        120,
        121,
        122,
        123,
        124,
        125,
        126,
        129,
        131,
        133,
        134,
        135,
        136,
        137,
        140,
        141,
        154,
        161,
        200,
        201,
        203,
        382,
        383,
        387,
        388,
        434,
        435,
        436,
        437,
        10147,
        10148,
        10149,
    }
)
CANCEL_REJECT_CODES = frozenset({135, 161, 10147, 10148})
CANCELED_CODE = 202
CONNECTIVITY_LOST = frozenset({1100})
CONNECTIVITY_RESTORED = frozenset({1101, 1102})
RATE_EXCEEDED = 100
PACING_CODES = frozenset({162, 420})


def import_ib() -> ModuleType:
    """``ib_async`` when installed, else ``ib_insync`` (same API); a clear error otherwise."""
    for name in ("ib_async", "ib_insync"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise ConfigError("the IB gateway needs ib_async (pip install ib_async) or ib_insync")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContractSpec(_Frozen):
    """How an instrument is named at IB."""

    symbol: str
    sec_type: str = "STK"
    exchange: str = "SMART"
    currency: str = "USD"
    last_trade: str = ""  # futures: YYYYMM or YYYYMMDD
    multiplier: str = ""
    con_id: int = 0

    def build(self, ib: ModuleType) -> Any:
        return ib.Contract(
            secType=self.sec_type,
            symbol=self.symbol,
            exchange=self.exchange,
            currency=self.currency,
            lastTradeDateOrContractMonth=self.last_trade,
            multiplier=self.multiplier,
            conId=self.con_id,
        )

    def matches(self, contract: Any) -> bool:
        if self.con_id and contract.conId:
            return bool(self.con_id == contract.conId)
        return bool(
            contract.symbol == self.symbol
            and contract.secType == self.sec_type
            and (
                not self.last_trade
                or str(contract.lastTradeDateOrContractMonth).startswith(self.last_trade)
            )
        )


class IbConfig(_Frozen):
    """The IB gateway's config block (YAML ``broker:`` with ``kind: ib``)."""

    kind: Literal["ib"] = "ib"
    #: IB links orders itself: a bracket's children carry ``parentId`` and the exits an OCA
    #: group (``actors.venues.broker_config.native_lists``)
    native_lists: ClassVar[bool] = True
    #: IB takes stop and stop-limit orders (``STP``, ``STP LMT``; ``broker_config.emulated_stops``)
    native_stops: ClassVar[bool] = True
    #: IB trails stops itself (``TRAIL``, off the last price: ``broker_config.native_trailing``):
    #: a trailing stop keeps trailing at IB while Tradewind is down, and costs no modify per
    #: new high. ``false``: the core moves a plain ``STP`` as it does for every other broker
    native_trailing: bool = True
    host: str = "127.0.0.1"
    port: int = 4002  # IB Gateway paper; 4001 live, 7497/7496 TWS paper/live
    client_id: int = 17
    account: str = ""
    paper: bool = True  # a paper account; live needs live: true and --confirm-live
    live: bool = False
    contracts: dict[str, ContractSpec] = Field(default_factory=dict)  # instrument id -> contract
    messages_per_s: float = Field(40.0, gt=0, le=50)  # IB: 50 msg/s; keep below
    reset_timezone: str = "America/New_York"
    reset_window: tuple[str, str] = ("23:45", "00:45")  # daily gateway reset: no new orders
    connect_timeout_s: float = 4.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    reconcile_every_s: float = 60.0
    commission_wait_s: float = 2.0  # a fill waits this long for its commission report
    reject_grace_s: float = 0.5  # a Cancelled status waits this long for its error code
    breaker_threshold: int = 3

    def contract_for(self, instrument_id: str) -> ContractSpec:
        try:
            return self.contracts[instrument_id]
        except KeyError:
            raise ConfigError(
                f"no IB contract for {instrument_id}", field=f"broker.contracts.{instrument_id}"
            ) from None

    def instrument_of(self, contract: Any) -> str | None:
        for instrument_id, spec in self.contracts.items():
            if spec.matches(contract):
                return instrument_id
        return None


_ORDER_TYPES = {
    OrderType.MARKET: "MKT",
    OrderType.LIMIT: "LMT",
    OrderType.STOP: "STP",
    OrderType.STOP_LIMIT: "STP LMT",
}
_TIF = {
    TimeInForce.DAY: "DAY",
    TimeInForce.GTC: "GTC",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
}


#: IB's ``triggerMethod`` "last" (TWS API Order: 0 default, 1 double bid/ask, 2 last, 3 double
#: last, 4 bid/ask, 7 last or bid/ask, 8 mid-point): a venue-trailed stop follows the last price,
#: as ``runtime.trailing``'s ``last`` reference does
TRIGGER_LAST = 2

#: an OCA group's other orders are reduced by each fill, "with block" (only one routed at a
#: time: overfill protection); cancelled when nothing is left
OCA_REDUCE_WITH_BLOCK = 2


def build_order(ib: ModuleType, command: SubmitOrder, *, account: str, parent_order_id: int = 0,
                transmit: bool = True) -> Any:
    """The IB order for ``command``; the client order id travels as ``orderRef``.

    A leg of a linked list: ``parent_order_id`` (the IB order id of ``command.parent_id``: IB
    holds the child until the parent fills, and cancels it with the parent), ``transmit``
    False while more legs of the list follow (IB holds them all until the last one, sent with
    ``transmit`` True, releases the lot), and ``command.oca_group`` as ``ocaGroup`` with
    :data:`OCA_REDUCE_WITH_BLOCK`.

    A stop the venue trails (``trail_amount`` or ``trail_bps``) is IB's ``TRAIL``: the distance
    as ``auxPrice`` (a price) or ``trailingPercent`` (basis points / 100), the initial stop as
    ``trailStopPrice``, trailing the last price (``triggerMethod`` :data:`TRIGGER_LAST`).

    Time in force maps one to one (DAY, GTC, IOC, FOK are IB ``tif`` values). Post-only is
    refused with a :class:`ConfigError` naming the flag (the gateway reports it as a reject):
    the TWS API ``Order`` has no post-only or add-liquidity-only attribute for the markets this
    adapter trades, and a plain limit order sent in its place could take liquidity.
    """
    if command.post_only:
        raise ConfigError(
            "IB has no post-only flag (the TWS API Order has no add-liquidity-only attribute): "
            "post_only refused rather than sent as a limit order that may take liquidity"
        )
    order = ib.Order(
        action="BUY" if command.side is OrderSide.BUY else "SELL",
        totalQuantity=float(from_fixed(command.quantity)),
        orderType=_ORDER_TYPES[command.order_type],
        tif=_TIF[command.time_in_force],
        orderRef=command.client_order_id,
        account=account,
        transmit=transmit,
    )
    if parent_order_id:
        order.parentId = parent_order_id
    if command.oca_group:
        order.ocaGroup, order.ocaType = command.oca_group, OCA_REDUCE_WITH_BLOCK
    if command.price is not None:
        order.lmtPrice = float(from_fixed(command.price))
    if command.trail_amount or command.trail_bps:
        _trail(order, command)
    elif command.trigger_price is not None:
        order.auxPrice = float(from_fixed(command.trigger_price))
    return order


def _trail(order: Any, command: SubmitOrder) -> None:
    if command.order_type is not OrderType.STOP:
        raise ConfigError(f"a trailing {command.order_type} order: IB's TRAIL is a stop order")
    order.orderType, order.triggerMethod = "TRAIL", TRIGGER_LAST
    if command.trail_amount:
        order.auxPrice = float(from_fixed(command.trail_amount))
    else:
        order.trailingPercent = command.trail_bps / 100
    if command.trigger_price is not None:
        order.trailStopPrice = float(from_fixed(command.trigger_price))


def to_ns(moment: dt.datetime | None, default_ns: int) -> int:
    if moment is None:
        return default_ns
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1_000_000) * 1_000


def in_reset_window(now_ns: int, config: IbConfig) -> bool:
    """Is ``now_ns`` inside the gateway's daily reset window (which may span midnight)?"""
    local = dt.datetime.fromtimestamp(now_ns / 1e9, ZoneInfo(config.reset_timezone))
    minute = local.hour * 60 + local.minute
    start, end = (_minutes(t) for t in config.reset_window)
    return start <= minute < end if start <= end else minute >= start or minute < end


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)
