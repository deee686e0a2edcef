"""The multi-node sweep check, run in its own process by test_multinode.py (it must never meet
the suite's shared local cluster): a head (no CPUs) and two 1-CPU worker nodes on this machine
(``ray.cluster_utils.Cluster``); a sweep spreads over both workers; one worker node is killed
mid-sweep; the sweep completes with every result, and its rows equal those of a single-node run.

Prints one JSON object: nodes used, trials run, when the node died, whether the rows match.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ["RAY_AUTH_MODE"] = "disabled"
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import ray
from ray.cluster_utils import Cluster

from backtest.research.sweep import run_sweep
from backtest.store import open_store
from tests.research.conftest import write_study

KILL_AFTER = 6


def _rows(dsn: str, sweep_id: str) -> list[str]:
    with open_store(dsn) as store:
        table = store.query_arrow(
            "SELECT * FROM sweep_results FINAL WHERE sweep_id = {s:String} ORDER BY param_hash",
            {"s": sweep_id},
        )
    return [json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist()]


def _warm(nodes: list) -> None:  # type: ignore[type-arg]
    """Start a worker process on each node and import the sweep's modules there first, so both
    nodes begin their first chunk together: without it, a node whose worker is slow to start
    (imports take seconds on a loaded machine) may deliver nothing before the kill, and the
    check that the sweep spread over both nodes would measure start-up order, not scheduling."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=1)
    def warm() -> str:
        import backtest.research.fanout  # noqa: F401

        return str(ray.get_runtime_context().get_node_id())

    refs = [warm.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False))
            .remote() for n in nodes]
    assert sorted(ray.get(refs)) == sorted(n.node_id for n in nodes)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tw-multinode-"))
    study = write_study(
        tmp,
        n_bars=6000,
        grid={"fast": [3, 5, 8, 13, 21], "slow": [22, 34, 55, 89, 144, 233]},
        flush_every=2,
    )
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    _warm(workers)
    killed: dict[str, int] = {}

    def kill_one_worker(done: int, total: int) -> None:
        if done == KILL_AFTER and not killed:
            cluster.remove_node(workers[1], allow_graceful=False)
            killed["at"] = done

    multi_dsn = f"chdb://{tmp / 'multi'}"
    multi = run_sweep(study, store_dsn=multi_dsn, progress=kill_one_worker, report=False)
    nodes = sorted({t.node_id for t in multi.ranked})
    single_dsn = f"chdb://{tmp / 'single'}"
    single = run_sweep(study, store_dsn=single_dsn, report=False)  # one worker node left
    single_nodes = sorted({t.node_id for t in single.ranked})
    print(
        json.dumps(
            {
                "n_params": len(multi.ranked),
                "n_run": multi.n_run,
                "nodes": len(nodes),
                "single_nodes": len(single_nodes),
                "killed_at": killed.get("at"),
                "rows": len(_rows(multi_dsn, multi.sweep_id)),
                "rows_equal": _rows(multi_dsn, multi.sweep_id)
                == _rows(single_dsn, single.sweep_id),
                "same_id": multi.sweep_id == single.sweep_id,
            }
        )
    )
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main()
