"""Fast L2 replay of real order-book captures with queue-position fills (see docs/l2.md).

Two drivers over one compiled venue: :class:`L2KernelReplay` runs core strategies through the
kernel (risk, order state machine, portfolio); :class:`L2ReplayEngine` runs the lightweight
:class:`L2Strategy` protocol without the core.
"""

from backtest.l2.core import L2KernelReplay, L2KernelResult
from backtest.l2.data import L2Events, from_arrays, load_binance_capture, parse_binance_capture
from backtest.l2.engine import L2ReplayConfig, L2ReplayEngine, L2ReplayResult
from backtest.l2.strategy import (
    BookView,
    L2Fill,
    L2Strategy,
    LocalOrder,
    LocalOrderStatus,
    MarketMaker,
    MarketMakerParams,
    OrderSink,
)

__all__ = [
    "BookView",
    "L2Events",
    "L2Fill",
    "L2KernelReplay",
    "L2KernelResult",
    "L2ReplayConfig",
    "L2ReplayEngine",
    "L2ReplayResult",
    "L2Strategy",
    "LocalOrder",
    "LocalOrderStatus",
    "MarketMaker",
    "MarketMakerParams",
    "OrderSink",
    "from_arrays",
    "load_binance_capture",
    "parse_binance_capture",
]
