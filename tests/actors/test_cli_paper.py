"""``tradewind paper``: one JSON object for scripts, the session's files, clear config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from cli.paper import parse_duration
from tests.actors.paper_helpers import write_paper_config, write_sample


def test_duration_parsing() -> None:
    assert parse_duration("90") == 90.0
    assert parse_duration("2m") == 120.0
    assert parse_duration("1.5h") == 5400.0


def test_bad_duration_is_one_line_and_exit_2(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write_paper_config(tmp_path, "sma", write_sample(tmp_path / "data"))
    assert main(["paper", "--config", str(path), "--duration", "soon"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--duration" in err[0]


def test_bad_config_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "paper.yaml"
    path.write_text("trading: nowhere.yaml\nfeed: {speed: fast}\n")
    assert main(["paper", "--config", str(path)]) == 2
    assert "feed.speed" in capsys.readouterr().err


def test_a_session_id_that_cannot_name_orders_is_refused(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """'-' separates a client order id's parts (``<session>-<strategy>-<n>``): such a session
    id is refused up front, naming it, before any actor starts (the risk actor would die
    building its order ids)."""
    path = write_paper_config(tmp_path, "sma", write_sample(tmp_path / "data"))
    for bad in ("run-1", "a/b", "x y"):
        assert main(["paper", "--config", str(path), "--session-id", bad]) == 2
        err = capsys.readouterr().err
        assert "session_id" in err and repr(bad) in err and "letters, digits" in err
    assert not (tmp_path / "var").exists() or not any((tmp_path / "var").rglob("*.journal"))


@pytest.mark.usefixtures("ray_local")
def test_paper_json_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_paper_config(tmp_path, "sma", write_sample(tmp_path / "data"))
    code = main(["paper", "--config", str(path), "--lockstep", "--json", "--session-id", "cli1"])
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"session_id", "orders", "fills", "pnl", "restarts", "state_hash"} <= set(out)
    assert out["session_id"] == "cli1" and out["fills"] > 0 and out["restarts"] == 0
    run = tmp_path / "runs" / "cli1"
    fills = (run / "fills.csv").read_text().strip().splitlines()
    assert len(fills) == out["fills"] + 1
    assert "final PnL" in (run / "session.md").read_text()
