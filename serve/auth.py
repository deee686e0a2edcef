"""Bearer tokens and scopes of the control API.

Two scopes: ``read`` (every GET) and ``operate`` (every action; it can read too). The operator
token comes from ``TRADEWIND_API_TOKEN`` and the read-only one from ``TRADEWIND_API_READ_TOKEN``;
a token not in the environment is generated and written, with the other, to a JSON file with
0600 permissions (its path is printed when the session starts). Tokens are compared in constant
time and never logged: :func:`fingerprint` names a token in the audit trail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ENV_OPERATOR",
    "ENV_READ",
    "OPERATE",
    "READ",
    "TokenHashes",
    "Tokens",
    "fingerprint",
    "load_or_create_tokens",
]

ENV_OPERATOR = "TRADEWIND_API_TOKEN"
ENV_READ = "TRADEWIND_API_READ_TOKEN"
READ, OPERATE = "read", "operate"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenHashes:
    """What the API process holds: sha256 digests only, never the tokens themselves."""

    operator: str
    read: str

    def scope_of(self, token: str) -> str | None:
        """``operate``, ``read`` or None for an unknown token (constant-time comparisons)."""
        digest = _digest(token)
        if hmac.compare_digest(digest, self.operator):
            return OPERATE
        if hmac.compare_digest(digest, self.read):
            return READ
        return None


@dataclass(frozen=True)
class Tokens:
    operator: str
    read: str

    def hashes(self) -> TokenHashes:
        return TokenHashes(operator=_digest(self.operator), read=_digest(self.read))

    def secrets(self) -> tuple[str, ...]:
        return (self.operator, self.read)


def fingerprint(token: str) -> str:
    """A short non-reversible name of a token for the audit trail."""
    return _digest(token)[:10]


def load_or_create_tokens(token_file: Path) -> Tokens:
    """Tokens from the environment; missing ones from (or newly into) ``token_file`` (0600)."""
    saved: dict[str, str] = {}
    if token_file.exists():
        saved = json.loads(token_file.read_text())
    operator = os.environ.get(ENV_OPERATOR) or saved.get("operator") or secrets.token_urlsafe(32)
    read = os.environ.get(ENV_READ) or saved.get("read") or secrets.token_urlsafe(32)
    if operator == read:
        raise ValueError(f"{ENV_OPERATOR} and {ENV_READ} must differ")
    to_file = {}
    if not os.environ.get(ENV_OPERATOR):
        to_file["operator"] = operator
    if not os.environ.get(ENV_READ):
        to_file["read"] = read
    if to_file and to_file != saved:
        token_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = token_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(to_file, fh)
        os.chmod(tmp, 0o600)
        tmp.replace(token_file)
    return Tokens(operator=operator, read=read)
