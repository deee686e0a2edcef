"""What an operator's cancel-all and close-positions commands send: pure functions over the
kernel's open orders and positions, at its clock (``runtime.kernel.Kernel.on_operator`` puts
them through risk like any order)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from runtime.ledger import cancel_of
from runtime.messages import CancelOrder, OrderSide, OrderType, SubmitOrder, TimeInForce
from runtime.orders import ClientOrderIdGenerator, Order
from runtime.portfolio import Position
from runtime.roster import OPERATOR

__all__ = ["cancels", "close_outs"]


def cancels(open_orders: Iterable[Order], strategy_id: str, now_ns: int) -> list[CancelOrder]:
    """A cancel per open order (of ``strategy_id`` when set), oldest first."""
    orders = sorted(open_orders, key=lambda o: (o.ts_init, o.client_order_id))
    return [cancel_of(o, now_ns) for o in orders if not strategy_id or o.strategy_id == strategy_id]


def close_outs(
    positions: Mapping[str, Position],
    open_orders: Iterable[Order],
    ids: ClientOrderIdGenerator,
    now_ns: int,
) -> list[SubmitOrder]:
    """A reduce-only market order per open position whose instrument has no order working
    (cancels not confirmed yet hold it back), from the operator's strategy id, in instrument
    order; ids from the kernel's generator, so a replay names them the same."""
    working = {o.instrument_id for o in open_orders}
    return [
        SubmitOrder(
            seq=0, ts_event=now_ns, ts_init=now_ns, client_order_id=ids.next(OPERATOR),
            strategy_id=OPERATOR, instrument_id=instrument_id,
            side=OrderSide.SELL if pos.quantity > 0 else OrderSide.BUY,
            order_type=OrderType.MARKET, quantity=abs(pos.quantity),
            time_in_force=TimeInForce.GTC, reduce_only=True,
        )
        for instrument_id, pos in sorted(positions.items())
        if pos.quantity and instrument_id not in working
    ]
