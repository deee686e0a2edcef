"""The engine holds market data back from a quiet venue (``SimulatedVenue.market_may_wait``)
and shows it the latest of each kind and instrument before the venue is next used. That must
change nothing: the same fills, reports and state hash as showing the venue every message.

Covered: bars on two instruments interleaved, fills at the next open and at the close (the
close mode reads the last bar when an order arrives), timers (a strategy acting from a timer
while the venue is quiet), L1 quotes with a market maker, and a slippage model that observes
data (the venue then refuses to wait).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest import engine
from backtest.api import build_run
from backtest.config import load_config
from backtest.engine import run_loop
from backtest.feed import Feed
from backtest.venue.simulated import SimulatedVenue
from runtime.messages import Bar, TimerFired
from runtime.strategy import Strategy, StrategyParams

_S = 10**9
_T0 = 1_700_000_000 * _S


def _bars(rng: np.random.Generator, instrument: str, n: int) -> pa.Table:
    close = np.round(100 + np.cumsum(rng.normal(0, 0.3, n)), 2)
    open_ = np.round(close + rng.normal(0, 0.1, n), 2)
    high = np.maximum(open_, close) + 0.05
    low = np.minimum(open_, close) - 0.05
    ts = _T0 + 60 * _S * np.arange(1, n + 1) + rng.integers(0, 3, n) * _S  # interleave
    ticks = {k: np.round(v * 100).astype(np.int64) * 10**7
             for k, v in (("open", open_), ("high", high), ("low", low), ("close", close))}
    return pa.table({"ts_event": ts, "ts_init": ts, "seq": np.zeros(n, np.int64),
                     "instrument_id": [instrument] * n, **ticks,
                     "volume": rng.integers(1, 1000, n) * _S,
                     "interval_ns": np.full(n, 60 * _S, np.int64)})


class FlipOnTimerParams(StrategyParams):
    every_s: int = 150


class FlipOnTimer(Strategy[FlipOnTimerParams]):
    """Trades only from a timer: flips each instrument between long and flat."""

    def on_start(self) -> None:
        self.long = False
        self.set_timer("flip", self.params.every_s * _S)

    def on_timer(self, timer: TimerFired) -> None:
        self.long = not self.long
        for instrument in self.instruments:
            self.target_position(instrument, 10 * _S if self.long else 0)

    def on_bar(self, bar: Bar) -> None:
        pass


def _bar_config(seed: int, price: str, slippage: dict[str, Any] | None = None) -> Any:
    return load_config({
        "name": "lazy", "seed": seed, "initial_cash": 10**9,
        "instruments": [{"id": "A", "price_precision": 2}, {"id": "B", "price_precision": 2}],
        "data": [{"kind": "bars", "instrument": i, "path": "in-memory"} for i in ("A", "B")],
        "strategies": [
            {"id": "sma", "class": "backtest.strategies.sma_cross:SmaCross",
             "instruments": ["A"], "params": {"fast": 3, "slow": 8, "size": 5}},
            {"id": "timer", "class": f"{__name__}:FlipOnTimer", "instruments": ["A", "B"],
             "params": {"every_s": 150}},
        ],
        "venue": {"latency": {"kind": "constant", "entry_ns": 5 * _S, "response_ns": _S},
                  "fills": {"kind": "bars", "price": price, "path": "auto"},
                  "slippage": slippage or {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 1, "taker_bps": 2}},
        "store": {"record": False},
    })


def _run(config: Any, feed: Feed, *, lazy: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    shows: list[int] = []
    with monkeypatch.context() as m:
        if not lazy:
            m.setattr(SimulatedVenue, "market_may_wait", lambda self: False)
        show = engine._show
        m.setattr(engine, "_show", lambda held, on: (shows.append(len(held)), show(held, on)))
        kernel, venue, _ = build_run(config, feed)
        assert venue.market_may_wait() is lazy
        log = run_loop(kernel, venue, feed.iter_messages(), start_ns=feed.start_ns)
    assert bool(shows) is lazy  # data was held back (and shown) exactly when allowed
    fills = [(f.ts_event, f.ts_init, f.fill_id, f.side, f.last_qty, f.last_price, f.fee)
             for f in log.fills]
    return fills, log.reports, log.commands, kernel.state_hash()


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32), price=st.sampled_from(["next_open", "close"]))
def test_bars_two_instruments_and_timers_same_with_or_without_holding_data(
        seed: int, price: str) -> None:
    rng = np.random.default_rng(seed)
    feed = Feed(tables={("bars", "A"): _bars(rng, "A", 300), ("bars", "B"): _bars(rng, "B", 300)},
                dataset_hash=str(seed))
    feed.index()
    config = _bar_config(seed, price)
    with pytest.MonkeyPatch.context() as mp:
        held = _run(config, feed, lazy=True, monkeypatch=mp)
        shown = _run(config, feed, lazy=False, monkeypatch=mp)
    assert held[0], "the strategies traded"
    assert held == shown


def test_l1_market_maker_same_with_or_without_holding_data(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.backtest.test_determinism import _config, _feed

    feed, config = _feed(11, 600), _config(5)
    held = _run(config, feed, lazy=True, monkeypatch=monkeypatch)
    shown = _run(config, feed, lazy=False, monkeypatch=monkeypatch)
    assert held[0]
    assert held == shown


def test_a_venue_whose_slippage_observes_data_does_not_wait() -> None:
    rng = np.random.default_rng(1)
    feed = Feed(tables={("bars", "A"): _bars(rng, "A", 20), ("bars", "B"): _bars(rng, "B", 20)},
                dataset_hash="1")
    feed.index()
    observing = _bar_config(1, "next_open", {"kind": "volatility", "k": 0.5, "window": 20})
    assert build_run(observing, feed)[1].market_may_wait() is False
    assert build_run(_bar_config(1, "next_open"), feed)[1].market_may_wait() is True
