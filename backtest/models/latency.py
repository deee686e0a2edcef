"""Latency models: how long a command takes to reach the venue, and a report to come back.

Every draw comes from the ``numpy.random.Generator`` given to :func:`build_latency`, in the order
the venue asks (commands in send order, reports in the order they are produced), so the same
inputs and seed give the same timestamps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

from backtest.models.config import (
    ConstantLatencyConfig,
    EmpiricalLatencyDist,
    LatencyConfig,
    LatencyDist,
    LognormalLatencyDist,
    SampledLatencyConfig,
)

__all__ = ["ConstantLatency", "LatencyModel", "SampledLatency", "build_latency"]


class LatencyModel(Protocol):
    def entry_ns(self) -> int:
        """Delay from sending a command to its arrival at the venue."""
        ...

    def response_ns(self) -> int:
        """Delay from the venue producing a report to the trader receiving it."""
        ...


class ConstantLatency:
    __slots__ = ("_entry_ns", "_response_ns")

    def __init__(self, entry_ns: int, response_ns: int) -> None:
        self._entry_ns = entry_ns
        self._response_ns = response_ns

    def entry_ns(self) -> int:
        return self._entry_ns

    def response_ns(self) -> int:
        return self._response_ns


Sampler = Callable[[], int]


class SampledLatency:
    __slots__ = ("_entry", "_response")

    def __init__(self, entry: Sampler, response: Sampler) -> None:
        self._entry = entry
        self._response = response

    def entry_ns(self) -> int:
        return self._entry()

    def response_ns(self) -> int:
        return self._response()


class _Lognormal:
    """Draws from a lognormal distribution, clipped to ``[min_ns, max_ns]`` (a class, not a
    closure: a paper venue's snapshot pickles its models)."""

    def __init__(self, dist: LognormalLatencyDist, rng: np.random.Generator) -> None:
        self.mu, self.sigma = math.log(dist.median_ns), dist.sigma
        self.low, self.high = dist.min_ns, dist.max_ns
        self.rng = rng

    def __call__(self) -> int:
        value = int(self.rng.lognormal(self.mu, self.sigma))
        if self.high is not None and value > self.high:
            value = self.high
        return self.low if value < self.low else value


class _Empirical:
    """Draws by linear interpolation between the empirical quantiles."""

    def __init__(self, dist: EmpiricalLatencyDist, rng: np.random.Generator) -> None:
        self.quantiles = dist.quantiles_ns
        self.steps = len(self.quantiles) - 1
        self.rng = rng

    def __call__(self) -> int:
        position = float(self.rng.random()) * self.steps
        index = min(int(position), self.steps - 1)
        low, high = self.quantiles[index], self.quantiles[index + 1]
        return low + int((high - low) * (position - index))


def _sampler(dist: LatencyDist, rng: np.random.Generator) -> Sampler:
    if isinstance(dist, LognormalLatencyDist):
        return _Lognormal(dist, rng)
    return _Empirical(dist, rng)


def build_latency(config: LatencyConfig, rng: np.random.Generator) -> LatencyModel:
    """The latency model a config names."""
    if isinstance(config, ConstantLatencyConfig):
        return ConstantLatency(config.entry_ns, config.response_ns)
    if isinstance(config, SampledLatencyConfig):
        return SampledLatency(_sampler(config.entry, rng), _sampler(config.response, rng))
    raise TypeError(f"not a latency config: {config!r}")
