"""The rehearsal's session (``tradewind rehearse``): its configs on generated sample data
(:func:`write_workspace`) and the guard probe strategy the risk drills send orders through
(:class:`GuardProbe`). The drills themselves, and what each checks, are in ``actors.drills``.

Nothing leaves the machine: the data is generated (``sample_days``), the broker is the paper
broker (its faults, and the replayed stream's silence, turned on by the drills, never by these
configs: ``actors.venues.paper``, ``FeedActor.rehearse``),
the control plane is off.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from runtime.errors import ConfigError
from runtime.messages import Message, OrderDenied, QuoteTick
from runtime.strategy import Qty, Strategy, StrategyParams
from runtime.values import FIXED_SCALE, Rounding

__all__ = ["PROBES", "SESSION_ID", "GuardProbe", "GuardProbeParams", "write_workspace"]

SESSION_ID = "rehearsal"
BALLAST_MB = 4096  # what the disk drill allocates ...
_MARGIN_MB = 2048  # ... against a limit this far below the free space at the start (room for
# what other programs on the machine write meanwhile)
_B_SECONDS = 10  # SIM-B's quotes stop this far into the data (data time)
_TAKER_BPS = 50  # what a taker pays: the daily-loss probe's round trips lose this twice
_MM_MAX_INVENTORY = 100  # the market maker holds at most this much SIM-A, either side
_STORM_PERIOD_S = 60.0  # the supervisor's window for counting restarts
#: the broker watchdogs' rules: each trips within seconds of the paper broker's fault
WATCHDOGS: dict[str, dict[str, Any]] = {
    # SIM-A's data, muted by the silence drill (``FeedActor.rehearse``); SIM-B is not watched:
    # its data ends on purpose (the stale-data probe), and it has no calendar to close it
    "market_data_silence": {"after_s": 4.0, "action": "cancel_all_and_halt",
                            "instruments": ["SIM-A"]},
    "order_stream_stale": {"after_s": 2.0, "action": "cancel_all_and_halt"},
    "unknown_order_storm": {"reports": 20, "window_s": 3.0, "action": "halt"},
}


def write_workspace(folder: Path, *, minutes: int | None = 60, days: int = 1,
                    speed: float = 10.0, drills: bool = True) -> Path:
    """The rehearsal's configs in ``folder`` (a market maker on the first ``minutes`` of
    ``days`` of generated SIM-A quotes and trades (``None``: all of them), replayed in real
    time ``speed`` times faster); the paper config's path. With ``drills`` the session is set
    up to be tripped (else it is the market maker alone, as a soak runs it):

    * the guard probe (:class:`GuardProbe`) trades beside the market maker, on SIM-A and on
      SIM-B, whose quotes stop :data:`_B_SECONDS` into the data (the stale-data probe);
    * every risk guard is on, each set where the market maker stays clear of it and the probe's
      orders do not (the daily loss: the probe's taker round trips pay :data:`_TAKER_BPS`);
    * the disk watchdog's limit sits :data:`_MARGIN_MB` below the free space now; the
      market-data silence (SIM-A), stale order stream and unknown-order storm watchdogs are on
      (:data:`WATCHDOGS`);
    * the supervisor (one flat tree) gives up at its third restart within
      :data:`_STORM_PERIOD_S`: it halts trading (the restart storm).
    """
    if (folder / "var" / SESSION_ID).exists():
        raise ConfigError(f"{folder} holds a rehearsal already (its journals would resume): "
                          "give an empty folder", field="--dir")
    folder.mkdir(parents=True, exist_ok=True)

    def at(seconds: int) -> str:
        return (f"2024-01-02T{14 + (30 * 60 + seconds) // 3600:02d}:"
                f"{(30 * 60 + seconds) // 60 % 60:02d}:{seconds % 60:02d}")

    def stream(kind: str, instrument: str, end: str | None) -> dict[str, Any]:
        return ({"kind": kind, "instrument": instrument, "sample_days": days}
                | ({"end": end} if end else {}))

    end = None if minutes is None else at(minutes * 60)
    instrument = {"price_precision": 2, "lot_size": 1, "min_quantity": 1}
    mm = {"id": "mm", "class": "backtest.strategies.market_maker:MarketMaker",
          "instruments": ["SIM-A"],
          "params": {"size": 10, "levels": 2, "half_spread_ticks": 1, "vol_mult": 0.5,
                     "skew_ticks": 2, "max_inventory": _MM_MAX_INVENTORY,
                     "requote_ms": 500}}
    trading: dict[str, Any] = {
        "name": "rehearsal", "seed": 11, "initial_cash": 100000,
        "instruments": [{"id": "SIM-A"} | instrument],
        "data": [stream(kind, "SIM-A", end) for kind in ("quotes", "trades")],
        "strategies": [mm],
        "venue": {"latency": {"kind": "constant", "entry_ns": 5_000_000,
                              "response_ns": 5_000_000},
                  "fills": {"kind": "l1", "queue_shrink": "behind_first"},
                  "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 2}},
        "risk": {"max_position": 150, "max_orders_per_window": 50, "order_window_s": 1},
        "store": {"record": False},
    }
    watchdogs: dict[str, Any] = {"disk_low": {"min_free_mb": 256.0, "action": "halt"},
                                 "inventory_desync": {"confirm_runs": 3}}
    paper: dict[str, Any] = {
        "name": "rehearsal", "trading": "trading.yaml",
        "journal_dir": str(folder / "var"), "output_dir": str(folder / "runs"),
        "kill_file": str(folder / "var" / "KILL"), "cancel_on_stop": True,
        # the watchdogs act, as in a broker session; the desync watchdog is given time for
        # the crash drill's restart (a fill in flight while an actor restarts is no desync)
        "status_every_s": 0.5, "reconcile_every_s": 5.0, "reconcile_act": True,
        "watchdogs": watchdogs,
        "feed": {"lockstep": False, "speed": speed},
        "control": {"enabled": False},
    }
    if drills:
        trading["instruments"].append({"id": "SIM-B"} | instrument)
        trading["data"].append(stream("quotes", "SIM-B", at(_B_SECONDS)))
        # SIM-A trades near 180: the market maker's orders (10 at a time, at most 100 held)
        # stay clear of every limit; the probe's orders each break one
        limits = {"max_position": 300, "max_order_notional": 80000, "price_band_pct": 5}
        trading["risk"] |= limits | {"stale_data_s": 30, "max_daily_loss": 500,
                                     "daily_loss_action": "reducing"}
        trading["strategies"].append({
            "id": "probe", "class": "actors.rehearsal:GuardProbe",
            "instruments": ["SIM-A", "SIM-B"],
            "params": {"size": 100, "others_inventory": _MM_MAX_INVENTORY} | limits})
        trading["venue"]["fees"]["taker_bps"] = _TAKER_BPS  # the market maker only posts
        free_mb = shutil.disk_usage(folder).free / 2**20
        watchdogs["disk_low"]["min_free_mb"] = max(free_mb - _MARGIN_MB, 1.0)
        watchdogs.update(WATCHDOGS)
        # one flat tree: the third restart within the window is a storm, the root gives up
        # (halts trading, cancels) and from then on only brings crashed actors back
        paper["supervisor"] = {
            "intensity": 2, "period_s": _STORM_PERIOD_S,
            "children": [{"child_id": k} for k in ("risk", "gateway", "strategy", "reconciler",
                                                    "book", "store", "recorder")]
            + [{"child_id": "feed", "restart": "transient"}]}
    (folder / "trading.yaml").write_text(yaml.safe_dump(trading, sort_keys=False))
    path = folder / "paper.yaml"
    path.write_text(yaml.safe_dump(paper, sort_keys=False))
    return path


# --- the risk drills' strategy ------------------------------------------------------------------
#: the risk guards the probe trips, each by one order it sends on the next quote once the
#: rehearsal names it (``drill`` param, set through the operator like any param change)
PROBES = ("max_position", "max_order_notional", "price_band", "stale_data")


class GuardProbeParams(StrategyParams):
    drill: str = Field("", description="the guard to trip next: one of PROBES, daily_loss, "
                                       "or nothing")
    size: Qty = Field(gt=0, description="the daily-loss drill's round-trip quantity")
    max_round_trips: int = Field(30, ge=1)
    # the limits to break, as the session's risk config sets them (a strategy actor's
    # ``Strategy.limits`` is empty in a paper session: risk decides in the risk actor)
    max_position: Qty | None = Field(None, gt=0)
    others_inventory: Qty = Field(0, ge=0, description="the most the other strategies hold of "
                                  "the instrument: the max_position order breaks the limit "
                                  "whichever side they hold")
    max_order_notional: Qty | None = Field(None, gt=0, description="money, fixed point")
    price_band_pct: float | None = Field(None, gt=0)


class GuardProbe(Strategy[GuardProbeParams]):
    """Sends, when the rehearsal asks, an order that one risk guard must refuse, and keeps the
    denial risk answered with (its reason code and reason): nothing is judged here, the
    rehearsal reads :meth:`report`. Its first instrument is the one it trades; its second, when
    there is one, is the one whose data stops early (the stale-data probe). ``daily_loss``:
    market-order round trips of ``size`` (each pays the spread and the taker fee) until risk
    stops them; with no drill it closes what it holds."""

    def on_start(self) -> None:
        self.quotes: dict[str, QuoteTick] = {}
        self.sent: dict[str, str] = {}  # client order id -> drill
        self.denied: dict[str, list[str]] = {}  # drill -> [reason code, reason] (the first)
        self.fired: set[str] = set()
        self.round_trips = 0

    def on_quote(self, quote: QuoteTick) -> None:
        self.quotes[quote.instrument_id] = quote
        main = self.instruments[0]
        if quote.instrument_id != main or self.open_orders(main):
            return
        drill = self.params.drill
        if drill in PROBES and drill not in self.fired:
            self.fired.add(drill)
            order = self._probe(drill, quote)
            if order is not None:
                self.sent[order] = drill
        elif drill == "daily_loss" and "daily_loss" not in self.denied:
            if self.position(main) > 0:
                self.sent[self.sell(main, self.position(main))] = drill
            elif self.round_trips < self.params.max_round_trips:
                self.round_trips += 1
                self.sent[self.buy(main, self.params.size)] = drill
        elif drill != "daily_loss" and self.position(main) > 0:
            self.sell(main, self.position(main))  # what the loss drill left: closed

    def _probe(self, drill: str, quote: QuoteTick) -> str | None:
        p, main = self.params, self.instruments[0]
        instrument = self.instrument(main)
        lot = instrument.quantize_quantity(FIXED_SCALE, Rounding.UP)
        bid = quote.bid_price
        if drill == "max_position" and p.max_position is not None:
            return self.buy(main, p.max_position + p.others_inventory + lot, bid)
        if drill == "max_order_notional" and p.max_order_notional is not None:
            lots = p.max_order_notional // bid + 1  # valued at the market, at least the bid
            return self.buy(main, lots * lot, bid)
        if drill == "price_band" and p.price_band_pct is not None:
            away = int(bid * (1 - 2 * p.price_band_pct / 100))
            return self.buy(main, lot, instrument.quantize_price(away, Rounding.FLOOR))
        if drill == "stale_data" and len(self.instruments) > 1:
            other = self.quotes.get(self.instruments[1])
            if other is not None:
                return self.buy(other.instrument_id, lot, other.bid_price)
        self.denied[drill] = ["", "the probe had nothing to send: its params name no such "
                                  "limit, or the instrument had no quote"]
        return None

    def on_order_event(self, event: Message) -> None:
        if isinstance(event, OrderDenied) and event.client_order_id in self.sent:
            self.denied.setdefault(self.sent[event.client_order_id],
                                   [event.reason_code, event.reason])

    def report(self) -> dict[str, Any]:
        return {"sent": sorted(set(self.sent.values())), "denied": dict(self.denied),
                "round_trips": self.round_trips}
