"""NautilusTrader peer: the SMA long/flat crossover on a ``BacktestEngine``.

Runs in its own venv (nautilus_trader 1.221.0 pins pandas<3 and uvloop==0.22.1, which the project
venv cannot take): ``bench/.peers/nautilus/bin/python -m bench.peers.nautilus_sma ...``.

Set-up: one simulated venue ``XNAS`` (NETTING, CASH account, 10M USD), the test-kit ``Equity``
(0.01 tick, USD), no fees (``fee_model`` zero) and the default ``FillModel`` (no slippage). The
strategy registers two ``SimpleMovingAverage`` indicators (closes for bars, MID for quotes), makes
its first decision when the slow one is initialised and compares ``fast.value > slow.value``. It
tracks the position it has asked for (position + in-flight orders) so it never doubles an order.

Fill timing, measured, not assumed:

- Bars: Nautilus moves its simulated market through a bar's O, H, L, C BEFORE the strategy sees
  the bar, and a market order is matched against that market: it fills at the CLOSE of the bar
  that triggered it, stamped with that bar's ts. There is no "next open" mode for bar data (a
  latency model only delays the fill to the next bar's close). So Nautilus's bar fills are those
  of the benchmark rule moved one bar earlier, at the signal bar's close (``fill_lag = 0``).
- Liquidity: Nautilus offers volume/4 of a bar at each of its O/H/L/C prices and fills the rest
  of a market order one tick worse (partial fills at two prices). The benchmark rule has unlimited
  liquidity, so bar volumes are multiplied by ``VOLUME_SCALE`` (quote sizes are always >= 100).
- Quotes: a 1 ns insert latency (``LatencyModel``) makes the order reach the venue after the
  signal quote, so it fills against the NEXT quote: buy at its ask, sell at its bid, stamped with
  its ts — the benchmark rule exactly.

``backtest_s`` is ``engine.run()`` (includes Nautilus's post-run analysis); building the Bar /
QuoteTick objects with the data wranglers and ``add_data`` is reported as ``prepare_s``.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.backtest.models import FillModel, LatencyModel, MakerTakerFeeModel
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.indicators import SimpleMovingAverage
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import Bar, BarType, QuoteTick
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide, PriceType
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId, Venue
from nautilus_trader.model.objects import Money
from nautilus_trader.persistence.wranglers import BarDataWrangler, QuoteTickDataWrangler
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.trading.strategy import Strategy

from bench.common import load_arrays, peer_main

VENUE = "XNAS"
# Nautilus offers volume/4 of a bar at each of its O/H/L/C prices and fills the rest of a market
# order a tick worse; the benchmark rule has unlimited liquidity, so bar volume is scaled up.
VOLUME_SCALE = 1000


class SmaCrossConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType | None = None  # None: trade on quotes (mid)
    fast: int = 10
    slow: int = 50
    size: int = 100


class SmaCross(Strategy):
    def __init__(self, config: SmaCrossConfig) -> None:
        super().__init__(config)
        price_type = PriceType.LAST if config.bar_type is not None else PriceType.MID
        self.fast = SimpleMovingAverage(config.fast, price_type=price_type)
        self.slow = SimpleMovingAverage(config.slow, price_type=price_type)
        self.asked = 0  # position after every order sent so far is filled
        self.fills: list[tuple[int, str, float, float]] = []

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        if self.config.bar_type is not None:
            self.register_indicator_for_bars(self.config.bar_type, self.fast)
            self.register_indicator_for_bars(self.config.bar_type, self.slow)
            self.subscribe_bars(self.config.bar_type)
        else:
            self.register_indicator_for_quote_ticks(self.config.instrument_id, self.fast)
            self.register_indicator_for_quote_ticks(self.config.instrument_id, self.slow)
            self.subscribe_quote_ticks(self.config.instrument_id)

    def _decide(self) -> None:
        if not self.slow.initialized:
            return
        want = self.config.size if self.fast.value > self.slow.value else 0
        if want == self.asked:
            return
        side = OrderSide.BUY if want > self.asked else OrderSide.SELL
        qty = self.instrument.make_qty(abs(want - self.asked))
        self.submit_order(self.order_factory.market(self.config.instrument_id, side, qty))
        self.asked = want

    def on_bar(self, bar: Bar) -> None:
        self._decide()

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self._decide()

    def on_order_filled(self, event: OrderFilled) -> None:
        side = "BUY" if event.order_side == OrderSide.BUY else "SELL"
        self.fills.append((event.ts_event, side, float(event.last_qty), float(event.last_px)))


def _engine(kind: str) -> BacktestEngine:
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id="BENCH-001", logging=LoggingConfig(log_level="ERROR", bypass_logging=True)
        )
    )
    engine.add_venue(
        venue=Venue(VENUE),
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        starting_balances=[Money(10_000_000, USD)],
        base_currency=USD,
        fill_model=FillModel(),
        fee_model=MakerTakerFeeModel(),
        latency_model=LatencyModel(base_latency_nanos=0, insert_latency_nanos=1)
        if kind == "quotes"
        else None,
    )
    return engine


def _data(
    arrays: dict[str, np.ndarray], kind: str, instrument: Any, bar_type: BarType
) -> list[Any]:
    index = pd.to_datetime(arrays["ts_ns"], unit="ns", utc=True)
    if kind == "bars":
        frame = pd.DataFrame({k: arrays[k] for k in ("open", "high", "low", "close")}, index=index)
        frame["volume"] = arrays["volume"].astype(float) * VOLUME_SCALE
        return BarDataWrangler(bar_type, instrument).process(frame)
    frame = pd.DataFrame(
        {
            "bid_price": arrays["bid"],
            "ask_price": arrays["ask"],
            "bid_size": arrays["bid_size"].astype(float),
            "ask_size": arrays["ask_size"].astype(float),
        },
        index=index,
    )
    return QuoteTickDataWrangler(instrument).process(frame)


def run(
    dataset_path: str,
    *,
    kind: str = "bars",
    fast: int = 10,
    slow: int = 50,
    size: int = 100,
    limit: int | None = None,
) -> dict[str, Any]:
    import nautilus_trader

    arrays = load_arrays(dataset_path, limit=limit)
    start = time.perf_counter()
    instrument = TestInstrumentProvider.equity(symbol="SYN", venue=VENUE)
    bar_type = BarType.from_str(f"{instrument.id}-1-MINUTE-LAST-EXTERNAL")
    engine = _engine(kind)
    engine.add_instrument(instrument)
    engine.add_data(_data(arrays, kind, instrument, bar_type))
    strategy = SmaCross(
        SmaCrossConfig(
            instrument_id=instrument.id,
            bar_type=bar_type if kind == "bars" else None,
            fast=fast,
            slow=slow,
            size=size,
        )
    )
    engine.add_strategy(strategy)
    prepare_s = time.perf_counter() - start
    start = time.perf_counter()
    engine.run()
    backtest_s = time.perf_counter() - start
    fills = list(strategy.fills)
    engine.dispose()
    return {
        "engine": "nautilus_trader",
        "version": nautilus_trader.__version__,
        "kind": kind,
        "fills": fills,
        "events": len(arrays["ts_ns"]),
        "backtest_s": backtest_s,
        "prepare_s": prepare_s,
        "fill_lag": 0 if kind == "bars" else 1,
        "fill_price_rule": "signal bar's close" if kind == "bars" else "next ask/bid",
        "trade_size": str(Decimal(size)),
    }


if __name__ == "__main__":
    peer_main("nautilus_sma", run)
