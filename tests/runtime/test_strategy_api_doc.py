"""docs/strategy-api.md cannot drift from the code: every heading's signature is the code's,
every listed field and member exists (and no existing one is left out), and every public name
of the strategy API, every message class and every enum a strategy meets is documented."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from runtime import linked, messages, orders, portfolio, trailing, values
from runtime.strategy import Strategy

DOC = Path(__file__).resolve().parents[2] / "docs" / "strategy-api.md"
COMMON = {"seq", "ts_event", "ts_init"}
ENUMS: dict[str, type[enum.Enum]] = {
    "OrderType": messages.OrderType,
    "OrderSide": messages.OrderSide,
    "TimeInForce": messages.TimeInForce,
    "OrderStatus": orders.OrderStatus,
    "Side": messages.Side,
    "Liquidity": messages.Liquidity,
    "OrderListStatus": messages.OrderListStatus,
    "AlgoStatus": messages.AlgoStatus,
    "TradingState": messages.TradingState,
    "TrailReference": trailing.TrailReference,
    "Rounding": values.Rounding,
}
VALUES: dict[str, type] = {"Order": orders.Order, "Account": portfolio.Account,
                           "Leg": linked.Leg}
ATTRIBUTES = ("params", "params_type", "strategy_id", "instruments", "rng", "wants_features")


def _sections() -> dict[str, str]:
    """Heading text (inside the first backticks and after) -> the section's body."""
    text = DOC.read_text()
    parts = re.split(r"^### (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _listed(body: str, label: str) -> list[str]:
    match = re.search(rf"^{label}: (.+)$", body, re.M)
    return re.findall(r"`(\w+)`", match.group(1)) if match else []


def _render(name: str, fn: Any) -> str:
    """A signature as the doc writes it: annotations as in the source, enum defaults by name."""
    parts: list[str] = []
    star = False
    for p in inspect.signature(fn).parameters.values():
        if p.name == "self":
            continue
        ann = f": {p.annotation}" if p.annotation is not p.empty else ""
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{p.name}{ann}")
            star = True
            continue
        if p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}{ann}")
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        text = p.name + ann
        if p.default is not p.empty:
            d = p.default
            text += " = " + (f"{type(d).__name__}.{d.name}" if isinstance(d, enum.Enum)
                             else repr(d))
        parts.append(text)
    return f"`{name}({', '.join(parts)}) -> {inspect.signature(fn).return_annotation}`"


def _api() -> dict[str, str]:
    """Every public method and property of Strategy, as its doc heading must read."""
    out: dict[str, str] = {}
    for name, member in vars(Strategy).items():
        if name.startswith("_") or name in ATTRIBUTES:
            continue
        if isinstance(member, property):
            out[name] = f"`{name}` (property) -> {member.fget.__annotations__['return']}"
        elif isinstance(member, staticmethod):
            out[name] = _render(name, member.__func__)
        elif callable(member):
            out[name] = _render(name, member)
    return out


def test_every_method_and_property_is_documented_with_its_signature() -> None:
    headings = set(_sections())
    missing = [sig for sig in _api().values() if sig not in headings]
    assert not missing, "not in docs/strategy-api.md (or its signature differs):\n" + "\n".join(
        missing
    )


def test_every_documented_signature_exists() -> None:
    api = set(_api().values())
    documented = [h for h in _sections()
                  if re.fullmatch(r"`\w+\(.*\) -> .+`|`\w+` \(property\) -> .+", h)]
    assert sum("(property)" in h for h in documented) >= 3
    assert sum("(property)" not in h for h in documented) >= 20
    stale = [h for h in documented if h not in api]
    assert not stale, f"documented but not in runtime.strategy.Strategy: {stale}"


def test_attributes_exist_on_a_strategy() -> None:
    sections = _sections()
    strategy = Strategy("s", instruments=("X",))
    for name in ATTRIBUTES:
        assert f"`{name}`" in sections, name
        assert hasattr(strategy, name), name


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_enum_members_are_the_codes(name: str) -> None:
    body = _sections()[f"`{name}`"]
    assert _listed(body, "Members") == [m.name for m in ENUMS[name]]


def _message_classes() -> dict[str, type]:
    return {
        n: c for n, c in vars(messages).items()
        if isinstance(c, type) and issubclass(c, messages.Message) and c is not messages.Message
    }


def test_every_message_is_documented_with_its_fields() -> None:
    sections = _sections()
    for name, cls in _message_classes().items():
        assert f"`{name}`" in sections, f"message {name} is not documented"
        fields = [f.name for f in msgspec.structs.fields(cls) if f.name not in COMMON]
        assert _listed(sections[f"`{name}`"], "Fields") == fields, name


def test_every_documented_class_exists() -> None:
    known = set(_message_classes()) | set(ENUMS) | set(VALUES)
    classes = [h.strip("`") for h in _sections() if re.fullmatch(r"`[A-Z]\w+`", h)]
    assert sorted(classes) == sorted(known)


@pytest.mark.parametrize("name", sorted(VALUES))
def test_values_fields_are_the_codes(name: str) -> None:
    cls = VALUES[name]
    body = _sections()[f"`{name}`"]
    fields, also = _listed(body, "Fields"), _listed(body, "Also")
    if dataclasses.is_dataclass(cls):
        expected = [f.name for f in dataclasses.fields(cls)]
    elif issubclass(cls, msgspec.Struct):
        expected = [f.name for f in msgspec.structs.fields(cls)]
    else:
        expected = [s for s in cls.__slots__ if not s.startswith("_")]
    assert sorted(fields) == sorted(expected)
    extras = [n for n, v in vars(cls).items() if not n.startswith("_")
              and (isinstance(v, property) or inspect.isfunction(v))
              and n not in {"apply", "transition", "state", "from_state"}]
    assert sorted(also) == sorted(extras)


def test_every_section_has_an_example() -> None:
    for heading, body in _sections().items():
        if heading.startswith("`"):
            assert "```python" in body, f"{heading} has no example"
