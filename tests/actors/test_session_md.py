"""``session.md`` says what stopped a session (a journal the full disk refused, say)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from actors.artifacts import _session_md


def _result(error: str | None) -> dict[str, object]:
    feed = {"events": 3, "total": 3, "denials": 0, "state_changes": [], "error": error}
    return {"session_id": "s1", "config_hash": "abc", "seed": 1, "orders": 2, "fills": 2,
            "broker_fills": 2, "pnl": 0.0, "trading_state": "active", "state_hash": "h",
            "positions_match": True, "unpriced_fees": {}, "restarts": 0, "feed": feed,
            "supervisor": {"escalated": False, "events": []}, "journal_dir": "/j"}


def test_session_md_names_the_error_that_stopped_the_session(tmp_path: Path) -> None:
    session = SimpleNamespace(config=SimpleNamespace(trading="t.yaml"),
                              setup=SimpleNamespace(trading=SimpleNamespace(currency="USD")))
    error = ("HotStepError: DiskWriteError: /j/s1/gateway.journal: cannot write the journal "
             "(SQLITE_FULL: database or disk is full): 1 entry (first: SubmitOrder S1-7) "
             "not written; the file is intact up to seq 41")
    assert f"- stopped by an error: {error}" in _session_md(session, _result(error), tmp_path)
    assert "- stopped by an error: no" in _session_md(session, _result(None), tmp_path)
