"""Fee models: exact money, Taiwan commission and tax, day trades, bps."""

from __future__ import annotations

import datetime as dt

from backtest.models.config import BpsFeeConfig, InstrumentFeeConfig, TaiwanStockFeeConfig
from backtest.models.fees import build_fees
from runtime.instruments import FeeSchedule, Instrument, TradingSession, twse_tick_ladder
from runtime.values import fixed

TW = Instrument(
    instrument_id="2330.TW",
    currency="TWD",
    tick_ladder=twse_tick_ladder(),
    sessions=(TradingSession(timezone="Asia/Taipei", open="09:00", close="13:30"),),
)
S = 1_000_000_000


def _ts(day: int, hour: int) -> int:  # hour in UTC; 02:00 UTC is 10:00 in Taipei
    return int(dt.datetime(2024, 3, day, hour, tzinfo=dt.UTC).timestamp()) * S


def _tw(**kwargs: object) -> TaiwanStockFeeConfig:
    return TaiwanStockFeeConfig.model_validate({"kind": "taiwan_stock", **kwargs})


def test_taiwan_buy_and_sell_1000_shares_at_600() -> None:
    fees = build_fees(_tw())
    price, qty = fixed(600), fixed(1000)
    buy = fees.fee(TW, is_sell=False, price=price, qty=qty, is_maker=False, ts_ns=_ts(4, 2))
    sell = fees.fee(TW, is_sell=True, price=price, qty=qty, is_maker=False, ts_ns=_ts(5, 2))
    assert (buy, sell) == (fixed(855), fixed(855 + 1800))


def test_taiwan_minimum_discount_and_rounding_down() -> None:
    fees = build_fees(_tw(discount="0.6"))
    # 1000 x 60.5 = 60500: commission 60500 x 0.001425 x 0.6 = 51.7275 -> 51
    assert fees.fee(
        TW, is_sell=False, price=fixed("60.5"), qty=fixed(1000), is_maker=True, ts_ns=_ts(4, 2)
    ) == fixed(51)
    # next day, 10 x 50 = 500: commission 0.4275 -> the 20 TWD minimum; tax 1.5 -> 1
    assert fees.fee(
        TW, is_sell=True, price=fixed(50), qty=fixed(10), is_maker=True, ts_ns=_ts(5, 2)
    ) == fixed(21)


def test_taiwan_day_trade_part_of_a_sell_pays_half_the_tax() -> None:
    fees = build_fees(_tw())
    price = fixed(600)
    fees.fee(TW, is_sell=False, price=price, qty=fixed(1000), is_maker=False, ts_ns=_ts(4, 2))
    # same Taipei day: 1000 day-traded (tax 900), 1000 more sold from inventory (tax 1800)
    fee = fees.fee(TW, is_sell=True, price=price, qty=fixed(2000), is_maker=False, ts_ns=_ts(4, 4))
    assert fee == fixed(1710 + 900 + 1800)
    # next day nothing was bought: normal tax
    assert fees.fee(
        TW, is_sell=True, price=price, qty=fixed(1000), is_maker=False, ts_ns=_ts(5, 2)
    ) == fixed(855 + 1800)
    off = build_fees(_tw(detect_day_trades=False))
    off.fee(TW, is_sell=False, price=price, qty=fixed(1000), is_maker=False, ts_ns=_ts(4, 2))
    assert off.fee(
        TW, is_sell=True, price=price, qty=fixed(1000), is_maker=False, ts_ns=_ts(4, 4)
    ) == fixed(855 + 1800)


def test_bps_maker_taker_per_unit_and_minimum() -> None:
    config = {
        "kind": "bps",
        "maker_bps": "0.5",
        "taker_bps": "2",
        "per_unit": "0.005",
        "minimum": "1",
    }
    fees = build_fees(BpsFeeConfig.model_validate(config))
    usd = Instrument(instrument_id="AAA")
    # taker: 100 x 123.45 = 12345 x 0.0002 = 2.469 + 100 x 0.005 = 2.969
    assert fees.fee(
        usd, is_sell=False, price=fixed("123.45"), qty=fixed(100), is_maker=False, ts_ns=0
    ) == fixed("2.969")
    # maker: 10 x 10 = 100 x 0.00005 = 0.005 + 0.05 -> minimum 1
    assert fees.fee(
        usd, is_sell=True, price=fixed(10), qty=fixed(10), is_maker=True, ts_ns=0
    ) == fixed(1)


def test_instrument_fees_use_the_instruments_schedule() -> None:
    usd = Instrument(instrument_id="AAA", fees=FeeSchedule(taker_rate=fixed("0.001")))
    fees = build_fees(InstrumentFeeConfig(kind="instrument"))
    assert fees.fee(
        usd, is_sell=False, price=fixed(50), qty=fixed(10), is_maker=False, ts_ns=0
    ) == fixed("0.5")
