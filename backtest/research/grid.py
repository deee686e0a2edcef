"""Parameter sets of a study: a full grid or a seeded random sample, filtered by constraints.

Each set has a stable hash (sha256 of its canonical JSON), the key of its result row: the same
set always has the same hash, whatever order the grid lists values in.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from backtest.config import BacktestConfig
from backtest.research.config import CONSTRAINT_RE, RangeSpec, SampleConfig, StudyConfig

__all__ = ["ParamSet", "apply_params", "constraint_check", "expand", "param_hash", "strategy_id"]

ParamSet = dict[str, Any]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}  # fmt: skip


def param_hash(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(dict(params), sort_keys=True).encode()).hexdigest()[:16]


def _grid(grid: Mapping[str, list[Any]]) -> list[ParamSet]:
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]


def _draw(rng: np.random.Generator, spec: RangeSpec | list[Any]) -> Any:
    if isinstance(spec, list):
        return spec[int(rng.integers(len(spec)))]
    if spec.log:
        value = math.exp(rng.uniform(math.log(spec.low), math.log(spec.high)))
    else:
        value = rng.uniform(spec.low, spec.high)
    return round(value) if spec.integer else float(value)


def _sample(sample: SampleConfig, keep: Callable[[ParamSet], bool]) -> list[ParamSet]:
    """``n`` distinct sets satisfying the constraints (draws are deterministic in ``seed``)."""
    rng = np.random.default_rng(sample.seed)
    seen: dict[str, ParamSet] = {}
    for _ in range(sample.n * 50):
        params = {name: _draw(rng, spec) for name, spec in sample.space.items()}
        if keep(params):
            seen.setdefault(param_hash(params), params)
            if len(seen) == sample.n:
                break
    return list(seen.values())


def _constraint(text: str) -> Callable[[ParamSet], bool]:
    match = CONSTRAINT_RE.match(text)
    assert match is not None
    left, op, right = match.groups()

    def value(side: str, params: ParamSet) -> Any:
        return params[side] if side in params else float(side)

    return lambda params: bool(_OPS[op](value(left, params), value(right, params)))


def constraint_check(constraints: Sequence[str]) -> Callable[[ParamSet], bool]:
    """True for a parameter set that satisfies every constraint."""
    checks = [_constraint(text) for text in constraints]

    def keep(params: ParamSet) -> bool:
        return all(check(params) for check in checks)

    return keep


def expand(config: StudyConfig) -> list[ParamSet]:
    """Every parameter set of a grid or random study, in a deterministic order, constraints
    applied (a TPE search proposes its sets as it goes: :mod:`backtest.research.search`)."""
    if config.tpe is not None:
        raise ValueError("a TPE search has no parameter sets before it runs")
    keep = constraint_check(config.constraints)
    if config.grid is not None:
        sets = [p for p in _grid(config.grid) if keep(p)]
    else:
        assert config.sample is not None
        sets = _sample(config.sample, keep)
    unique: dict[str, ParamSet] = {}
    for params in sets:
        unique.setdefault(param_hash(params), params)
    return list(unique.values())


def strategy_id(config: StudyConfig, backtest: BacktestConfig) -> str:
    return config.strategy or backtest.strategies[0].id


def apply_params(
    backtest: BacktestConfig, strategy: str, params: Mapping[str, Any]
) -> BacktestConfig:
    """``backtest`` with ``params`` merged into strategy ``strategy``'s params."""
    specs = tuple(
        s.model_copy(update={"params": {**s.params, **params}}) if s.id == strategy else s
        for s in backtest.strategies
    )
    return backtest.model_copy(update={"strategies": specs})
