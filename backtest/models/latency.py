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


def _lognormal(dist: LognormalLatencyDist, rng: np.random.Generator) -> Sampler:
    mu = math.log(dist.median_ns)
    sigma = dist.sigma
    low, high = dist.min_ns, dist.max_ns

    def draw() -> int:
        value = int(rng.lognormal(mu, sigma))
        if high is not None and value > high:
            value = high
        return low if value < low else value

    return draw


def _empirical(dist: EmpiricalLatencyDist, rng: np.random.Generator) -> Sampler:
    quantiles = dist.quantiles_ns
    steps = len(quantiles) - 1

    def draw() -> int:
        position = float(rng.random()) * steps
        index = min(int(position), steps - 1)
        low, high = quantiles[index], quantiles[index + 1]
        return low + int((high - low) * (position - index))

    return draw


def _sampler(dist: LatencyDist, rng: np.random.Generator) -> Sampler:
    if isinstance(dist, LognormalLatencyDist):
        return _lognormal(dist, rng)
    return _empirical(dist, rng)


def build_latency(config: LatencyConfig, rng: np.random.Generator) -> LatencyModel:
    """The latency model a config names."""
    if isinstance(config, ConstantLatencyConfig):
        return ConstantLatency(config.entry_ns, config.response_ns)
    if isinstance(config, SampledLatencyConfig):
        return SampledLatency(_sampler(config.entry, rng), _sampler(config.response, rng))
    raise TypeError(f"not a latency config: {config!r}")
