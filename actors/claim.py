"""Claiming a session id before anything is written: its pattern, its lock, its record.

A session id names the journals' folder (``<journal_dir>/<id>/``), the output folder, the
actors (``tw.<id>.<child>``) and is part of every client order id. Before a session writes
anything, :func:`claim_session`:

1. checks the id: 1 to 64 ASCII letters, digits, ``_`` and ``.``, not starting with ``.``
   (no ``..``, no ``/``, no ``-``, nothing a terminal or a path would read differently);
2. takes the id's lock, ``<journal_dir>/<id>.lock`` (an OS file lock holding the process id):
   a second session with the same id is refused in one line, naming the holder, before it
   writes a journal; the OS drops the lock when the holder exits, even on a crash;
3. reads the id's record, ``<journal_dir>/<id>/session.json``: a session that exists is
   resumed, and only with the config it was started with (the paper config's hash), unless
   ``accept_config_change`` — a resumed session's files would otherwise name a config whose
   fills they do not hold. The record counts the resumes and keeps each config hash used.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.config import PaperConfig, paper_hash
from backtest.store.lock import LockHeld, PidLock, holder_name
from runtime.errors import ConfigError

__all__ = ["SESSION_ID", "Claim", "check_session_id", "claim_session"]

SESSION_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.]{0,63}")
_RECORD = "session.json"


def check_session_id(sid: str) -> str:
    if not SESSION_ID.fullmatch(sid):
        shown = sid if len(sid) <= 40 else f"{sid[:40]}… ({len(sid)} characters)"
        raise ConfigError(f"session id {shown!r}: use 1 to 64 ASCII letters, digits, '_' and '.',"
                          " not starting with '.' (it names the session's folders and is part of "
                          "every client order id, whose parts '-' separates)", field="session_id")
    return sid


@dataclass
class Claim:
    """A claimed session id: its lock (held until :meth:`release`) and its record (written by
    :meth:`save` once the session is prepared: a session whose data failed to load leaves no
    record behind)."""

    session_id: str
    lock: PidLock
    resumed: bool
    record: dict[str, Any]
    path: Path

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record, indent=1))
        tmp.replace(self.path)

    def release(self) -> None:
        self.lock.release()


def claim_session(config: PaperConfig, sid: str, *,
                  accept_config_change: bool = False) -> Claim:
    """Check and lock ``sid`` and read its record (see the module docstring); writes only the
    lock file."""
    check_session_id(sid)
    root = Path(config.journal_dir).absolute()
    lock = PidLock(root / f"{sid}.lock")
    try:
        lock.acquire()
    except LockHeld as held:
        raise ConfigError(f"session {sid} is already running ({holder_name(held.holder)}): stop "
                          "it first, or give another --session-id", field="session_id") from None
    except OSError as exc:
        raise ConfigError(f"cannot write under {root}: {exc.strerror or exc}",
                          field="journal_dir") from None
    path = root / sid / _RECORD
    try:
        record, resumed = _record(config, path, accept_config_change)
    except BaseException:
        lock.release()
        raise
    return Claim(sid, lock, resumed, record, path)


def _record(config: PaperConfig, path: Path,
            accept_config_change: bool) -> tuple[dict[str, Any], bool]:
    folder = path.parent
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    current = paper_hash(config)
    if path.exists():
        record: dict[str, Any] = json.loads(path.read_text())
        started = record["config_hash"]
        if started != current and not accept_config_change:
            raise ConfigError(
                f"session {folder.name} was started with another config (hash {started[:12]}, "
                f"this one {current[:12]}): its journals and fills belong to that one; resume "
                "with the same config, give a new --session-id, or pass --accept-config-change",
                field="--config")
        record["resumes"] = int(record.get("resumes", 0)) + 1
        record["resumed_at"] = now
        if started != current:
            record.setdefault("config_changes", []).append({"at": now, "config_hash": current})
            record["config_hash"] = current
        resumed = True
    else:  # journals without a record (an older version's session) are a resume too
        resumed = folder.is_dir() and any(folder.glob("*.journal"))
        record = {"session_id": folder.name, "config_hash": current, "created_at": now,
                  "resumes": int(resumed)}
    return record, resumed
