"""Structured JSON logs of the control plane, with secrets redacted.

Every line is one JSON object: ``ts``, ``level``, ``logger``, ``msg``, ``session_id``
(``run_id`` too: a session's run id is its session id), ``seq`` (per process, increasing) and
``correlation_id`` (the request's ``X-Request-ID``, or a generated one), plus any ``extra``.
:class:`Redactor` replaces every known secret — the API tokens and the values of environment
variables whose names look secret (``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``, ``*KEY*``) — with
``***`` in log lines, audit records and API answers.
"""

from __future__ import annotations

import contextvars
import hashlib
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["JsonFormatter", "Redactor", "correlation_id", "json_logger"]

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE", re.IGNORECASE)
_MASK = "***"
_WORD = re.compile(r"[A-Za-z0-9_\-]{16,}")


class Redactor:
    """Masks secrets (at least 6 characters long, to avoid masking ordinary words): known
    values, and any token-like word whose sha256 is one of ``hashes`` (the API process knows
    its tokens by digest only, yet masks them wherever a caller pastes them)."""

    def __init__(self, extra: Iterable[str] = (), hashes: Iterable[str] = ()) -> None:
        found = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 6}
        self.secrets = sorted(found | {s for s in extra if len(s) >= 6}, key=len, reverse=True)
        self.hashes = frozenset(hashes)

    def text(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, _MASK)
        if self.hashes:
            text = _WORD.sub(self._word, text)
        return text

    def _word(self, match: re.Match[str]) -> str:
        word = match.group(0)
        return _MASK if hashlib.sha256(word.encode()).hexdigest() in self.hashes else word

    def value(self, value: Any) -> Any:
        """The same structure with every secret masked (dicts, lists, strings)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


class JsonFormatter(logging.Formatter):
    _seq = itertools.count(1)

    def __init__(self, session_id: str, redactor: Redactor) -> None:
        super().__init__()
        self.session_id, self.redactor = session_id, redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "session_id": self.session_id,
            "run_id": self.session_id,
            "seq": next(self._seq),
            "correlation_id": getattr(record, "correlation_id", "") or correlation_id.get(),
        }
        for key, value in getattr(record, "fields", {}).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return self.redactor.text(json.dumps(self.redactor.value(entry), default=str))


def json_logger(
    name: str, *, session_id: str, redactor: Redactor, path: Path | None = None
) -> logging.Logger:
    """A logger writing JSON lines to stderr and, when given, to ``path``."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path))
    for handler in handlers:
        handler.setFormatter(JsonFormatter(session_id, redactor))
        logger.addHandler(handler)
    return logger
