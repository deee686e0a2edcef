# mypy: disable-error-code="no-untyped-call"
# (Ray's own API is untyped; this is the one module of backtest/ that touches it.)
"""Fan a study's trials out as Ray tasks (the only module of ``backtest`` that touches Ray).

The driver puts the loaded feed and the base config in the object store once; each trial is one
task (``num_cpus=1``, ``max_retries``: a worker or node dying mid-task costs a retry, not the
study). A worker process deserialises the feed once and keeps it for the next tasks (a small
per-process cache keyed by the object's id). Tasks return their :class:`Trial`; only the driver
writes to the store, in batches, as results arrive (``ray.wait``), so an interrupted study keeps
everything finished so far.

Embedded store and clusters: an embedded store (``chdb://``) lives on one machine's disk. A study
on a cluster whose nodes are not all on this host must write to a ClickHouse server, or its
results would be stranded on whichever machine ran the driver (and gone with ``ray down``):
:func:`check_store_reach` refuses that clearly. Nodes of a local test cluster (all on this host)
are fine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ray

from backtest.config import BacktestConfig
from backtest.feed import Feed
from backtest.research.trial import Trial, TrialSpec, run_trial
from backtest.store import parse_dsn
from runtime.errors import ConfigError, StoreError

__all__ = ["TrialRunner", "check_store_reach", "connect"]

_CACHE: OrderedDict[str, Any] = OrderedDict()
_CACHE_SIZE = 2


def connect(address: str | None) -> bool:
    """Join ``address`` (``auto`` or ``host:port``) or start a local Ray; True if we started it.

    Reuses an already-initialised Ray (a notebook, the test cluster).
    """
    if ray.is_initialized():
        return False
    try:
        if address is None:  # a private session that dies with this command
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(
                address="local",
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc}",
                          field="--address") from None  # fmt: skip
    return True


def _local_addresses() -> set[str]:
    names = {"127.0.0.1", "localhost", socket.gethostname()}
    with contextlib.suppress(OSError):
        names |= {str(i[4][0]) for i in socket.getaddrinfo(socket.gethostname(), None)}
    names.add(ray.util.get_node_ip_address())
    return {str(n) for n in names}


def check_store_reach(dsn: str | None) -> None:
    """Refuse an embedded store when the cluster spans other machines (see the module doc)."""
    parsed = parse_dsn(dsn)
    if not parsed.embedded:
        return
    hosts = {n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")}
    remote = sorted(hosts - _local_addresses())
    if remote:
        raise StoreError(
            f"the embedded store {parsed.describe()} lives on this machine only, and this Ray "
            f"cluster has nodes on {', '.join(remote)}: give the study a ClickHouse server DSN "
            "(--store http://host:8123, TRADEWIND_STORE_DSN or store.dsn) so results land where "
            "every machine and the next run can reach them"
        )


def _cached(ref: ray.ObjectRef[Any]) -> Any:
    key = ref.hex()
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = ray.get(ref)
    _CACHE[key] = value
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def _trial_task(box: list[ray.ObjectRef[Any]], spec: TrialSpec, options: dict[str, Any]) -> Trial:
    """The body of a trial task: cached feed and config, one backtest, where it ran."""
    feed: Feed = _cached(box[0])
    backtest: BacktestConfig = _cached(box[1])
    trial = run_trial(backtest, feed, spec, **options)
    trial.node_id = ray.get_runtime_context().get_node_id()
    trial.pid = os.getpid()
    trial.rss_mb = _rss_mb()
    return trial


def _rss_mb() -> float:
    try:
        with open(f"/proc/{os.getpid()}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


class TrialRunner:
    """Trials of one feed and base config as Ray tasks; results stream back as they finish."""

    def __init__(
        self,
        feed: Feed,
        backtest: BacktestConfig,
        *,
        options: dict[str, Any],
        max_retries: int = 1,
    ) -> None:
        self._box = [ray.put(feed), ray.put(backtest)]
        self._options = options
        self._remote = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(
            _trial_task
        )

    def run(
        self,
        jobs: Sequence[tuple[str, TrialSpec]],
        *,
        max_in_flight: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[tuple[str, Trial]]:
        """Yield ``(tag, trial)`` as each finishes; at most ``max_in_flight`` tasks queued."""
        limit = max_in_flight or max(4, 4 * int(ray.cluster_resources().get("CPU", 1)))
        pending = list(reversed(jobs))
        in_flight: dict[ray.ObjectRef[Any], str] = {}
        done, total = 0, len(jobs)
        while pending or in_flight:
            while pending and len(in_flight) < limit:
                tag, spec = pending.pop()
                in_flight[self._remote.remote(self._box, spec, self._options)] = tag  # type: ignore[arg-type]
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                tag = in_flight.pop(ref)
                trial: Trial = ray.get(ref)
                done += 1
                yield tag, trial  # the caller keeps it before the progress line may interrupt
                if progress is not None:
                    progress(done, total)
