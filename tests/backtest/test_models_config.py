"""Model configs: named, never defaulted; unknown kinds and fields refused with the field named."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from backtest.models.config import (
    FeeConfig,
    FillConfig,
    LatencyConfig,
    SlippageConfig,
    VenueModels,
    config_error,
)
from runtime.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "models.md"
COMPLETE = {
    "latency": {"kind": "constant", "entry_ns": 0, "response_ns": 0},
    "fills": {"kind": "bars"},
    "slippage": {"kind": "none"},
    "fees": {"kind": "instrument"},
}
ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "latency": TypeAdapter(LatencyConfig),
    "fills": TypeAdapter(FillConfig),
    "slippage": TypeAdapter(SlippageConfig),
    "fees": TypeAdapter(FeeConfig),
}


def _error(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ValidationError) as info:
        VenueModels.model_validate(data)
    return config_error(info.value, path="run.yaml")


@pytest.mark.parametrize("missing", sorted(COMPLETE))
def test_a_missing_model_is_refused_naming_it(missing: str) -> None:
    data = {k: v for k, v in COMPLETE.items() if k != missing}
    error = _error(data)
    assert error.field == missing
    assert str(error).startswith(f"run.yaml: {missing}: ")


def test_an_unknown_kind_is_refused() -> None:
    error = _error({**COMPLETE, "fills": {"kind": "magic"}})
    assert error.field == "fills"
    assert "magic" in str(error) and "bars" in str(error)


def test_a_model_without_kind_is_refused() -> None:
    assert _error({**COMPLETE, "slippage": {"ticks": 1}}).field == "slippage"


def test_unknown_fields_and_bad_values_are_refused() -> None:
    error = _error({**COMPLETE, "fills": {"kind": "bars", "max_participation": "1.5"}})
    assert error.field == "fills.bars.max_participation"
    error = _error(
        {**COMPLETE, "fees": {"kind": "bps", "maker_bps": 1, "taker_bps": 2, "rebate": 1}}
    )
    assert error.field == "fees.bps.rebate"


def test_configs_are_frozen() -> None:
    models = VenueModels.model_validate(COMPLETE)
    with pytest.raises(ValidationError):
        models.fills.path = "ohlc"  # type: ignore[union-attr]


def _yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.S)


def test_every_yaml_example_in_the_docs_is_valid() -> None:
    blocks = _yaml_blocks()
    assert len(blocks) == 13
    kinds = set()
    for block in blocks:
        data = yaml.safe_load(block)
        if set(data) == set(COMPLETE):
            VenueModels.model_validate(data)
            continue
        ((family, config),) = data.items()
        kinds.add((family, ADAPTERS[family].validate_python(config).kind))
    assert kinds == {
        ("latency", "constant"),
        ("latency", "sampled"),
        ("fills", "bars"),
        ("fills", "l1"),
        ("fills", "l2"),
        ("slippage", "none"),
        ("slippage", "ticks"),
        ("slippage", "volatility"),
        ("slippage", "participation"),
        ("fees", "instrument"),
        ("fees", "bps"),
        ("fees", "taiwan_stock"),
    }
