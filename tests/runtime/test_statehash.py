"""The canonical state hash: equal states hash equal; floats are refused with their path. The
kernel's sorted JSON: json's bytes whichever encoder wrote them."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.errors import InvariantError
from runtime.messages import OrderSide, TradeTick
from runtime.statehash import canonical_bytes, sorted_json, state_hash


class Position(msgspec.Struct, frozen=True):
    quantity: int
    avg_price: object


class OtherPosition(msgspec.Struct, frozen=True):
    quantity: int
    avg_price: object


scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.binary(max_size=5)
keys = st.integers() | st.text(max_size=5)
states = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(keys, inner, max_size=4)
        | st.builds(Position, quantity=st.integers(), avg_price=inner)
    ),
    max_leaves=20,
)


def shuffled(obj: object, seed: int) -> object:
    """The same value with every dict rebuilt in another insertion order."""
    if isinstance(obj, dict):
        items = list(obj.items())
        items = items[seed % max(len(items), 1) :] + items[: seed % max(len(items), 1)]
        return {k: shuffled(v, seed + 1) for k, v in reversed(items)}
    if isinstance(obj, list):
        return [shuffled(v, seed + 1) for v in obj]
    if isinstance(obj, Position):
        return Position(obj.quantity, shuffled(obj.avg_price, seed + 1))
    return obj


@given(states, st.integers(min_value=0, max_value=50))
def test_equal_states_hash_equal_whatever_the_dict_order(state: object, seed: int) -> None:
    other = shuffled(state, seed)
    assert other == state
    assert state_hash(other) == state_hash(state)


@given(states, states)
def test_different_states_hash_differently(a: object, b: object) -> None:
    if a != b:  # the encoding is injective on these types
        assert canonical_bytes(a) != canonical_bytes(b)


def test_known_distinctions() -> None:
    assert state_hash(True) != state_hash(1)
    assert state_hash("1") != state_hash(1)
    assert state_hash(b"a") != state_hash("a")
    assert state_hash({1: 2}) != state_hash({2: 1})
    assert state_hash(["ab", "c"]) != state_hash(["a", "bc"])
    assert state_hash(Position(1, 2)) != state_hash(OtherPosition(1, 2))
    assert state_hash({"a": None}) != state_hash({})


def test_sequences_sets_enums_and_decimals_hash_by_value() -> None:
    assert state_hash((1, 2)) == state_hash([1, 2])  # survives a msgpack round trip
    assert state_hash({3, 1, 2}) == state_hash(frozenset({2, 3, 1}))
    assert state_hash(OrderSide.SELL) == state_hash(-1)
    assert state_hash(Decimal("1.50")) == state_hash(Decimal("1.5"))
    assert len(state_hash({})) == 64 and int(state_hash({}), 16) >= 0


def test_messages_hash_by_type_and_fields() -> None:
    a = TradeTick(seq=1, ts_event=2, ts_init=3, instrument_id="X", price=10, size=1)
    assert state_hash({"last": a}) == state_hash({"last": msgspec.structs.replace(a)})
    assert state_hash(a) != state_hash(msgspec.structs.replace(a, price=11))


def test_a_float_is_refused_with_its_path() -> None:
    state = {"cash": 100, "positions": {"AAPL": Position(quantity=3, avg_price=[1, 2.5])}}
    with pytest.raises(
        InvariantError,
        match=r"float 2\.5 .* at \$\['positions'\]\['AAPL'\]"
        r"\.avg_price\[1\]",
    ):
        state_hash(state)


def test_unsupported_types_and_non_finite_decimals_are_refused() -> None:
    with pytest.raises(InvariantError, match=r"unsupported type object at \$\[0\]"):
        state_hash([object()])
    with pytest.raises(InvariantError, match="non-finite"):
        state_hash({"x": Decimal("NaN")})


def test_a_cyclic_state_is_an_invariant_error() -> None:
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises(InvariantError, match="cyclic"):
        state_hash(cyclic)


# what a kernel's state holds; text of every kind (non-ASCII, control characters, DEL), and
# ints past 64 bits (fixed-point cash is)
json_scalars = st.none() | st.booleans() | st.integers() | st.integers(min_value=2**64) | st.text()
json_states = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


def _refuse(value: object) -> object:
    raise InvariantError(f"refused {type(value).__name__}")


def _json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False,
                      default=_refuse).encode()  # fmt: skip


@given(json_states)
def test_sorted_json_writes_json_bytes_for_every_state_tree(state: object) -> None:
    assert sorted_json(state, default=_refuse) == _json(state)


@pytest.mark.parametrize("state", [
    {"name": "caf\u00e9", "n": 1}, ["\x7f"], {"\u00e9": None, "e": [True, False]},
    {"reason": "line\nbreak\t\x00\x1f\"quoted\" \\ /"}, {1: "int key", 2: [3]},
    {"cash": 10**40, "debt": -(10**40), "tuple": (1, "x")}, [], {},
])  # fmt: skip
def test_sorted_json_edges_are_json_bytes(state: Any) -> None:
    assert sorted_json(state, default=_refuse) == _json(state)


def test_sorted_json_calls_default_on_what_json_does_not_know() -> None:
    with pytest.raises(InvariantError, match="refused object"):
        sorted_json({"x": [object()]}, default=_refuse)
    with pytest.raises(InvariantError, match="refused object"):
        sorted_json({1: object()}, default=_refuse)  # the non-str key's path refuses too
