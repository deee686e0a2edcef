"""The files ``tradewind new strategy`` writes: a module, a config and a test, per data kind.

``__NAME__`` is the strategy's module name (and strategy id), ``__CLASS__`` its class name.
Each config reads the sample data (``tradewind data sample``) from the embedded store; each test
writes its own sample data into a temporary store, so it runs anywhere.
"""

from __future__ import annotations

__all__ = ["TEMPLATES"]

_BARS_MODULE = '''"""__NAME__: RSI mean reversion on bars, with a stop ATRs below the entry.

Buys ``size`` when RSI falls below ``entry_rsi``; sells when it rises above ``exit_rsi``. After
an entry fills, a sell stop waits ``stop_atr`` ATRs below the fill price; the exit
(``close_position``) cancels it.
Prices and quantities the core hands over are fixed point: ``to_float``, ``to_price`` and
``to_qty`` convert at the edge (docs/strategy-guide.md).
"""

from __future__ import annotations

from pydantic import Field

from runtime.indicators import Atr, Rsi
from runtime.messages import Bar, Message, OrderFilled, OrderSide, OrderType
from runtime.strategy import Qty, Strategy, StrategyParams
from runtime.values import Rounding


class __CLASS__Params(StrategyParams):
    size: Qty = Field(100, gt=0)  # units per entry, in human units (held as fixed point)
    rsi_period: int = Field(14, ge=2)
    entry_rsi: float = Field(30.0, gt=0, lt=100)
    exit_rsi: float = Field(55.0, gt=0, lt=100)
    atr_period: int = Field(14, ge=1)
    stop_atr: float = Field(3.0, gt=0)


class __CLASS__(Strategy[__CLASS__Params]):
    def on_start(self) -> None:
        self.rsi = Rsi(self.params.rsi_period)
        self.atr = Atr(self.params.atr_period)

    def on_bar(self, bar: Bar) -> None:
        self.rsi.update(bar.close)
        self.atr.update(bar.high, bar.low, bar.close)
        if not (self.rsi.ready and self.atr.ready):
            return
        inst = bar.instrument_id
        if any(o.order_type is not OrderType.STOP for o in self.open_orders(inst)):
            return  # an entry or an exit is on its way
        held = self.position(inst)
        if held == 0 and self.rsi.value < self.params.entry_rsi:
            self.buy(inst, self.params.size)
        elif held > 0 and self.rsi.value > self.params.exit_rsi:
            self.close_position(inst)  # cancels the stop, sells reduce-only

    def on_order_event(self, event: Message) -> None:
        if isinstance(event, OrderFilled) and event.side is OrderSide.BUY and not event.leaves_qty:
            below = self.to_float(event.last_price) - self.params.stop_atr * self.atr.value
            stop = self.to_price(event.instrument_id, below, Rounding.DOWN)
            self.submit(event.instrument_id, OrderSide.SELL, event.cum_qty,
                        order_type=OrderType.STOP, trigger_price=stop, reduce_only=True)
'''

_QUOTES_MODULE = '''"""__NAME__: mean reversion of the quote mid to its EMA, on L1 quotes.

Goes long ``size`` when the mid is more than ``band_spreads`` spreads below its EMA, short when
as far above, and flat once the mid is back within ``exit_spreads`` spreads of it.
"""

from __future__ import annotations

from pydantic import Field

from runtime.indicators import Ema
from runtime.messages import QuoteTick
from runtime.strategy import Qty, Strategy, StrategyParams


class __CLASS__Params(StrategyParams):
    size: Qty = Field(100, gt=0)
    ema_period: int = Field(600, ge=1)  # quotes (the sample has one a second)
    band_spreads: float = Field(8.0, gt=0)
    exit_spreads: float = Field(1.0, ge=0)


class __CLASS__(Strategy[__CLASS__Params]):
    def on_start(self) -> None:
        self.ema = Ema(self.params.ema_period)

    def on_quote(self, quote: QuoteTick) -> None:
        mid = (quote.bid_price + quote.ask_price) // 2
        self.ema.update(mid)
        spread = self.to_float(quote.ask_price - quote.bid_price)
        if not self.ema.ready or spread <= 0:
            return
        away = (self.to_float(mid) - self.ema.value) / spread  # in spreads
        p, inst = self.params, quote.instrument_id
        if away < -p.band_spreads:
            self.target_position(inst, p.size)
        elif away > p.band_spreads:
            self.target_position(inst, -p.size)
        elif abs(away) < p.exit_spreads:
            self.target_position(inst, 0)
'''

_BOOK_MODULE = '''"""__NAME__: follow the order book's top-of-book imbalance, on L2 book updates.

Holds ``size`` long while the top levels lean to the bid by more than ``entry_imbalance``,
short while they lean to the ask as much, and goes flat when the lean fades below
``exit_imbalance``. Decides at most every ``decide_ms`` (a book updates many times a second).
"""

from __future__ import annotations

import math

from pydantic import Field

from runtime.messages import BookDeltas, BookSnapshot
from runtime.strategy import Qty, Strategy, StrategyParams


class __CLASS__Params(StrategyParams):
    size: Qty = Field(100, gt=0)
    entry_imbalance: float = Field(0.6, gt=0, le=1)
    exit_imbalance: float = Field(0.1, ge=0, le=1)
    decide_ms: int = Field(1000, gt=0)


class __CLASS__(Strategy[__CLASS__Params]):
    wants_features = True  # the engine keeps mid, spread, imbalance, ... for the instruments

    def on_start(self) -> None:
        self.next_ns = 0

    def on_book(self, book: BookDeltas | BookSnapshot) -> None:
        if book.ts_event < self.next_ns:
            return
        self.next_ns = book.ts_event + self.params.decide_ms * 1_000_000
        lean = self.features(book.instrument_id)["imbalance"]
        if math.isnan(lean):
            return
        p, inst = self.params, book.instrument_id
        if lean > p.entry_imbalance:
            self.target_position(inst, p.size)
        elif lean < -p.entry_imbalance:
            self.target_position(inst, -p.size)
        elif abs(lean) < p.exit_imbalance:
            self.target_position(inst, 0)
'''

_HEADER = """# __NAME__: a backtest of __NAME__.py (found beside this file; or list folders under
# strategy_paths).
# On the sample data: `tradewind data sample --days 3`, then
# `tradewind backtest --config __NAME__.yaml`. Your own file instead of the store:
#   data: [{kind: __KIND__, instrument: SIM-A, path: FILE.csv}]   (see docs/strategy-guide.md)
name: __NAME__
seed: 1
initial_cash: 100000
currency: USD
instruments:
  - {id: SIM-A, price_precision: 2, lot_size: 1, min_quantity: 1}
"""

_BARS_CONFIG = _HEADER + """data:
  - {kind: bars, instrument: SIM-A}
strategies:
  - id: __NAME__
    class: __NAME__:__CLASS__
    instruments: [SIM-A]
    params: {size: 100, rsi_period: 14, entry_rsi: 30, exit_rsi: 55, atr_period: 14, stop_atr: 3}
venue:
  latency: {kind: constant, entry_ns: 1000000, response_ns: 1000000}   # 1 ms each way
  fills: {kind: bars, price: next_open, path: auto}
  slippage: {kind: ticks, ticks: 1}
  fees: {kind: bps, maker_bps: 0, taker_bps: 1}
risk:
  max_position: 1000
"""

_QUOTES_CONFIG = _HEADER + """data:
  - {kind: quotes, instrument: SIM-A}
strategies:
  - id: __NAME__
    class: __NAME__:__CLASS__
    instruments: [SIM-A]
    params: {size: 100, ema_period: 600, band_spreads: 8, exit_spreads: 1}
venue:
  latency: {kind: constant, entry_ns: 5000000, response_ns: 5000000}   # 5 ms each way
  fills: {kind: l1, queue_shrink: behind_first}
  slippage: {kind: none}
  fees: {kind: bps, maker_bps: 0, taker_bps: 1}
risk:
  max_position: 1000
"""

_BOOK_CONFIG = _HEADER + """data:
  - {kind: book, instrument: SIM-A}
  - {kind: trades, instrument: SIM-A}
strategies:
  - id: __NAME__
    class: __NAME__:__CLASS__
    instruments: [SIM-A]
    params: {size: 100, entry_imbalance: 0.6, exit_imbalance: 0.1, decide_ms: 1000}
venue:
  latency: {kind: constant, entry_ns: 5000000, response_ns: 5000000}   # 5 ms each way
  fills: {kind: l2, queue_shrink: behind_first}
  slippage: {kind: none}
  fees: {kind: bps, maker_bps: 0, taker_bps: 1}
risk:
  max_position: 1000
"""

_TEST = '''"""__NAME__ runs end to end on deterministic sample data.

Run it with ``python -m pytest -q test___NAME__.py``.
"""

from pathlib import Path

import numpy as np

from backtest.api import run_backtest
from backtest.data import SampleSpec, generate_sample
from backtest.store import open_store

HERE = Path(__file__).resolve().parent


def test___NAME___trades_on_sample_data(tmp_path: Path) -> None:
    spec = SampleSpec(instruments=("SIM-A",), days=1)
    with open_store(f"chdb://{tmp_path / 'store'}") as store:
        for kind, table in generate_sample(np.random.default_rng(7), spec).items():
            store.write_market(kind, table)
        result = run_backtest(HERE / "__NAME__.yaml", store=store, write=False)
        again = run_backtest(HERE / "__NAME__.yaml", store=store, write=False)
    assert result.n_fills > 0, "the strategy never traded on a day of sample data"
    assert not result.denials, result.denials[:3]
    assert again.state_hash == result.state_hash  # same data, config and seed: same run
'''

#: kind -> (module, config, test) templates
TEMPLATES: dict[str, tuple[str, str, str]] = {
    "bars": (_BARS_MODULE, _BARS_CONFIG, _TEST),
    "quotes": (_QUOTES_MODULE, _QUOTES_CONFIG, _TEST),
    "book": (_BOOK_MODULE, _BOOK_CONFIG, _TEST),
}
