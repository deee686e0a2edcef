"""Paper sessions end to end through each fake broker, on the shared local Ray cluster, with a
SIGKILL of the gateway actor's worker mid-session: no order reaches the broker twice, every fill
of the broker is counted once, and the session's positions equal the broker's.

IB: the unmodified ib_async client in the gateway actor against the loopback TWS-protocol fake
(in this process, on its own thread: it outlives the gateway's worker and fills orders while the
gateway is down). Shioaji: the callback fake in a broker actor, injected through the documented
``broker.client_factory`` hook; credentials from the environment (planted values, checked to
appear nowhere they must not).
"""

from __future__ import annotations

import csv
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.values import FIXED_SCALE
from tests.venues.broker_helpers import FakeIbThread, write_bars, write_broker_config
from tests.venues.conftest import PLANTED_KEY, PLANTED_SECRET

pytestmark = pytest.mark.usefixtures("ray_local")
pytest.importorskip("ib_async")

SIM = {"id": "SIM-A", "price_precision": 2, "lot_size": 1, "min_quantity": 1}
TSMC = {"id": "2330.TWSE", "venue": "TWSE", "currency": "TWD", "price_precision": 2,
        "lot_size": 1000, "min_quantity": 1000}


@pytest.fixture
def fake_ib() -> Iterator[FakeIbThread]:
    fake = FakeIbThread(auto_fill_price=100.0, fill_delay_s=0.2)
    yield fake
    fake.close()


def _kill_worker(handle: Any, timeout_s: float = 60.0) -> int:
    """SIGKILL the actor's worker process; once a new process answers by the actor's name
    (its supervisor started it again), the killed process's id."""
    import ray

    pid = int(handle.get("pid"))
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if handle.get("pid", timeout_s=10) != pid:
                return pid
        except (ray.exceptions.RayError, TimeoutError):
            time.sleep(0.1)
    raise AssertionError("the actor did not come back")


def _until(check: Any, timeout_s: float = 180.0, *, state: Any = None) -> Any:
    """``check()`` once it is truthy; else, after ``timeout_s`` (generous: the suite runs
    beside other work), an AssertionError with ``state()`` (what the session looked like)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not reached in {timeout_s:.0f} s"
                         + ("" if state is None else f"; state: {state()}"))


def _feed_state(session: Any) -> dict[str, Any]:
    import ray

    feed = ray.get(session.feed.status.remote(), timeout=30)
    return {"feed": feed, "market": ray.get(session.feed.market_health.remote(), timeout=30),
            "strategies": {k: ray.get(v.summary.remote(), timeout=30)
                           for k, v in session.children.items() if k.startswith("strategy:")}}


def _run_with_kill(path: Path, session_id: str) -> tuple[Any, dict[str, Any], int]:
    """Start, SIGKILL the gateway once some orders went out, run to the end; (session, result,
    fills before the kill)."""
    import ray

    from actors.config import load_paper_config
    from actors.session import start_session

    session = start_session(load_paper_config(path), session_id=session_id)
    gateway = session.gateway
    _until(lambda: len(ray.get(gateway.fills.remote())) >= 3)
    before = len(ray.get(gateway.fills.remote()))
    killed = _kill_worker(gateway)
    assert session.wait(600), "the session did not finish"
    views = ray.get([gateway.view.remote(), session.risk.view.remote(),
                     gateway.pid.remote(), session.children["reconciler"].trips.remote()])
    result = session.stop()
    result["gateway_view"], result["risk_view"], pid, trips = views
    # the fills on their way while the gateway restarted are no desync (the watchdog acts)
    assert [t for t in trips if t["watchdog"] == "inventory_desync"] == [], trips
    result["gateway_restarted"] = pid != killed
    return session, result, before


def test_ib_session_survives_sigkill_of_the_gateway(fake_ib: FakeIbThread,
                                                    tmp_path: Path) -> None:
    bars = write_bars(tmp_path / "data", "SIM-A")
    broker = {"kind": "ib", "port": fake_ib.port, "client_id": 7,
              "reset_window": ["00:00", "00:00"], "contracts": {"SIM-A": {"symbol": "SIMA"}}}
    path = write_broker_config(tmp_path, bars, broker, instrument=SIM, size=100)
    _, result, before = _run_with_kill(path, "ibkill1")
    broker_side = fake_ib.snapshot()

    assert result["gateway_restarted"]  # the gateway really came back in a new process
    assert result["feed"]["error"] is None
    placed = broker_side["placed"]
    assert len(placed) == len(set(placed)), "an order reached the broker twice"
    assert len(placed) == result["orders"] > 3
    fills = result["fill_records"]
    broker_fills = {f"IB-{e}" for e in broker_side["executions"]}
    assert len({f.fill_id for f in fills}) == len(fills), "a fill was counted twice"
    assert {f.fill_id for f in fills} == broker_fills, "a broker fill was lost"
    assert result["fills"] == len(broker_fills) > before  # risk counted each once; it traded on
    expected = {"SIM-A": round(broker_side["positions"]["SIMA"] * FIXED_SCALE)}
    expected = {k: v for k, v in expected.items() if v}
    assert result["risk_view"]["positions"] == expected == result["gateway_view"]["positions"]
    assert result["positions_match"]


def test_shioaji_session_survives_sigkill_with_credentials_from_the_environment(
        tmp_path: Path) -> None:
    import ray

    from tests.venues.fake_shioaji_remote import BROKER_NAME, FakeShioajiBroker

    broker_actor = FakeShioajiBroker.options(name=BROKER_NAME).remote(
        str(tmp_path / "sjlog"), auto_fill_price=600.0)
    try:
        bars = write_bars(tmp_path / "data", "2330.TWSE")
        broker = {"kind": "shioaji", "client_factory": "tests.venues.fake_shioaji_remote:connect",
                  "api_key_env": "TW_TEST_SJ_API_KEY", "secret_key_env": "TW_TEST_SJ_SECRET_KEY"}
        path = write_broker_config(tmp_path, bars, broker, instrument=TSMC, size=1000)
        _, result, before = _run_with_kill(path, "sjkill1")
        broker_side = ray.get(broker_actor.snapshot.remote())
    finally:
        ray.kill(broker_actor)

    assert result["gateway_restarted"]
    assert result["feed"]["error"] is None
    orders = broker_side["orders"]
    assert len(orders) == len(set(orders)) == result["orders"] > 3, "an order was sent twice"
    fills = result["fill_records"]
    assert len({f.fill_id for f in fills}) == len(fills)
    deals = [set(ids) for ids in broker_side["deals"]]  # a deal's two numbers (docs/brokers.md)
    fill_ids = {f.fill_id for f in fills}
    assert all(len(ids & fill_ids) == 1 for ids in deals), "a deal was lost or counted twice"
    assert len(fill_ids) == len(deals)
    assert result["fills"] == len(broker_side["deals"]) > before
    expected = {"2330.TWSE": broker_side["positions"].get("2330", 0) * FIXED_SCALE}
    expected = {k: v for k, v in expected.items() if v}
    assert result["risk_view"]["positions"] == expected == result["gateway_view"]["positions"]
    # the credentials came from the environment (the fake saw them at each login) ...
    assert (PLANTED_KEY, PLANTED_SECRET) in broker_side["logins"]
    assert len(broker_side["logins"]) >= 2  # logged in again after the restart
    # ... and appear in no journal, file or log the session wrote
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and _contains_secret(p)]
    assert leaks == []
    ray_logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    assert [p for p in ray_logs.rglob("*") if p.is_file() and _contains_secret(p)] == []


def _contains_secret(path: Path) -> bool:
    data = path.read_bytes()
    return PLANTED_KEY.encode() in data or PLANTED_SECRET.encode() in data


def test_ib_market_data_streams_into_the_session_feed(fake_ib: FakeIbThread,
                                                      tmp_path: Path) -> None:
    """``feed.mode: broker``: quotes the fake IB gateway sends (tickPrice) reach the feed, the
    book actor and the strategy; a SIGKILLed feed actor reloads what it had streamed."""
    import ray

    from actors.config import load_paper_config
    from actors.session import start_session

    bars = write_bars(tmp_path / "data", "SIM-A")
    broker = {"kind": "ib", "port": fake_ib.port, "client_id": 11,
              "reset_window": ["00:00", "00:00"],
              "contracts": {"SIM-A": {"symbol": "SIMA", "con_id": 4242}}}
    path = write_broker_config(tmp_path, bars, broker, instrument=SIM, size=100, speed="max",
                               feed={"mode": "broker", "lockstep": False, "speed": "max"})
    session = start_session(load_paper_config(path), session_id="ibstream1")
    fake = fake_ib.fake

    def settled(minimum: int) -> dict[str, Any] | None:
        status = ray.get(session.feed.status.remote())
        ok = status["total"] >= minimum and status["cursor"] == status["total"]
        return status if ok else None

    try:
        _until(lambda: fake_ib.call(lambda: bool(fake._live(fake.mkt_subs, "SIMA"))))
        for i in range(40):
            assert fake_ib.call(fake.quote, "SIMA", 100 + i / 100, 300, 100.05 + i / 100, 200)
            time.sleep(0.02)
        first = _until(lambda: settled(30))
        old_subs = fake_ib.call(lambda: fake._live(fake.mkt_subs, "SIMA"))
        _kill_worker(session.feed)
        # the new feed's own subscription, alone (its stream subscribes after it started, and
        # the dead feed's connection may not be dropped yet: a quote sent before would be lost)
        _until(lambda: fake_ib.call(lambda: (live := fake._live(fake.mkt_subs, "SIMA"))
                                    and len(live) == 1 and live[0] not in old_subs))
        for i in range(10):
            fake_ib.call(fake.quote, "SIMA", 101 + i / 100, 300, 101.05 + i / 100, 200)
            time.sleep(0.02)
        status = _until(lambda: settled(first["total"] + 8))
        strategy = ray.get(session.children["strategy:sma"].summary.remote())
    finally:
        session.stop(write=False)
    assert status["error"] is None
    assert strategy["cursor"] == status["cursor"] == status["total"]  # every quote, once
    from runtime.journal import Journal

    streamed = [m for _, m in Journal(tmp_path / "var" / "ibstream1" /
                                      "feed.stream.journal").entries()]
    assert len(streamed) == status["total"]
    assert [m.seq for m in streamed] == list(range(1, len(streamed) + 1))
    last = streamed[-1]
    assert (last.instrument_id, last.bid_price, last.ask_price) == (  # type: ignore[union-attr]
        "SIM-A", round(101.09 * FIXED_SCALE), round(101.14 * FIXED_SCALE))


def test_shioaji_market_data_streams_into_the_session_feed(tmp_path: Path) -> None:
    """``feed.mode: broker`` with Shioaji: ticks and bid/asks of the callback fake (its quote
    surface, across processes) reach the feed and the strategy, in order, each once."""
    import ray

    from actors.config import load_paper_config
    from actors.session import start_session
    from runtime.journal import Journal
    from runtime.messages import BookSnapshot, QuoteTick, TradeTick
    from tests.venues.fake_shioaji_remote import BROKER_NAME, FakeShioajiBroker

    broker_actor = FakeShioajiBroker.options(name=BROKER_NAME).remote(str(tmp_path / "sjlog"))
    bars = write_bars(tmp_path / "data", "2330.TWSE")
    broker = {"kind": "shioaji", "client_factory": "tests.venues.fake_shioaji_remote:connect",
              "api_key_env": "TW_TEST_SJ_API_KEY", "secret_key_env": "TW_TEST_SJ_SECRET_KEY"}
    path = write_broker_config(tmp_path, bars, broker, instrument=TSMC, size=1000,
                               feed={"mode": "broker", "lockstep": False, "speed": "max"})
    session = start_session(load_paper_config(path), session_id="sjstream1")
    try:
        _until(lambda: len(ray.get(broker_actor.snapshot.remote())["subscriptions"]) == 2)
        for i in range(10):
            ray.get(broker_actor.push_tick.remote("2330", f"{600 + i}", 2))
            ray.get(broker_actor.push_bidask.remote(
                "2330", [(f"{599 + i}", 3)], [(f"{600 + i}", 4)]))
        status = _until(lambda: (lambda s: s if s["cursor"] == s["total"] >= 30 else None)(
            ray.get(session.feed.status.remote())), state=lambda: _feed_state(session))
        strategy = ray.get(session.children["strategy:sma"].summary.remote())
    finally:
        session.stop(write=False)
        ray.kill(broker_actor)
    assert status["error"] is None and status["total"] == 30  # tick, book, quote per push
    assert strategy["cursor"] == 30
    streamed = [m for _, m in Journal(tmp_path / "var" / "sjstream1" /
                                      "feed.stream.journal").entries()]
    assert [type(m) for m in streamed[:3]] == [TradeTick, BookSnapshot, QuoteTick]
    last = streamed[-3]
    assert isinstance(last, TradeTick) and (last.price, last.size) == (
        609 * FIXED_SCALE, 2000 * FIXED_SCALE)


BTC = {"id": "BTC-PERP", "venue": "BINANCEUSDM", "asset_class": "future", "currency": "USDT",
       "price_precision": 2, "size_precision": 3, "lot_size": "0.001",
       "min_quantity": "0.001", "min_notional": "100"}


def _ccxt_broker(port: int, **extra: Any) -> dict[str, Any]:
    from tests.venues.fake_binance import ccxt_urls

    return {"kind": "ccxt", "exchange": "binanceusdm", "symbols": {"BTC-PERP": "BTC/USDT:USDT"},
            "urls": ccxt_urls(port), "api_key_env": "TW_TEST_CCXT_API_KEY",
            "secret_env": "TW_TEST_CCXT_SECRET", "poll_every_s": 0.5, "backoff_min_s": 0.2,
            "backoff_max_s": 2.0} | extra


def test_ccxt_session_survives_sigkill_of_the_gateway(tmp_path: Path) -> None:
    """The unmodified ccxt.pro client in the gateway actor against the Binance USD-M fake (in
    this process, on its own thread: it fills while the gateway is down): no order reaches the
    exchange twice, every trade is counted once, positions agree; the planted credentials
    signed every request and appear in no file or log."""
    import ray

    from tests.venues.broker_helpers import FakeBinanceThread
    from tests.venues.fake_binance import API_KEY, SECRET, SymbolSpec

    fake = FakeBinanceThread(symbols=(SymbolSpec(tick="0.01"),), auto_fill_price=50_000.0,
                             fill_delay_s=0.2)  # the sample bars' prices have 2 decimals
    try:
        bars = write_bars(tmp_path / "data", "BTC-PERP")
        path = write_broker_config(tmp_path, bars, _ccxt_broker(fake.port), instrument=BTC,
                                   size=0.003)
        _, result, before = _run_with_kill(path, "cxkill1")
        exchange = fake.snapshot()
        signed = fake.fake.signed_ok
    finally:
        fake.close()
    assert result["gateway_restarted"]
    assert result["feed"]["error"] is None
    assert len(exchange["attempts"]) == len(set(exchange["attempts"])), "an order went twice"
    assert exchange["attempts"] == exchange["placed"]
    orders_csv = (Path(result["output_dir"]) / "cxkill1" / "orders.csv").read_text()
    orders = list(csv.DictReader(orders_csv.splitlines()))
    approved = {o["id"] for o in orders if o["status"] != "denied"}  # what risk let through
    never_sent = {o["id"] for o in orders if o["reason"].startswith("reconcile: the exchange")}
    assert set(exchange["placed"]) == approved - never_sent and len(approved) > 3
    fills = result["fill_records"]
    assert len({f.fill_id for f in fills}) == len(fills), "a fill was counted twice"
    assert {f.fill_id for f in fills} == {f"CX-BTCUSDT-{t}" for t in exchange["trades"]}
    assert result["fills"] == len(exchange["trades"]) > before
    expected = {"BTC-PERP": round(exchange["positions"].get("BTCUSDT", 0) * FIXED_SCALE)}
    expected = {k: v for k, v in expected.items() if v}
    assert result["risk_view"]["positions"] == expected == result["gateway_view"]["positions"]
    assert signed > 0  # every private request carried a valid HMAC-SHA256 signature
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and (
        API_KEY.encode() in p.read_bytes() or SECRET.encode() in p.read_bytes())]
    assert leaks == []
    ray_logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    assert [p for p in ray_logs.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()
            ] == []


def test_alpaca_session_survives_sigkill_of_the_gateway(tmp_path: Path) -> None:
    """The unmodified alpaca-py clients in the gateway actor against the Alpaca fake (in this
    process, on its own thread): no order reaches Alpaca twice, every fill is counted once,
    positions agree; the planted keys appear in no file or log."""
    import ray

    from tests.venues.broker_helpers import FakeAlpacaThread
    from tests.venues.fake_alpaca import SECRET_KEY

    fake = FakeAlpacaThread(auto_fill_price=190.0, fill_delay_s=0.2, cash="100000000")
    aapl = {"id": "AAPL.NASDAQ", "venue": "NASDAQ", "price_precision": 2, "lot_size": 1,
            "min_quantity": 1}
    try:
        bars = write_bars(tmp_path / "data", "AAPL.NASDAQ")
        path = write_broker_config(tmp_path, bars, fake.broker_block(), instrument=aapl,
                                   size=10)
        _, result, before = _run_with_kill(path, "apkill1")
        broker = fake.snapshot()
        authorized = fake.fake.authorized
    finally:
        fake.close()
    assert result["gateway_restarted"]
    assert result["feed"]["error"] is None
    assert broker["attempts"] == broker["placed"], "an order reached Alpaca twice"
    orders_csv = (Path(result["output_dir"]) / "apkill1" / "orders.csv").read_text()
    orders = list(csv.DictReader(orders_csv.splitlines()))
    approved = {o["id"] for o in orders if o["status"] != "denied"}
    never_sent = {o["id"] for o in orders if o["reason"].startswith("reconcile: Alpaca has")}
    assert set(broker["placed"]) == approved - never_sent and len(approved) > 3
    fills = result["fill_records"]
    assert len({f.fill_id for f in fills}) == len(fills), "a fill was counted twice"
    assert sum(f.last_qty for f in fills) == sum(  # every share Alpaca filled, once
        round(float(o["filled"])) for o in orders if o["status"] != "denied")
    assert result["fills"] == len(fills) > before
    expected = {"AAPL.NASDAQ": round(broker["positions"].get("AAPL", 0) * FIXED_SCALE)}
    expected = {k: v for k, v in expected.items() if v}
    assert result["risk_view"]["positions"] == expected == result["gateway_view"]["positions"]
    assert authorized >= 2  # the stream authenticated again after the restart
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET_KEY.encode() in
             p.read_bytes()]
    assert leaks == []
    ray_logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    assert [p for p in ray_logs.rglob("*") if p.is_file() and SECRET_KEY.encode() in
            p.read_bytes()] == []


def test_ccxt_market_data_streams_into_the_session_feed(tmp_path: Path) -> None:
    """``feed.mode: broker`` with CCXT: the Binance fake's bookTicker quotes and trades (public
    streams, through ccxt.pro) reach the feed and the strategy, in order, each once; with the
    market-data silence watchdog on (the reconciler asks the feed for its stream's health every
    second), which stays quiet while data flows."""
    import ray

    from actors.config import load_paper_config
    from actors.session import start_session
    from runtime.journal import Journal
    from runtime.messages import QuoteTick, TradeTick
    from tests.venues.broker_helpers import FakeBinanceThread
    from tests.venues.fake_binance import SymbolSpec

    fake = FakeBinanceThread(symbols=(SymbolSpec(tick="0.01"),))
    bars = write_bars(tmp_path / "data", "BTC-PERP")
    path = write_broker_config(tmp_path, bars, _ccxt_broker(fake.port), instrument=BTC,
                               size=0.003, feed={"mode": "broker", "lockstep": False,
                                                 "speed": "max"},
                               watchdogs={"market_data_silence": {"after_s": 120,
                                                                  "action": "reduce_only"}})
    session = start_session(load_paper_config(path), session_id="cxstream1")
    try:
        _until(lambda: fake.call(lambda: {"btcusdt@bookTicker", "btcusdt@trade"}
                                 <= fake.fake.subscriptions()))
        def reached(n: int) -> None:  # each message waits for the last to reach the feed
            _until(lambda: ray.get(session.feed.status.remote())["total"] >= n,
                   state=lambda: _feed_state(session))

        for i in range(10):  # a quote the client has not handed on yet is replaced by a newer
            fake.call(fake.fake.quote, "BTCUSDT", 50_000 + i, 1.0, 50_000.5 + i, 2.0)
            reached(2 * i + 1)  # one (the latest book wins): paced, every one arrives
            fake.call(fake.fake.trade, "BTCUSDT", 50_000.25 + i, 0.01, i % 2 == 0)
            reached(2 * i + 2)
        status = _until(lambda: (lambda s: s if s["cursor"] == s["total"] >= 20 else None)(
            ray.get(session.feed.status.remote())), state=lambda: _feed_state(session))
        strategy = ray.get(session.children["strategy:sma"].summary.remote())
        reconciler = session.children["reconciler"]
        watched = _until(lambda: (lambda r: r if r["health"].get("market", {}).get(
            "messages", 0) >= 20 else None)(ray.get(reconciler.status.remote())))
    finally:
        session.stop(write=False)
        fake.close()
    assert status["error"] is None and status["total"] == 20
    assert strategy["cursor"] == 20
    assert watched["watchdogs"]["market_data_silence"] == "ok"
    assert set(watched["health"]["market"]["last_ns"]) == {"BTC-PERP"}
    streamed = [m for _, m in Journal(tmp_path / "var" / "cxstream1" /
                                      "feed.stream.journal").entries()]
    quotes = [m for m in streamed if isinstance(m, QuoteTick)]
    trades = [m for m in streamed if isinstance(m, TradeTick)]
    assert [q.bid_price for q in quotes] == [(50_000 + i) * FIXED_SCALE for i in range(10)]
    assert [t.price for t in trades] == [round((50_000.25 + i) * FIXED_SCALE) for i in range(10)]
