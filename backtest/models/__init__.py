"""The simulated venue's models, chosen as data: latency, fills, slippage, fees."""

from backtest.models.config import (
    FeeConfig,
    FillConfig,
    LatencyConfig,
    SlippageConfig,
    VenueModels,
    config_error,
)
from backtest.models.fees import FeeModel, build_fees
from backtest.models.fills import FillModel, build_fill_model
from backtest.models.latency import LatencyModel, build_latency
from backtest.models.slippage import SlippageModel, build_slippage

__all__ = [
    "FeeConfig",
    "FeeModel",
    "FillConfig",
    "FillModel",
    "LatencyConfig",
    "LatencyModel",
    "SlippageConfig",
    "SlippageModel",
    "VenueModels",
    "build_fees",
    "build_fill_model",
    "build_latency",
    "build_slippage",
    "config_error",
]
