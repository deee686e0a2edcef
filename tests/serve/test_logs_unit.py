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
