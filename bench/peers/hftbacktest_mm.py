"""hftbacktest running the same market maker as ``backtest.l2.strategy.MarketMaker``.

Runs in a Python that has hftbacktest (a bench extra; it pins numpy<2.3, so the bench keeps it
in its own venv under ``bench/.peers/``). Two sub-commands, each printing one JSON line:

    prepare RAW.gz OUT.npz   convert the raw Binance capture with hftbacktest's own converter
    run OUT.npz              replay it: 10 ms/10 ms constant latency, risk-averse queue model,
                             no-partial-fill exchange, maker fee, wake every 100 ms, post-only (GTX)
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from hftbacktest import (
    BUY,
    GTX,
    LIMIT,
    BacktestAsset,
    HashMapMarketDepthBacktest,
)
from numba import njit

TICK, LOT = 0.1, 0.001
ORDER_QTY, MAX_POSITION = 0.01, 0.1
HALF_SPREAD_TICKS, SKEW_TICKS = 1.0, 1.0
MAKER_FEE, TAKER_FEE = 0.0002, 0.0005
INTERVAL_NS, LATENCY_NS = 100_000_000, 10_000_000


@njit
def market_maker(hbt, order_qty, max_lots, half_spread, skew, lot):  # type: ignore[no-untyped-def]
    wakes, code, next_id = 0, 0, 0
    while True:
        code = hbt.elapse(100_000_000)
        if code != 0:
            break
        wakes += 1
        hbt.clear_inactive_orders(0)
        depth = hbt.depth(0)
        bid_t, ask_t = depth.best_bid_tick, depth.best_ask_tick
        bq, aq = depth.best_bid_qty, depth.best_ask_qty
        if bid_t <= -2147483648 or ask_t >= 2147483647 or not (bq > 0 and aq > 0):
            continue
        pos_lots = round(hbt.position(0) / lot)
        fair = (bid_t * aq + ask_t * bq) / (aq + bq)
        reservation = fair - skew * (pos_lots / round(order_qty / lot))
        want_bid = min(np.floor(reservation - half_spread), bid_t)
        want_ask = max(np.ceil(reservation + half_spread), ask_t)
        bid_on, ask_on = pos_lots < max_lots, pos_lots > -max_lots
        orders = hbt.orders(0)
        values = orders.values()
        have_bid, have_ask = False, False
        while values.has_next():
            order = values.get()
            if order.side == BUY:
                keep = bid_on and order.price_tick == want_bid
                have_bid = have_bid or order.price_tick == want_bid
            else:
                keep = ask_on and order.price_tick == want_ask
                have_ask = have_ask or order.price_tick == want_ask
            if order.cancellable and not keep:
                hbt.cancel(0, order.order_id, False)
        tick = depth.tick_size
        if bid_on and not have_bid:
            next_id += 1
            code = hbt.submit_buy_order(0, next_id, want_bid * tick, order_qty, GTX, LIMIT, False)
            if code != 0:
                break
        if ask_on and not have_ask:
            next_id += 1
            code = hbt.submit_sell_order(0, next_id, want_ask * tick, order_qty, GTX, LIMIT, False)
            if code != 0:
                break
    return wakes, code


def prepare(raw: str, out: str) -> None:
    from hftbacktest.data.utils import binancefutures

    t0 = time.perf_counter()
    data = binancefutures.convert(raw, output_filename=out, combined_stream=True)
    print(json.dumps({"events": len(data), "convert_s": time.perf_counter() - t0}))


def run(npz: str) -> None:
    t0 = time.perf_counter()
    events = len(np.load(npz)["data"])
    asset = (
        BacktestAsset()
        .data([npz])
        .linear_asset(1.0)
        .constant_order_latency(LATENCY_NS, LATENCY_NS)
        .risk_adverse_queue_model()
        .no_partial_fill_exchange()
        .trading_value_fee_model(MAKER_FEE, TAKER_FEE)
        .tick_size(TICK)
        .lot_size(LOT)
        .last_trades_capacity(0)
    )
    hbt = HashMapMarketDepthBacktest([asset])
    t1 = time.perf_counter()
    wakes, code = market_maker(
        hbt, ORDER_QTY, round(MAX_POSITION / LOT), HALF_SPREAD_TICKS, SKEW_TICKS, LOT
    )
    t2 = time.perf_counter()
    depth, sv = hbt.depth(0), hbt.state_values(0)
    mid = (depth.best_bid + depth.best_ask) / 2.0
    position = hbt.position(0)
    equity = sv.balance - sv.fee + position * mid
    hbt.close()
    print(
        json.dumps(
            {
                "engine": "hftbacktest",
                "events": events,
                "setup_s": t1 - t0,
                "replay_s": t2 - t1,
                "wakeups": int(wakes),
                "exit_code": int(code),
                "fills": int(sv.num_trades),
                "position": position,
                "fees": sv.fee,
                "equity": equity,
                "volume": sv.trading_volume,
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3])
    else:
        run(sys.argv[2])
