"""Pure conversions from what the actors answer to what the API returns (no Ray here).

Money, prices and quantities leave the actors as fixed-point integers (value × 10**9) and leave
the API as JSON numbers in human units.
"""

from __future__ import annotations

import math
import time
from typing import Any, get_args

from runtime.strategy import Price, Qty
from runtime.values import FIXED_SCALE

__all__ = [
    "HEALTHY",
    "STATE_CODES",
    "events_in",
    "fill_view",
    "health_view",
    "human_params",
    "is_open",
    "order_view",
    "out_of_range",
    "pnl_view",
    "position_view",
    "restarts",
]

STATE_CODES = {"active": 0, "reducing": 1, "halted": 2}
_OPEN = {
    "submitted",
    "accepted",
    "partially_filled",
    "pending_cancel",
    "pending_update",
    "initialized",
}
_CORE = ("risk", "gateway", "feed")
#: the health states in which the session trades (HTTP 200); ``starting`` and ``down`` are 503
HEALTHY = ("ok", "degraded")


def _f(value: Any) -> float | None:
    return None if value is None else value / FIXED_SCALE


_FIXED_MARKS = (*get_args(Qty)[1:], *get_args(Price)[1:])
_INT64 = 2**63


def _is_fixed(annotation: Any, metadata: list[Any]) -> bool:
    """A ``Qty`` / ``Price`` field (held as fixed point), also inside ``X | None``."""
    if any(m is mark for m in metadata for mark in _FIXED_MARKS):
        return True
    nested = getattr(annotation, "__metadata__", ())
    return any(m is mark for m in nested for mark in _FIXED_MARKS) or any(
        _is_fixed(arg, []) for arg in get_args(annotation)
    )


def human_params(params_type: Any, internal: dict[str, Any]) -> dict[str, Any]:
    """A strategy's params as its actor reports them (fixed point for ``Qty``/``Price``), in
    the human units of the config and the API."""
    out = dict(internal)
    for name, field in params_type.model_fields.items():
        value = out.get(name)
        fixed = _is_fixed(field.annotation, field.metadata)
        if fixed and isinstance(value, int) and not isinstance(value, bool):
            whole, rest = divmod(value, FIXED_SCALE)
            out[name] = whole if not rest else value / FIXED_SCALE
    return out


def out_of_range(value: Any) -> bool:
    """A value the actors cannot carry: an int beyond 64 bits, a float that is not finite
    (also inside lists and dicts)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -_INT64 <= value < _INT64
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list | tuple):
        return any(out_of_range(v) for v in value)
    if isinstance(value, dict):
        return any(out_of_range(v) for v in value.values())
    return False


def order_view(order: dict[str, Any]) -> dict[str, Any]:
    return {
        "client_order_id": order["id"],
        "strategy_id": order["strategy"],
        "instrument_id": order["instrument"],
        "side": "buy" if order["side"] > 0 else "sell",
        "type": order["type"],
        "quantity": _f(order["qty"]),
        "price": _f(order["price"]),
        "status": order["status"],
        "filled": _f(order["filled"]),
        "reason": order.get("reason"),
        "ts_last": order["ts_last"],
    }


def is_open(order: dict[str, Any]) -> bool:
    return str(order["status"]) in _OPEN


def fill_view(fill: Any) -> dict[str, Any]:
    return {
        "fill_id": fill.fill_id,
        "client_order_id": fill.client_order_id,
        "strategy_id": fill.strategy_id,
        "instrument_id": fill.instrument_id,
        "side": "buy" if int(fill.side) > 0 else "sell",
        "quantity": _f(fill.last_qty),
        "price": _f(fill.last_price),
        "fee": _f(fill.fee),
        "fee_qty": _f(fill.fee_qty),  # of the quantity, taken as the fee in kind (in fee)
        "liquidity": str(fill.liquidity),
        "ts_event": fill.ts_event,
    }


def position_view(pos: dict[str, Any]) -> dict[str, Any]:
    return {
        "instrument_id": pos["instrument_id"],
        "quantity": _f(pos["quantity"]),
        "avg_price": _f(pos["avg_price"]),
        "mark": _f(pos["mark"]),
        "realized_pnl": _f(pos["realized_pnl"]),
        "fees": _f(pos["fees"]),
    }


def pnl_view(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "pnl": (summary["equity"] - summary["initial_cash"]) / FIXED_SCALE,
        "realized": _f(summary["realized"]),
        "unrealized": _f(summary["unrealized"]),
        "fees": _f(summary["fees"]),
        "cash": _f(summary["cash"]),
        "equity": _f(summary["equity"]),
        "initial_cash": _f(summary["initial_cash"]),
    }


def health_view(
    snap: dict[str, Any], *, feed_stale_s: float, recorder_lag_s: float
) -> dict[str, Any]:
    """starting / ok / degraded / down, with the reasons. ``starting``: the control plane has not
    read the session yet, or a core actor (risk, gateway, feed) is not there yet."""
    reasons: list[str] = []
    down = False
    actors = snap.get("actors", {})
    missing = [name for name in _CORE if name not in actors]
    for name in missing:
        reasons.append(f"not started yet: {name}")
    for name, actor in actors.items():
        if not actor["up"]:
            reasons.append(f"actor down: {name}")
            down = down or name in _CORE
    feed = snap.get("feed") or {}
    if feed.get("error"):
        reasons.append(f"feed error: {feed['error']}")
        down = True
    if snap.get("feed_lag_s", 0.0) > feed_stale_s:
        reasons.append(f"feed stale: no progress for {snap['feed_lag_s']:.1f} s")
    recorder = snap.get("recorder")
    if recorder:
        if recorder.get("lag_s", 0.0) > recorder_lag_s:
            reasons.append(f"store lagging: recorder {recorder['lag_s']:.1f} s behind")
        if recorder.get("mode") == "draining":
            reasons.append("store lagging: recorder draining its spill (store failing)")
    drifts = (snap.get("reconciler") or {}).get("drifts", 0)
    if drifts:
        reasons.append(f"drift: {drifts} difference(s) between risk and the broker")
    if (snap.get("supervisor") or {}).get("escalated"):
        reasons.append(f"supervisor escalated: {snap['supervisor'].get('reason')}")
    if not snap.get("ts"):
        reasons.append("control plane has not read the session yet")
    starting = not snap.get("ts") or bool(missing)
    status = "down" if down else "starting" if starting else "degraded" if reasons else "ok"
    age = time.time() - snap["ts"] if snap.get("ts") else None
    return {"status": status, "reasons": reasons, "snapshot_age_s": age}


def events_in(
    feed: dict[str, Any] | None,
    risk: dict[str, Any] | None,
    books: list[dict[str, Any] | None],
    instruments: tuple[str, ...],
) -> dict[str, int]:
    out = {"feed": (feed or {}).get("events", 0), "risk": (risk or {}).get("cursor", 0)}
    for instrument, stats in zip(instruments, books, strict=True):
        out[f"book.{instrument}"] = (stats or {}).get("applied", 0)
    return out


def restarts(sup: dict[str, Any] | None, names: list[str]) -> dict[str, int]:
    out = {
        n.replace(".", ":", 1) if n.startswith(("strategy.", "book.")) else n: 0
        for n in names
        if n != "supervisor"
    }
    for event in (sup or {}).get("events", []):
        out[event["child"]] = out.get(event["child"], 0) + 1
    return out
