"""What sweeps and walk-forward studies share on the driver: the session, the store, the feed,
and running a list of trials with resume-from-store and batched writes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import ray

from backtest.api import code_version
from backtest.config import BacktestConfig, config_hash
from backtest.feed import Feed, load_feed
from backtest.research.config import StudyConfig, base_backtest, study_hash
from backtest.research.fanout import (
    Announce,
    TrialRunner,
    check_store_reach,
    connect,
    disconnect,
)
from backtest.research.grid import strategy_id
from backtest.research.results import load_trials, write_trials
from backtest.research.trial import Trial, TrialSpec
from backtest.store import Store, open_store

__all__ = ["Session", "open_session", "run_specs", "stored_trials"]

Progress = Callable[[int, int], None]
FLUSH_EVERY_S = 5.0  # an insert costs the driver ~20 ms of CPU, which the workers need


@dataclass
class Session:
    """A study's driver state: its config, base backtest, feed, store and Ray runner."""

    config: StudyConfig
    backtest: BacktestConfig
    feed: Feed
    store: Store
    runner: TrialRunner
    study_id: str
    strategy: str

    def manifest(self, n_params: int) -> dict[str, Any]:
        return {
            "config_hash": config_hash(self.backtest),
            "dataset_hash": self.feed.dataset_hash,
            "code_version": code_version(),
            "strategy": self.strategy,
            "n_params": n_params,
            "objective": f"{self.config.objective.goal} {self.config.objective.metric}",
            "config": self.config.model_dump(mode="json", exclude={"base_dir"}),
        }


@contextmanager
def open_session(
    config: StudyConfig,
    *,
    address: str | None = None,
    store_dsn: str | None = None,
    dashboard: Announce | None = None,
) -> Iterator[Session]:
    """Ray (joined or started), the store (driver only), the feed put once in the object store.

    ``dashboard``: start a private session's dashboard on 127.0.0.1 and call this with its URL
    (:func:`backtest.research.fanout.connect`).
    """
    backtest = base_backtest(config)
    dsn = store_dsn or config.store.dsn or backtest.store.dsn
    with _ray_and_data(address, backtest, dsn, dashboard) as (store, feed):
        strategy = strategy_id(config, backtest)
        options = {
            "strategy": strategy,
            "objective": config.objective.metric,
            "n_blocks": config.stats.pbo_blocks,
        }
        runner = TrialRunner(feed, backtest, options=options, max_retries=config.max_retries)
        digest = study_hash(config, backtest, feed.dataset_hash)
        yield Session(config, backtest, feed, store, runner, f"{config.name}-{digest[:12]}",
                      strategy)  # fmt: skip


@contextmanager
def _ray_and_data(
    address: str | None, backtest: BacktestConfig, dsn: str | None, dashboard: Announce | None
) -> Iterator[tuple[Store, Feed]]:
    """Ray joined or started, and the store and the feed opened; closed and left after.

    A private session (no address, no ``RAY_ADDRESS``, no Ray already initialised) is started
    while another thread opens the store and loads the feed: Ray's start-up (~3 s on a quiet
    machine) is mostly this process waiting on the ones it spawned, and opening an embedded
    store and reading the data take seconds of their own. Joining a cluster is quick, and the
    store's reach must be checked against it before anything is opened, so that goes in turn.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    started = False
    store: Store | None = None
    try:
        if address is None and not ray.is_initialized():  # private: local by construction
            with ThreadPoolExecutor(1, thread_name_prefix="tw-study-data") as pool:
                loading = pool.submit(_open_data, backtest, dsn)
                try:
                    started = connect(None, dashboard=dashboard)
                finally:  # whatever Ray did, the store the thread opened is ours to close
                    error = loading.exception()
                    if error is None:
                        store, feed = loading.result()
            if error is not None:
                raise error
        else:
            started = connect(address, dashboard=dashboard)
            check_store_reach(dsn)
            store, feed = _open_data(backtest, dsn)
        assert store is not None
        yield store, feed
    finally:
        if store is not None:
            store.close()
        if started:
            disconnect()


def _open_data(backtest: BacktestConfig, dsn: str | None) -> tuple[Store, Feed]:
    store = open_store(dsn)
    try:
        return store, load_feed(backtest, store)
    except BaseException:
        store.close()
        raise


Job = tuple[str, TrialSpec]  # (sweep id, what to run)


def stored_trials(session: Session, sweep_ids: Iterable[str]) -> dict[tuple[str, str], Trial]:
    """The trials already in the store under ``sweep_ids``, by (sweep id, parameter hash)."""
    trials: dict[tuple[str, str], Trial] = {}
    for sweep_id in dict.fromkeys(sweep_ids):
        for key, trial in load_trials(session.store, sweep_id).items():
            trials[(sweep_id, key)] = trial
    return trials


def run_specs(
    session: Session,
    jobs: Sequence[Job],
    *,
    progress: Progress | None = None,
    stored: Mapping[tuple[str, str], Trial] | None = None,
) -> tuple[dict[tuple[str, str], Trial], int]:
    """Every job's trial: stored ones are reused, the rest run on Ray, all in parallel.

    ``stored``: the trials already in the store (read from it when not given). New trials are
    written in batches (every ``flush_every`` results or 5 s), and whatever has finished is
    written even when the run is interrupted. Returns ({(sweep id, parameter hash): trial},
    number of trials run now).
    """
    if stored is None:
        stored = stored_trials(session, (sid for sid, _ in jobs))
    wanted = {(sid, spec.key) for sid, spec in jobs}
    trials = {k: t for k, t in stored.items() if k in wanted}
    todo = [(sid, spec) for sid, spec in jobs if (sid, spec.key) not in trials]
    resumed = len(trials)

    def shifted(done: int, total: int) -> None:
        if progress is not None:
            progress(resumed + done, resumed + total)

    buffer: list[tuple[str, Trial]] = []
    last_flush = time.monotonic()
    try:
        for sweep_id, trial in session.runner.run(todo, progress=shifted):
            trials[(sweep_id, trial.param_hash)] = trial
            buffer.append((sweep_id, trial))
            now = time.monotonic()
            if len(buffer) >= session.config.flush_every or now - last_flush > FLUSH_EVERY_S:
                _flush(session.store, buffer)
                buffer, last_flush = [], now
    finally:
        _flush(session.store, buffer)
    return trials, len(todo)


def _flush(store: Store, buffer: Sequence[tuple[str, Trial]]) -> None:
    for sweep_id in dict.fromkeys(sid for sid, _ in buffer):
        write_trials(store, sweep_id, [t for sid, t in buffer if sid == sweep_id])
