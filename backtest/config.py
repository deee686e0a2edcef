"""Backtest configuration: pydantic models loaded from YAML, refused with file, field and reason.

Models (latency, fills, slippage, fees) are required and chosen by ``kind``: a backtest names
its models, nothing is silently defaulted. Strategies are referenced as ``module:Class``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import importlib.util
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from decimal import Decimal
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from backtest.calendars import CalendarConfig
from backtest.models.config import VenueModels, config_error
from backtest.yaml_source import read_yaml_source
from runtime.errors import ConfigError
from runtime.instruments import FeeSchedule, Instrument, TickBand, TradingSession, twse_tick_ladder
from runtime.risk import RiskLimits
from runtime.strategy import Strategy, StrategyParams
from runtime.values import Rounding, fixed

__all__ = [
    "BacktestConfig",
    "DataConfig",
    "InstrumentConfig",
    "StrategyConfig",
    "build_strategy",
    "check_strategy",
    "check_writable_dir",
    "config_hash",
    "load_config",
    "load_strategy_class",
    "read_yaml_source",
    "retire_after_ns",
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
    #: annual borrow cost of a short, in percent (recorded ``borrow`` data overrides it)
    borrow_rate_pct: Decimal = Field(Decimal(0), ge=0)
    fees: FeeScheduleConfig = FeeScheduleConfig()
    sessions: tuple[SessionConfig, ...] = ()  # hand-written hours, where no calendar fits
    calendar: CalendarConfig | None = None  # the exchange's calendar (exchange-calendars)

    @model_validator(mode="after")
    def _calendar_or_sessions(self) -> InstrumentConfig:
        if self.calendar is not None and self.sessions:
            raise ValueError("give either calendar or sessions, not both")
        return self

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
            borrow_rate=fixed(self.borrow_rate_pct / 100),
            fees=self.fees.build(),
            sessions=tuple(TradingSession(**s.model_dump()) for s in self.sessions),
            calendar=None if self.calendar is None else self.calendar.resolve(),
        )


class DataConfig(_Frozen):
    """One data stream: from the store (default), from a CSV/Parquet file (``path``), or
    generated (``sample_days``: that many days of the deterministic sample data that
    ``tradewind data sample`` writes, from the config's seed, without a store).

    ``bar_stamp`` says what a bar file's time column marks, as ``tradewind data import
    --bar-stamp`` does: ``open`` (the default for files) or ``close``. The store always holds
    bars stamped at their close, so the same bars from a file and from the store replay alike
    once the file's stamp is named.
    """

    kind: Literal[
        "bars", "quotes", "trades", "book", "funding", "open_interest", "mark", "borrow"
    ]
    instrument: str
    path: str | None = None  # a CSV/Parquet file; relative to the config file
    timezone: str | None = None  # for naive timestamps in files
    interval: str | None = None  # bar length (1m, 1d, ...): of a file, or which stored bars
    bar_stamp: Literal["open", "close"] | None = None  # bar files: time marks open or close
    start: str | None = None  # ISO time or date, inclusive
    end: str | None = None  # ISO time or date, exclusive
    sample_days: int | None = Field(None, ge=1, le=250)  # generated sample data, not stored

    @property
    def from_store(self) -> bool:
        """Read from the store (neither a file nor generated)."""
        return self.path is None and self.sample_days is None

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.sample_days is not None:
            if self.path is not None:
                raise ValueError("path and sample_days name two sources for one stream: "
                                 "give one (a file, or generated sample data)")
            if self.interval not in (None, "1m"):
                raise ValueError(f"sample data has one-minute bars, not {self.interval}")
        return self

    @model_validator(mode="after")
    def _a_range_with_room(self) -> DataConfig:
        moments = {}
        for name in ("start", "end"):
            text = getattr(self, name)
            if text is None:
                continue
            try:
                moment = dt.datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{name}: not an ISO date/time: {text!r}") from None
            moments[name] = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        if len(moments) == 2 and moments["start"] >= moments["end"]:
            what = "empty" if moments["start"] == moments["end"] else "reversed"
            raise ValueError(f"the date range is {what}: start {self.start} is not before end "
                             f"{self.end} (end is exclusive)")
        return self

    @model_validator(mode="after")
    def _stamp_for_bar_files(self) -> DataConfig:
        if self.bar_stamp is not None and (self.kind != "bars" or self.path is None):
            raise ValueError(
                "bar_stamp applies to bar files (kind: bars with a path); "
                "the store's bars are already stamped at their close"
            )
        return self


class StrategyConfig(_Frozen):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_]+$")
    class_: str = Field(alias="class", pattern=r"^[\w.]+:\w+$")
    instruments: tuple[str, ...] = Field(min_length=1)
    params: dict[str, Any] = {}

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class StoreConfig(_Frozen):
    dsn: str | None = None  # default: TRADEWIND_STORE_DSN or chdb://var/clickhouse
    record: bool = True  # write run, time series and fills into the store
    #: opt-in retention: days of market data kept per table (``backtest.store.ttl``; None:
    #: the store's tables are left as they are, nothing expires)
    ttl: dict[str, int] | None = None

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        from backtest.store.ttl import check_ttl

        try:
            check_ttl(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value


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
    #: hours of event time a closed order stays in the kernel before it retires
    #: (``runtime.retirement``; its fills stay in the run's fills); null keeps every order
    retire_orders_after_h: float | None = Field(24.0, ge=0, allow_inf_nan=False)
    #: folders searched for strategy modules after the config's own folder (relative to it)
    strategy_paths: tuple[str, ...] = ()
    base_dir: str = Field(".", exclude=True)  # the config file's folder (for relative paths)
    source: str = Field("<config>", exclude=True)  # the config file, as errors name it

    @field_validator("base_dir")
    @classmethod
    def _absolute_base(cls, value: str) -> str:
        # absolute, so a copy of the config in a Ray worker resolves the same files
        return str(Path(value).resolve())

    @field_validator("strategies")
    @classmethod
    def _unique_strategy_ids(
        cls, value: tuple[StrategyConfig, ...]
    ) -> tuple[StrategyConfig, ...]:
        ids = [s.id for s in value]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"strategy id {repeated[0]!r} appears more than once: ids must be "
                             "unique")
        return value

    @field_validator("data")
    @classmethod
    def _unique_streams(cls, value: tuple[DataConfig, ...]) -> tuple[DataConfig, ...]:
        keys = [(d.kind, d.instrument) for d in value]
        if len(set(keys)) != len(keys):
            raise ValueError("each (kind, instrument) stream may appear once")
        return value

    def strategy_search(self) -> tuple[Path, ...]:
        """Where strategy modules not importable as installed are looked for, in order."""
        folders = [Path(self.base_dir)]
        folders += [p for p in map(self.resolve, self.strategy_paths) if p is not None]
        return tuple(folders)

    def resolve(self, path: str | None) -> Path | None:
        if path is None:
            return None
        candidate = Path(path)
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate


def load_config(source: str | Path | dict[str, Any] | BacktestConfig) -> BacktestConfig:
    """A config from a YAML path, a dict or a config object; errors are ConfigError."""
    if isinstance(source, BacktestConfig):
        return source
    raw, name = read_yaml_source(source)
    if "source" in raw:
        raise ConfigError("unknown field 'source'", path=name, field="source")
    raw["source"] = name
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
    strategy_ids = [s.id for s in config.strategies]
    for budgeted in config.risk.strategies:
        if budgeted not in strategy_ids:
            raise ConfigError(
                f"a budget for unknown strategy {budgeted!r} (strategies: "
                f"{', '.join(strategy_ids)})",
                path=name,
                field=f"risk.strategies.{budgeted}",
            )
    for strategy in config.strategies:
        check_strategy(strategy, source=name, search=config.strategy_search())
    return config


def check_strategy(
    spec: StrategyConfig, *, source: str, search: Sequence[Path] = ()
) -> tuple[type[Strategy[Any]], StrategyParams]:
    """Import the strategy's class and validate its params now, before anything runs."""
    cls = load_strategy_class(
        spec.class_, source=source, field=f"strategies.{spec.id}.class", search=search
    )
    try:
        params = cls.params_type.model_validate(spec.params)
    except ValidationError as exc:
        allowed = ", ".join(cls.params_type.model_fields) or "none"
        error = config_error(exc, prefix=f"strategies.{spec.id}.params")
        message = str(error).removeprefix(f"{error.field}: ")
        raise ConfigError(f"{message} (params of {cls.__name__}: {allowed})",
                          path=source, field=error.field) from None
    return cls, params


def build_strategy(config: BacktestConfig, spec: StrategyConfig) -> Strategy[Any]:
    """The strategy a config's entry names, its params validated; errors name the field."""
    cls, params = check_strategy(spec, source=config.source, search=config.strategy_search())
    return cls(spec.id, params, instruments=spec.instruments)


def load_strategy_class(
    spec: str,
    *,
    source: str | None = None,
    field: str = "strategies.class",
    search: Sequence[Path] = (),
) -> type[Strategy[Any]]:
    """The class a ``module:Class`` reference names; a ConfigError when it cannot be had.

    The module is an installed one, else one found in a ``search`` folder (the config's folder,
    then its ``strategy_paths``), imported under its own name as if that folder were on
    ``PYTHONPATH``. Importing runs the user's module: any error it raises (a syntax error, an
    exception at import time, a package it needs that is not installed) is the user's to fix,
    so it becomes one ConfigError naming it."""
    module_name, _, class_name = spec.partition(":")
    where = {"path": source, "field": field}
    module = _import_strategy_module(module_name, search, where)
    cls = getattr(module, class_name, None)
    if cls is None:
        known = sorted(
            n for n, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, Strategy) and v is not Strategy
            and v.__module__ == module.__name__
        )  # fmt: skip
        hint = f"; its strategies: {', '.join(known)}" if known else "; it defines no Strategy"
        raise ConfigError(f"module {module_name!r} has no class {class_name!r}{hint}", **where)
    if not isinstance(cls, type) or not issubclass(cls, Strategy):
        raise ConfigError(f"{spec!r} is not a Strategy subclass", **where)
    return cls


def _import_strategy_module(name: str, search: Sequence[Path], where: dict[str, Any]) -> Any:
    """``name`` imported: installed first, then from the first ``search`` folder holding it."""
    top = name.partition(".")[0]
    try:
        return _user_import(lambda: importlib.import_module(name), name, where)
    except ModuleNotFoundError as exc:
        if exc.name not in {top, name} and not name.startswith(f"{exc.name}."):
            raise _missing_package(name, exc, where) from None
        missing = exc
    folder = next((f for f in search if PathFinder.find_spec(top, [str(f)]) is not None), None)
    if folder is not None and top not in sys.modules:
        _load_top_module(top, folder, name, where)
        try:
            return _user_import(lambda: importlib.import_module(name), name, where)
        except ModuleNotFoundError as exc:
            missing = exc
    looked = "".join(f", {f}" for f in search)
    raise ConfigError(
        f"cannot import module {name!r} ({missing}); looked in installed packages{looked}; "
        "put it beside the config or list its folder under strategy_paths",
        **where,
    )


def _load_top_module(top: str, folder: Path, name: str, where: dict[str, Any]) -> None:
    found = PathFinder.find_spec(top, [str(folder)])
    if found is None or found.loader is None:
        raise ConfigError(f"cannot import module {name!r} from {folder}", **where)
    loader = found.loader
    module = importlib.util.module_from_spec(found)
    sys.modules[top] = module
    try:
        _user_import(lambda: loader.exec_module(module), name, where)
    except ModuleNotFoundError as exc:
        del sys.modules[top]
        raise _missing_package(name, exc, where) from None
    except BaseException:
        del sys.modules[top]
        raise


def _user_import(load: Callable[[], Any], name: str, where: dict[str, Any]) -> Any:
    """``load()`` (an import of the user's module), its errors as ConfigErrors; a missing
    module is left to the caller, which knows where it looked."""
    try:
        return load()
    except ModuleNotFoundError:
        raise
    except SyntaxError as exc:
        raise ConfigError(
            f"cannot import module {name!r}: syntax error ({exc.filename}, line {exc.lineno}): "
            f"{exc.msg}",
            **where,
        ) from None
    except Exception as exc:  # the user's module raised while it was imported
        raise ConfigError(
            f"cannot import module {name!r}: it raised {type(exc).__name__}: {exc}", **where
        ) from None


def _missing_package(name: str, exc: ModuleNotFoundError, where: dict[str, Any]) -> ConfigError:
    return ConfigError(f"module {name!r} imports {exc.name!r}, which is not installed", **where)


def check_writable_dir(path: Path, *, field: str, source: str | None = None) -> None:
    """Make sure ``path`` is a directory this process can write (creating it), before a run
    starts: a run must not fail at its end for want of a place to put its files."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot write into {str(path)!r}: {reason}", path=source,
                          field=field) from None


def retire_after_ns(config: BacktestConfig) -> int | None:
    """``retire_orders_after_h`` in ns (the kernel's ``retire_after_ns``)."""
    hours = config.retire_orders_after_h
    return None if hours is None else round(hours * 3600 * 10**9)


def config_hash(config: BacktestConfig) -> str:
    """sha256 of the resolved config's canonical JSON (every run records it)."""
    payload = config.model_dump(mode="json", by_alias=True, exclude={"base_dir"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
