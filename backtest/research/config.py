"""Study configuration: sweeps and walk-forward studies, pydantic models loaded from YAML.

A study names a base backtest config (its instruments, data, venue models, risk, seed), the
strategy whose parameters vary, a grid, a seeded random sample or a seeded Bayesian (TPE)
search of parameters, optional
constraints between them (``fast < slow``) and an objective (a strategy metric, maximised or
minimised). A walk-forward study adds its windows. Errors are :class:`ConfigError` naming the file
and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backtest.config import BacktestConfig, load_config
from backtest.models.config import config_error
from backtest.yaml_source import read_yaml_source
from runtime.errors import ConfigError

__all__ = [
    "CONSTRAINT_RE",
    "ObjectiveConfig",
    "SampleConfig",
    "StudyConfig",
    "SweepConfig",
    "TpeConfig",
    "WalkForwardConfig",
    "WindowConfig",
    "base_backtest",
    "load_study",
    "study_hash",
]

CONSTRAINT_RE = re.compile(r"^\s*(\w+)\s*(<=|>=|<|>|==|!=)\s*(\w+|-?\d+(?:\.\d+)?)\s*$")
Scalar = int | float | str | bool


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ObjectiveConfig(_Frozen):
    metric: str = "sharpe"  # any key of the strategy's metrics (docs/metrics.md)
    goal: Literal["maximize", "minimize"] = "maximize"


class RangeSpec(_Frozen):
    low: float
    high: float
    integer: bool = True
    log: bool = False


class TpeConfig(_Frozen):
    """Bayesian search: ``n`` distinct parameter sets proposed by Optuna's TPE sampler.

    Proposals are asked ``batch`` at a time, run in parallel, and told back in the order they
    were asked, so the search depends on ``seed`` and ``batch`` only (not on the number of CPUs
    or which trial finished first), and replaying it against the store resumes it exactly.
    ``startup`` sets are drawn at random before TPE models the results.
    """

    n: int = Field(gt=0, le=100_000)
    seed: int = 0
    batch: int = Field(8, ge=1, le=1024)
    startup: int = Field(10, ge=1)
    space: dict[str, RangeSpec | list[Scalar]] = Field(min_length=1)


class SampleConfig(_Frozen):
    """``n`` parameter sets drawn with numpy's ``default_rng(seed)``: ranges or lists of choices."""

    n: int = Field(gt=0, le=1_000_000)
    seed: int = 0
    space: dict[str, RangeSpec | list[Scalar]] = Field(min_length=1)


class StatsConfig(_Frozen):
    pbo_blocks: int = Field(16, ge=2, le=20)  # S for CSCV: C(S, S/2) combinations

    @field_validator("pbo_blocks")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("must be even (CSCV splits the blocks in halves)")
        return value


class StudyStore(_Frozen):
    dsn: str | None = None  # default: TRADEWIND_STORE_DSN or chdb://var/clickhouse


class StudyConfig(_Frozen):
    name: str = Field(pattern=r"^[\w.]+$")
    backtest: str | dict[str, Any]  # a backtest YAML (relative to this file) or one inline
    strategy: str | None = None  # the strategy id whose params vary (default: the only one)
    grid: dict[str, list[Scalar]] | None = None
    sample: SampleConfig | None = None
    tpe: TpeConfig | None = None
    constraints: tuple[str, ...] = ()
    objective: ObjectiveConfig = ObjectiveConfig()
    heatmap: tuple[str, str] | None = None  # two parameters for the report's heatmap
    stats: StatsConfig = StatsConfig()
    store: StudyStore = StudyStore()
    output_dir: str = "runs"
    max_retries: int = Field(1, ge=0, le=10)  # a worker dying mid-task costs this many retries
    flush_every: int = Field(64, gt=0)  # results per insert into the store
    base_dir: str = Field(".", exclude=True)

    @field_validator("constraints")
    @classmethod
    def _constraints(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            if not CONSTRAINT_RE.match(text):
                raise ValueError(f"{text!r} is not 'param OP param|number' (OP: < <= > >= == !=)")
        return value

    @field_validator("grid")
    @classmethod
    def _grid(cls, value: dict[str, list[Scalar]] | None) -> dict[str, list[Scalar]] | None:
        if value is not None and (not value or any(not v for v in value.values())):
            raise ValueError("every grid parameter needs at least one value")
        return value


class SweepConfig(StudyConfig):
    kind: Literal["sweep"] = "sweep"


class WindowConfig(_Frozen):
    """Window lengths in data points (an int: bars, quotes…) or durations (``"365D"``)."""

    mode: Literal["rolling", "anchored"] = "rolling"
    train: int | str
    test: int | str
    step: int | str | None = None  # default: the test length
    purge: int | str = 0  # dropped from the end of each training window
    embargo: int | str = 0  # skipped between the training window and the test window
    warmup: int | str = 0  # data before the test window the OOS run sees (not scored)


class WalkForwardConfig(StudyConfig):
    kind: Literal["walkforward"] = "walkforward"
    windows: WindowConfig


def load_study(
    source: str | Path | dict[str, Any], kind: Literal["sweep", "walkforward"]
) -> SweepConfig | WalkForwardConfig:
    """A sweep or walk-forward config from a YAML path or a dict; errors name file and field."""
    raw, name = read_yaml_source(source)
    model = SweepConfig if kind == "sweep" else WalkForwardConfig
    try:
        config = model.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, path=name) from None
    searches = [k for k in ("grid", "sample", "tpe") if getattr(config, k) is not None]
    if len(searches) != 1:
        raise ConfigError(f"give exactly one of grid, sample or tpe (got {searches or 'none'})",
                          path=name, field="grid")  # fmt: skip
    if config.tpe is not None and kind != "sweep":
        raise ConfigError("tpe is a sweep's search; a walk-forward study takes grid or sample",
                          path=name, field="tpe")  # fmt: skip
    for field, sampled in (("sample", config.sample), ("tpe", config.tpe)):
        for param, spec in (sampled.space.items() if sampled is not None else ()):
            _check_space(spec, name, f"{field}.space.{param}")
    _check_against_backtest(config, name)
    return config


def _check_space(spec: RangeSpec | list[Scalar], source: str, field: str) -> None:
    if isinstance(spec, list):
        if not spec:
            raise ConfigError("needs at least one choice", path=source, field=field)
        return
    if not spec.low < spec.high:
        raise ConfigError(f"low ({spec.low}) must be below high ({spec.high})", path=source,
                          field=field)  # fmt: skip
    if spec.log and spec.low <= 0:
        raise ConfigError(f"a log range needs low > 0, not {spec.low}", path=source, field=field)
    if spec.integer and not (float(spec.low).is_integer() and float(spec.high).is_integer()):
        raise ConfigError(f"an integer range needs whole bounds, not {spec.low}..{spec.high}",
                          path=source, field=field)  # fmt: skip


def base_backtest(config: StudyConfig, source: str = "<study>") -> BacktestConfig:
    """The study's base backtest config (relative paths resolved against the study file)."""
    if isinstance(config.backtest, dict):
        raw = dict(config.backtest)
        raw.setdefault("base_dir", config.base_dir)
        return load_config(raw)
    path = Path(config.backtest)
    return load_config(path if path.is_absolute() else Path(config.base_dir) / path)


def _check_against_backtest(config: StudyConfig, source: str) -> None:
    backtest = base_backtest(config, source)
    ids = [s.id for s in backtest.strategies]
    if config.strategy is None and len(ids) != 1:
        raise ConfigError(f"name the strategy to vary, one of {ids}", path=source, field="strategy")
    if config.strategy is not None and config.strategy not in ids:
        raise ConfigError(f"unknown strategy {config.strategy!r}; the backtest has {ids}",
                          path=source, field="strategy")  # fmt: skip
    names = (set(config.grid or {}) | set(config.sample.space if config.sample else {})
             | set(config.tpe.space if config.tpe else {}))  # fmt: skip
    for text in config.constraints:
        match = CONSTRAINT_RE.match(text)
        assert match is not None  # checked by the validator
        for side in (match.group(1), match.group(3)):
            if not _is_number(side) and side not in names:
                raise ConfigError(f"constraint {text!r} names {side!r}, not a varied parameter",
                                  path=source, field="constraints")  # fmt: skip
    if config.heatmap is not None:
        for param in config.heatmap:
            if param not in names:
                raise ConfigError(f"{param!r} is not a varied parameter", path=source,
                                  field="heatmap")  # fmt: skip


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def study_hash(config: StudyConfig, backtest: BacktestConfig, dataset_hash: str) -> str:
    """sha256 of what decides a study's results: its config, the base backtest, the data.

    The store DSN, output folder, retries and batch size are left out: they change where results
    go, not what they are, so a rerun with another of them still resumes.
    """
    from backtest.config import config_hash

    payload = config.model_dump(
        mode="json", exclude={"base_dir", "store", "output_dir", "max_retries", "flush_every",
                              "backtest"},
    )  # fmt: skip
    text = json.dumps([payload, config_hash(backtest), dataset_hash], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
