"""The venue's models, chosen as data: pydantic v2 configs, discriminated unions on ``kind``.

A backtest names each of its four models (``latency``, ``fills``, ``slippage``, ``fees``); there is
no default model. Parameters inside a model have documented defaults only where a convention is
universal (Taiwan's statutory rates) or conservative (the pessimistic queue-shrink rule).
Money and rates are :class:`~decimal.Decimal` at this edge and fixed point inside the venue.

:func:`config_error` turns a pydantic ``ValidationError`` into one :class:`ConfigError` line that
names every failing field (``fills.kind: ...; slippage.ticks: ...``).
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from runtime.errors import ConfigError

__all__ = [
    "BarFillConfig",
    "BpsFeeConfig",
    "ConstantLatencyConfig",
    "EmpiricalLatencyDist",
    "FeeConfig",
    "FillConfig",
    "InstrumentFeeConfig",
    "L1FillConfig",
    "L2FillConfig",
    "LatencyConfig",
    "LatencyDist",
    "LognormalLatencyDist",
    "NoSlippageConfig",
    "ParticipationSlippageConfig",
    "QueueShrink",
    "SampledLatencyConfig",
    "SlippageConfig",
    "TaiwanStockFeeConfig",
    "TickSlippageConfig",
    "VenueModels",
    "VolatilitySlippageConfig",
    "config_error",
]

NonNegDecimal = Annotated[Decimal, Field(ge=0, decimal_places=9)]  # exact in fixed point
Bps = Annotated[Decimal, Field(ge=0, decimal_places=5)]  # bps / 1e4 keeps nine decimals
QueueShrink = Literal["behind_first", "proportional", "ahead_first"]


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- latency -----------------------------------------------------------------------------------


class ConstantLatencyConfig(_Config):
    """Every command reaches the venue ``entry_ns`` after it is sent; every report reaches the
    trader ``response_ns`` after the venue produced it."""

    kind: Literal["constant"]
    entry_ns: int = Field(ge=0)
    response_ns: int = Field(ge=0)


class LognormalLatencyDist(_Config):
    """Lognormal with the given median and log-space sigma, clipped to ``[min_ns, max_ns]``."""

    kind: Literal["lognormal"]
    median_ns: int = Field(gt=0)
    sigma: float = Field(ge=0, le=10)
    min_ns: int = Field(default=0, ge=0)
    max_ns: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> LognormalLatencyDist:
        if self.max_ns is not None and self.max_ns < self.min_ns:
            raise ValueError("max_ns must be >= min_ns")
        return self


class EmpiricalLatencyDist(_Config):
    """Equally spaced quantiles (``[p0, ..., p100]``): a draw interpolates linearly between them."""

    kind: Literal["empirical"]
    quantiles_ns: tuple[int, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _sorted(self) -> EmpiricalLatencyDist:
        q = self.quantiles_ns
        if q[0] < 0 or any(b < a for a, b in itertools.pairwise(q)):
            raise ValueError("quantiles_ns must be non-negative and non-decreasing")
        return self


LatencyDist = Annotated[LognormalLatencyDist | EmpiricalLatencyDist, Field(discriminator="kind")]


class SampledLatencyConfig(_Config):
    """Entry and response latencies drawn independently from the venue's seeded generator."""

    kind: Literal["sampled"]
    entry: LatencyDist
    response: LatencyDist


LatencyConfig = Annotated[ConstantLatencyConfig | SampledLatencyConfig, Field(discriminator="kind")]


# --- fills -------------------------------------------------------------------------------------


class BarFillConfig(_Config):
    """Fills from OHLCV bars with an explicit intrabar path.

    ``price``: market orders fill at the next bar's open (``next_open``) or at the close of the
    bar the decision was made on (``close``, "cheat on close"). ``path``: the order in which a bar
    visits its prices: ``ohlc`` (open, high, low, close), ``olhc`` (open, low, high, close) or
    ``auto`` (``olhc`` when close >= open, else ``ohlc``). ``max_participation``: fraction of a
    bar's volume the venue fills per bar (all orders of the instrument together); null = no cap.
    """

    kind: Literal["bars"]
    price: Literal["next_open", "close"] = "next_open"
    path: Literal["ohlc", "olhc", "auto"] = "auto"
    max_participation: Decimal | None = Field(default=None, gt=0, le=1, decimal_places=9)


class L1FillConfig(_Config):
    """Fills from top-of-book quotes and trade prints, with a queue position for resting limits."""

    kind: Literal["l1"]
    queue_shrink: QueueShrink = "behind_first"


class L2FillConfig(_Config):
    """Book walking against an L2 book, with a queue position taken from the level size."""

    kind: Literal["l2"]
    queue_shrink: QueueShrink = "behind_first"


FillConfig = Annotated[BarFillConfig | L1FillConfig | L2FillConfig, Field(discriminator="kind")]


# --- slippage ----------------------------------------------------------------------------------


class NoSlippageConfig(_Config):
    kind: Literal["none"]


class TickSlippageConfig(_Config):
    """Every taker fill is ``ticks`` ticks worse than the model price."""

    kind: Literal["ticks"]
    ticks: int = Field(ge=0)


class VolatilitySlippageConfig(_Config):
    """Taker fills worse by ``k`` x the standard deviation of the last ``window`` price changes
    (bar closes, quote mids or trade prices), rounded up to whole ticks."""

    kind: Literal["volatility"]
    k: NonNegDecimal
    window: int = Field(ge=2, le=100_000)


class ParticipationSlippageConfig(_Config):
    """Taker fills worse by ``price x impact_bps/1e4 x (qty/volume)^exponent``, rounded up to
    ticks; ``volume`` is the bar's volume (bars) or the displayed size taken from (l1/l2)."""

    kind: Literal["participation"]
    impact_bps: Bps
    exponent: float = Field(gt=0, le=4)


SlippageConfig = Annotated[
    NoSlippageConfig | TickSlippageConfig | VolatilitySlippageConfig | ParticipationSlippageConfig,
    Field(discriminator="kind"),
]


# --- fees --------------------------------------------------------------------------------------


class InstrumentFeeConfig(_Config):
    """Use each instrument's own :class:`~runtime.instruments.FeeSchedule`."""

    kind: Literal["instrument"]


class BpsFeeConfig(_Config):
    """Commission in basis points of notional (maker/taker), plus money per unit, with a minimum
    per fill; rounded half-up to the 1e-9 grid."""

    kind: Literal["bps"]
    maker_bps: Bps
    taker_bps: Bps
    per_unit: NonNegDecimal = Decimal(0)
    minimum: NonNegDecimal = Decimal(0)


class TaiwanStockFeeConfig(_Config):
    """Taiwan stocks: brokerage commission (0.1425% x discount, at least 20 TWD) on both sides,
    securities transaction tax on sells (0.3%, or 0.15% for the day-trade part), each rounded
    down to whole TWD."""

    kind: Literal["taiwan_stock"]
    commission_rate: NonNegDecimal = Decimal("0.001425")
    discount: Decimal = Field(default=Decimal(1), gt=0, le=1, decimal_places=9)
    minimum: NonNegDecimal = Decimal(20)
    sell_tax_rate: NonNegDecimal = Decimal("0.003")
    day_trade_tax_rate: NonNegDecimal = Decimal("0.0015")
    detect_day_trades: bool = True


FeeConfig = Annotated[
    InstrumentFeeConfig | BpsFeeConfig | TaiwanStockFeeConfig, Field(discriminator="kind")
]


class VenueModels(_Config):
    """The four models of a simulated venue; every one must be named."""

    latency: LatencyConfig
    fills: FillConfig
    slippage: SlippageConfig
    fees: FeeConfig
    #: the venue takes day orders only (DAY, IOC, FOK), as Shioaji does: it rejects a GTC
    #: order that would rest, and the run's kernel keeps GTC limits alive as one DAY order per
    #: session (``runtime.daygtc``), so a backtest behaves as the broker will
    day_orders_only: bool = False

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        """``day_orders_only`` only when set: the configs (and hashes) of venues with GTC
        stay what they were."""
        data: dict[str, object] = handler(self)
        if not self.day_orders_only:
            data.pop("day_orders_only", None)
        return data


def config_error(exc: ValidationError, *, path: str | None = None, prefix: str = "") -> ConfigError:
    """One :class:`ConfigError` naming every failing field, the first as its ``field``:
    ``fills.kind: ...; data.0.bar_stamp: unknown field 'bar_stamp'``."""
    parts: list[tuple[str, str]] = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        field = ".".join(p for p in [prefix, *loc] if p)
        if error["type"] == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}" if loc else "unknown field"
        else:
            message = error["msg"]
        parts.append((field, message))
    (first_field, first_message), rest = parts[0], parts[1:]
    message = "; ".join([first_message, *(f"{f}: {m}" if f else m for f, m in rest)])
    return ConfigError(message, path=path, field=first_field or None)
