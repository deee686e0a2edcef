"""Start, run and stop a paper session: the actor tree in the supervisor's order.

::

    session = start_session(load_paper_config("configs/paper.yaml"), session_id="demo1")
    session.wait(timeout_s=60)            # or poll session.status() for a status line
    result = session.stop()               # cancel per config, flush, files under runs/<id>/

The session starts its root supervisor (``actors.supervisor``), which starts the tree of the
paper config's ``supervisor.children`` in order (by default a trading subtree: risk, gateway,
a strategy per id, the reconciler; then a market-data subtree: a book per instrument, the store
and recorder when recording, and the feed last), then runs the feed. Every actor is named
``tw.<session>.<child>``; the session reaches each by name (``actors.names.Named``), across its
restarts. The same session id resumes from the journals under ``journal_dir/<id>/``.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import ray
from pydantic import ValidationError
from ray.exceptions import RayActorError

from actors.claim import Claim, claim_session
from actors.config import ChildConfig, FeedConfig, PaperConfig
from actors.driver import Ports
from actors.feed import write_cache
from actors.logs import actor_runtime_env
from actors.names import Named, is_actor_gone
from actors.setup import SessionSetup
from actors.supervisor import SupervisorActor
from actors.venues.broker_config import (
    day_orders_only,
    emulated_stops,
    native_lists,
    native_trailing,
)
from runtime import disk_reserve
from runtime.errors import ConfigError
from runtime.supervision import Call, ChildSpec, SupervisorSpec

__all__ = ["Prepared", "Session", "new_session_id", "prepare_session", "run_session",
           "start_session"]


def new_session_id(config: PaperConfig) -> str:
    return f"{config.name}_{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S%f')[:-3]}"


@dataclass
class Session:
    config: PaperConfig
    setup: SessionSetup
    children: dict[str, Named]  # child id -> the actor by name, in start order
    supervisor: Any  # the root supervisor's handle
    claim: Claim | None = None  # the session id's lock and record (actors.claim)
    started_s: float = field(default_factory=time.monotonic)

    @property
    def resumed(self) -> bool:
        return self.claim is not None and self.claim.resumed

    @property
    def session_id(self) -> str:
        return self.setup.session_id

    @property
    def feed(self) -> Named:
        return self.children["feed"]

    @property
    def risk(self) -> Named:
        return self.children["risk"]

    @property
    def gateway(self) -> Named:
        return self.children["gateway"]

    def status(self) -> dict[str, Any]:
        return {"feed": self.feed.get("status"), "risk": self.risk.get("summary"),
                "supervisor": ray.get(self.supervisor.status.remote())}

    def wait(self, timeout_s: float | None = None) -> bool:
        """Until the data ends (True) or the timeout passes (False). A feed whose loop failed
        is its supervisor's to restart (or, past its intensity, the session halts and cancels
        and waits for its operator): not the end of the session."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while deadline is None or time.monotonic() < deadline:
            if self.feed.get("status")["finished"]:
                return True
            time.sleep(0.05)
        return False

    def stop(self, *, write: bool = True) -> dict[str, Any]:
        from actors.artifacts import collect, write_files

        self.feed.get("stop")
        recorder = self.children.get("recorder")
        if recorder is not None:
            recorder.get("flush")
        try:
            result = collect(self)
        except RayActorError as exc:  # an actor replaced meanwhile (a failed feed): ask again
            if not is_actor_gone(exc):
                raise
            result = collect(self)
        result["resumed"] = self.resumed
        if write:
            write_files(self, result)
        self.shutdown()
        return result

    def shutdown(self) -> list[dict[str, Any]]:
        """Stop the tree (reverse start order, each child within its ``shutdown_timeout_s``),
        release the session id; how each child stopped."""
        try:
            stops: list[dict[str, Any]] = ray.get(self.supervisor.stop.remote())
        finally:
            ray.kill(self.supervisor, no_restart=True)
            if self.claim is not None:
                self.claim.release()
        return stops


@dataclass(frozen=True)
class Prepared:
    """A session's setup with its market data loaded beside the journals (no Ray needed),
    and its claimed id (locked until the session stops)."""

    setup: SessionSetup
    feed: FeedConfig
    claim: Claim


def prepare_session(config: PaperConfig, *, session_id: str | None = None,
                    lockstep: bool | None = None, speed: float | str | None = None,
                    transport: str | None = None, store: Any = None,
                    accept_config_change: bool = False) -> Prepared:
    """The session id claimed (``actors.claim``: checked, locked, resumed only with its own
    config unless ``accept_config_change``), the journal folder and feed settings; the data
    loaded once (a mistake in the data is reported here, before any actor starts).

    ``store``: an open store to read the market data from (else the config's, opened briefly).
    """
    sid = session_id or config.session_id or new_session_id(config)
    claim = claim_session(config, sid, accept_config_change=accept_config_change)
    try:
        prepared = _prepare(config, claim, lockstep=lockstep, speed=speed, transport=transport,
                            store=store)
    except BaseException:
        claim.release()
        raise
    claim.save()
    return prepared


def _prepare(config: PaperConfig, claim: Claim, *, lockstep: bool | None,
             speed: float | str | None, transport: str | None, store: Any) -> Prepared:
    sid = claim.session_id
    feed_cfg = config.feed
    if lockstep is not None or speed is not None or transport is not None:
        update: dict[str, Any] = {}
        if lockstep is not None:
            update["lockstep"] = lockstep
        if speed is not None:
            update["speed"] = speed
            update.setdefault("lockstep", False)
        if transport is not None:
            update["transport"] = transport
        try:  # validated again: the overrides must fit together (and with the config)
            feed_cfg = FeedConfig.model_validate(feed_cfg.model_dump() | update)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(first["msg"].removeprefix("Value error, "),
                              field=".".join(["feed", *map(str, first["loc"])])) from None
    journal_dir = Path(config.journal_dir).absolute() / sid
    trading = config.trading_config()
    instruments = [i.id for i in trading.instruments]
    setup = SessionSetup(sid, str(journal_dir), trading, lockstep=feed_cfg.lockstep,
                         snapshot_every=config.snapshot_every,
                         native_lists=native_lists(config.broker, instruments),
                         emulated_stops=emulated_stops(config.broker, instruments),
                         native_trailing=native_trailing(config.broker, instruments),
                         day_orders_only=(tuple(sorted(instruments))
                                          if trading.venue.day_orders_only
                                          else day_orders_only(config.broker, instruments)))
    disk_full = config.watchdogs.disk_full
    if disk_full is not None:  # before anything else is written there (runtime.disk_reserve)
        journal_dir.mkdir(parents=True, exist_ok=True)
        disk_reserve.keep(journal_dir / disk_reserve.RESERVE, int(disk_full.reserve_mb * 2**20))
    write_cache(setup, feed_cfg, store)
    setup.check_snapshots()
    return Prepared(setup=setup, feed=feed_cfg, claim=claim)


def start_session(config: PaperConfig, *, session_id: str | None = None,
                  lockstep: bool | None = None, speed: float | str | None = None,
                  store: Any = None, prepared: Prepared | None = None,
                  confirmed_live: bool = False) -> Session:
    """Start the tree (or resume a session from its journals) and start the feed.

    ``confirmed_live``: the command line's ``--confirm-live`` (a real-money broker account
    also needs ``live: true`` in its broker block; the gateway checks both)."""
    if prepared is None:
        prepared = prepare_session(config, session_id=session_id, lockstep=lockstep,
                                   speed=speed, store=store)
    try:
        return _start(config, prepared, confirmed_live=confirmed_live)
    except BaseException:
        prepared.claim.release()
        raise


def _start(config: PaperConfig, prepared: Prepared, *, confirmed_live: bool) -> Session:
    setup, feed_cfg = prepared.setup, prepared.feed
    sup = config.supervisor
    spec = sup.spec(_Children(config, setup, feed_cfg, confirmed_live=confirmed_live).expand)
    supervisor = cast(Any, SupervisorActor).options(
        name=_name(setup, "supervisor"), max_restarts=-1,
        runtime_env=_runtime_env(setup, "supervisor", config),
    ).remote(spec, prefix=_name(setup, ""), child_id="supervisor", halt_via="feed",
             heartbeat_s=sup.heartbeat_s, hang_timeout_s=sup.hang_timeout_s)
    try:
        ray.get(supervisor.start.remote())
    except BaseException:
        ray.kill(supervisor, no_restart=True)
        raise
    children = {c: Named(_name(setup, c.replace(":", "."))) for c in _leaves(spec)}
    ray.get(children["feed"].run.remote())
    return Session(config=config, setup=setup, children=children, supervisor=supervisor,
                   claim=prepared.claim)


def _leaves(spec: SupervisorSpec) -> list[str]:
    """The actors of the tree (not its supervisors), in start order."""
    out: list[str] = []
    for child in spec.children:
        out.extend(_leaves(child.supervisor) if child.supervisor else [child.child_id])
    return out


def _name(setup: SessionSetup, child: str) -> str:
    """The Ray name of the session's actor ``child`` (``actors.supervisor.actor_name``)."""
    return f"tw.{setup.session_id}.{child}"


def _runtime_env(setup: SessionSetup, child: str, config: PaperConfig) -> dict[str, Any]:
    """The runtime env that gives the actor's process JSON logs in
    ``<journal_dir>/session.log.jsonl`` (``actors.logs``), rotated by ``config.logs``."""
    return actor_runtime_env(setup.session_id, child,
                             Path(setup.journal_dir) / "session.log.jsonl",
                             max_bytes=config.logs.max_bytes, backups=config.logs.backups)


class _Children:
    """The child specs of each kind of actor the session runs (``SupervisorConfig.spec``)."""

    def __init__(self, config: PaperConfig, setup: SessionSetup, feed: FeedConfig, *,
                 confirmed_live: bool) -> None:
        self.config, self.setup, self.feed_cfg, self.live = config, setup, feed, confirmed_live

    def expand(self, kind: str, entry: ChildConfig) -> list[ChildSpec]:
        return [ChildSpec(child_id=child_id, restart=entry.restart,
                          shutdown_timeout_s=entry.shutdown_timeout_s, factory=factory,
                          options={"runtime_env": _runtime_env(
                              self.setup, child_id.replace(":", "."), self.config)},
                          **more)
                for child_id, factory, more in getattr(self, kind)()]

    def risk(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("risk", "actors.risk:RiskActor", {"args": (self.setup,)})]

    def gateway(self) -> list[tuple[str, str, dict[str, Any]]]:
        args = (self.setup, self.config.broker, self.live)
        return [("gateway", "actors.gateway:GatewayActor", {"args": args})]

    def strategy(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [(f"strategy:{s.id}", "actors.strategy:StrategyActor",
                 {"args": (self.setup, s.id)}) for s in self.setup.trading.strategies]

    def book(self) -> list[tuple[str, str, dict[str, Any]]]:
        setup = self.setup
        return [(f"book:{instrument}", "actors.book:BookActor", {"args": (instrument, setup)})
                for instrument in setup.instruments()]

    def store(self) -> list[tuple[str, str, dict[str, Any]]]:
        if not self.config.record:
            return []
        args = (self.config.store_dsn, self.setup.trading.store.ttl)
        return [("store", "actors.store:StoreActor", {"args": args,
                                                      "before_stop": (Call(method="close"),)})]

    def recorder(self) -> list[tuple[str, str, dict[str, Any]]]:
        if not self.config.record:
            return []
        setup = self.setup
        args = (setup.session_id, Named(_name(setup, "store")),
                str(Path(setup.journal_dir) / "recorder.spill"))
        return [("recorder", "actors.recorder:RecorderActor", {"args": args})]

    def reconciler(self) -> list[tuple[str, str, dict[str, Any]]]:
        every_s = self.config.reconcile_every_s
        if every_s is None:
            return []
        setup = self.setup
        start = Call(method="start", args=(Named(_name(setup, "gateway")),
                                           Named(_name(setup, "risk")),
                                           Named(_name(setup, "feed")), every_s),
                     kwargs={"act": self.config.acts_on_drift()})
        kwargs = {"watchdogs": self.config.watchdogs.model_dump(mode="json"),
                  "instruments": list(setup.registry()), "journal_dir": str(setup.journal_dir)}
        return [("reconciler", "actors.reconciler:ReconcilerActor",
                 {"args": (setup.session_id, {}), "kwargs": kwargs, "on_start": (start,)})]

    def feed(self) -> list[tuple[str, str, dict[str, Any]]]:
        setup, config = self.setup, self.config
        strategies = setup.strategy_ids()
        ports = Ports(gateway=_name(setup, "gateway"), risk=_name(setup, "risk"),
                      hosts={k: _name(setup, f"strategy.{k}") for k in strategies},
                      books={k: _name(setup, f"book.{k}") for k in setup.instruments()},
                      recorder=_name(setup, "recorder") if config.record else None,
                      recorder_source=setup.session_id)
        kill_file = None if config.kill_file is None else str(Path(config.kill_file).absolute())
        kwargs = {"kill_file": kill_file, "cancel_on_stop": config.cancel_on_stop,
                  "broker": config.broker}
        # resumes the loop after a restart if it was running (a no-op before the first run)
        resume = Call(method="after_restart")
        return [("feed", "actors.feed:FeedActor",
                 {"args": (setup, self.feed_cfg, ports), "kwargs": kwargs, "on_start": (resume,)})]


def run_session(config: PaperConfig, *, session_id: str | None = None,
                lockstep: bool | None = None, speed: float | str | None = None,
                duration_s: float | None = None, on_status: Any = None,
                store: Any = None, prepared: Prepared | None = None,
                confirmed_live: bool = False) -> dict[str, Any]:
    """Start, run until the data ends, the duration passes or Ctrl-C, stop, write the files.

    ``on_status(status)`` is called every ``config.status_every_s`` with :meth:`Session.status`.
    """
    session = start_session(config, session_id=session_id, lockstep=lockstep, speed=speed,
                            store=store, prepared=prepared, confirmed_live=confirmed_live)
    deadline = None if duration_s is None else session.started_s + duration_s
    interrupted = False
    try:
        while deadline is None or time.monotonic() < deadline:
            step = config.status_every_s
            if deadline is not None:
                step = max(0.0, min(step, deadline - time.monotonic()))
            if session.wait(step):
                break
            if on_status is not None:
                on_status(session.status())
    except KeyboardInterrupt:
        interrupted = True
    result = session.stop()
    result["interrupted"] = interrupted
    return result
