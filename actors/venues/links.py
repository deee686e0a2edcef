"""Where a broker adapter runs inside the gateway actor: its own thread, next to the actor's.

* :class:`IbLink` — an asyncio loop on a thread owns the ``ib_async.IB`` client and the
  :class:`~actors.venues.ib.IbVenue`; :meth:`IbLink.call` runs a function there and waits.
  ``IbVenue.run`` keeps the session (reconnect with backoff, reconcile on trigger and timer).
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

from actors.venues.broker_config import Broker, check_mode
from actors.venues.common import SendLog, env_secret
from actors.venues.gateway import BrokerGateway
from actors.venues.ib_support import IbConfig, import_ib
from actors.venues.shioaji_support import ShioajiConfig, import_shioaji, make_client
from runtime.errors import VenueUnavailable
from runtime.instruments import Instrument

__all__ = ["IbLink", "ShioajiLink", "open_broker_gateway"]

log = logging.getLogger("tradewind.venues.links")


class IbLink:
    def __init__(self, config: IbConfig, send_log: SendLog, *, call_timeout_s: float = 30.0):
        from actors.venues.ib import IbVenue

        self.config, self.call_timeout_s = config, call_timeout_s
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tw-ib", daemon=True)
        self.thread.start()
        lib = import_ib()

        async def build() -> Any:
            self.stop = asyncio.Event()
            return IbVenue(lib.IB(), config=config, send_log=send_log, lib=lib)

        self.venue = self._wait(asyncio.run_coroutine_threadsafe(build(), self.loop))
        try:  # connect and reconcile before anything is sent; else run() keeps trying
            self._wait(asyncio.run_coroutine_threadsafe(self.venue.connect(), self.loop))
        except VenueUnavailable as exc:
            log.warning("IB gateway not reachable yet (%s): reconnecting in the background", exc)
        self.runner = asyncio.run_coroutine_threadsafe(self.venue.run(self.stop), self.loop)

    def _wait(self, future: concurrent.futures.Future[Any]) -> Any:
        return future.result(self.call_timeout_s)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the client's loop (the adapter is not thread-safe); its result."""
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
        self.call(self.venue.ib.disconnect)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


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


def open_broker_gateway(broker: Broker, folder: Path, *, instruments: dict[str, Instrument],
                        confirmed_live: bool) -> BrokerGateway:
    """The gateway for ``broker`` with its journals in ``folder``. A real-money account needs
    ``live: true`` *and* ``confirmed_live`` (the command line's --confirm-live), checked here
    again, where the orders go out."""
    live = not (broker.paper if isinstance(broker, IbConfig) else broker.simulation)  # type: ignore[union-attr]
    check_mode(broker, command="live" if live else "paper", confirm_live=confirmed_live)
    if isinstance(broker, IbConfig):
        return BrokerGateway(lambda log_: IbLink(broker, log_), folder, kind="ib")
    if isinstance(broker, ShioajiConfig):
        os.environ.setdefault("SJ_LOG_PATH", str(folder / "shioaji.log"))
        return BrokerGateway(
            lambda log_: ShioajiLink(broker, log_, instruments=instruments, log_dir=folder),
            folder, kind="shioaji")
    raise TypeError(f"not a broker: {broker!r}")
