"""Backtest configuration: pydantic models loaded from YAML, refused with file, field and reason.

Models (latency, fills, slippage, fees) are required and chosen by ``kind``: a backtest names
its models, nothing is silently defaulted. Strategies are referenced as ``module:Class``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backtest.models.config import VenueModels, config_error
from runtime.errors import ConfigError
from runtime.instruments import FeeSchedule, Instrument, TickBand, TradingSession, twse_tick_ladder
from runtime.risk import RiskLimits
from runtime.strategy import Strategy
from runtime.values import Rounding, fixed

__all__ = [
    "BacktestConfig",
    "DataConfig",
    "InstrumentConfig",
    "StrategyConfig",
    "config_hash",
    "load_config",
    "load_strategy_class",
    "read_yaml_source",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeeScheduleConfig(_Frozen):
    maker_bps: Decimal = Decimal(0)
    taker_bps: Decimal = Decimal(0)
    per_unit: Decimal = Decimal(0)
    minimum: Decimal = Decimal(0)
    sell_tax_bps: Decimal = Decimal(0)
    day_trade_sell_tax_bps: Decimal = Decimal(0)
    discount: Decimal = Field(Decimal(1), gt=0, le=1)
    rounding_unit: Decimal = Field(Decimal("0.000000001"), gt=0)
    rounding: Rounding = Rounding.HALF_UP

    def build(self) -> FeeSchedule:
        bps = Decimal(10_000)
        return FeeSchedule(
            maker_rate=fixed(self.maker_bps / bps),
            taker_rate=fixed(self.taker_bps / bps),
            per_unit=fixed(self.per_unit),
            minimum=fixed(self.minimum),
            sell_tax_rate=fixed(self.sell_tax_bps / bps),
            day_trade_sell_tax_rate=fixed(self.day_trade_sell_tax_bps / bps),
            discount=fixed(self.discount),
            rounding_unit=fixed(self.rounding_unit),
            rounding=self.rounding,
        )


class SessionConfig(_Frozen):
    timezone: str = "UTC"
    open: str = "00:00"
    close: str = "24:00"
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)


class InstrumentConfig(_Frozen):
    id: str = Field(min_length=1)
    venue: str = "SIM"
    asset_class: Literal["equity", "crypto", "future", "fx", "option"] = "equity"
    currency: str = "USD"
    price_precision: int = Field(2, ge=0, le=9)
    size_precision: int = Field(0, ge=0, le=9)
    tick_ladder: Literal["twse"] | list[tuple[Decimal, Decimal]] | None = None
    lot_size: Decimal = Field(Decimal(1), gt=0)
    min_quantity: Decimal = Field(Decimal(1), ge=0)
    min_notional: Decimal = Field(Decimal(0), ge=0)
    multiplier: Decimal = Field(Decimal(1), gt=0)
    price_limit_pct: Decimal | None = Field(None, gt=0)
    fees: FeeScheduleConfig = FeeScheduleConfig()
    sessions: tuple[SessionConfig, ...] = ()

    def build(self) -> Instrument:
        ladder: tuple[TickBand, ...] = ()
        if self.tick_ladder == "twse":
            ladder = twse_tick_ladder()
        elif self.tick_ladder:
            ladder = tuple(TickBand(fixed(lo), fixed(tick)) for lo, tick in self.tick_ladder)
        return Instrument(
            instrument_id=self.id,
            venue=self.venue,
            asset_class=self.asset_class,
            currency=self.currency,
            price_precision=self.price_precision,
            size_precision=self.size_precision,
            tick_ladder=ladder,
            lot_size=fixed(self.lot_size),
            min_quantity=fixed(self.min_quantity),
            min_notional=fixed(self.min_notional),
            multiplier=fixed(self.multiplier),
            price_limit_rate=(
                None if self.price_limit_pct is None else fixed(self.price_limit_pct / 100)
            ),
            fees=self.fees.build(),
            sessions=tuple(TradingSession(**s.model_dump()) for s in self.sessions),
        )


class DataConfig(_Frozen):
    """One data stream: from the store (default) or from a CSV/Parquet file."""

    kind: Literal["bars", "quotes", "trades", "book"]
    instrument: str
    path: str | None = None  # a CSV/Parquet file; relative to the config file
    timezone: str | None = None  # for naive timestamps in files
    interval: str | None = None  # bar interval for files (1m, 1d, ...)
    start: str | None = None  # ISO time or date, inclusive
    end: str | None = None  # ISO time or date, exclusive


class StrategyConfig(_Frozen):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_]+$")
    class_: str = Field(alias="class", pattern=r"^[\w.]+:\w+$")
    instruments: tuple[str, ...] = Field(min_length=1)
    params: dict[str, Any] = {}

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class StoreConfig(_Frozen):
    dsn: str | None = None  # default: TRADEWIND_STORE_DSN or chdb://var/clickhouse
    record: bool = True  # write run, time series and fills into the store


class BacktestConfig(_Frozen):
    name: str = Field("backtest", pattern=r"^[\w.]+$")
    seed: int = 0
    initial_cash: Decimal = Field(Decimal(100_000), gt=0)
    currency: str = "USD"
    instruments: tuple[InstrumentConfig, ...] = Field(min_length=1)
    data: tuple[DataConfig, ...] = Field(min_length=1)
    strategies: tuple[StrategyConfig, ...] = Field(min_length=1)
    venue: VenueModels
    risk: RiskLimits = RiskLimits()
    store: StoreConfig = StoreConfig()
    output_dir: str = "runs"
    base_dir: str = Field(".", exclude=True)  # the config file's folder (for relative paths)

    @field_validator("data")
    @classmethod
    def _unique_streams(cls, value: tuple[DataConfig, ...]) -> tuple[DataConfig, ...]:
        keys = [(d.kind, d.instrument) for d in value]
        if len(set(keys)) != len(keys):
            raise ValueError("each (kind, instrument) stream may appear once")
        return value

    def resolve(self, path: str | None) -> Path | None:
        if path is None:
            return None
        candidate = Path(path)
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate


def read_yaml_source(source: str | Path | dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The mapping of a YAML file (or a dict, copied), with ``base_dir`` set to its folder, and
    the name errors should use. Missing files, bad YAML and non-mappings are ConfigErrors."""
    if isinstance(source, dict):
        raw, name, base = dict(source), "<dict>", "."
    else:
        path = Path(source)
        name, base = str(path), str(path.parent)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError("no such file", path=name) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {str(exc).splitlines()[0]}", path=name) from exc
        if not isinstance(raw, dict):
            raise ConfigError("expected a mapping at the top level", path=name)
    raw.setdefault("base_dir", base)
    return raw, name


def load_config(source: str | Path | dict[str, Any] | BacktestConfig) -> BacktestConfig:
    """A config from a YAML path, a dict or a config object; errors are ConfigError."""
    if isinstance(source, BacktestConfig):
        return source
    raw, name = read_yaml_source(source)
    try:
        config = BacktestConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, path=name) from None
    ids = {i.id for i in config.instruments}
    for where, inst in [(f"data.{d.instrument}", d.instrument) for d in config.data] + [
        (f"strategies.{s.id}.instruments", i) for s in config.strategies for i in s.instruments
    ]:
        if inst not in ids:
            raise ConfigError(
                f"unknown instrument {inst!r}; declare it under instruments", path=name, field=where
            )
    return config


def load_strategy_class(spec: str, *, source: str = "config") -> type[Strategy[Any]]:
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"cannot import module {module_name!r}: {exc}", path=source, field="strategies.class"
        ) from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, Strategy):
        raise ConfigError(
            f"{spec!r} is not a Strategy subclass", path=source, field="strategies.class"
        )
    return cls


def config_hash(config: BacktestConfig) -> str:
    """sha256 of the resolved config's canonical JSON (every run records it)."""
    payload = config.model_dump(mode="json", by_alias=True, exclude={"base_dir"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
