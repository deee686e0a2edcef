"""Reconciliation: compare the gateway's view with the risk actor's and recommend a trading state.

A pure function, :func:`reconcile`. Each side's :class:`View` is its positions (signed quantity,
fixed-point raw int, per instrument; a zero position is the same as none), its open client order
ids and the fill ids it knows. The :class:`Report` lists every drift, each naming both sides:

* :class:`PositionDrift` — the two quantities of an instrument differ;
* :class:`OrderDrift` — an order is open at one side only (``open_at`` says which);
* :class:`FillDrift` — a fill is known to one side only (``known_to`` says which).

and recommends a trading state from :class:`ReconcileThresholds` (the most severe rule wins):

* a fill known to one side only ⇒ ``fill_drift_state`` (default HALTED: the books disagree on
  what happened);
* a position drift larger than ``halt_position_drift_lots`` lots ⇒ HALTED; a smaller non-zero
  drift ⇒ ``position_drift_state`` (default REDUCING);
* an order open at one side only ⇒ ``orphan_order_state`` (default REDUCING);
* no drift ⇒ ACTIVE.

Fills in flight. The gateway holds its reports in one list, by index; the session has handed
risk the first ``delivered`` of them (the feed's watermark). :func:`as_of` turns the gateway's
view into its view *as of that watermark*: a fill the gateway knows beyond it (reported after it,
or not reported yet) is *in flight*, so it leaves ``fills`` for ``in_flight`` and, when its
report says how much it moved, leaves ``positions`` too (``unvalued``: those it could not take
out). Read the watermark first, then risk's view, then the gateway's: then risk has at least
what the watermark says, and the gateway at least what risk has. Risk may have more (the step
that carried a report was on its way when the watermark was read, or a restarted feed resumed
from an older saved count): :func:`landed` puts the fills in flight that risk already holds
back. What remains one-sided is not explained by a report on its way (``runtime/watchdog.py``
counts only that).

Properties (tested): no drift ⇔ the views are equal (zero positions ignored); swapping the sides
swaps ``gateway``/``risk`` in every drift and leaves the recommendation unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from runtime.messages import Message, OrderFilled, TradingState
from runtime.values import FIXED_SCALE, from_fixed

__all__ = [
    "Drift",
    "FillDrift",
    "OrderDrift",
    "PositionDrift",
    "ReconcileThresholds",
    "Report",
    "View",
    "as_of",
    "describe",
    "landed",
    "recommend",
    "reconcile",
]

SideName: TypeAlias = Literal["gateway", "risk"]
_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class View(msgspec.Struct, frozen=True, kw_only=True):
    """One side's account of the session: positions, open orders, fills."""

    positions: dict[str, int] = msgspec.field(default_factory=dict)  # signed raw quantity
    open_orders: frozenset[str] = frozenset()
    fills: frozenset[str] = frozenset()
    #: fills beyond the delivered watermark (:func:`as_of`): each with the instrument and the
    #: signed quantity taken out of ``positions``, or None (unvalued: still in them)
    in_flight: dict[str, tuple[str, int] | None] = msgspec.field(default_factory=dict)

    @classmethod
    def of(
        cls,
        positions: Mapping[str, int] | None = None,
        open_orders: Iterable[str] = (),
        fills: Iterable[str] = (),
    ) -> View:
        return cls(
            positions={k: int(v) for k, v in (positions or {}).items() if int(v) != 0},
            open_orders=frozenset(open_orders),
            fills=frozenset(fills),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> View:
        """From ``{"positions": {...}, "open_orders": [...], "fills": [...]}`` (an actor's view)."""
        view = cls.of(data.get("positions"), data.get("open_orders", ()), data.get("fills", ()))
        in_flight = {str(k): None if v is None else (str(v[0]), int(v[1]))
                     for k, v in dict(data.get("in_flight") or {}).items()}
        return msgspec.structs.replace(view, in_flight=in_flight) if in_flight else view

    def to_dict(self) -> dict[str, Any]:
        """The dict form an actor answers (``from_dict`` reads it back)."""
        return {"positions": dict(self.positions), "open_orders": sorted(self.open_orders),
                "fills": sorted(self.fills), "in_flight": dict(sorted(self.in_flight.items()))}

    def position(self, instrument_id: str) -> int:
        return self.positions.get(instrument_id, 0)


class ReconcileThresholds(BaseModel):
    """Which trading state each kind of drift calls for (YAML ``reconcile:``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    halt_position_drift_lots: int = Field(default=0, ge=0)  # drift above this many lots: HALTED
    position_drift_state: TradingState = TradingState.REDUCING  # a drift within that
    orphan_order_state: TradingState = TradingState.REDUCING
    fill_drift_state: TradingState = TradingState.HALTED
    lot_sizes: dict[str, int] = Field(default_factory=dict)  # raw lot size per instrument
    default_lot_size: int = Field(default=FIXED_SCALE, gt=0)  # raw: one unit

    def lot_size(self, instrument_id: str) -> int:
        return self.lot_sizes.get(instrument_id, self.default_lot_size)


class PositionDrift(msgspec.Struct, frozen=True, kw_only=True):
    instrument_id: str
    gateway: int
    risk: int
    lots: int  # |gateway - risk| in lots, rounded up
    kind: str = "position_drift"


class OrderDrift(msgspec.Struct, frozen=True, kw_only=True):
    client_order_id: str
    open_at: SideName  # the only side where the order is open
    kind: str = "order_drift"


class FillDrift(msgspec.Struct, frozen=True, kw_only=True):
    fill_id: str
    known_to: SideName  # the only side that knows the fill
    kind: str = "fill_drift"


Drift: TypeAlias = PositionDrift | OrderDrift | FillDrift


class Report(msgspec.Struct, frozen=True, kw_only=True):
    drifts: tuple[Drift, ...]
    state: TradingState  # the recommended trading state
    reasons: tuple[str, ...]  # one line per rule that fired, most severe first

    @property
    def clean(self) -> bool:
        return not self.drifts

    def events(self) -> list[dict[str, Any]]:
        """Each drift as a plain dict, with the recommended state and a one-line ``message`` in
        human units (for actors and logs; the fields keep the raw fixed-point values)."""
        return [
            {
                **msgspec.structs.asdict(d),
                "recommended_state": str(self.state),
                "message": describe(d),
            }
            for d in self.drifts
        ]


def describe(drift: Drift) -> str:
    """One line for a drift, quantities in human units (``109``, never ``109000000000``)."""
    if isinstance(drift, PositionDrift):
        return (
            f"position {drift.instrument_id}: gateway {from_fixed(drift.gateway)} vs risk "
            f"{from_fixed(drift.risk)} ({drift.lots} lot(s) apart)"
        )
    if isinstance(drift, OrderDrift):
        return f"order {drift.client_order_id} open at the {drift.open_at} only"
    return f"fill {drift.fill_id} known to the {drift.known_to} only"


def _position_drifts(
    gateway: View, risk: View, thresholds: ReconcileThresholds
) -> list[PositionDrift]:
    drifts = []
    for instrument_id in sorted(gateway.positions.keys() | risk.positions.keys()):
        g, r = gateway.position(instrument_id), risk.position(instrument_id)
        if g != r:
            lots = -(-abs(g - r) // thresholds.lot_size(instrument_id))
            drifts.append(PositionDrift(instrument_id=instrument_id, gateway=g, risk=r, lots=lots))
    return drifts


def _one_sided(gateway: frozenset[str], risk: frozenset[str]) -> list[tuple[str, SideName]]:
    only: list[tuple[str, SideName]] = [(i, "gateway") for i in gateway - risk]
    only += [(i, "risk") for i in risk - gateway]
    return sorted(only)


def recommend(
    drifts: list[Drift], thresholds: ReconcileThresholds
) -> tuple[TradingState, tuple[str, ...]]:
    """The trading state ``drifts`` call for (the most severe rule) and a line per rule."""
    fired: dict[str, TradingState] = {}
    for d in drifts:
        if isinstance(d, FillDrift):
            fired["a fill known to one side only"] = thresholds.fill_drift_state
        elif isinstance(d, OrderDrift):
            fired["an order open at one side only"] = thresholds.orphan_order_state
        elif d.lots > thresholds.halt_position_drift_lots:
            limit = thresholds.halt_position_drift_lots
            fired[f"a position drift above {limit} lot(s)"] = TradingState.HALTED
        else:
            fired["a position drift"] = thresholds.position_drift_state
    if not fired:
        return TradingState.ACTIVE, ()
    ranked = sorted(fired.items(), key=lambda item: (-_SEVERITY[item[1]], item[0]))
    return ranked[0][1], tuple(f"{reason} ⇒ {state}" for reason, state in ranked)


def as_of(view: View, reports: Sequence[Message], delivered: int) -> View:
    """The gateway's ``view`` as of the watermark: the first ``delivered`` of its ``reports``
    reached risk; every other fill it knows is in flight (module docstring)."""
    handed = {r.fill_id for r in reports[:delivered] if isinstance(r, OrderFilled)}
    late = {r.fill_id: r for r in reports[delivered:] if isinstance(r, OrderFilled)}
    flying = view.fills - handed
    if not flying:
        return view
    in_flight: dict[str, tuple[str, int] | None] = {}
    for fill_id in sorted(flying):
        fill = late.get(fill_id)
        in_flight[fill_id] = None if fill is None else (fill.instrument_id, fill.position_change)
    return _moved(view, fills=view.fills - flying, in_flight=in_flight, sign=-1)


def landed(gateway: View, risk: View) -> View:
    """The gateway's view as of the watermark with the fills in flight that ``risk`` holds
    already put back: the watermark lags what risk has (module docstring)."""
    arrived = {k: v for k, v in gateway.in_flight.items() if k in risk.fills}
    if not arrived:
        return gateway
    still = {k: v for k, v in gateway.in_flight.items() if k not in arrived}
    return _moved(msgspec.structs.replace(gateway, in_flight=arrived),
                  fills=gateway.fills | arrived.keys(), in_flight=still, sign=1)


def _moved(view: View, *, fills: frozenset[str], in_flight: dict[str, tuple[str, int] | None],
           sign: int) -> View:
    """``view`` with ``fills`` and ``in_flight``, its positions moved by ``sign`` times the
    valued fills of ``in_flight`` (-1: taken out) or of its own (+1: put back)."""
    positions = dict(view.positions)
    for moved in (in_flight if sign < 0 else view.in_flight).values():
        if moved is not None:
            positions[moved[0]] = positions.get(moved[0], 0) + sign * moved[1]
    return View(positions={k: v for k, v in positions.items() if v},
                open_orders=view.open_orders, fills=fills, in_flight=in_flight)


def reconcile(gateway: View, risk: View, *, thresholds: ReconcileThresholds) -> Report:
    """Every drift between the two views and the trading state they call for."""
    drifts: list[Drift] = list(_position_drifts(gateway, risk, thresholds))
    drifts += [
        OrderDrift(client_order_id=i, open_at=s)
        for i, s in _one_sided(gateway.open_orders, risk.open_orders)
    ]
    drifts += [FillDrift(fill_id=i, known_to=s) for i, s in _one_sided(gateway.fills, risk.fills)]
    state, reasons = recommend(drifts, thresholds)
    return Report(drifts=tuple(drifts), state=state, reasons=reasons)
