"""A canonical hash of component state: equal states hash equal, whatever the dict order.

:func:`state_hash` walks a tree of ``None``, ``bool``, ``int``, ``str``, ``bytes``, ``Decimal``
(finite), ``list``/``tuple``, ``dict``, ``set``/``frozenset`` and msgspec ``Struct`` values and
hashes a canonical encoding of it with SHA-256. The encoding is Tradewind's own, small and
unambiguous (every value is type-tagged and length-prefixed):

* dict entries and set elements are sorted by their *encoded* bytes, so insertion order never
  matters and keys of mixed types still have one order;
* ``list`` and ``tuple`` encode alike (a sequence), so a state that went through a serialiser
  (msgpack turns tuples into lists) hashes as before;
* ``bool`` is not ``int`` (``True`` and ``1`` hash differently); an ``IntEnum``/``StrEnum`` hashes
  as its value;
* a Struct encodes its qualified type name and its fields (name and value) in declaration order;
* ``Decimal`` encodes its normalised form (``Decimal("1.50") == Decimal("1.5")`` hash equal).

Floats are refused: state in the core is exact (fixed-point ints), and a float would make "same
inputs, same state" depend on rounding. The :class:`~runtime.errors.InvariantError` names the path
of the offending value, e.g. ``$.positions['AAPL'].avg_price``.

:func:`sorted_json` is the other canonical encoding here: the compact sorted-key JSON the
kernel hashes (``Kernel.state_hash``), written by msgspec's encoder at C speed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

from runtime.errors import InvariantError

__all__ = ["canonical_bytes", "sorted_json", "state_hash"]


def sorted_json(obj: object, *, default: Callable[[Any], Any]) -> bytes:
    """``json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False,
    default=default).encode()``, byte for byte, for a tree of ``None``, ``bool``, ``int`` (any
    size), ``str``, ``list``/``tuple`` and ``str``-keyed ``dict`` (what a kernel's state holds:
    ``Kernel.state_hash`` hashes this; the tests check that tree with :func:`state_hash`).

    msgspec writes exactly json's bytes for such a tree as long as every string is printable
    ASCII; it writes other characters as UTF-8 (and DEL raw) where json escapes them, and
    refuses dicts with other keys. Those trees take json's own path, so the bytes are json's
    either way. ``default`` is called on what neither encoder knows (and should raise). Outside
    that tree the two part: msgspec writes floats its own way and encodes what json refuses
    (datetimes, sets, Structs, plain enums), so a state must keep to it.
    """
    try:
        encoded = _SORTED_JSON.encode(obj)
    except TypeError:  # a key that is not a str: json's rules (it may refuse the tree)
        encoded = b"\x80"
    if encoded.isascii() and b"\x7f" not in encoded:
        return encoded
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False,
                      default=default)  # fmt: skip
    return text.encode()


def _unknown(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON")


_SORTED_JSON = msgspec.json.Encoder(order="sorted", enc_hook=_unknown)


class _Refused(Exception):
    """Internal: a value that cannot be hashed; collects its path while unwinding."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what
        self.path: list[str] = []


def state_hash(obj: object) -> str:
    """SHA-256 hex digest of the canonical encoding of ``obj`` (see the module docstring)."""
    return hashlib.sha256(canonical_bytes(obj)).hexdigest()


def canonical_bytes(obj: object) -> bytes:
    """The canonical encoding :func:`state_hash` hashes; raises InvariantError on a float."""
    try:
        return _encode(obj)
    except _Refused as exc:
        path = "$" + "".join(reversed(exc.path))
        raise InvariantError(f"state_hash: {exc.what} at {path}") from None
    except RecursionError:
        raise InvariantError("state_hash: state is too deep or cyclic") from None


def _frame(tag: bytes, body: bytes) -> bytes:
    return tag + str(len(body)).encode() + b":" + body


def _encode(obj: object) -> bytes:
    if obj is None:
        return b"N"
    if obj is True:
        return b"T"
    if obj is False:
        return b"F"
    if isinstance(obj, int):
        return b"i" + str(int(obj)).encode() + b";"
    if isinstance(obj, str):
        return _frame(b"s", str(obj).encode())
    if isinstance(obj, bytes | bytearray | memoryview):
        return _frame(b"b", bytes(obj))
    if isinstance(obj, float):
        raise _Refused(f"float {obj!r} is refused (state in the core is exact)")
    return _encode_compound(obj)


def _encode_compound(obj: object) -> bytes:
    if isinstance(obj, list | tuple):
        return _frame(b"l", b"".join(_child(item, f"[{i}]") for i, item in enumerate(obj)))
    if isinstance(obj, dict):
        return _frame(b"d", _encode_dict(obj))
    if isinstance(obj, set | frozenset):
        items = sorted(_child(item, f"{{{item!r}}}") for item in obj)
        return _frame(b"e", b"".join(items))
    if isinstance(obj, msgspec.Struct):
        return _encode_struct(obj)
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise _Refused(f"non-finite Decimal {obj!r} is refused")
        return _frame(b"m", str(obj.normalize()).encode())
    raise _Refused(f"unsupported type {type(obj).__qualname__}")


def _child(obj: object, step: str) -> bytes:
    try:
        return _encode(obj)
    except _Refused as exc:
        exc.path.append(step)
        raise


def _encode_dict(obj: dict[Any, Any]) -> bytes:
    pairs = []
    for key, value in obj.items():
        step = f"[{key!r}]"
        pairs.append((_child(key, step + "<key>"), _child(value, step)))
    pairs.sort()
    return b"".join(k + v for k, v in pairs)


def _encode_struct(obj: msgspec.Struct) -> bytes:
    cls = type(obj)
    parts = [_frame(b"s", f"{cls.__module__}.{cls.__qualname__}".encode())]
    for name in obj.__struct_fields__:
        parts.append(_frame(b"s", name.encode()))
        parts.append(_child(getattr(obj, name), f".{name}"))
    return _frame(b"S", b"".join(parts))
