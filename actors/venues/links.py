"""Where a broker adapter runs inside the gateway actor: its own thread, next to the actor's.

* :class:`AsyncLink` — an asyncio loop on a thread owns an async client and its adapter;
  :meth:`AsyncLink.call` runs a function there and waits. :class:`IbLink` (``ib_async.IB`` and
  :class:`~actors.venues.ib.IbVenue`) and :class:`CcxtLink` (``ccxt.pro`` and
  :class:`~actors.venues.ccxt_venue.CcxtVenue`) are two; each adapter's ``run`` keeps the session
  (reconnect with backoff, reconcile on trigger and timer).
* :class:`AlpacaLink` — the (thread-safe) Alpaca adapter with a ticker thread, and alpaca-py's
  ``TradingStream`` on a thread of its own.
* :class:`ShioajiLink` — the (thread-safe) Shioaji adapter, and a ticker thread that logs in
  again after a session loss, reconciles when asked or every ``reconcile_every_s``, and sends what
  the rate limits allow. The client comes from :func:`~actors.venues.shioaji_support.make_client`
  (``broker.client_factory`` is the documented hook tests use to inject their fake).

:func:`open_broker_gateway` builds the :class:`~actors.venues.gateway.BrokerGateway` for a
broker block. Credentials are read here, in the gateway's process, from the environment only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.venues.alpaca_support import AlpacaConfig
from actors.venues.alpaca_support import make_clients as make_alpaca_clients
from actors.venues.broker_config import Broker, check_mode, is_paper_account
from actors.venues.ccxt_support import CcxtConfig, make_exchange
from actors.venues.common import SendLog, env_secret
from actors.venues.gateway import BrokerGateway
from actors.venues.ib_support import IbConfig, import_ib
from actors.venues.shioaji_support import ShioajiConfig, import_shioaji, make_client
from runtime.errors import VenueUnavailable
from runtime.instruments import Instrument

__all__ = ["AlpacaLink", "AsyncLink", "CcxtLink", "IbLink", "ShioajiLink",
           "open_broker_gateway"]

log = logging.getLogger("tradewind.venues.links")


class AsyncLink:
    """An asyncio loop on a thread of its own, owning an async client and its adapter;
    :meth:`call` runs a function there and waits (the adapters are not thread-safe)."""

    venue: Any
    stop: asyncio.Event
    runner: concurrent.futures.Future[Any]

    def __init__(self, name: str, *, call_timeout_s: float) -> None:
        self.call_timeout_s = call_timeout_s
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        """A coroutine on the loop; its result."""
        return self._wait(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def _wait(self, future: concurrent.futures.Future[Any]) -> Any:
        return future.result(self.call_timeout_s)

    def _start(self, venue: Any, connect: Any, what: str) -> None:
        """Connect and reconcile before anything is sent; else the adapter's ``run`` keeps
        trying in the background."""
        self.venue = venue
        try:
            self.run(connect())
        except VenueUnavailable as exc:
            log.warning("%s not reachable yet (%s): reconnecting in the background", what, exc)
        self.runner = asyncio.run_coroutine_threadsafe(venue.run(self.stop), self.loop)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the client's loop; its result."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the caller's thread, re-raised there
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return self._wait(future)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        with contextlib.suppress(concurrent.futures.TimeoutError,
                                 concurrent.futures.CancelledError):
            self.runner.result(5)
        self._disconnect()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def _disconnect(self) -> None: ...


class IbLink(AsyncLink):
    def __init__(self, config: IbConfig, send_log: SendLog, *, call_timeout_s: float = 30.0):
        from actors.venues.ib import IbVenue

        super().__init__("tw-ib", call_timeout_s=call_timeout_s)
        self.config = config
        lib = import_ib()

        async def build() -> Any:
            self.stop = asyncio.Event()
            return IbVenue(lib.IB(), config=config, send_log=send_log, lib=lib)

        venue = self.run(build())
        self._start(venue, venue.connect, "IB gateway")

    def _disconnect(self) -> None:
        self.call(self.venue.ib.disconnect)


class CcxtLink(AsyncLink):
    """The ``ccxt.pro`` client and :class:`~actors.venues.ccxt_venue.CcxtVenue` on their loop;
    the adapter's ``run`` keeps the user stream, polls while it is down and reconciles."""

    def __init__(self, config: CcxtConfig, send_log: SendLog, *,
                 instruments: dict[str, Instrument], call_timeout_s: float = 30.0):
        from actors.venues.ccxt_venue import CcxtVenue

        super().__init__("tw-ccxt", call_timeout_s=call_timeout_s)
        credentials = config.credentials()  # here, in the gateway's process, never logged
        currency = next((instruments[i].currency for i in config.symbols if i in instruments),
                        "USDT")

        async def build() -> Any:
            self.stop = asyncio.Event()
            return CcxtVenue(make_exchange(config, credentials=credentials), config=config,
                             send_log=send_log, instruments=instruments, currency=currency)

        venue = self.run(build())
        self._start(venue, venue.connect, config.exchange)

    def _disconnect(self) -> None:
        self.run(self.venue.exchange.close())


class ShioajiLink:
    def __init__(self, config: ShioajiConfig, send_log: SendLog, *,
                 instruments: dict[str, Instrument], log_dir: Path, tick_s: float = 0.05):
        from actors.venues.shioaji import ShioajiVenue

        sj = import_shioaji(log_dir)  # SJ_LOG_PATH first: no shioaji.log in the cwd
        credentials = (env_secret(config.api_key_env), env_secret(config.secret_key_env))
        self.lock = threading.Lock()
        self.tick_s = tick_s
        self.venue = ShioajiVenue(make_client(sj, config), sj=sj, config=config,
                                  instruments=instruments, send_log=send_log,
                                  credentials=credentials)
        try:
            with self.lock:
                self.venue.login()  # logs in and reconciles before anything is sent
        except VenueUnavailable as exc:
            log.warning("%s: logging in again in the background", exc)  # session_up stays off
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tw-shioaji", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        last, delay = time.monotonic(), 1.0
        while not self._stop.wait(self.tick_s):
            try:
                with self.lock:
                    if time.monotonic() - last >= self.venue.config.reconcile_every_s:
                        self.venue.reconcile_requested = True
                        last = time.monotonic()
                    self.venue.tick()
                delay = 1.0
            except VenueUnavailable as exc:
                log.warning("%s: next try in %.0fs", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 60.0)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self.lock:
            return fn(*args)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)


class AlpacaLink:
    """The Alpaca adapter (thread-safe), alpaca-py's ``TradingStream`` on a thread of its own,
    and a ticker thread that connects (the account) with backoff, sends what the request budget
    allows, reconciles when asked or every ``reconcile_every_s``, and polls over REST every
    ``poll_every_s`` while the stream is down."""

    def __init__(self, config: AlpacaConfig, send_log: SendLog, *,
                 instruments: dict[str, Instrument], tick_s: float = 0.05):
        from actors.venues.alpaca_venue import AlpacaVenue

        rest, self.stream = make_alpaca_clients(config, config.credentials())
        self.tick_s = tick_s
        self.venue = AlpacaVenue(rest, config=config, send_log=send_log,
                                 instruments=instruments)
        self.stream.subscribe_trade_updates(self._on_update)
        self.stream_thread = threading.Thread(target=self.stream.run, name="tw-alpaca-stream",
                                              daemon=True)
        self.stream_thread.start()
        self._connect()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tw-alpaca", daemon=True)
        self.thread.start()

    async def _on_update(self, update: Any) -> None:
        self.venue.on_trade_update(update)

    def _connect(self) -> bool:
        try:
            self.venue.connect()
            return True
        except Exception as exc:  # alpaca-py raises APIError or requests' errors
            log.warning("Alpaca not reachable yet (%s): connecting in the background",
                        type(exc).__name__)
            return False

    def _stream_up(self) -> bool:
        # alpaca-py keeps whether its socket is up in ``_running`` (no public flag)
        return bool(getattr(self.stream, "_running", False))

    def _run(self) -> None:
        venue, cfg = self.venue, self.venue.config
        delay, last_reconcile, last_poll = cfg.backoff_min_s, time.monotonic(), 0.0
        while not self._stop.wait(self.tick_s):
            if not venue.connected:
                if not self._connect():
                    self._stop.wait(delay)
                    delay = min(delay * 2, cfg.backoff_max_s)
                    continue
                delay, last_reconcile = cfg.backoff_min_s, time.monotonic()
            up = self._stream_up()
            if up and venue.stream_down:
                log.info("Alpaca trade_updates up: reconciling what happened before")
                venue.reconcile_requested = True
            venue.stream_down = not up
            now = time.monotonic()
            polling = venue.stream_down and now - last_poll >= cfg.poll_every_s
            due = now - last_reconcile >= cfg.reconcile_every_s
            if (venue.reconcile_requested or due or polling) and now >= venue.paused_until:
                venue.reconcile()
                last_reconcile = last_poll = time.monotonic()
            venue.pump()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self.venue.lock:  # never held across a REST call: port calls only queue
            return fn(*args)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        with contextlib.suppress(RuntimeError, AttributeError, concurrent.futures.TimeoutError):
            self.stream.stop()  # the stream sees it at its next 5-second receive timeout:
        self.stream_thread.join(1)  # a daemon thread that ends by itself; no need to wait


def open_broker_gateway(broker: Broker, folder: Path, *, instruments: dict[str, Instrument],
                        confirmed_live: bool) -> BrokerGateway:
    """The gateway for ``broker`` with its journals in ``folder``. A real-money account needs
    ``live: true`` *and* ``confirmed_live`` (the command line's --confirm-live), checked here
    again, where the orders go out."""
    live = not is_paper_account(broker)
    check_mode(broker, command="live" if live else "paper", confirm_live=confirmed_live)
    if isinstance(broker, IbConfig):
        return BrokerGateway(lambda log_: IbLink(broker, log_), folder, kind="ib")
    if isinstance(broker, CcxtConfig):
        return BrokerGateway(lambda log_: CcxtLink(broker, log_, instruments=instruments),
                             folder, kind="ccxt")
    if isinstance(broker, AlpacaConfig):
        return BrokerGateway(lambda log_: AlpacaLink(broker, log_, instruments=instruments),
                             folder, kind="alpaca")
    if isinstance(broker, ShioajiConfig):
        os.environ.setdefault("SJ_LOG_PATH", str(folder / "shioaji.log"))
        return BrokerGateway(
            lambda log_: ShioajiLink(broker, log_, instruments=instruments, log_dir=folder),
            folder, kind="shioaji")
    raise TypeError(f"not a broker: {broker!r}")
