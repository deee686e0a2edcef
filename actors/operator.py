"""Operator actions and telemetry that run *inside* the session's actors (issue 4).

The control plane (``serve/``) reaches the actors through one small additive method on each:
``FeedActor.operate(name, args)`` (between two driver steps, under the feed's lock),
``RiskActor.operate(name, args)`` and ``StrategyActor.operate(name, args)``. Each dispatches to
``feed_<name>``, ``risk_<name>`` or ``strategy_<name>`` here, so the actor files stay unchanged
apart from that one method.

* trading state: ``feed_set_state`` (halt without cancels, reduce-only, resume), ``feed_kill``
  (halt and cancel every open order);
* ``feed_flatten`` then ``feed_close_positions`` (repeated by the control plane until flat):
  REDUCING first (the strategies cannot open again), every open order cancelled, then a market
  order per open position, from the ``operator`` strategy id, through the risk actor (journaled,
  checked) to the gateway;
* ``strategy_params`` / ``strategy_enable``: validated against the strategy's params model and
  applied to the running strategy (no restart); a disabled strategy sees no market data or timers
  (order events still reach it);
* telemetry: ``feed_telemetry`` wraps the driver's hot path once per process (timings of
  tick → intent → order → gateway) into Ray histograms and a local summary the control plane
  reads; ``risk_view`` is the risk kernel's limits and usage; ``risk_status`` is everything the
  control plane's snapshot needs of risk in one call (summary without the state hash, limits
  and usage, positions); ``risk_orders`` the open and the most recent orders only.

An action from the control plane carries ``correlation_id`` (the HTTP request's id) in its
args: :func:`dispatch` logs it (JSON, :mod:`actors.logs`) in the actor that carries it out,
and the close-out orders of a flatten are logged with their client order ids under it.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from typing import Any

from runtime.messages import OrderDenied, OrderSide, OrderType, SubmitOrder, TimeInForce
from runtime.values import FIXED_SCALE

__all__ = ["LATENCY_BOUNDARIES_S", "OPERATOR_STRATEGY", "dispatch"]

log = logging.getLogger("tradewind.operator")

OPERATOR_STRATEGY = "operator"
LATENCY_BOUNDARIES_S = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]
_HOOKS = ("on_quote", "on_trade", "on_book", "on_bar", "on_timer")


def dispatch(prefix: str, target: Any, name: str, args: dict[str, Any]) -> Any:
    fn = globals().get(f"{prefix}_{name}")
    if fn is None:
        raise ValueError(f"no operator action {prefix}.{name}")
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
async def feed_set_state(feed: Any, *, state: str, reason: str) -> dict[str, Any]:
    driver = feed.driver
    await driver.flush()
    driver._record(await driver.ports.risk.set_state.remote(state, reason))
    return {"state": state}


async def feed_kill(feed: Any, *, reason: str) -> dict[str, Any]:
    await feed.driver.set_state("halted", reason)  # cancels every open order
    return {"state": "halted"}


async def feed_flatten(feed: Any, *, reason: str) -> dict[str, Any]:
    """Close-only and cancel every open order; :func:`feed_close_positions` does the rest once
    the cancels are confirmed (pending orders count against what may be closed)."""
    await feed_set_state(feed, state="reducing", reason=reason)
    await feed.driver.cancel_all()
    return {"state": "reducing"}


async def feed_close_positions(feed: Any, *, correlation_id: str = "") -> dict[str, Any]:
    """A market order (from the ``operator`` strategy id, through risk) for each open position
    whose instrument has no order working; ``flat`` once no position is left."""
    driver = feed.driver
    await driver.flush()
    orders, flat = await driver.ports.risk.operate.remote("flatten_orders", {})
    for order in orders:
        log.info(
            "close-out order %s %s %s",
            order.client_order_id,
            order.instrument_id,
            order.side.name.lower(),
            extra={
                "correlation_id": correlation_id,
                "fields": {"client_order_id": order.client_order_id, "quantity": order.quantity},
            },
        )
    out = await driver.route(orders) if orders else []
    return {
        "flat": flat,
        "sent": [o.client_order_id for o in orders],
        "approved": sum(isinstance(m, SubmitOrder) for m in out),
        "denied": [m.reason for m in out if isinstance(m, OrderDenied)],
    }


async def feed_telemetry(feed: Any, *, raw: bool = False) -> dict[str, Any]:
    """Attach the timing hook (once per process); the timings and queue depth so far
    (``raw``: with the latest samples of each stage, for benchmarks)."""
    driver = feed.driver
    probe = getattr(driver, "_tw_probe", None)
    if probe is None:
        probe = _Probe(feed.setup.session_id)
        probe.attach(driver)
        driver._tw_probe = probe
    out = probe.summary() | {"reports": len(driver.reports),
                             "answers": sum(map(len, driver.answers.values()))}
    if raw:
        out["samples"] = {stage: list(values) for stage, values in probe.samples.items()}
    return out


class _Probe:
    """The driver's timings through its ``observe`` hook: ``step``, each step's run through
    the chain (strategies, risk, gateway and back), and ``tick_to_order``, a step with market
    data that sent commands (a step runs the whole chain at once, so the stages inside it are
    not told apart)."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.samples: dict[str, deque[float]] = {
            s: deque(maxlen=20_000)
            for s in ("step", "tick_to_order")
        }
        self.buckets = {s: [0] * (len(LATENCY_BOUNDARIES_S) + 1) for s in self.samples}
        self.sums = dict.fromkeys(self.samples, 0.0)
        self.histogram: Any = None

    def attach(self, driver: Any) -> None:
        from ray.util.metrics import Histogram

        self.histogram = Histogram(
            "tradewind_latency_seconds",
            "tick -> intent -> order -> gateway, per stage",
            boundaries=LATENCY_BOUNDARIES_S,
            tag_keys=("session", "stage"),
        )
        driver.observe = self.observe

    def observe(self, stage: str, seconds: float) -> None:
        self.samples[stage].append(seconds)
        self.sums[stage] += seconds
        k = next(
            (i for i, b in enumerate(LATENCY_BOUNDARIES_S) if seconds <= b),
            len(LATENCY_BOUNDARIES_S),
        )
        self.buckets[stage][k] += 1
        if self.histogram is not None:
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
def risk_flatten_orders(risk: Any) -> tuple[list[SubmitOrder], bool]:
    """Market orders closing each open position with no order working on its instrument (not
    sent: the feed sends them), and whether the portfolio is flat."""
    kernel = risk.jk.kernel
    working = {o.instrument_id for o in kernel.open.values()}  # cancels not confirmed yet
    positions = sorted((k, p.quantity) for k, p in kernel.portfolio.positions.items() if p.quantity)
    orders = [
        SubmitOrder(
            seq=0,
            ts_event=kernel.now,
            ts_init=kernel.now,
            client_order_id=f"{risk.setup.session_id}-{OPERATOR_STRATEGY}.{time.time_ns()}.{n}",
            strategy_id=OPERATOR_STRATEGY,
            instrument_id=instrument,
            side=OrderSide.SELL if qty > 0 else OrderSide.BUY,
            order_type=OrderType.MARKET,
            quantity=abs(qty),
            time_in_force=TimeInForce.GTC,
            reduce_only=True,
        )
        for n, (instrument, qty) in enumerate(positions)
        if instrument not in working
    ]
    return orders, not positions


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
        "orders_by_status": _count(o.status for o in kernel.orders.values()),
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
            "orders": len(kernel.orders),
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
        "total": len(risk.jk.kernel.orders),
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
def _strategy(actor: Any) -> Any:
    (strategy,) = actor.jk.kernel.strategies
    return strategy


def strategy_params(actor: Any, *, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The strategy's params (internal units); with ``params`` — already validated by the
    caller against the strategy's params model, in internal units — applied at once."""
    strategy = _strategy(actor)
    if params:
        unknown = set(params) - set(type(strategy.params).model_fields)
        if unknown:
            raise ValueError(f"unknown params {sorted(unknown)}")
        strategy.params = strategy.params.model_copy(update=params)
    return {
        "strategy_id": strategy.strategy_id,
        "class": type(strategy).__name__,
        "params": strategy.params.model_dump(mode="json"),
        "enabled": not getattr(strategy, "_tw_disabled", False),
    }


def strategy_enable(actor: Any, *, enabled: bool) -> dict[str, Any]:
    strategy = _strategy(actor)
    if enabled and getattr(strategy, "_tw_disabled", False):
        for hook in _HOOKS:
            strategy.__dict__.pop(hook, None)
        strategy._tw_disabled = False
    elif not enabled and not getattr(strategy, "_tw_disabled", False):
        for hook in _HOOKS:
            setattr(strategy, hook, _ignore)
        strategy._tw_disabled = True
    return strategy_params(actor)


def _ignore(*_: Any, **__: Any) -> None:
    return None
