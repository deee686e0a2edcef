"""Fast L2 replay of real order-book captures with queue-position fills (see docs/l2.md)."""

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
