"""Load a raw Binance USD-M futures websocket capture into flat numpy event arrays, once.

Input lines are ``<local_receive_ts_ns> <raw JSON>`` from the combined streams
``<sym>@depth@0ms`` (diffs), ``<sym>@trade`` and ``<sym>@bookTicker``, plus REST depth snapshots
(``{"lastUpdateId": ...}``). The result, :class:`L2Events`, is one row per *level change* or
trade, sorted by exchange time (stable: feed order breaks ties):

- a diff becomes one ``BID``/``ASK`` row per level (size 0 deletes);
- a snapshot becomes ``BID_CLEAR``/``ASK_CLEAR`` (clear that side from the best down to the
  snapshot's last price) followed by its levels;
- a trade (``X == "MARKET"`` only) becomes ``TRADE_BUY``/``TRADE_SELL`` by aggressor side;
- bookTicker lines are skipped: the book is rebuilt from the diffs.

Exchange time is the message's transaction time ``T`` (ms → ns). Local time is the receive stamp,
corrected for clock skew like hftbacktest's converter: when any ``local - exchange`` is negative,
every local time is shifted by ``-min(local - exchange) + base_latency_ns`` so feed latency is
never negative. Prices and sizes are fixed point (×1e9), exact for decimal inputs of up to nine
decimals and magnitudes below ~1e6.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import orjson

from runtime.errors import DataError
from runtime.values import FIXED_SCALE

__all__ = [
    "ASK",
    "ASK_CLEAR",
    "BID",
    "BID_CLEAR",
    "TRADE_BUY",
    "TRADE_SELL",
    "L2Events",
    "load_binance_capture",
]

BID, ASK, BID_CLEAR, ASK_CLEAR, TRADE_BUY, TRADE_SELL = 1, 2, 3, 4, 5, 6
_MS = 1_000_000


@dataclass(frozen=True)
class L2Events:
    """Flat event arrays sorted by ``exch_ts``; ``local_order`` sorts them by ``local_ts``."""

    kind: np.ndarray  # int8, one of BID..TRADE_SELL
    exch_ts: np.ndarray  # int64 ns
    local_ts: np.ndarray  # int64 ns (skew-corrected)
    price: np.ndarray  # int64 fixed point
    qty: np.ndarray  # int64 fixed point
    local_order: np.ndarray  # int64 permutation: events in local-time order

    def __len__(self) -> int:
        return len(self.kind)

    def head(self, n: int) -> L2Events:
        """The first ``n`` events in exchange time (for smoke tests)."""
        return from_arrays(
            kind=self.kind[:n],
            exch_ts=self.exch_ts[:n],
            local_ts=self.local_ts[:n],
            price=self.price[:n],
            qty=self.qty[:n],
        )


def from_arrays(
    *,
    kind: np.ndarray,
    exch_ts: np.ndarray,
    local_ts: np.ndarray,
    price: np.ndarray,
    qty: np.ndarray,
) -> L2Events:
    """Build :class:`L2Events` from unsorted arrays (hand-made sequences in tests, other feeds)."""
    order = np.argsort(np.asarray(exch_ts, dtype=np.int64), kind="stable")
    kind_s = np.asarray(kind, dtype=np.int8)[order]
    exch_s = np.asarray(exch_ts, dtype=np.int64)[order]
    local_s = np.asarray(local_ts, dtype=np.int64)[order]
    return L2Events(
        kind=kind_s,
        exch_ts=exch_s,
        local_ts=local_s,
        price=np.asarray(price, dtype=np.int64)[order],
        qty=np.asarray(qty, dtype=np.int64)[order],
        local_order=np.argsort(local_s, kind="stable").astype(np.int64),
    )


class _Builder:
    """Collects per-message rows; level strings are converted in one vectorised pass."""

    def __init__(self) -> None:
        self.levels: list[list[str]] = []  # [price, qty] strings, in row order
        self.kinds: list[int] = []
        self.exch: list[int] = []
        self.local: list[int] = []

    def add_levels(self, kind: int, levels: list[list[str]], exch: int, local: int) -> None:
        n = len(levels)
        if n:
            self.levels.extend(levels)
            self.kinds.extend([kind] * n)
            self.exch.extend([exch] * n)
            self.local.extend([local] * n)

    def add_row(self, kind: int, price: str, qty: str, exch: int, local: int) -> None:
        self.levels.append([price, qty])
        self.kinds.append(kind)
        self.exch.append(exch)
        self.local.append(local)

    def add_snapshot(self, msg: dict[str, object], local: int) -> None:
        exch = int(msg["T"]) * _MS  # type: ignore[call-overload]
        for clear, kind, key in ((BID_CLEAR, BID, "bids"), (ASK_CLEAR, ASK, "asks")):
            levels = msg[key]
            if isinstance(levels, list) and levels:
                self.add_row(clear, levels[-1][0], "0", exch, local)
                self.add_levels(kind, levels, exch, local)


def _parse_line(builder: _Builder, line: bytes, row: int, source: str) -> None:
    try:
        local = int(line[:19])
        msg = orjson.loads(line[20:])
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise DataError(f"unparsable line: {line[:80]!r}", source=source, row=row) from exc
    data = msg.get("data")
    if data is None:
        if "lastUpdateId" in msg:
            builder.add_snapshot(msg, local)
        return
    event = data.get("e")
    if event == "depthUpdate":
        exch = data["T"] * _MS
        builder.add_levels(BID, data["b"], exch, local)
        builder.add_levels(ASK, data["a"], exch, local)
    elif event == "trade" and data.get("X") == "MARKET":
        kind = TRADE_SELL if data["m"] else TRADE_BUY  # m: buyer is maker, so a seller hit
        builder.add_row(kind, data["p"], data["q"], data["T"] * _MS, local)


def parse_binance_capture(path: Path, *, base_latency_ns: int = 0) -> L2Events:
    """Parse the raw capture (gzip or plain) into :class:`L2Events`."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    builder = _Builder()
    source = str(path)
    for row, line in enumerate(raw.splitlines(), start=1):
        if not line or b"@bookTicker" in line[20:64]:
            continue
        _parse_line(builder, line, row, source)
    if not builder.kinds:
        raise DataError("no depth or trade messages", source=source)
    values = np.array(builder.levels, dtype=np.float64) * FIXED_SCALE
    fixed = np.rint(values).astype(np.int64)
    exch = np.array(builder.exch, dtype=np.int64)
    local = np.array(builder.local, dtype=np.int64)
    min_latency = int((local - exch).min())
    if min_latency < 0:
        local += -min_latency + base_latency_ns
    return from_arrays(
        kind=np.array(builder.kinds, dtype=np.int8),
        exch_ts=exch,
        local_ts=local,
        price=fixed[:, 0],
        qty=fixed[:, 1],
    )


def load_binance_capture(
    path: str | Path, *, cache_dir: str | Path | None = None, base_latency_ns: int = 0
) -> L2Events:
    """Load the capture, through an ``.npz`` cache keyed by file content when ``cache_dir``."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", source=str(path))
    if cache_dir is None:
        return parse_binance_capture(path, base_latency_ns=base_latency_ns)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cached = Path(cache_dir) / f"{path.name}.{digest}.{base_latency_ns}.l2.npz"
    if cached.exists():
        with np.load(cached) as npz:
            return L2Events(**{f.name: npz[f.name] for f in fields(L2Events)})
    events = parse_binance_capture(path, base_latency_ns=base_latency_ns)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp.npz")
    np.savez(tmp, **{f.name: getattr(events, f.name) for f in fields(L2Events)})
    tmp.replace(cached)
    return events
