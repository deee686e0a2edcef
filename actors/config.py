"""The paper session's configuration (``configs/paper.yaml``), validated at load time.

It names a trading config (instruments, data, strategies, venue models, risk limits and seed —
the same file a backtest runs), how the feed replays it, the supervisor's child specs and
restart policy, the kill file, and what happens at the stop.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from actors.carriers import Transport
from actors.control_config import ControlConfig
from actors.venues.broker_config import (
    BrokerConfig,
    PaperBrokerConfig,
    check_broker,
    is_paper_account,
)
from backtest.config import BacktestConfig, load_config, read_yaml_source
from backtest.config import config_hash as trading_hash
from runtime.errors import ConfigError
from runtime.supervision import ChildSpec, RestartStrategy, RestartType, SupervisorSpec
from runtime.watchdog import WatchdogConfig, Watchdogs

__all__ = ["KINDS", "ChildConfig", "FeedConfig", "PaperConfig", "RetentionConfig",
           "SubtreeConfig", "SupervisorConfig", "load_paper_config", "paper_hash"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetentionConfig(_Frozen):
    """How long the broker stream's market data stays in ``feed.stream.journal`` (and the
    feed's memory): older than ``max_age_s`` or beyond the newest ``max_messages`` goes (null:
    no such bound), checked every ``check_every_s`` — but never what an actor's restore still
    needs (``actors.retention``). The recorder keeps the stream in the store."""

    max_age_s: float | None = Field(3600.0, gt=0)
    max_messages: int | None = Field(2_000_000, ge=1)
    check_every_s: float = Field(5.0, gt=0)


class FeedConfig(_Frozen):
    #: replay: the trading config's data (the store, files or generated sample data);
    #: broker: streamed from the broker
    mode: Literal["replay", "broker"] = "replay"
    speed: float | Literal["max"] = "max"  # data time per wall time; "max": as fast as it goes
    lockstep: bool = True
    batch_size: int = Field(512, ge=1, le=100_000)
    #: real time: a step with more messages due than this (the chain fell behind the data)
    #: conflates per instrument: strategies and risk read the latest quote and book of each
    #: instrument in it, every trade and bar (the books and the venue apply everything);
    #: null: never (a backlog is read whole, message by message)
    conflate_after: int | None = Field(64, ge=1)
    #: how a step travels strategies → risk → gateway (``actors.carriers``), in lockstep and
    #: in real time:
    #: ``sockets`` over the node's UNIX sockets (nothing polls; one node only), ``calls`` as
    #: Ray actor calls (across nodes), ``auto`` sockets when the actors share the feed's node
    transport: Transport = "auto"
    #: the broker stream's retention (bounded disk and memory; ``mode: broker``)
    retention: RetentionConfig = RetentionConfig()

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "hot_path" in data:
            raise ValueError("hot_path was replaced by transport: auto (the default), sockets "
                             "or calls; the Compiled Graph path was removed (docs/paper.md)")
        if isinstance(data, dict) and (data.get("mode") == "synthetic"
                                       or "synthetic_days" in data):
            raise ValueError("feed mode synthetic was replaced by a data source: give the "
                             "trading config's data streams sample_days: N and replay them "
                             "(speed: 1 paces them as a live stream; docs/paper.md)")
        return data


#: the kinds of actor a session starts; ``strategy`` and ``book`` expand per id / instrument
KINDS = ("risk", "gateway", "strategy", "book", "store", "recorder", "reconciler", "feed")


class ChildConfig(_Frozen):
    """One entry of ``supervisor.children``: a kind of actor (``child_id`` one of
    :data:`KINDS`), or a nested supervisor (``supervisor`` set, any other id)."""

    child_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.]+$")
    restart: RestartType = RestartType.PERMANENT
    shutdown_timeout_s: float = Field(5.0, ge=0)
    supervisor: SubtreeConfig | None = None


class SubtreeConfig(_Frozen):
    """A nested supervisor: its restart policy (each field left out is its parent's) and its
    children in start order."""

    strategy: RestartStrategy | None = None
    intensity: int | None = Field(None, ge=0)
    period_s: float | None = Field(None, gt=0)
    backoff_initial_s: float | None = Field(None, ge=0)
    backoff_max_s: float | None = Field(None, ge=0)
    children: tuple[ChildConfig, ...] = Field(min_length=1)


ChildConfig.model_rebuild()


def _temporary_feed(children: tuple[ChildConfig, ...]) -> bool:
    for child in children:
        if child.supervisor is not None and _temporary_feed(child.supervisor.children):
            return True
        if child.child_id == "feed" and child.restart == RestartType.TEMPORARY:
            return True
    return False


def _subtree(child_id: str, kinds: tuple[str, ...]) -> ChildConfig:
    children = tuple(ChildConfig(child_id=k, restart=RestartType.TRANSIENT if k == "feed"
                                 else RestartType.PERMANENT) for k in kinds)
    return ChildConfig(child_id=child_id, shutdown_timeout_s=60.0,
                       supervisor=SubtreeConfig(children=children))


class SupervisorConfig(_Frozen):
    """The session's root supervisor: its restart policy, the heartbeat, and the tree of
    children in start order (a subtree's policy defaults to its parent's)."""

    strategy: RestartStrategy = RestartStrategy.ONE_FOR_ONE
    intensity: int = Field(5, ge=0)
    period_s: float = Field(30.0, gt=0)
    backoff_initial_s: float = Field(0.0, ge=0)
    backoff_max_s: float = Field(2.0, ge=0)
    heartbeat_s: float = Field(1.0, gt=0)
    hang_timeout_s: float = Field(10.0, gt=0)
    children: tuple[ChildConfig, ...] = (
        _subtree("trading", ("risk", "gateway", "strategy", "reconciler")),
        _subtree("market_data", ("book", "store", "recorder", "feed")),
    )

    @model_validator(mode="after")
    def _tree(self) -> SupervisorConfig:
        leaves: list[str] = []
        subtrees: list[str] = []

        def walk(children: tuple[ChildConfig, ...]) -> None:
            for child in children:
                if child.supervisor is not None:
                    subtrees.append(child.child_id)
                    walk(child.supervisor.children)
                elif child.child_id in KINDS:
                    leaves.append(child.child_id)
                else:
                    raise ValueError(f"unknown child {child.child_id!r}: a child is one of "
                                     f"{', '.join(KINDS)}, or a nested supervisor")

        walk(self.children)
        if _temporary_feed(self.children):
            raise ValueError("the feed cannot be temporary: a feed whose loop failed would stay "
                             "stopped, trading neither halted nor its orders cancelled (use "
                             "transient or permanent)")
        missing = [k for k in KINDS if k not in leaves]
        repeated = sorted({k for k in leaves if leaves.count(k) > 1})
        if missing or repeated:
            raise ValueError(f"every kind of child once in the tree: missing {missing}, "
                             f"repeated {repeated}")
        clash = [s for s in subtrees if s in KINDS or subtrees.count(s) > 1 or s == "supervisor"]
        if clash:
            raise ValueError(f"nested supervisors need ids of their own: {sorted(set(clash))}")
        if leaves[-1] != "feed":
            raise ValueError("the feed starts last (it drives the others): put it last in the "
                             "tree")
        return self

    def spec(self, expand: Callable[[str, ChildConfig], list[ChildSpec]]) -> SupervisorSpec:
        """The pure spec of the session's tree: ``expand(kind, entry)`` gives the child specs
        of a kind (none when the session does not run it: a subtree left empty is dropped)."""
        children = _specs(self.children, expand, self._policy())
        return SupervisorSpec(children=children, **self._policy())

    def _policy(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "intensity": self.intensity,
                "period_s": self.period_s, "backoff_initial_s": self.backoff_initial_s,
                "backoff_max_s": self.backoff_max_s}


def _specs(children: tuple[ChildConfig, ...], expand: Callable[[str, ChildConfig],
           list[ChildSpec]], policy: dict[str, Any]) -> tuple[ChildSpec, ...]:
    out: list[ChildSpec] = []
    for child in children:
        if child.supervisor is None:
            out.extend(expand(child.child_id, child))
            continue
        sub = child.supervisor
        own = {k: v for k, v in sub.model_dump(exclude={"children"}).items() if v is not None}
        merged = policy | own
        nested = _specs(sub.children, expand, merged)
        if nested:
            out.append(ChildSpec(child_id=child.child_id, restart=child.restart,
                                 shutdown_timeout_s=child.shutdown_timeout_s,
                                 supervisor=SupervisorSpec(children=nested, **merged)))
    return tuple(out)


class LogConfig(_Frozen):
    """The session log's size budget (``actors/logs.py``): ``session.log.jsonl`` rotates at
    ``max_mb`` and keeps ``backups`` older files."""

    max_mb: float = Field(64.0, gt=0)
    backups: int = Field(4, ge=1, le=100)

    @property
    def max_bytes(self) -> int:
        return max(1, int(self.max_mb * 2**20))


class PaperConfig(_Frozen):
    #: part of generated session ids: ASCII, short enough for a 64-character id
    name: str = Field("paper", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.]{0,39}$")
    trading: str  # path of the trading config (a backtest YAML), relative to this file
    session_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.]{0,63}$")
    # where things go, relative to the working directory (as a backtest's output_dir)
    journal_dir: str = "var/paper"
    output_dir: str = "runs"
    kill_file: str | None = "var/paper/KILL"
    cancel_on_stop: bool = True
    status_every_s: float = Field(1.0, gt=0)
    record: bool = False  # events into the store through the recorder and store actors
    store_dsn: str | None = None  # default: TRADEWIND_STORE_DSN or chdb://var/clickhouse
    reconcile_every_s: float | None = Field(5.0, gt=0)  # None: no reconciler
    #: carry out the watchdogs' trips (inventory desync included); None: on for a broker
    #: session, off for the paper broker (whose drifts are bugs, not the market's doing)
    reconcile_act: bool | None = None
    watchdogs: WatchdogConfig = WatchdogConfig()  # runtime/watchdog.py; docs/runbook.md
    logs: LogConfig = LogConfig()  # the session log's rotation (bounded disk)
    #: every stateful actor snapshots its state every this many inputs (its own journal
    #: entries and market messages) and drops the entries the snapshot covers: a restart
    #: reads one snapshot and a bounded tail (``runtime.recovery``)
    snapshot_every: int = Field(20_000, ge=10)
    feed: FeedConfig = FeedConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    control: ControlConfig = ControlConfig()  # the HTTP control plane (serve/, issue 4)
    broker: BrokerConfig = PaperBrokerConfig()  # paper | ib | shioaji (docs/brokers.md)
    base_dir: str = Field(".", exclude=True)

    def acts_on_drift(self) -> bool:
        """Whether the watchdogs' trips are carried out (``reconcile_act``, by default on for
        broker sessions)."""
        if self.reconcile_act is not None:
            return self.reconcile_act
        return self.broker.kind != "paper"

    def trading_config(self) -> BacktestConfig:
        candidate = Path(self.trading)
        path = candidate if candidate.is_absolute() else Path(self.base_dir) / candidate
        return load_config(path)


def load_paper_config(source: str | Path | dict[str, object]) -> PaperConfig:
    """A paper config from YAML or a dict; mistakes are one ConfigError naming the field."""
    raw, name = read_yaml_source(source)
    try:
        config = PaperConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(first["msg"], path=name, field=field) from None
    trading = config.trading_config()  # a bad trading config is refused now, naming its file
    check_broker_fit(config, trading, name)
    try:  # the watchdogs' rules against the instruments they name
        Watchdogs(config.watchdogs, [i.build() for i in trading.instruments])
    except ConfigError as exc:
        raise ConfigError(str(exc), path=name) from None
    return config


def check_broker_fit(config: PaperConfig, trading: BacktestConfig, name: str | None) -> None:
    """A broker other than the paper one: no lockstep (the broker runs on the wall clock) and a
    broker block that covers the trading config's instruments."""
    if config.broker.kind == "paper":
        if config.feed.mode == "broker":
            raise ConfigError("broker streams from a broker block (ib, shioaji, ccxt, alpaca), "
                              "not the paper broker", path=name, field="feed.mode")
        return
    if not is_paper_account(config.broker) and config.feed.mode != "broker":
        account = "simulation: false" if config.broker.kind == "shioaji" else "paper: false"
        raise ConfigError(f"a real-money account ({config.broker.kind}, {account}) trades only "
                          f"on the broker's own market data, not on a {config.feed.mode} feed: "
                          "set feed.mode: broker", path=name, field="feed.mode")
    if config.feed.mode == "broker":
        from actors.venues.market_data import check_streamable

        if config.feed.speed != "max":
            raise ConfigError("a broker stream runs in real time: set feed.speed: max",
                              path=name, field="feed.speed")
        try:
            check_streamable(config.broker)
        except ConfigError as exc:
            raise ConfigError(str(exc), path=name) from None
    if config.feed.lockstep:
        raise ConfigError(f"lockstep replays against the paper broker only, not "
                          f"{config.broker.kind}: set feed.lockstep: false",
                          path=name, field="feed.lockstep")
    try:
        check_broker(config.broker, [(i.id, i.asset_class) for i in trading.instruments])
    except ConfigError as exc:
        raise ConfigError(str(exc), path=name) from None


def paper_hash(config: PaperConfig) -> str:
    """sha256 of the paper config and its trading config together."""
    import hashlib
    import json

    payload = config.model_dump(mode="json", exclude={"base_dir", "session_id"})
    payload["trading"] = trading_hash(config.trading_config())
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
