"""Every operator action, audited: who, what, when, with what outcome.

Three places, written before the answer goes back: the session's control journal
(``<journal_dir>/control.journal``, SQLite, one ``control.audit`` record per action), the
store's ``control_audit`` table (migration 5) when the session records to ClickHouse, and a JSON
log line. Secrets are masked in all three.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from actors.logs import Redactor
from runtime.journal import Blob, Journal

__all__ = ["Audit", "AuditEntry"]

AuditEntry = dict[str, Any]
_KIND = "control.audit"


class Audit:
    def __init__(
        self, session_id: str, journal_path: Path, redactor: Redactor, logger: logging.Logger
    ) -> None:
        self.session_id, self.redactor, self.log = session_id, redactor, logger
        journal_path.parent.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(journal_path, batch_size=1)
        self.store: Any = None  # a store actor handle, when the session records
        self.store_errors = 0

    async def record(
        self,
        *,
        who: str,
        scope: str,
        action: str,
        target: str,
        args: dict[str, Any],
        outcome: str,
        correlation_id: str,
    ) -> AuditEntry:
        entry: AuditEntry = self.redactor.value(
            {
                "session_id": self.session_id,
                "audit_id": uuid.uuid4().hex,
                "ts_ns": time.time_ns(),
                "who": who,
                "scope": scope,
                "action": action,
                "target": target,
                "args_json": json.dumps(args, sort_keys=True, default=str),
                "outcome": outcome,
                "correlation_id": correlation_id,
            }
        )
        self.journal.append(Blob(_KIND, json.dumps(entry).encode()), durable=True)
        self.log.info(
            "audit %s %s by %s: %s",
            action,
            target,
            who,
            outcome,
            extra={"fields": {"audit": entry}, "correlation_id": correlation_id},
        )
        await self._store(entry)
        return dict(entry)

    async def _store(self, entry: AuditEntry) -> None:
        if self.store is None:
            return
        import pyarrow as pa

        table = pa.Table.from_pylist([entry])
        try:
            await asyncio.wait_for(self.store.insert_arrow.remote("control_audit", table), 10.0)
        except Exception as exc:
            self.store_errors += 1
            self.log.warning(
                "audit row not written to the store (kept in the journal): %s", type(exc).__name__
            )

    def entries(self, limit: int = 100) -> list[AuditEntry]:
        out = [
            json.loads(r.payload)
            for _, r in self.journal.entries()
            if isinstance(r, Blob) and r.kind == _KIND
        ]
        return out[-limit:]
