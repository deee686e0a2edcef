"""The feed actor: market data for the session, and the driver that replays it.

Data comes from the trading config's streams (the store, files or generated sample data,
through ``backtest.feed.load_feed``) or from the broker's stream (``mode: broker``). The actor
runs :class:`actors.driver.Driver` in a background task, one step at a time under a lock, over
the carrier ``feed.transport`` picks (``actors.carriers``, opened when the loop starts), in
lockstep and in real time alike, so halts, the kill file and the stop never interleave with a
step. Its cursor is saved to a small file; after a restart it resumes from there (the other
actors dedupe what they saw twice by feed index, order id and fill id).

A loop that fails for good (the carrier gave up on a step, a step raised in an actor) is the
actor's failure: ``watch()`` raises it (:class:`FeedLoopFailed`), so the supervisor decides on
it as on a crash (``runtime.supervision.decide``: restarted within the intensity, the root
halting and cancelling beyond it) and stops this actor; the failure is kept in ``feed.json``
(``failures``: the error and the cursor) for the successor's status. Until it is stopped, the
failed actor refuses what needs its loop (halt, operator actions: the supervisor's halt tries
again, on the successor) and its ``stop`` tries the cancels once and answers the status with
the error: a stop never waits for a successor that may fail the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

from actors.base import ACTOR_OPTIONS, actor
from actors.config import FeedConfig
from actors.driver import Driver, Ports
from actors.feed_log import CACHE, FeedMessages, write_log
from actors.names import Named
from actors.retention import Retention, owners
from actors.setup import SessionSetup
from runtime import disk_reserve
from runtime.errors import ConfigError, InvariantError, TradewindError
from runtime.messages import MarketData

__all__ = ["FeedActor", "FeedLoopFailed", "load_messages", "read_cache", "write_cache"]

#: failures kept in ``feed.json`` (the latest), for the status of the feeds that follow
KEPT_FAILURES = 20


class FeedLoopFailed(TradewindError):
    """The feed's loop ended with an error: the feed actor has failed (its supervisor stops
    it and decides)."""


def write_cache(setup: SessionSetup, feed: FeedConfig, store: Any = None) -> Path:
    """Load the session's data once and write it as the feed's log beside the journals
    (``actors.feed_log``): a restarted feed actor and a resumed session replay exactly the same
    messages (and never open the store again), and every actor re-reads its market data there
    when it restores."""
    path = Path(setup.journal_dir) / CACHE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        messages, start_ns = load_messages(setup, feed, store)
        write_log(path, start_ns, messages)
    return path


def read_cache(setup: SessionSetup) -> tuple[list[MarketData], int]:
    """The loaded part of the feed's log (the broker stream's part follows it) and the
    session's start time."""
    log = setup.feed_log()
    return log.all(), log.start_ns


def load_messages(setup: SessionSetup, feed: FeedConfig,
                  store: Any = None) -> tuple[list[MarketData], int]:
    """The session's market data in (ts, seq) order, and its start time."""
    if feed.mode == "broker":  # streamed while the session runs (actors.venues.market_data)
        return [], time.time_ns()
    from backtest.feed import load_feed

    config = setup.trading
    own = store is None and any(d.from_store for d in config.data)
    if own:
        from backtest.results import open_config_store

        store = open_config_store(config)
    try:
        data = load_feed(config, store)
    finally:
        if own:
            store.close()
    return cast(list[MarketData], data.messages), data.start_ns  # auxiliary data too


def _resolve(ports: Ports) -> Ports:
    """Ports given by actor name as :class:`~actors.names.Named` (a call that meets a dead actor
    goes again to the actor its supervisor started under the same name)."""
    def get(name: Any) -> Any:
        return Named(name) if isinstance(name, str) else name

    return Ports(gateway=get(ports.gateway), risk=get(ports.risk),
                 hosts={k: get(v) for k, v in ports.hosts.items()},
                 books={k: get(v) for k, v in ports.books.items()},
                 recorder=get(ports.recorder), recorder_source=ports.recorder_source)


@actor(**ACTOR_OPTIONS)
class FeedActor:
    """Drives the session (see the module docstring)."""

    def __init__(self, setup: SessionSetup, feed: FeedConfig, ports: Ports, *,
                 kill_file: str | None, cancel_on_stop: bool, broker: Any = None) -> None:
        self.setup, self.feed, self.kill_file = setup, feed, kill_file
        self.cancel_on_stop = cancel_on_stop
        loaded, start_ns = read_cache(setup)
        self.messages: Sequence[MarketData] = loaded  # a replay's: a plain list (hot path)
        self.stream: Any = None  # feed.mode broker: the broker's stream appends to messages
        self.retention: Retention | None = None  # of the stream's (actors.retention)
        if feed.mode == "broker":
            from actors.venues.market_data import open_stream

            self.messages = streamed = FeedMessages(loaded)
            self.stream = open_stream(broker, setup.journal_dir, streamed,
                                      instruments=dict(setup.registry().as_mapping()))
            self.retention = Retention(feed.retention, owners(setup, paper_gateway=False))
        speed: float | None = None
        if not feed.lockstep and feed.speed != "max":
            speed = float(feed.speed)
        self.ports = _resolve(ports)
        self.driver = Driver(self.ports, self.messages, start_ns=start_ns, exact=feed.lockstep,
                             batch_size=feed.batch_size, speed=speed,
                             conflate_after=feed.conflate_after,
                             record_feed=feed.mode == "broker")
        self.path = Path(setup.journal_dir) / "feed.json"
        self.saved: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.driver.cursor = int(self.saved.get("cursor", 0))
        self.driver.delivered = int(self.saved.get("delivered", 0))
        for key, value in self.saved.get("counters", {}).items():
            setattr(self.driver.counters, key, value)
        self.lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None
        self.paused = False
        self.stop_requested = False
        self.kill_halted = False
        self.wall0 = time.monotonic()
        self.started_ns: int | None = None  # when the loop started (wall clock, ns)
        self._last_save = 0.0
        self._last_kill_check = 0.0
        self.error: str | None = None
        self.failed = asyncio.Event()  # the loop ended with ``error``: watch() raises it
        self.failing_steps = 0  # a rehearsal's ``step_failure`` fault: steps left to fail

    # --- control -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Start (or, after a restart, resume) the session in the background."""
        if self.task is None and not self.saved.get("finished"):
            self.saved["running"] = True
            self.saved.pop("stopped_by", None)  # a stopped session resumed
            self.task = asyncio.ensure_future(self._loop())

    async def after_restart(self) -> None:
        if self.saved.get("running"):
            await self.run()

    async def pause(self) -> int:
        """Park the loop between steps; returns the cursor."""
        self._check_loop()
        self.paused = True
        async with self.lock:
            await self.driver.flush()
            await self._save(force=True)
            return self.driver.cursor

    async def resume(self) -> None:
        self.paused = False

    async def halt(self, reason: str) -> None:
        self._check_loop()
        async with self.lock:
            await self.driver.set_state("halted", reason)

    async def stop(self) -> dict[str, Any]:
        """Stop at the next step boundary, cancel per config, flush; the final status."""
        if self.error is not None:
            return await self._stop_failed()
        self.stop_requested = True
        self.paused = False
        if self.task is None:
            await self.run()
        if self.task is not None:
            await asyncio.wait({self.task})  # its failure, if it fails: in the status
        return await self.status()

    async def _stop_failed(self) -> dict[str, Any]:
        """Stopped after the loop failed (before its supervisor stopped this actor): the
        cancels per config tried once more (the carrier connects again for them); the
        status, with the loop's error, either way: the stop never waits for a successor
        that may fail the same way."""
        self.stop_requested = True
        async with self.lock:
            try:
                await self.driver.suspend(cancel_open=self.cancel_on_stop)
            except Exception as exc:  # said in the status, which the session's files show
                self.error = (f"{self.error}; the stop's cancels failed too: "
                              f"{type(exc).__name__}: {exc}")
            finally:
                if self.driver.carrier is not None:
                    self.driver.carrier.close()
            # the session stops on this error: the successor the supervisor starts meanwhile
            # neither resumes the loop nor hides the error (its status reports it)
            self.saved.update(running=False, stopped_by=self.error)
            self._write_saved()
        return await self.status()

    async def wait(self) -> dict[str, Any]:
        """The status once the loop ended (the data's end, a stop, or its failure)."""
        if self.task is not None:
            await asyncio.wait({self.task})
        return await self.status()

    def _check_loop(self) -> None:
        if self.error is not None:
            raise FeedLoopFailed(f"the session's feed failed ({self.error}); its supervisor "
                                 "starts it again")

    # --- the loop ------------------------------------------------------------------------------
    async def _loop(self) -> None:
        try:
            async with self.lock:
                if self.driver.carrier is None:
                    from actors.carriers import open_carrier

                    self.driver.carrier = await open_carrier(
                        self.feed.transport, self.ports.hosts, self.ports.risk,
                        self.ports.gateway, books=self.ports.books)
                await self.driver.start()
                self.started_ns = time.time_ns()
            more = True
            while more and not self.stop_requested:
                if self.paused:
                    await asyncio.sleep(0.01)
                    continue
                async with self.lock:
                    await self._kill_file()
                    self._rehearsed_failure()
                    more = await self.driver.step() or await self._more_streamed()
                    await self._save()
                # the sockets carrier runs a step without suspending: let the actor's other
                # calls (status, pause, stop, operator actions) in between two steps
                await asyncio.sleep(0)
            async with self.lock:
                if more:  # stopped before the end of the data: the session can resume
                    await self.driver.suspend(cancel_open=self.cancel_on_stop)
                else:
                    await self.driver.finish(cancel_open=self.cancel_on_stop)
                    self.saved["finished"] = True
                self.saved["running"] = False
                await self._save(force=True)
        except Exception as exc:  # this actor's failure: watch() raises it to the supervisor
            self.error = f"{type(exc).__name__}: {exc}"
            self._keep_failure()
            self.failed.set()
        finally:
            if self.driver.carrier is not None:
                self.driver.carrier.close()

    def _keep_failure(self) -> None:
        """The failure in ``feed.json`` (kept for the feeds that follow) with the cursor saved
        last, from which the successor resumes (a step the loop failed in may have moved the
        driver's cursor before every stage had it: it is run again, never skipped)."""
        assert self.error is not None
        failures = [*self.saved.get("failures", []),
                    {"error": self.error[:2000], "cursor": int(self.saved.get("cursor", 0)),
                     "t": time.time()}]
        self.saved["failures"] = failures[-KEPT_FAILURES:]
        self._write_saved()

    def _write_saved(self) -> None:
        """``saved`` as it is (after a failure: the cursor of the last step every stage had)."""
        assert self.error is not None
        try:
            self._write()
        except OSError as exc:  # still reported, through watch() and status()
            self.error += f" (and {self.path.name} could not keep it: {exc})"

    def _write(self) -> None:
        """``saved`` to ``feed.json``, whole or not at all (a temporary file renamed)."""
        tmp, text = self.path.with_suffix(".tmp"), json.dumps(self.saved)
        disk_reserve.retrying(tmp, partial(tmp.write_text, text))
        tmp.replace(self.path)

    async def _more_streamed(self) -> bool:
        """A broker stream never ends: at its end, wait a little for more (True)."""
        if self.stream is None:
            return False
        await asyncio.sleep(0.01)
        return True

    async def _kill_file(self) -> None:
        now = time.monotonic()
        if self.kill_file is None or now - self._last_kill_check < 0.1:
            return
        self._last_kill_check = now
        present = os.path.exists(self.kill_file)
        if present and not self.kill_halted:
            self.kill_halted = True
            await self.driver.set_state("halted", f"kill file {self.kill_file} present")
        elif not present and self.kill_halted:
            self.kill_halted = False
            await self.driver.set_state("active", f"kill file {self.kill_file} removed")

    async def _save(self, *, force: bool = False) -> None:
        """The cursor (every step gave its data to every stage) and the reports delivered (a
        restarted feed asks the gateway again for those it held)."""
        now = time.monotonic()
        if not force and now - self._last_save < 0.2:
            return
        self._last_save = now
        self.saved.update(cursor=self.driver.cursor, delivered=self.driver.delivered,
                          counters=dataclasses.asdict(self.driver.counters))
        self._write()
        if self.retention is not None and self.retention.due(now):  # after the cursor's save
            self.retention.apply(self.stream.sink, self.driver.cursor)

    async def operate(self, name: str, args: dict[str, Any]) -> Any:
        """An operator's action between two steps (``actors.operator.feed_<name>``; issue 4)."""
        from actors.operator import dispatch

        self._check_loop()
        async with self.lock:
            return await dispatch("feed", self, name, args)

    # --- looking -------------------------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        c = self.driver.counters
        elapsed = max(time.monotonic() - self.wall0, 1e-9)
        return {
            "cursor": self.driver.cursor, "total": len(self.messages), "events": c.events,
            "events_per_s": c.events / elapsed, "conflated": c.conflated,
            "commands": c.commands, "fills": c.fills,
            "denials": c.denials, "reports": c.reports, "state_changes": c.state_changes,
            "finished": bool(self.saved.get("finished")), "running": self.task is not None
            and not self.task.done(), "paused": self.paused, "kill_halted": self.kill_halted,
            "error": self.error or self.saved.get("stopped_by"),
            "failures": list(self.saved.get("failures", [])),
            "transport": self._transport_status(),
            "aux": self._aux_status(),
        }

    async def reports_delivered(self) -> int:
        """How many of the gateway's reports the strategies and risk have: the watermark the
        reconciler takes the gateway's view as of (``runtime.reconcile.as_of``)."""
        return self.driver.delivered

    async def market_health(self) -> dict[str, Any] | None:
        """The market-data stream's health for the watchdogs: the broker stream's
        (``StreamSink.health``), or a real-time replay's (when the loop started, and when each
        instrument's data last came: ``Driver.last_heard``, on the wall clock; ``clock_ns``:
        the data clock, at which the calendar is asked whether the replayed market is open).
        ``None`` for a lockstep replay, which runs at the pace of the chain, not the clock."""
        if self.stream is not None:
            return dict(self.stream.sink.health())
        if self.feed.lockstep or self.started_ns is None:
            return None
        return {"since_ns": self.started_ns, "last_ns": self.driver.last_heard(),
                "messages": self.driver.cursor, "clock_ns": self.driver.data_now(),
                "now_ns": time.time_ns()}

    async def rehearse(self, fault: str, args: dict[str, Any]) -> dict[str, Any]:
        """A rehearsal's fault at the replayed stream (``tradewind rehearse``, tests):

        * ``silence`` (``instrument``, ``seconds``) — ``instrument``'s data reaches no strategy
          and no risk for ``seconds`` while the rest flows (``Driver.mute``): the stream is
          connected but silent for it;
        * ``step_failure`` (``times``) — the next ``times`` steps of this feed's loop fail for
          good, as a carrier that gave up on a step does (the hot path failing ``_TRIES``
          times): the loop ends with that error and the supervisor decides.

        A broker's stream and a lockstep replay refuse."""
        if self.stream is not None or self.feed.lockstep:
            raise InvariantError("faults are injected into a real-time replay only, not "
                                 + ("a broker's stream" if self.stream is not None
                                    else "a lockstep replay (its fills must equal the "
                                         "backtest's)"))
        if fault == "step_failure" and set(args) == {"times"}:
            self.failing_steps += int(args["times"])
            return {"failing_steps": self.failing_steps}
        if fault != "silence" or set(args) != {"instrument", "seconds"}:
            raise ConfigError(f"no such feed fault {fault!r} with {sorted(args)}: the feed "
                              "takes 'silence' with instrument and seconds, or "
                              "'step_failure' with times", field="fault")
        instrument = str(args["instrument"])
        self.setup.registry().get(instrument)  # an unknown instrument is a clear error
        self.driver.mute(instrument, float(args["seconds"]))
        return {"muted": dict(self.driver.muted)}

    def _rehearsed_failure(self) -> None:
        if self.failing_steps:
            self.failing_steps -= 1
            raise RuntimeError("the step failed for good (a rehearsed step_failure fault)")

    def _aux_status(self) -> dict[str, Any]:
        """The broker stream's auxiliary feeds (age, staleness, errors), when it polls any."""
        telemetry = getattr(self.stream, "telemetry", None)
        return telemetry() if callable(telemetry) else {}

    def _transport_status(self) -> dict[str, Any]:
        """Which carrier moves the steps, its connections (1, plus one after each failure),
        the latest failures and warm-ups."""
        hot = self.driver.carrier
        if hot is None:
            return {"kind": "opening", "lockstep": self.feed.lockstep}
        return {"kind": hot.transport, "lockstep": self.feed.lockstep,
                "connections": hot.connections,
                "failures": list(hot.failures[-5:]),
                "warmup_s": [round(s, 3) for s in hot.warmup_s[-5:]]}

    async def pid(self) -> int:
        return os.getpid()

    async def ping(self) -> float:
        return time.time()

    async def watch(self) -> None:
        """Ends with the actor: raises :class:`FeedLoopFailed` once its loop failed (the
        supervisor decides on it as on a crash), else waits for the actor's death."""
        await self.failed.wait()
        raise FeedLoopFailed(f"the feed's loop failed: {self.error}")
