"""The simulated venue (backtests and the paper broker); see :mod:`backtest.venue.simulated`."""

from backtest.venue.sessions import day_end_ns
from backtest.venue.simulated import SimulatedVenue

__all__ = ["SimulatedVenue", "day_end_ns"]
