"""The session's metrics: one table of names, exported twice with the same names and values.

* through Ray's metrics API (``ray.util.metrics.Gauge``; the latency histogram is observed in
  the feed actor, ``actors.operator``), so they reach Ray's dashboard and Prometheus export,
  where Ray prefixes them with ``ray_``;
* as Prometheus text on ``GET /metrics`` (written by ``prometheus-client`` from a collector
  over the same samples), already named ``ray_tradewind_*`` so one dashboard and one set of
  alert rules work against either source. Ray adds labels such as ``WorkerId``
  that change on a restart: the dashboards aggregate them away.

Values come from :func:`samples` over the control plane's snapshot of the actors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

from serve.views import STATE_CODES

__all__ = ["GAUGES", "HISTOGRAM", "RayGauges", "render", "samples"]

Sample = tuple[str, dict[str, str], float]
HISTOGRAM = "tradewind_latency_seconds"

#: name -> (help, label names besides ``session``)
GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "tradewind_events_in": ("messages taken in, per actor", ("actor",)),
    "tradewind_queue_depth": ("items waiting in the driver's queues", ("queue",)),
    "tradewind_orders": ("orders by status", ("status",)),
    "tradewind_fills": ("fills applied by risk", ()),
    "tradewind_denials": ("orders denied by our risk checks, by reason", ("reason",)),
    "tradewind_restarts": ("restarts seen by the supervisor, per child", ("child",)),
    "tradewind_supervisor_escalated": ("1 when the restart intensity was exceeded", ()),
    "tradewind_trading_state": ("0 active, 1 reducing (close-only), 2 halted", ()),
    "tradewind_halted": ("1 while trading is halted", ()),
    "tradewind_actor_up": ("1 when the actor answers its ping", ("actor",)),
    "tradewind_gateway_connected": ("1 when the gateway answers", ()),
    "tradewind_feed_cursor": ("market messages the feed has driven", ()),
    "tradewind_feed_conflated": ("market messages strategies and risk passed over: superseded "
                                 "quotes and book updates while real time was behind", ()),
    "tradewind_feed_lag_seconds": ("seconds since the feed last made progress (running)", ()),
    "tradewind_recorder_rows": ("rows written to ClickHouse, per table", ("table",)),
    "tradewind_recorder_lag_seconds": ("age of the oldest event not yet written", ()),
    "tradewind_recorder_spill_bytes": ("size of the recorder's spill journal", ()),
    "tradewind_recorder_store_errors": ("failed ClickHouse writes", ()),
    "tradewind_recorder_insert_latency_seconds": ("latest ClickHouse insert latency", ()),
    "tradewind_reconciler_drifts": ("differences between risk and the broker", ()),
    "tradewind_pnl": ("equity minus initial cash, account currency", ()),
    "tradewind_realized_pnl": ("realized PnL", ()),
    "tradewind_unrealized_pnl": ("unrealized PnL", ()),
    "tradewind_exposure": ("gross exposure", ()),
    "tradewind_daily_loss_used": ("today's loss from the day's starting equity", ()),
    "tradewind_daily_loss_limit": ("max_daily_loss (0: no limit)", ()),
    "tradewind_broker_connected": ("1 while the broker link is up (the adapter's own flag)", ()),
    "tradewind_broker_reconnects": ("broker link down-to-up transitions the watchdogs saw", ()),
    "tradewind_broker_breaker_open": ("1 while the circuit breaker blocks new orders", ()),
    "tradewind_broker_last_report_age_seconds": ("seconds since the broker's last report", ()),
    "tradewind_broker_unanswered_seconds": (
        "how long the broker has owed an answer to a command (0: none owed)", ()),
    "tradewind_unknown_order_reports": ("reports about orders this session never sent", ()),
    "tradewind_market_data_age_seconds": (
        "seconds since the broker stream's last message, per instrument", ("instrument",)),
    "tradewind_disk_free_bytes": ("free space where the session journals", ()),
    "tradewind_watchdog_tripped": ("1 while a watchdog is tripped (0 ok, -1 off)", ("watchdog",)),
    "tradewind_aux_age_seconds": (
        "seconds since an auxiliary feed's last successful poll (NaN before the first)",
        ("feed",)),
    "tradewind_aux_last_success_timestamp_seconds": (
        "unix time of an auxiliary feed's last successful poll (0: none yet)", ("feed",)),
    "tradewind_aux_stale": ("1 while an auxiliary feed is older than its ttl_s", ("feed",)),
    "tradewind_aux_errors": ("failed polls of an auxiliary feed, in all", ("feed",)),
    "tradewind_aux_consecutive_failures": (
        "failed polls of an auxiliary feed since its last success", ("feed",)),
}


def samples(snap: dict[str, Any]) -> list[Sample]:
    """Every gauge's samples from one snapshot (labels without ``session``)."""
    out: list[Sample] = []

    def add(name: str, value: Any, **labels: str) -> None:
        out.append((name, labels, float(value or 0)))

    for actor, n in (snap.get("events_in") or {}).items():
        add("tradewind_events_in", n, actor=actor)
    telemetry = snap.get("telemetry") or {}
    for queue in ("reports", "answers"):
        add("tradewind_queue_depth", telemetry.get(queue, 0), queue=queue)
    risk = snap.get("risk_view") or {}
    for status, n in (risk.get("orders_by_status") or {}).items():
        add("tradewind_orders", n, status=status)
    for reason, n in (risk.get("denials_by_reason") or {"none": 0}).items():
        add("tradewind_denials", n, reason=reason)
    summary = snap.get("risk") or {}
    add("tradewind_fills", summary.get("fills", 0))
    for child, n in (snap.get("restarts") or {}).items():
        add("tradewind_restarts", n, child=child)
    add("tradewind_supervisor_escalated", bool((snap.get("supervisor") or {}).get("escalated")))
    state = str(summary.get("state", "active"))
    add("tradewind_trading_state", STATE_CODES.get(state, 0))
    add("tradewind_halted", state == "halted")
    actors = snap.get("actors") or {}
    for actor, info in actors.items():
        add("tradewind_actor_up", info["up"], actor=actor)
    add("tradewind_gateway_connected", (actors.get("gateway") or {}).get("up", False))
    add("tradewind_feed_cursor", (snap.get("feed") or {}).get("cursor", 0))
    add("tradewind_feed_conflated", (snap.get("feed") or {}).get("conflated", 0))
    add("tradewind_feed_lag_seconds", snap.get("feed_lag_s", 0.0))
    _recorder(snap.get("recorder") or {}, add)
    add("tradewind_reconciler_drifts", (snap.get("reconciler") or {}).get("drifts", 0))
    pnl = snap.get("pnl") or {}
    add("tradewind_pnl", pnl.get("pnl", 0.0))
    add("tradewind_realized_pnl", pnl.get("realized", 0.0))
    add("tradewind_unrealized_pnl", pnl.get("unrealized", 0.0))
    usage, limits = risk.get("usage") or {}, risk.get("limits") or {}
    add("tradewind_exposure", usage.get("gross_exposure", 0.0))
    add("tradewind_daily_loss_used", usage.get("daily_loss", 0.0))
    add("tradewind_daily_loss_limit", limits.get("max_daily_loss") or 0.0)
    _adapter(snap.get("reconciler") or {}, add, float(snap.get("ts") or 0.0))
    _aux((snap.get("feed") or {}).get("aux") or {}, out)
    return out


def _aux(feeds: dict[str, dict[str, Any]], out: list[Sample]) -> None:
    """The broker stream's auxiliary feeds (``kind/instrument``), as the feed last polled
    them (``actors.venues.aux_feeds.AuxPolls.telemetry``)."""
    for feed, row in sorted(feeds.items()):
        age = row.get("age_s")
        out.append(("tradewind_aux_age_seconds", {"feed": feed},
                    math.nan if age is None else float(age)))
        for name, value in (("tradewind_aux_last_success_timestamp_seconds", row.get("last_ok_s")),
                            ("tradewind_aux_stale", row.get("stale")),
                            ("tradewind_aux_errors", row.get("errors")),
                            ("tradewind_aux_consecutive_failures", row.get("failures"))):
            out.append((name, {"feed": feed}, float(value or 0)))


def _adapter(reconciler: dict[str, Any], add: Any, now_s: float) -> None:
    """The broker link's health as the reconciler's watchdogs last sampled it."""
    health = reconciler.get("health") or {}
    add("tradewind_broker_connected", health.get("connected", False))
    add("tradewind_broker_reconnects", reconciler.get("reconnects", 0))
    add("tradewind_broker_breaker_open", health.get("breaker_open", False))
    add("tradewind_unknown_order_reports", health.get("foreign_reports", 0))

    def age(ns: Any) -> float:
        return max(0.0, now_s - ns / 1e9) if ns and now_s else 0.0

    add("tradewind_broker_last_report_age_seconds", age(health.get("last_report_ns")))
    add("tradewind_broker_unanswered_seconds", age(health.get("exec_waiting_since_ns")))
    market = health.get("market") or {}
    for instrument, ns in sorted((market.get("last_ns") or {}).items()):
        add("tradewind_market_data_age_seconds", age(ns), instrument=instrument)
    add("tradewind_disk_free_bytes", health.get("disk_free_bytes") or 0)
    codes = {"ok": 0, "tripped": 1, "off": -1}
    for watchdog, state in sorted((reconciler.get("watchdogs") or {}).items()):
        add("tradewind_watchdog_tripped", codes.get(state, 0), watchdog=watchdog)


def _recorder(stats: dict[str, Any], add: Any) -> None:
    for table, n in (stats.get("rows_by_table") or {"none": 0}).items():
        add("tradewind_recorder_rows", n, table=table)
    add("tradewind_recorder_lag_seconds", stats.get("lag_s", 0.0))
    add("tradewind_recorder_spill_bytes", stats.get("spill_bytes", 0))
    add("tradewind_recorder_store_errors", stats.get("store_errors", 0))
    add("tradewind_recorder_insert_latency_seconds", stats.get("insert_latency_s", 0.0))


class _Snapshot:
    """A collector over one snapshot's samples: each gauge of :data:`GAUGES` (in that order,
    every one present, with or without samples) and the latency histogram."""

    def __init__(self, session_id: str, gauge_samples: list[Sample],
                 telemetry: dict[str, Any]) -> None:
        self.session_id, self.gauge_samples, self.telemetry = session_id, gauge_samples, telemetry

    def collect(self) -> Iterator[Metric]:
        families = {
            name: GaugeMetricFamily(f"ray_{name}", help_text, labels=("session", *labels))
            for name, (help_text, labels) in GAUGES.items()
        }
        for name, labels, value in self.gauge_samples:
            family = families[name]
            label_names = GAUGES[name][1]
            family.add_metric([self.session_id, *(labels[k] for k in label_names)], value)
        yield from families.values()
        yield self._histogram()

    def _histogram(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            f"ray_{HISTOGRAM}", "tick -> intent -> order -> gateway, per stage",
            labels=("session", "stage"),
        )
        bounds = self.telemetry.get("boundaries") or []
        for stage, data in (self.telemetry.get("stages") or {}).items():
            total, buckets = 0, []
            for bound, n in zip([*bounds, math.inf], data["buckets"], strict=True):
                total += n
                buckets.append(("+Inf" if math.isinf(bound) else repr(float(bound)), total))
            family.add_metric([self.session_id, stage], buckets, sum_value=data["sum"])
        return family


def render(session_id: str, gauge_samples: list[Sample], telemetry: dict[str, Any]) -> str:
    """Prometheus text exposition (version 0.0.4), names prefixed ``ray_`` as Ray exports."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(session_id, gauge_samples, telemetry))
    return generate_latest(registry).decode()


class RayGauges:
    """The same gauges through ``ray.util.metrics`` (created once per process)."""

    def __init__(self, session_id: str) -> None:
        from ray.util.metrics import Gauge

        self.session_id = session_id
        self.gauges = {
            name: Gauge(name, help_text, tag_keys=("session", *labels))
            for name, (help_text, labels) in GAUGES.items()
        }

    def update(self, gauge_samples: list[Sample]) -> None:
        for name, labels, value in gauge_samples:
            if math.isnan(value):  # not known yet (an aux feed before its first poll)
                continue
            self.gauges[name].set(value, tags={"session": self.session_id, **labels})
