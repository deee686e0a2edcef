"""Start, run and stop a paper session: the actor tree in the supervisor's order.

::

    session = start_session(load_paper_config("configs/paper.yaml"), session_id="demo1")
    session.wait(timeout_s=60)            # or poll session.status() for a status line
    result = session.stop()               # cancel per config, flush, files under runs/<id>/

Children, in start order (``configs/paper.yaml`` ``supervisor.children``): risk, gateway,
strategy per id, book per instrument, then (when present and enabled) store, recorder and
reconciler, and the feed last. The same session id resumes from the journals under
``journal_dir/<id>/``.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import ray
from pydantic import ValidationError

from actors.claim import Claim, claim_session
from actors.config import FeedConfig, PaperConfig
from actors.driver import Ports
from actors.feed import FeedActor, write_cache
from actors.logs import actor_runtime_env
from actors.market import BookActor
from actors.setup import SessionSetup
from actors.supervisor import SupervisorActor
from actors.trading import GatewayActor, RiskActor, StrategyActor
from runtime.errors import ConfigError

__all__ = ["Prepared", "Session", "new_session_id", "prepare_session", "run_session",
           "start_session"]


def new_session_id(config: PaperConfig) -> str:
    return f"{config.name}_{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S%f')[:-3]}"


@dataclass
class Session:
    config: PaperConfig
    setup: SessionSetup
    children: dict[str, Any]  # child id -> handle, in start order
    supervisor: Any
    claim: Claim | None = None  # the session id's lock and record (actors.claim)
    extras: dict[str, Any] = field(default_factory=dict)  # store actor etc.
    started_s: float = field(default_factory=time.monotonic)

    @property
    def resumed(self) -> bool:
        return self.claim is not None and self.claim.resumed

    @property
    def session_id(self) -> str:
        return self.setup.session_id

    @property
    def feed(self) -> Any:
        return self.children["feed"]

    @property
    def risk(self) -> Any:
        return self.children["risk"]

    @property
    def gateway(self) -> Any:
        return self.children["gateway"]

    def status(self) -> dict[str, Any]:
        feed, risk, sup = ray.get([self.feed.status.remote(), self.risk.summary.remote(),
                                   self.supervisor.status.remote()])
        return {"feed": feed, "risk": risk, "supervisor": sup}

    def wait(self, timeout_s: float | None = None) -> bool:
        """Until the data ends (True) or the timeout passes (False)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while deadline is None or time.monotonic() < deadline:
            status = ray.get(self.feed.status.remote())
            if status["finished"]:
                return True
            if status["error"]:
                return True
            time.sleep(0.05)
        return False

    def stop(self, *, write: bool = True) -> dict[str, Any]:
        from actors.artifacts import collect, write_files

        ray.get(self.feed.stop.remote())
        recorder = self.children.get("recorder")
        if recorder is not None:
            ray.get(recorder.flush.remote())
        result = collect(self)
        result["resumed"] = self.resumed
        if write:
            write_files(self, result)
        self.shutdown()
        return result

    def shutdown(self) -> None:
        ray.kill(self.supervisor)
        for handle in reversed(list(self.children.values()) + list(self.extras.values())):
            ray.kill(handle, no_restart=True)
        if self.claim is not None:
            self.claim.release()


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
    setup = SessionSetup(sid, str(journal_dir), config.trading_config(), lockstep=feed_cfg.lockstep,
                         snapshot_every=config.snapshot_every)
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
    children, extras = _start_children(config, setup, feed_cfg, confirmed_live=confirmed_live)
    ids = tuple(children)
    sup = config.supervisor
    supervisor = _spawn(SupervisorActor, setup, "supervisor",
        sup.spec(ids), children, feed=children["feed"], heartbeat_s=sup.heartbeat_s,
        hang_timeout_s=sup.hang_timeout_s, reconcile_every_s=config.reconcile_every_s,
        reconcile_act=config.reconcile_act)
    ray.get([h.ping.remote() for h in children.values()])
    ray.get(supervisor.start.remote())
    ray.get(children["feed"].run.remote())
    return Session(config=config, setup=setup, children=children, supervisor=supervisor,
                   claim=prepared.claim, extras=extras)


def _spawn(cls: type[Any], setup: SessionSetup, child: str, *args: Any,
           restarts: int | None = None, **kwargs: Any) -> Any:
    """Start the actor ``child`` of the session (a Ray actor class; its handle) under its name,
    ``tw.<session>.<child>``, with the runtime env that gives its process JSON logs in
    ``<journal_dir>/session.log.jsonl`` (``actors.logs``)."""
    log_file = Path(setup.journal_dir) / "session.log.jsonl"
    options: dict[str, Any] = {"name": _name(setup, child), "runtime_env": actor_runtime_env(
        setup.session_id, child, log_file)}
    if restarts is not None:
        options["max_restarts"] = restarts
    return cast(Any, cls).options(**options).remote(*args, **kwargs)


def _name(setup: SessionSetup, child: str) -> str:
    return f"tw.{setup.session_id}.{child}"


def _start_children(config: PaperConfig, setup: SessionSetup, feed_cfg: Any, *,
                    confirmed_live: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    children: dict[str, Any] = {}
    children["risk"] = _spawn(RiskActor, setup, "risk", setup)
    children["gateway"] = _spawn(GatewayActor, setup, "gateway", setup, config.broker,
                                 confirmed_live)
    hosts = {}
    for spec in setup.trading.strategies:
        hosts[spec.id] = _spawn(StrategyActor, setup, f"strategy.{spec.id}", setup, spec.id)
        children[f"strategy:{spec.id}"] = hosts[spec.id]
    books = {}
    for instrument in setup.instruments():
        subs = [_name(setup, f"strategy.{s.id}") for s in setup.trading.strategies
                if instrument in s.instruments]
        books[instrument] = _spawn(BookActor, setup, f"book.{instrument}", instrument, setup,
                                   subs)
        children[f"book:{instrument}"] = books[instrument]
    extras: dict[str, Any] = {}
    recorder = _recorder(config, setup, children, extras) if config.record else None
    if config.reconcile_every_s is not None:
        _reconciler(config, setup, children)
    ports = Ports(gateway=_name(setup, "gateway"), risk=_name(setup, "risk"),
                  hosts={k: _name(setup, f"strategy.{k}") for k in hosts},
                  books={k: _name(setup, f"book.{k}") for k in books},
                  recorder=None if recorder is None else _name(setup, "recorder"),
                  recorder_source=setup.session_id)
    children["feed"] = _spawn(
        FeedActor, setup, "feed", setup, feed_cfg, ports, kill_file=None
        if config.kill_file is None else str(Path(config.kill_file).absolute()),
        cancel_on_stop=config.cancel_on_stop, broker=config.broker)
    return children, extras


def _recorder(config: PaperConfig, setup: SessionSetup, children: dict[str, Any],
              extras: dict[str, Any]) -> Any:
    try:
        from actors.recorder import RecorderActor
        from actors.store import StoreActor
    except ImportError:
        return None
    store = _spawn(StoreActor, setup, "store", config.store_dsn, restarts=-1)
    children["store"] = store
    recorder = _spawn(RecorderActor, setup, "recorder", setup.session_id, store,
                      str(Path(setup.journal_dir) / "recorder.spill"), restarts=-1)
    children["recorder"] = recorder
    return recorder


def _reconciler(config: PaperConfig, setup: SessionSetup, children: dict[str, Any]) -> None:
    try:
        from actors.reconciler import ReconcilerActor
    except ImportError:
        return
    reconciler = _spawn(ReconcilerActor, setup, "reconciler", setup.session_id, {},
                        restarts=-1)
    children["reconciler"] = reconciler
    reconciler.start.remote(children["gateway"], children["risk"], config.reconcile_every_s,
                            act=config.reconcile_act)


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
