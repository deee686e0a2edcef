"""``actors.logs`` without Ray: the worker hook, the shared JSON file, redaction of env secrets
and URL passwords (the live test checks a real session's worker logs)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors import logs
from actors.logs import Redactor, actor_runtime_env, setup_worker


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    ours = {name: logging.getLogger(name).level for name in logs.OUR_LOGGERS}
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name, value in ours.items():
        logging.getLogger(name).setLevel(value)


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_worker_hook_sends_every_logger_to_the_session_file_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root_logger: logging.Logger
) -> None:
    secret = "planted-broker-pw-8d1c"
    monkeypatch.setenv("TRADEWIND_BROKER_PASSWORD", secret)
    path = tmp_path / "s1" / "session.log.jsonl"
    for key, value in actor_runtime_env("s1", "risk", path)["env_vars"].items():
        monkeypatch.setenv(key, value)
    setup_worker()
    logging.getLogger("some.library").warning("login with %s", secret)
    logging.getLogger("tradewind.x").info(
        "order sent", extra={"correlation_id": "s1-mm-7", "fields": {"qty": 5}}
    )
    logging.getLogger("tradewind.x").debug("not at INFO")
    logging.getLogger("some.library").info("a library's chatter: not at INFO")
    start, login, order = _lines(path)
    assert start["msg"] == "risk worker started"
    assert all(e["session_id"] == "s1" and e["component"] == "risk" for e in (login, order))
    assert login["level"] == "warning" and login["msg"] == "login with ***"
    assert order["correlation_id"] == "s1-mm-7" and order["qty"] == 5
    assert start["seq"] < login["seq"] < order["seq"] and order["pid"] > 0
    assert secret not in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_worker_hook_leaves_a_process_that_is_no_sessions_actor_alone(
    monkeypatch: pytest.MonkeyPatch, root_logger: logging.Logger
) -> None:
    for key in (logs.SESSION_ENV, logs.LOG_FILE_ENV, logs.COMPONENT_ENV):
        monkeypatch.delenv(key, raising=False)
    before = list(root_logger.handlers)
    setup_worker()
    assert root_logger.handlers == before


def test_a_worker_whose_log_file_cannot_be_opened_still_starts_and_logs_to_stderr(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    root_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    for key, value in actor_runtime_env("s3", "gateway", blocker / "x.jsonl")["env_vars"].items():
        monkeypatch.setenv(key, value)
    setup_worker()  # no exception: Ray would not start the worker otherwise
    (line,) = capsys.readouterr().err.strip().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "warning" and "not writable" in entry["msg"]
    assert entry["session_id"] == "s3" and entry["component"] == "gateway"


def test_installing_twice_keeps_one_handler(tmp_path: Path, root_logger: logging.Logger) -> None:
    logs.install("s2", "feed", tmp_path / "a.jsonl")
    logs.install("s2", "feed", tmp_path / "b.jsonl")
    logging.getLogger("t").warning("once")
    assert not (tmp_path / "a.jsonl").read_text()
    assert [e["msg"] for e in _lines(tmp_path / "b.jsonl")] == ["once"]


def test_redactor_masks_url_passwords_and_keeps_the_rest() -> None:
    redactor = Redactor()
    text = "store http://trader:pl4nted-pw@db.local:8123/tw and chdb:///var/store"
    masked = redactor.text(text)
    assert "pl4nted-pw" not in masked
    assert "http://trader:***@db.local:8123/tw" in masked and "chdb:///var/store" in masked


def test_ray_runtime_env_names_the_hook_by_module_path() -> None:
    module, _, function = logs.RAY_RUNTIME_ENV["worker_process_setup_hook"].rpartition(".")
    assert module == "actors.logs" and getattr(logs, function) is setup_worker


_WRITER = """
import logging, sys
from pathlib import Path
from actors import logs
handler = logs.install("s1", sys.argv[2], Path(sys.argv[1]), max_bytes=20_000, backups=3)
log = logging.getLogger("tradewind.writer")
for i in range(int(sys.argv[3])):
    log.info("line %d from %s %s", i, sys.argv[2], "x" * 100)
"""


def test_the_session_log_rotates_under_its_budget_across_processes(tmp_path: Path) -> None:
    """Two processes share the file, as a session's actors do: the log never exceeds its
    budget (max_bytes × (backups + 1), plus a line), no line tears, the newest lines are kept
    (which writer's lines survive the concurrent part depends on which one finished last)."""
    import os
    import subprocess
    import sys

    path = tmp_path / "session.log.jsonl"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    writers = [subprocess.Popen([sys.executable, str(script), str(path), name, "1500"], env=env)
               for name in ("risk", "feed")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    for name in ("risk", "feed"):  # then one line each, in turn: the newest lines of the log
        subprocess.run([sys.executable, str(script), str(path), name, "1"], env=env, check=True,
                       timeout=120)
    files = sorted(tmp_path.glob("session.log.jsonl*"))
    names = {f.name for f in files}
    assert names == {"session.log.jsonl", "session.log.jsonl.1", "session.log.jsonl.2",
                     "session.log.jsonl.3", "session.log.jsonl.lock"}
    logs_only = [f for f in files if not f.name.endswith(".lock")]
    total = sum(f.stat().st_size for f in logs_only)
    assert total <= 20_000 * 4 + 2 * 300  # the budget, plus the line each writer overshot by
    entries = [json.loads(line) for f in logs_only for line in f.read_text().splitlines()]
    assert entries and all(e["session_id"] == "s1" for e in entries)  # every line whole
    newest = sorted(entries, key=lambda e: (e["ts"], e["seq"]))[-2:]
    assert [(e["component"], e["msg"][:16]) for e in newest] == [
        ("risk", "line 0 from risk"), ("feed", "line 0 from feed")]


def test_the_log_budget_comes_from_the_paper_config() -> None:
    from actors.config import LogConfig

    env = actor_runtime_env("s1", "risk", "x.jsonl", max_bytes=LogConfig(max_mb=0.5).max_bytes,
                            backups=2)["env_vars"]
    assert env["TRADEWIND_LOG_MAX_BYTES"] == str(2**19) and env["TRADEWIND_LOG_BACKUPS"] == "2"
