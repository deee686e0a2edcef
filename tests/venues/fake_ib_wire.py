"""The fake IB gateway's wire: message bodies in the field order ib_async's decoder reads at
server version :data:`SERVER_VERSION`, the broker-side order and execution records, framing."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SERVER_VERSION",
    "Execution",
    "FakeOrder",
    "commission_fields",
    "exec_fields",
    "open_order_fields",
    "read_message",
    "status_fields",
]

SERVER_VERSION = 176  # < 177: openOrder carries faProfile; >= 166: errors carry a JSON field


@dataclass
class FakeOrder:
    order_id: int
    perm_id: int
    client_id: int
    contract: list[str]  # conId, symbol, secType, lastTrade, strike, right, multiplier, exchange,
    # primaryExchange, currency, localSymbol, tradingClass
    action: str
    quantity: float
    order_type: str
    lmt_price: str
    aux_price: str
    tif: str
    account: str
    order_ref: str
    status: str = "Submitted"
    session: int = 0  # the gateway session that took it (order ids restart with a session)
    filled: float = 0.0
    avg_price: float = 0.0
    parent_id: int = 0  # the order id of the parent (an attached order: a bracket's child)
    oca_group: str = ""
    oca_type: int = 0  # 1 cancel the others, 2/3 reduce them proportionately
    trigger_method: int = 0  # 2: last
    trail_stop: float | None = None  # a TRAIL's stop now (trailStopPrice, then ratcheted)
    trail_percent: float = 0.0  # a TRAIL's distance in percent (else auxPrice: a price)

    def __post_init__(self) -> None:
        self.placed_qty = self.quantity  # what an OCA group reduces in proportion to

    @property
    def remaining(self) -> float:
        return self.quantity - self.filled


@dataclass
class Execution:
    exec_id: str
    order: FakeOrder
    shares: float
    price: float
    cum_qty: float
    commission: float
    time: str


def status_fields(o: FakeOrder) -> list[Any]:
    return [
        3,
        o.order_id,
        o.status,
        o.filled,
        o.remaining,
        o.avg_price,
        o.perm_id,
        o.parent_id,
        o.avg_price,
        o.client_id,
        "",
        0.0,
    ]


def exec_fields(ex: Execution, req_id: int) -> list[Any]:
    o = ex.order
    c = o.contract
    return [
        11,
        req_id,
        o.order_id,
        c[0] or 0,
        c[1],
        c[2],
        c[3],
        c[4] or 0.0,
        c[5],
        c[6],
        c[7],
        c[9],
        c[10] or c[1],
        c[11] or c[1],
        ex.exec_id,
        ex.time,
        o.account,
        c[7],
        "BOT" if o.action == "BUY" else "SLD",
        ex.shares,
        ex.price,
        o.perm_id,
        o.client_id,
        0,
        ex.cum_qty,
        o.avg_price,
        o.order_ref,
        "",
        "",
        "",
        2,
    ]


def commission_fields(ex: Execution) -> list[Any]:
    return [59, 1, ex.exec_id, ex.commission, "USD", "", "", ""]


def open_order_fields(o: FakeOrder) -> list[Any]:
    c = o.contract
    head = [
        5,
        o.order_id,
        c[0] or 0,
        c[1],
        c[2],
        c[3],
        c[4] or 0.0,
        c[5],
        c[6],
        c[7],
        c[9],
        c[10] or c[1],
        c[11] or c[1],
        o.action,
        o.quantity,
        o.order_type,
        o.lmt_price,
        o.aux_price,
        o.tif,
        o.oca_group,
        o.account,
        "O",
        0,
        o.order_ref,
        o.client_id,
        o.perm_id,
        0,
        0,
        0.0,
        "",
        "",
        "",
        "",
        "",
        "",
    ]  # ... faGroup, faMethod, faPct, faProfile
    middle = [
        "",
        "",
        "",
        "",
        "",
        0,
        "",
        "",
        -1,
        "",
        "",
        "",
        "",
        "",
        "",
        0,
        0,
        0,
        0,
        "",
        0,
        0,
        "",
        0,
        0,
        "",
        0,
        "",
        "",
    ]  # modelCode .. deltaNeutralAuxPrice
    middle += [0, 0, "", "", "", "", "", 0, 0, 0, "", "", "", "", 0, "", "", 0, 0, ""]
    state = [0, 0, o.status] + [""] * 14 + [0, 0, 0]  # solicited, whatIf, status ..
    tail = [
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        0,
        0,
        "",
        0,
        "",
        0,
        0,
        "",
        "",
        "",
        "",
        "",
    ]
    return head + middle + state + tail


async def read_message(reader: asyncio.StreamReader) -> list[str]:
    (size,) = struct.unpack(">I", await reader.readexactly(4))
    fields = (await reader.readexactly(size)).decode().split("\0")
    return fields[:-1] if fields and fields[-1] == "" else fields
