"""Operator actions and telemetry inside the session's actors.

The control plane (``serve/``) reaches the actors through one method on each:
``FeedActor.operate(name, args)`` (between two driver steps, under the feed's lock),
``RiskActor.operate(name, args)`` (reads) and ``StrategyActor.operate(name, args)``. Each
dispatches to ``feed_<name>``, ``risk_<name>`` or ``strategy_<name>`` here. An action becomes a
typed operator command (``runtime.messages.OperatorCommand``), stamped with the clock of the
actor that takes it, and goes the way every input goes: checked (:func:`checked`, then the
kernel's ``check``), journaled, handled by the kernel (``RiskActor.command``,
``StrategyActor.command``). Nothing here changes an actor's state by itself.

* trading state: ``feed_set_state`` (halt without cancels, reduce-only, resume), ``feed_kill``
  (halt, then cancel every open order); ``feed_cancel_all`` (cancels, the state unchanged);
* ``feed_flatten`` then ``feed_close_positions`` (repeated by the control plane until flat):
  reduce-only, every open order cancelled, then ``ClosePositions``: risk's kernel makes a market
  order per open position (deterministic ids from the ``operator`` strategy), checks it and the
  feed sends it to the gateway;
* ``strategy_params`` / ``strategy_enable``: ``SetStrategyParams`` (params in the core's units,
  checked by the strategy's params model) and ``SetStrategyEnabled`` (a disabled strategy hears
  no market data or timers; its order events still reach it);
* reads: ``feed_telemetry`` (the driver's timings, through its ``observe`` hook), ``risk_view``
  (limits and usage), ``risk_status`` (what the control plane's snapshot needs of risk, in one
  call), ``risk_orders`` (open and recent orders), ``risk_flat``, ``strategy_params`` (no
  params: what the strategy runs).

An action from the control plane carries ``correlation_id`` (the HTTP request's id) in its
args: :func:`dispatch` logs it (JSON, :mod:`actors.logs`) in the actor that carries it out,
and the close-out orders of a flatten are logged with their client order ids under it.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from typing import Any, TypeVar, cast

import msgspec

from runtime.errors import OperatorError
from runtime.messages import (
    AnyMessage,
    CancelAllOrders,
    ClosePositions,
    Message,
    OrderDenied,
    SetStrategyEnabled,
    SetStrategyParams,
    SetTradingState,
    SubmitOrder,
    TradingState,
)
from runtime.roster import OPERATOR
from runtime.values import FIXED_SCALE

__all__ = ["LATENCY_BOUNDARIES_S", "OPERATOR_STRATEGY", "Probe", "checked", "dispatch"]

log = logging.getLogger("tradewind.operator")

OPERATOR_STRATEGY = OPERATOR
LATENCY_BOUNDARIES_S = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]

C = TypeVar("C", bound=Message)
_DECODER = msgspec.msgpack.Decoder(AnyMessage)


def checked(command: C) -> C:
    """``command`` as it will be journaled and replayed (encoded, then decoded): a field of
    the wrong type or out of range is refused here, naming it (:class:`OperatorError`), before
    anything is written."""
    try:
        same = _DECODER.decode(msgspec.msgpack.encode(command))
    except (msgspec.ValidationError, msgspec.EncodeError, OverflowError, TypeError) as exc:
        raise OperatorError(f"{type(command).__name__} refused: {exc}") from None
    if type(same) is not type(command) or same != command:  # e.g. a tuple for a list
        raise OperatorError(f"{type(command).__name__} refused: values must be plain data")
    return cast(C, same)  # as it will be replayed (enums as enums)


def dispatch(prefix: str, target: Any, name: str, args: dict[str, Any]) -> Any:
    fn = globals().get(f"{prefix}_{name}")
    if fn is None:
        raise OperatorError(f"no operator action {prefix}.{name}")
    if "correlation_id" in args:  # an action (reads carry none): logged where it is applied
        args = dict(args)
        cid = str(args.pop("correlation_id"))
        log.info(
            "operator action %s.%s",
            prefix,
            name,
            extra={"correlation_id": cid, "fields": {"action": name, "args": args}},
        )
        if fn is feed_close_positions:
            args["correlation_id"] = cid
    return fn(target, **args)


# --- feed (async: the driver's calls are awaited) ---------------------------------------------
def _now(feed: Any) -> int:
    """An operator command's time: the data clock of the feed's driver."""
    return int(feed.driver.data_now())


def _state(state: str) -> TradingState:
    try:
        return TradingState(state)
    except ValueError:
        known = [s.value for s in TradingState]
        raise OperatorError(f"unknown trading state {state!r}: one of {known}") from None


async def feed_set_state(feed: Any, *, state: str, reason: str) -> dict[str, Any]:
    now = _now(feed)
    command = SetTradingState(seq=0, ts_event=now, ts_init=now, state=_state(state), reason=reason)
    await feed.driver.command(command)
    return {"state": state}


async def feed_kill(feed: Any, *, reason: str) -> dict[str, Any]:
    await feed.driver.set_state("halted", reason)  # halts, then cancels every open order
    return {"state": "halted"}


async def feed_cancel_all(feed: Any, *, reason: str) -> dict[str, Any]:
    """Cancel every open order; the trading state stays (a watchdog's first answer)."""
    now = _now(feed)
    out = await feed.driver.command(CancelAllOrders(seq=0, ts_event=now, ts_init=now,
                                                    reason=reason))
    return {"cancels": sum(type(m).__name__ == "CancelOrder" for m in out)}


async def feed_flatten(feed: Any, *, reason: str) -> dict[str, Any]:
    """Close-only and cancel every open order; :func:`feed_close_positions` does the rest once
    the cancels are confirmed (pending orders count against what may be closed)."""
    await feed_set_state(feed, state="reducing", reason=reason)
    now = _now(feed)
    await feed.driver.command(CancelAllOrders(seq=0, ts_event=now, ts_init=now, reason=reason))
    return {"state": "reducing"}


async def feed_close_positions(
    feed: Any, *, reason: str = "flatten", correlation_id: str = ""
) -> dict[str, Any]:
    """``ClosePositions``: risk's kernel makes a market order (from the ``operator`` strategy
    id) for each open position whose instrument has no order working, checks it, and the
    approved ones go to the gateway; ``flat`` once no position is left."""
    driver = feed.driver
    now = _now(feed)
    out = await driver.command(ClosePositions(seq=0, ts_event=now, ts_init=now, reason=reason))
    closes = [m for m in out if isinstance(m, SubmitOrder | OrderDenied)
              and m.strategy_id == OPERATOR]
    for order in closes:
        what = order.side.name.lower() if isinstance(order, SubmitOrder) else "denied"
        log.info(
            "close-out order %s %s %s",
            order.client_order_id,
            order.instrument_id,
            what,
            extra={"correlation_id": correlation_id,
                   "fields": {"client_order_id": order.client_order_id}},
        )
    flat: bool = await driver.ports.risk.operate.remote("flat", {})
    return {
        "flat": flat,
        "sent": [o.client_order_id for o in closes],
        "approved": sum(isinstance(m, SubmitOrder) for m in closes),
        "denied": [m.reason for m in closes if isinstance(m, OrderDenied)],
    }


async def feed_telemetry(feed: Any, *, raw: bool = False) -> dict[str, Any]:
    """The driver's timings so far, through its ``observe`` hook (a :class:`Probe`, set on
    the first call), and queue depth (``raw``: with the latest samples of each stage, for
    benchmarks)."""
    driver = feed.driver
    probe = driver.observe
    if not isinstance(probe, Probe):
        probe = driver.observe = Probe(feed.setup.session_id)
    out = probe.summary() | {"reports": len(driver.reports),
                             "answers": sum(map(len, driver.answers.values()))}
    if raw:
        out["samples"] = {stage: list(values) for stage, values in probe.samples.items()}
    return out


class Probe:
    """The driver's ``observe(stage, seconds)`` hook: per stage (``step``: each step's run
    through the chain and back; ``tick_to_order``: a step with market data that sent
    commands), the latest samples, histogram buckets and sums, and a Ray histogram."""

    def __init__(self, session_id: str) -> None:
        from ray.util.metrics import Histogram

        self.session_id = session_id
        self.samples: dict[str, deque[float]] = {
            s: deque(maxlen=20_000) for s in ("step", "tick_to_order")}
        self.buckets = {s: [0] * (len(LATENCY_BOUNDARIES_S) + 1) for s in self.samples}
        self.sums = dict.fromkeys(self.samples, 0.0)
        self.histogram = Histogram(
            "tradewind_latency_seconds",
            "tick -> order at the gateway, per stage",
            boundaries=LATENCY_BOUNDARIES_S,
            tag_keys=("session", "stage"),
        )

    def __call__(self, stage: str, seconds: float) -> None:
        if stage not in self.samples:
            self.samples[stage] = deque(maxlen=20_000)
            self.buckets[stage] = [0] * (len(LATENCY_BOUNDARIES_S) + 1)
            self.sums[stage] = 0.0
        self.samples[stage].append(seconds)
        self.sums[stage] += seconds
        k = next(
            (i for i, b in enumerate(LATENCY_BOUNDARIES_S) if seconds <= b),
            len(LATENCY_BOUNDARIES_S),
        )
        self.buckets[stage][k] += 1
        self.histogram.observe(seconds, tags={"session": self.session_id, "stage": stage})

    def summary(self) -> dict[str, Any]:
        """Bucket counts, sums and counts per stage: O(buckets), since the feed's lock is held
        while it runs (quantiles come from the raw samples, outside the actor)."""
        stages = {
            stage: {
                "buckets": list(self.buckets[stage]),
                "sum": self.sums[stage],
                "count": sum(self.buckets[stage]),
            }
            for stage in self.samples
        }
        return {"boundaries": LATENCY_BOUNDARIES_S, "stages": stages}


# --- risk (synchronous actor) -----------------------------------------------------------------
def risk_flat(risk: Any) -> bool:
    """Whether the session holds no position."""
    return not any(p.quantity for p in risk.jk.kernel.portfolio.positions.values())


def risk_view(risk: Any) -> dict[str, Any]:
    """Limits and usage: the risk engine's state, exposure and the daily loss used."""
    kernel = risk.jk.kernel
    engine, portfolio = kernel.risk, kernel.portfolio
    state = engine.state_dict()
    equity = portfolio.equity()
    start = state.get("day_start_equity")
    loss = max(0, int(start) - equity) if isinstance(start, int) else 0
    limits = {k: _number(v) for k, v in engine.limits.model_dump(mode="json").items()}
    return {
        "state": state["state"],
        "reason": state["reason"],
        "limits": limits,
        "usage": {
            "daily_loss": loss / FIXED_SCALE,
            "trades_today": state["trades_today"],
            "gross_exposure": portfolio.gross_exposure() / FIXED_SCALE,
            "denials": state["denials"],
            "positions": {
                k: p.quantity / FIXED_SCALE
                for k, p in sorted(portfolio.positions.items())
                if p.quantity
            },
        },
        # the orders held by status, and those retired (``runtime.retirement``): all of them
        "orders_by_status": {**_count(o.status for o in kernel.orders.values()),
                             **({"retired": n} if (n := kernel.ledger.retired.count) else {})},
        "denials_by_reason": _count(
            (o.reason or "unknown").split(":")[0]
            for o in kernel.orders.values()
            if str(o.status) == "denied"
        ),
    }


def risk_status(risk: Any) -> dict[str, Any]:
    """What the control plane's snapshot needs of risk, in one call: the summary (without the
    state hash, which costs a canonical serialisation of the whole state), limits and usage
    (:func:`risk_view`) and the positions."""
    kernel = risk.jk.kernel
    portfolio, registry = kernel.portfolio, kernel.registry
    return {
        "summary": {
            "cursor": risk.cursor,
            "now": kernel.now,
            "state": str(kernel.risk.state),
            "state_reason": kernel.risk.state_reason,
            "orders": kernel.ledger.total,
            "retired": kernel.ledger.retired.count,
            "open": len(kernel.open),
            "fills": portfolio.n_fills,
            "cash": portfolio.cash,
            "equity": portfolio.equity(),
            "realized": portfolio.realized_pnl,
            "unrealized": portfolio.unrealized_pnl(),
            "fees": portfolio.fees,
            "initial_cash": portfolio.initial_cash,
        },
        "view": risk_view(risk),
        "positions": [
            {
                "instrument_id": k,
                "quantity": p.quantity,
                "realized_pnl": p.realized_pnl,
                "fees": p.fees,
                "mark": p.mark,
                "avg_price": p.avg_price(registry.get(k).multiplier),
            }
            for k, p in sorted(portfolio.positions.items())
        ],
    }


def risk_orders(risk: Any, *, recent: int) -> dict[str, Any]:
    """The open orders and the ``recent`` latest (by last update), newest first: only those
    are serialised, however many orders the session has."""
    orders = risk.jk.kernel.orders.values()
    latest = heapq.nlargest(recent, orders, key=lambda o: o.ts_last)
    return {
        "open": [o.state() for o in risk.jk.kernel.open.values()],
        "recent": [o.state() for o in latest],
        "total": risk.jk.kernel.ledger.total,
    }


def _number(value: Any) -> Any:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return value


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[str(value)] = out.get(str(value), 0) + 1
    return out


# --- strategy (synchronous actor) -------------------------------------------------------------
def _strategy_stamp(actor: Any) -> dict[str, Any]:
    now = actor.host.now
    return {"seq": 0, "ts_event": now, "ts_init": now, "strategy_id": actor.strategy_id}


def strategy_params(actor: Any, *, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the strategy runs (params in the core's units, enabled); with ``params`` (the
    core's units), ``SetStrategyParams`` first."""
    if params:
        return dict(actor.command(SetStrategyParams(**_strategy_stamp(actor), params=params)))
    return dict(actor.view())


def strategy_enable(actor: Any, *, enabled: bool) -> dict[str, Any]:
    return dict(actor.command(SetStrategyEnabled(**_strategy_stamp(actor), enabled=enabled)))

