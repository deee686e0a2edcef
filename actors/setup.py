"""What every actor of a paper session needs to build its runtime object (no Ray here).

A :class:`SessionSetup` travels to each actor's constructor; Ray passes the same arguments again
when it restarts the actor, so the constructor rebuilds the same object and restores it from
its journal under ``journal_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actors.feed_log import FeedLog
from backtest.config import BacktestConfig, build_strategy, retire_after_ns
from backtest.venue import SimulatedVenue
from runtime.errors import ConfigError
from runtime.instruments import InstrumentRegistry
from runtime.kernel import Kernel
from runtime.strategy import Strategy
from runtime.values import fixed

__all__ = ["SessionSetup"]


@dataclass(frozen=True)
class SessionSetup:
    session_id: str
    journal_dir: str
    trading: BacktestConfig
    lockstep: bool = True
    #: every stateful actor's snapshot cadence: inputs (own journal entries and market
    #: messages) between two snapshots (``PaperConfig.snapshot_every``)
    snapshot_every: int = 20_000
    #: the instruments whose broker links orders natively (``broker_config.native_lists``):
    #: the strategies' kernels send their lists linked; empty (paper): emulated
    native_lists: tuple[str, ...] = ()
    #: the instruments whose broker has no stop orders (``broker_config.emulated_stops``): the
    #: strategies' kernels hold their stops and release them when triggered; empty: sent
    emulated_stops: tuple[str, ...] = ()
    #: the instruments whose broker trails stops itself (``broker_config.native_trailing``)
    native_trailing: tuple[str, ...] = ()
    #: the instruments whose venue has day orders only (Shioaji; a paper venue with
    #: ``day_orders_only``): the risk kernel sends a GTC limit as one DAY order per session,
    #: the strategies' kernels follow its legs (``runtime.daygtc``); empty: GTC sent as GTC
    day_orders_only: tuple[str, ...] = ()

    def path(self, component: str) -> Path:
        return Path(self.journal_dir) / f"{component}.journal"

    def feed_log(self) -> FeedLog:
        """The feed's log (``actors.feed_log``): the session's market data by index, which an
        actor re-reads when it restores from its journal."""
        return FeedLog(self.journal_dir)

    def registry(self) -> InstrumentRegistry:
        return InstrumentRegistry(i.build() for i in self.trading.instruments)

    def strategy_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.trading.strategies)

    def instruments(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.trading.instruments)

    def _kernel_args(self) -> dict[str, Any]:
        return {
            "registry": self.registry(),
            "risk_limits": self.trading.risk,
            "initial_cash": fixed(self.trading.initial_cash),
            "currency": self.trading.currency,
            "namespace": self.session_id,
            "seed": self.trading.seed,
            "retire_after_ns": retire_after_ns(self.trading),
        }

    def risk_kernel(self) -> Kernel:
        """The risk actor's kernel: no strategies (intents come in as messages); its marks come
        from the book actors' views (no book of its own); what auxiliary data each strategy
        needs fresh: risk holds their entries while it is stale. The orders it retires are
        kept until the risk actor archives them (``actors.order_archive``)."""
        needs = {s.id: self._strategy(s.id).aux_needs() for s in self.trading.strategies}
        return Kernel(strategies=[], books_elsewhere=True, aux_needs=needs,
                      day_orders_only=self.day_orders_only, keep_retired=True,
                      **self._kernel_args())

    def strategy_host(self, strategy_id: str) -> Kernel:
        """A strategy actor's kernel: the strategy runs here, risk decides in the risk actor
        (the kernel knows the limits, as a backtest's does, for the strategy to read, and
        enforces none), books and features come from the book actors' views."""
        return Kernel(strategies=[self._strategy(strategy_id)], risk_elsewhere=True,
                      books_elsewhere=True, native_lists=self.native_lists,
                      emulated_stops=self.emulated_stops,
                      native_trailing=self.native_trailing,
                      day_orders_only=self.day_orders_only, **self._kernel_args())

    def _strategy(self, strategy_id: str) -> Strategy[Any]:
        """The strategy, found as a backtest finds it (installed, beside the config, or under
        its ``strategy_paths``), its params validated."""
        for spec in self.trading.strategies:
            if spec.id == strategy_id:
                return build_strategy(self.trading, spec)
        raise ConfigError(f"no strategy {strategy_id!r}", field="strategies")

    def check_snapshots(self) -> None:
        """Refuse, before the session starts, a strategy whose state cannot be snapshotted
        (``runtime.recovery.check_snapshot``): started as the session will start it, it must
        pickle and come back with the same state hash."""
        from runtime.recovery import check_snapshot

        start_ns = self.feed_log().start_ns
        for strategy_id in self.strategy_ids():
            host = self.strategy_host(strategy_id)
            host.start(start_ns)
            check_snapshot(host)

    def venue(self) -> SimulatedVenue:
        return SimulatedVenue.from_models(
            self.registry(), self.trading.venue, rng=np.random.default_rng(self.trading.seed)
        )
