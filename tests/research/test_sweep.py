"""Sweeps on the shared local Ray cluster: ranking, store rows, resume, identical reruns, the CLI
and the refusal of an embedded store on a multi-machine cluster."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from backtest.research import fanout
from backtest.research.sweep import run_sweep
from backtest.store import open_store
from cli.main import main
from runtime.errors import StoreError
from tests.research.conftest import write_study

pytestmark = pytest.mark.ray


def _rows(dsn: str, sweep_id: str) -> list[str]:
    with open_store(dsn) as store:
        table = store.query_arrow(
            "SELECT * FROM sweep_results FINAL WHERE sweep_id = {s:String} ORDER BY param_hash",
            {"s": sweep_id},
        )
    return [json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist()]  # NaN-safe


def test_sweep_ranks_stores_reports_and_reruns_identically(
    ray_local: Any, study_file: Path, store_dsn: str, tmp_path: Path
) -> None:
    first = run_sweep(study_file, store_dsn=store_dsn)
    assert first.n_run == 9 and len(first.ranked) == 9
    objectives = [t.objective for t in first.ranked]
    assert objectives == sorted(objectives, reverse=True)
    assert first.best is first.ranked[0] and first.best.status == "ok"
    assert 0.0 <= first.stats.pbo <= 1.0 and 0.0 <= first.stats.dsr <= 1.0
    html = first.report_path.read_text()  # type: ignore[union-attr]
    assert html.count("<svg") >= 3 and "Deflated Sharpe Ratio" in html
    rows = _rows(store_dsn, first.sweep_id)
    assert len(rows) == 9

    again = run_sweep(study_file, store_dsn=store_dsn, report=False)  # all from the store
    assert again.n_run == 0 and again.sweep_id == first.sweep_id
    other_dsn = f"chdb://{tmp_path / 'other'}"
    fresh = run_sweep(study_file, store_dsn=other_dsn, report=False)  # recomputed elsewhere
    assert fresh.n_run == 9 and fresh.sweep_id == first.sweep_id
    assert _rows(other_dsn, fresh.sweep_id) == rows
    assert [t.state_hash for t in fresh.ranked] == [t.state_hash for t in first.ranked]


def test_an_interrupted_sweep_resumes_where_it_stopped(
    ray_local: Any, study_file: Path, store_dsn: str, tmp_path: Path
) -> None:
    def stop_after_five(done: int, total: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(study_file, store_dsn=store_dsn, progress=stop_after_five, report=False)
    resumed = run_sweep(study_file, store_dsn=store_dsn, report=False)
    assert resumed.n_run == 4  # the five finished ones were written before the interrupt
    reference_dsn = f"chdb://{tmp_path / 'reference'}"
    reference = run_sweep(study_file, store_dsn=reference_dsn, report=False)
    assert _rows(store_dsn, resumed.sweep_id) == _rows(reference_dsn, reference.sweep_id)


def test_refused_parameter_sets_are_error_rows_not_crashes(
    ray_local: Any, tmp_path: Path, store_dsn: str
) -> None:
    path = write_study(tmp_path, constraints=[], grid={"fast": [5, 30], "slow": [21]})
    outcome = run_sweep(path, store_dsn=store_dsn, report=False)
    bad = [t for t in outcome.ranked if t.status == "error"]
    assert len(bad) == 1 and bad[0].params == {"fast": 30, "slow": 21}
    assert "must be below slow" in bad[0].error
    assert outcome.ranked[-1] is bad[0] and outcome.stats.n_valid == 1


def test_the_cli_prints_one_json_object_and_a_table(
    ray_local: Any, study_file: Path, store_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", "--config", str(study_file), "--store", store_dsn, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"sweep_id", "n_runs", "best", "dsr", "pbo"} <= set(out)
    assert out["n_runs"] == 9 and set(out["best"]["params"]) == {"fast", "slow"}
    assert isinstance(out["best"]["metrics"]["sharpe"], float)
    assert main(["sweep", "--config", str(study_file), "--store", store_dsn]) == 0
    table = capsys.readouterr().out
    assert out["sweep_id"] in table and "DSR" in table and "PBO" in table
    assert ("UNTRUSTWORTHY" in table) == (not out["trustworthy"])


def test_a_bad_config_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_study(tmp_path, heatmap=["fast", "nope"])
    assert main(["sweep", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "heatmap" in err and str(path) in err


def test_an_embedded_store_is_refused_on_a_multi_machine_cluster(
    ray_local: Any, monkeypatch: pytest.MonkeyPatch, store_dsn: str
) -> None:
    nodes = [
        {"NodeManagerAddress": "127.0.0.1", "Alive": True},
        {"NodeManagerAddress": "10.9.8.7", "Alive": True},
    ]
    monkeypatch.setattr(fanout.ray, "nodes", lambda: nodes)
    with pytest.raises(StoreError, match=r"10\.9\.8\.7.*ClickHouse server DSN"):
        fanout.check_store_reach(store_dsn)
    fanout.check_store_reach("http://clickhouse:8123")  # a server is fine
    nodes.pop()
    fanout.check_store_reach(store_dsn)  # every node on this host: fine


def test_walkforward_chooses_per_window_and_stitches_oos(
    ray_local: Any, tmp_path: Path, store_dsn: str
) -> None:
    from backtest.research.walkforward import run_walkforward

    path = write_study(
        tmp_path,
        name="rs_wf",
        n_bars=1200,
        windows={"mode": "rolling", "train": 400, "test": 200, "warmup": 34},
    )
    outcome = run_walkforward(path, store_dsn=store_dsn)
    assert len(outcome.windows) == 4
    assert outcome.n_run == 4 * 9 + 4
    for w in outcome.windows:
        is_best = w.stats.best
        assert is_best is not None and w.params == is_best.params
        assert math.isfinite(w.oos_objective)
    assert outcome.oos_equity.index.is_monotonic_increasing
    assert len(outcome.oos_equity) == 4 * 200  # test windows only, no warm-up points
    assert math.isfinite(outcome.efficiency)
    assert outcome.report_path is not None and "<svg" in outcome.report_path.read_text()
    again = run_walkforward(path, store_dsn=store_dsn, report=False)
    assert again.n_run == 0 and again.oos_equity.equals(outcome.oos_equity)


def _crashing_study(tmp_path: Path, *, max_retries: int) -> Path:
    from tests.research.conftest import backtest_dict, write_bars_csv

    data = write_bars_csv(tmp_path / "bars.csv", 1500, 5)
    backtest = backtest_dict(data.name)
    backtest["strategies"][0]["class"] = "tests.research.crashing:FakeCrashingSma"
    backtest["strategies"][0]["params"].update(
        crash_marker=str(tmp_path / "crashed"), crash_at=[5, 21]
    )
    return write_study(tmp_path, name="rs_crash", backtest=backtest, max_retries=max_retries)


def test_a_worker_dying_mid_chunk_costs_one_retry_of_it(
    ray_local: Any, tmp_path: Path, store_dsn: str
) -> None:
    path = _crashing_study(tmp_path, max_retries=1)
    outcome = run_sweep(path, store_dsn=store_dsn, report=False)
    assert (tmp_path / "crashed").exists()  # a worker did die, mid-chunk (5, 21 is not first)
    assert outcome.n_run == 9 and all(t.status == "ok" for t in outcome.ranked)
    assert len({t.pid for t in outcome.ranked}) >= 2
    reference_dsn = f"chdb://{tmp_path / 'reference'}"  # same config: the marker stops crashes
    reference = run_sweep(path, store_dsn=reference_dsn, report=False)
    assert reference.sweep_id == outcome.sweep_id
    assert _rows(store_dsn, outcome.sweep_id) == _rows(reference_dsn, reference.sweep_id)


def test_without_retries_a_dying_worker_stops_the_sweep_and_keeps_what_finished(
    ray_local: Any, tmp_path: Path, store_dsn: str
) -> None:
    import ray

    path = _crashing_study(tmp_path, max_retries=0)
    with pytest.raises(ray.exceptions.RayError):
        run_sweep(path, store_dsn=store_dsn, report=False)
    kept = len(_rows(store_dsn, _sweep_id(path)))
    resumed = run_sweep(path, store_dsn=store_dsn, report=False)  # the marker stops crashes
    assert resumed.n_run == 9 - kept and len(resumed.ranked) == 9


def _sweep_id(path: Path) -> str:
    from backtest.feed import load_feed
    from backtest.research.config import base_backtest, load_study, study_hash

    config = load_study(path, "sweep")
    backtest = base_backtest(config)
    return f"{config.name}-{study_hash(config, backtest, load_feed(backtest).dataset_hash)[:12]}"


def test_a_sweeps_trial_opens_as_a_backtest_with_the_same_fills(
    ray_local: Any, tmp_path: Path, store_dsn: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    path = write_study(tmp_path, constraints=[], grid={"fast": [3, 5, 30], "slow": [21]})
    outcome = run_sweep(path, store_dsn=store_dsn)
    run = tmp_path / "runs" / outcome.sweep_id
    trials = json.loads((run / "trials.json").read_text())["trials"]
    assert [t["param_hash"] for t in trials] == [t.param_hash for t in outcome.ranked]

    second = outcome.ranked[1]
    assert main(["backtest", "--from-sweep", str(run), "--trial", "2", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["state_hash"] == second.state_hash and result["n_fills"] == second.n_fills
    assert "state hash differs" not in captured.err
    report = Path(result["report"]).read_text()
    params = ", ".join(f"{k}={v}" for k, v in {"fast": second.params["fast"], "slow": 21,
                                                  "size": 10}.items())  # fmt: skip
    assert f"sma: SmaCross({params})" in report

    # a sweep id is looked up under ./runs
    assert main(["backtest", "--from-sweep", outcome.sweep_id, "--no-write", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state_hash"] == outcome.ranked[0].state_hash

    for argv, message in (
        (["--from-sweep", str(run), "--trial", "4"], "has trials 1..3, not 4"),
        (["--from-sweep", str(run), "--trial", "3"], "failed in the sweep: "),
        (["--from-sweep", "nope"], "--from-sweep: no sweep there: runs/nope does not exist"),
        (["--config", str(path), "--trial", "2"], "--trial: --trial picks a trial of"),
    ):
        assert main(["backtest", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
