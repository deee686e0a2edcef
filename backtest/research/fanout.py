# mypy: disable-error-code="no-untyped-call"
# (Ray's own API is untyped; this is the one module of backtest/ that touches it.)
"""Fan a study's trials out as Ray tasks (the only module of ``backtest`` that touches Ray).

The driver puts the loaded feed and the base config in the object store once (``ray.put``:
Arrow buffers, read zero-copy by the workers). The trials are cut into **chunks**, one Ray task
each, and each chunk task is a *streaming generator*: it yields every trial as soon as it has
run, so results, progress and store writes stay per trial while a task's start-up (scheduling,
argument resolution) is paid once per chunk. Chunk sizes follow guided self-scheduling
(:func:`plan_chunks`): large first, shrinking to single trials at the end, so every worker stays
busy until the last trial and none waits on a long last chunk.

A worker process keeps what the chunks share (a small per-process cache keyed by the object
ids): the deserialised config and feed, and the feed's messages made once
(:mod:`backtest.research.replay`). A worker or node dying mid-chunk costs one retry of that
chunk (``max_retries``): Ray re-runs the generator elsewhere and skips the trials it already
delivered, so nothing is lost or delivered twice. Only the driver writes to the store.

Embedded store and clusters: an embedded store (``chdb://``) lives on one machine's disk. A study
on a cluster whose nodes are not all on this host must write to a ClickHouse server, or its
results would be stranded on whichever machine ran the driver (and gone with ``ray down``):
:func:`check_store_reach` refuses that clearly. Nodes of a local test cluster (all on this host)
are fine.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psutil
import ray

from backtest.config import BacktestConfig
from backtest.feed import Feed
from backtest.research.replay import replay_feed
from backtest.research.trial import Trial, TrialSpec, run_trial
from backtest.store import parse_dsn
from runtime.errors import ConfigError, InvariantError, StoreError

__all__ = ["TrialRunner", "check_store_reach", "connect", "disconnect", "init_local",
           "plan_chunks"]

log = logging.getLogger("tradewind.research.fanout")

#: starts of a private local Ray before its node's start-up timeout is the caller's error
LOCAL_STARTS = 3

MAX_CHUNK = 64  # trials per task at most (a retry after a crash redoes at most this many)
_FEEDS: OrderedDict[str, Feed] = OrderedDict()  # per worker process: at most two feeds
_CONFIGS: OrderedDict[str, BacktestConfig] = OrderedDict()
_CACHE_SIZE = 2


Announce = Callable[[str], None]


def init_local(**kwargs: Any) -> Any:
    """``ray.init(address="local", **kwargs)``, started again (up to :data:`LOCAL_STARTS`
    times, each a warning) when its node timed out during start-up: Ray gives a new node's
    raylet a fixed 30 s to register, which a loaded machine (two cores, other jobs) can miss;
    every other error is the caller's at once."""
    for attempt in range(1, LOCAL_STARTS + 1):
        try:
            return ray.init(address="local", **kwargs)
        except Exception as exc:
            if "timed out during startup" not in str(exc) or attempt == LOCAL_STARTS:
                raise
            log.warning("Ray's local node did not start in time (a loaded machine?): "
                        "starting it again (%d of %d)", attempt + 1, LOCAL_STARTS)
            ray.shutdown()
    raise AssertionError("unreachable")


def connect(
    address: str | None, *, dashboard: Announce | None = None, num_cpus: int | None = None
) -> bool:
    """Join ``address`` (``auto`` or ``host:port``) or start a local Ray; True if we called
    ``ray.init`` (so :func:`disconnect` is ours to call).

    Reuses an already-initialised Ray (a notebook, the test cluster). A private session does
    not forward worker logs to this process. With ``dashboard``, a private session starts Ray's
    dashboard bound to 127.0.0.1 (port 8265, or the next free one) and ``dashboard`` is called
    with its URL; a joined cluster's dashboard URL is passed on when the cluster has one.
    Without it, no dashboard is started (the cheapest start-up). ``num_cpus``: a private
    session's CPUs (default: the machine's).
    """
    if ray.is_initialized():
        return False
    try:
        if address is None:  # a private session that dies with this command
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            context = init_local(
                num_cpus=num_cpus,
                include_dashboard=dashboard is not None,
                dashboard_host="127.0.0.1",
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        else:
            context = ray.init(address=address, log_to_driver=False,
                               logging_level=logging.WARNING)  # fmt: skip
    except ConnectionError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc}",
                          field="--address or RAY_ADDRESS") from None  # fmt: skip
    url = getattr(context, "dashboard_url", None)
    if dashboard is not None and url:
        dashboard(url if "://" in url else f"http://{url}")
    return True


def disconnect() -> None:
    """Leave Ray; a private session this process started is stopped without waiting on it.

    ``ray.shutdown()`` stops a private session's processes one after the other, giving each up
    to a second to exit after SIGTERM before it kills it (the raylet takes the whole second):
    ~1.3 s of every sweep's wall time. When a study disconnects, every result is in the driver
    and in the store, and the session holds nothing anyone needs, so after the driver has
    disconnected its processes are killed at once (SIGKILL; their workers exit with the raylet)
    and only reaped (Ray's own ``Node.kill_all_processes`` with ``allow_graceful=False``).
    A cluster that was joined (``--address``), whose processes are not ours, is only left.
    """
    worker = ray._private.worker
    node = getattr(worker, "_global_node", None)
    if node is None or not getattr(node, "all_processes", None):
        ray.shutdown()
        return
    worker._global_node = None  # so that ray.shutdown() disconnects and leaves the processes
    children = _children(node)
    try:
        ray.shutdown()
    finally:
        if node.is_head():
            with contextlib.suppress(Exception):  # spilled objects: best effort, as Ray's own
                node.destroy_external_storage()
        node.kill_all_processes(check_alive=False, allow_graceful=False, wait=False)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()


def _children(node: Any) -> list[psutil.Process]:
    """The processes Ray's own processes started (the raylet's dashboard and runtime-env
    agents, workers): ``kill_all_processes`` kills only the processes it started itself, and an
    agent whose raylet died first tries to report that to the (dead) GCS before it exits, for a
    minute and more on a busy machine."""
    found: list[psutil.Process] = []
    for infos in node.all_processes.values():
        for info in infos:
            with contextlib.suppress(psutil.Error, AttributeError):
                found.extend(psutil.Process(info.process.pid).children(recursive=True))
    return found


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


def plan_chunks(n_jobs: int, n_workers: int, *, max_chunk: int = MAX_CHUNK) -> list[int]:
    """Chunk sizes for ``n_jobs`` trials over ``n_workers``: guided self-scheduling.

    Each chunk takes ``ceil(remaining / (2 · n_workers))`` trials (at most ``max_chunk``): the
    first chunks are large (few tasks), the last ones single trials, so the workers finish
    within about one trial of each other.
    """
    if n_jobs < 0 or n_workers < 1 or max_chunk < 1:
        raise ValueError(f"plan_chunks({n_jobs}, {n_workers}, max_chunk={max_chunk})")
    sizes: list[int] = []
    remaining = n_jobs
    while remaining:
        size = min(max_chunk, max(1, math.ceil(remaining / (2 * n_workers))))
        sizes.append(size)
        remaining -= size
    return sizes


# ------------------------------------------------------------------------------ worker side


def _cached(cache: OrderedDict[str, Any], ref: ray.ObjectRef[Any], make: Callable[[Any], Any]
            ) -> Any:  # fmt: skip
    key = ref.hex()
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = make(ray.get(ref))
    cache[key] = value
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def _chunk_task(
    box: list[ray.ObjectRef[Any]], specs: Sequence[TrialSpec], options: dict[str, Any]
) -> Iterator[Trial]:
    """The body of a chunk task: cached feed and config, one backtest per spec, each yielded.

    A trial's ``cpu_s`` is this process's CPU time since the previous one (the first trial's
    includes the chunk's set-up: deserialising and replaying a feed this worker had not seen).
    """
    cpu = time.process_time()
    feed: Feed = _cached(_FEEDS, box[0], replay_feed)
    backtest: BacktestConfig = _cached(_CONFIGS, box[1], lambda config: config)
    node_id, pid = ray.get_runtime_context().get_node_id(), os.getpid()
    for spec in specs:
        trial = run_trial(backtest, feed, spec, **options)
        trial.cpu_s, cpu = time.process_time() - cpu, time.process_time()
        trial.node_id, trial.pid, trial.rss_mb = node_id, pid, _rss_mb()
        yield trial


def _rss_mb() -> float:
    try:
        with open(f"/proc/{os.getpid()}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


# ------------------------------------------------------------------------------ driver side


class TrialRunner:
    """Trials of one feed and base config as chunked Ray tasks; results stream back one by one."""

    def __init__(
        self,
        feed: Feed,
        backtest: BacktestConfig,
        *,
        options: dict[str, Any],
        max_retries: int = 1,
    ) -> None:
        self._box: list[ray.ObjectRef[Any]] = [ray.put(feed), ray.put(backtest)]
        self._options = options
        remote = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)
        self._remote: Any = remote(_chunk_task)  # a generator: a streaming task (untyped API)

    def run(
        self,
        jobs: Sequence[tuple[str, TrialSpec]],
        *,
        max_in_flight: int | None = None,
        max_chunk: int = MAX_CHUNK,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[tuple[str, Trial]]:
        """Yield ``(tag, trial)`` as each finishes; at most ``max_in_flight`` chunks queued.

        Chunks still running when the caller stops (an interrupt) are cancelled.
        """
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        limit = max_in_flight or 2 * workers + 2
        chunks: deque[Sequence[tuple[str, TrialSpec]]] = deque()
        start = 0
        for size in plan_chunks(len(jobs), workers, max_chunk=max_chunk):
            chunks.append(jobs[start : start + size])
            start += size
        streams: dict[Any, deque[str]] = {}  # ObjectRefGenerator -> tags still to come
        done, total = 0, len(jobs)
        try:
            while chunks or streams:
                while chunks and len(streams) < limit:
                    chunk = chunks.popleft()
                    stream = self._remote.remote(self._box, [s for _, s in chunk], self._options)
                    streams[stream] = deque(tag for tag, _ in chunk)
                ready: list[Any] = ray.wait(list(streams), num_returns=1)[0]
                for stream in ready:
                    try:
                        ref = next(stream)
                    except StopIteration:
                        if streams.pop(stream):
                            raise InvariantError("a chunk task ended before all its trials"
                                                 ) from None  # fmt: skip
                        continue
                    trial: Trial = ray.get(ref)
                    tag = streams[stream].popleft()
                    done += 1
                    yield tag, trial  # the caller keeps it before the progress line may interrupt
                    if progress is not None:
                        progress(done, total)
        finally:  # best effort: a chunk that ended meanwhile must not hide the error in flight
            for stream in streams:
                with contextlib.suppress(ray.exceptions.RayError):
                    ray.cancel(stream)
