"""Snapshot headers: the version of the state a snapshot holds, and what a restore makes of it.

A snapshot (``runtime.recovery.FeedJournal.snapshot``) is a header and the owner's state,
compressed. The header is a mark no unversioned snapshot can start with (those written before
versions began with their feed position, a non-negative big-endian integer: first byte below
0x80), the *version* of the owner's state, then the feed position and the ``ts_event`` and
``seq`` of the message before it::

    versioned:    ff 'T' 'W' | version (u32) | position, ts_event, seq (3 × i64) | zlib(state)
    unversioned:               position, ts_event, seq (3 × i64) | zlib(state)

An owner's version is :data:`SNAPSHOT_VERSION` unless it names its own (a book:
``actors.book.SNAPSHOT_VERSION``); bump it when the pickled classes change shape. An unversioned
snapshot reads as :data:`UNVERSIONED`. :func:`load_state` says why a snapshot cannot be used:

* another version than the owner reads — never loaded;
* unversioned, for an owner that can rebuild its state from the feed's log — never trusted: it
  cannot say which code wrote it, and the rebuild costs only time;
* unversioned for any other owner, or of its own version: loaded, and unusable only when the
  load fails (a class renamed or gone, a changed ``__setstate__``).

The caller decides what an unusable snapshot means (``runtime.recovery``: a rebuild, or a
:class:`~runtime.errors.DataError` naming the journal and both versions).
"""

from __future__ import annotations

import pickle
import struct
import zlib
from collections.abc import Callable
from typing import Final

__all__ = ["HEADER_SIZE", "SNAPSHOT_VERSION", "UNVERSIONED", "load_state", "pack",
           "read_header"]

SNAPSHOT_VERSION: Final = 1  # an owner's state version unless it names its own
UNVERSIONED: Final = 0  # what a snapshot written before versions reads as
_MAGIC: Final = b"\xffTW"
_HEADER = struct.Struct(">3sIqqq")  # mark, version, position, ts_event, seq
_OLD = struct.Struct(">qqq")  # an unversioned snapshot's: position, ts_event, seq
HEADER_SIZE: Final = _HEADER.size  # enough bytes to read either header
#: what unpickling (and decompressing) a snapshot written by other code can raise
_UNREADABLE = (pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError,
               EOFError, IndexError, KeyError, zlib.error)


def pack(state: bytes, *, version: int, position: int, last: tuple[int, int]) -> bytes:
    """A snapshot of ``state`` (the owner's, pickled) at feed ``position``."""
    # zlib's fastest level: a third of a pickle's bytes (windows of floats, order records)
    # for ~8 ms a megabyte
    return _HEADER.pack(_MAGIC, version, position, *last) + zlib.compress(state, 1)


def read_header(snapshot: bytes) -> tuple[int, int, tuple[int, int], int]:
    """A snapshot's version, feed position, (ts_event, seq) before it, and where its state
    starts (``struct.error`` when it is too short for a header)."""
    if snapshot[:len(_MAGIC)] == _MAGIC:
        _, version, position, ts, seq = _HEADER.unpack_from(snapshot)
        return version, position, (ts, seq), _HEADER.size
    position, ts, seq = _OLD.unpack_from(snapshot)
    return UNVERSIONED, position, (ts, seq), _OLD.size


def load_state(state: bytes, *, found: int, expected: int, load: Callable[[bytes], None],
               rebuildable: bool) -> tuple[str | None, Exception | None]:
    """``load`` the snapshot's (compressed) ``state`` if it may be used: ``(None, None)`` once
    loaded, else why it was not, in one line, and the error that said so (module docstring)."""
    what = ("no version (written before snapshots carried one)" if found == UNVERSIONED
            else f"version {found}")
    if found != expected and (found != UNVERSIONED or rebuildable):
        return f"its snapshot has {what}; this code reads version {expected}", None
    try:
        load(zlib.decompress(state))
    except _UNREADABLE as exc:
        return (f"its snapshot ({what}; this code reads version {expected}) does not load "
                f"with this code: {type(exc).__name__}: {exc}"), exc
    return None, None
