"""``tradewind status`` as a user runs it: from their own folder, against a session that is
starting or running. The control API is the real app and controller over fake actors
(``tests.serve.fake_session``), served by uvicorn on loopback; the CLI talks HTTP to it."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from cli.control import STARTING
from cli.main import main
from runtime.values import FIXED_SCALE
from tests.serve.fake_session import OPERATOR, FakeSession, _Handle, make_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("TRADEWIND_API_TOKEN", "TRADEWIND_API_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


def test_a_missing_config_is_named_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    assert error_line(capsys, ["status", "--config", "missing.yaml"]) == (
        "tradewind status: error: --config: no such config file: missing.yaml (the paper config "
        "the session was started with)"
    )


def test_status_outside_a_project_says_where_it_looked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    line = error_line(capsys, ["status"])
    assert line.startswith("tradewind status: error: --token-file: no token: set "
                           "TRADEWIND_API_TOKEN or pass --token-file; no configs/paper.yaml "
                           f"here ({tmp_path}) to find the session by: pass --config")  # fmt: skip


def test_a_config_no_session_ran_from_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shutil.copy(ROOT / "configs" / "paper.yaml", tmp_path / "mine.yaml")
    shutil.copy(ROOT / "configs" / "demo.yaml", tmp_path / "demo.yaml")
    line = error_line(capsys, ["status", "--config", "mine.yaml"])
    assert "no session has run from mine.yaml here: " in line
    assert ("control.json does not exist (start one with `tradewind paper --config mine.yaml`"
            in line)


def test_a_broken_config_is_named_not_reported_as_a_missing_token(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "bad.yaml").write_text("journal_dir: [1, 2\n")
    line = error_line(capsys, ["status", "--config", "bad.yaml"])
    assert "bad.yaml" in line and "no token" not in line


# --------------------------------------------------------------------------- a served session


@dataclass
class Session(FakeSession):
    """The fake session, and a risk actor that answers once ``risk_ready`` (a session whose risk
    actor is still restoring its journal answers pings but not yet ``status``)."""

    risk_ready: bool = False

    def lookup(self, name: str) -> Any:
        if name == "risk" and self.risk_up:
            return _Handle({"ping": lambda: 1.0, "operate": self._risk_operate})
        return super().lookup(name)

    def _risk_operate(self, name: str, args: dict[str, Any]) -> Any:
        if not self.risk_ready:
            raise TimeoutError("the risk actor is restoring its journal")
        f = FIXED_SCALE
        summary = {
            "cursor": 5, "now": 0, "state": "running", "state_reason": None, "orders": 4,
            "open": 1, "fills": 3, "cash": 990 * f, "equity": 1012 * f, "realized": 10 * f,
            "unrealized": 2 * f, "fees": 0, "initial_cash": 1000 * f, "state_hash": "h",
        }  # fmt: skip
        return {"summary": summary, "view": {}, "positions": []}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Session]]:
    session = Session(risk_up=True)
    app, _ = make_app(tmp_path, session, refresh_s=0.1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", session
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_a_starting_session_says_starting_and_exits_3(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    served: tuple[str, Session],
) -> None:  # fmt: skip
    url, _ = served
    monkeypatch.setenv("TRADEWIND_API_TOKEN", OPERATOR)
    assert main(["status", "--url", url, "--wait", "0.5"]) == STARTING
    out = capsys.readouterr().out
    assert out.startswith("session u1 (paper): starting — not answering yet: risk (trading "
                          "state, orders, fills, PnL) (waited 0.5 s; run status again)")
    assert "None" not in out and "feed" in out  # the actors table
    assert main(["status", "--url", url, "--wait", "0", "--json"]) == STARTING
    assert json.loads(capsys.readouterr().out)["orders"] is None


def test_status_waits_for_the_first_full_answer(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    served: tuple[str, Session],
) -> None:  # fmt: skip
    url, session = served
    monkeypatch.setenv("TRADEWIND_API_TOKEN", OPERATOR)
    threading.Timer(1.0, lambda: setattr(session, "risk_ready", True)).start()
    assert main(["status", "--url", url, "--wait", "60"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:2] == [
        "session u1 (paper): trading RUNNING",
        "orders 4 (open 1), fills 3, PnL 12.00, restarts 0",
    ]
    assert "None" not in out


def test_a_bad_wait_is_refused(capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("TRADEWIND_API_TOKEN", "t")
    assert error_line(capsys, ["status", "--wait", "-1"]) == (
        "tradewind status: error: --wait: expected a number of seconds >= 0, got -1.0"
    )
