"""``backtest.research.fanout.init_local``: a private local Ray whose node timed out during
start-up (Ray gives its raylet a fixed 30 s, which a loaded machine can miss) is started
again, each time with a warning; any other error, or the last timeout, is the caller's. Ray's
``init`` and ``shutdown`` are replaced by recorders here: the failure is Ray's own message."""

from __future__ import annotations

from typing import Any

import pytest

from backtest.research import fanout

TIMEOUT = ("The current node timed out during startup. This could happen because some of the "
           "raylet failed to startup or the GCS has become overloaded.")


def _ray(monkeypatch: pytest.MonkeyPatch, outcomes: list[Any]) -> list[str]:
    calls: list[str] = []

    def init(**kwargs: Any) -> Any:
        calls.append(f"init {kwargs['address']} {kwargs['num_cpus']}")
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(fanout.ray, "init", init)
    monkeypatch.setattr(fanout.ray, "shutdown", lambda: calls.append("shutdown"))
    return calls


def test_a_start_that_timed_out_is_started_again(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    calls = _ray(monkeypatch, [Exception(TIMEOUT), "context"])
    assert fanout.init_local(num_cpus=2) == "context"
    assert calls == ["init local 2", "shutdown", "init local 2"]
    assert "did not start in time (a loaded machine?): starting it again (2 of 3)" in caplog.text


def test_another_error_or_the_last_timeout_is_the_callers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _ray(monkeypatch, [ValueError("bad num_cpus")])
    with pytest.raises(ValueError, match="bad num_cpus"):
        fanout.init_local(num_cpus=2)
    assert calls == ["init local 2"]  # never retried
    calls = _ray(monkeypatch, [Exception(TIMEOUT)] * fanout.LOCAL_STARTS)
    with pytest.raises(Exception, match="timed out during startup"):
        fanout.init_local(num_cpus=2)
    assert calls.count("shutdown") == fanout.LOCAL_STARTS - 1
