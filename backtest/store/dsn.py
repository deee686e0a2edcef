"""Store DSNs: ``chdb://<dir>`` (embedded ClickHouse through chDB) or ``http(s)://…`` (server).

``chdb://var/clickhouse`` is the directory ``var/clickhouse`` relative to the current directory;
``chdb:///srv/tw`` is the absolute directory ``/srv/tw``. (clickhouse-connect itself would read
the first form as location ``var`` and database ``clickhouse``, so Tradewind resolves the path and
hands clickhouse-connect the absolute ``chdb:///…`` form.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from runtime.errors import StoreError

__all__ = ["DEFAULT_DSN", "DSN_ENV", "StoreDsn", "parse_dsn", "resolve_dsn"]

DSN_ENV = "TRADEWIND_STORE_DSN"
DEFAULT_DSN = "chdb://var/clickhouse"


@dataclass(frozen=True)
class StoreDsn:
    """A parsed DSN: ``path`` is set (absolute) for embedded stores, ``None`` for servers."""

    dsn: str  # what clickhouse-connect receives
    path: Path | None

    @property
    def embedded(self) -> bool:
        return self.path is not None

    def describe(self) -> str:
        """The DSN without credentials, for messages."""
        if self.path is not None:
            return f"chdb://{self.path}"
        parts = urlsplit(self.dsn)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"


def resolve_dsn(dsn: str | None = None) -> str:
    """``dsn``, else ``$TRADEWIND_STORE_DSN``, else :data:`DEFAULT_DSN`."""
    return dsn or os.environ.get(DSN_ENV) or DEFAULT_DSN


def parse_dsn(dsn: str | None = None, *, cwd: Path | None = None) -> StoreDsn:
    """Parse and normalise a DSN; relative chdb paths are relative to ``cwd`` (default: cwd)."""
    text = resolve_dsn(dsn).strip()
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("chdb", "http", "https"):
        raise StoreError(
            f"unsupported store DSN {text!r}: use chdb://<dir> (embedded) or http(s)://host:port"
        )
    if scheme != "chdb":
        if not urlsplit(text).hostname:
            raise StoreError(f"store DSN {text!r} names no host")
        return StoreDsn(dsn=text, path=None)
    location = rest.split("?", 1)[0]
    if location in ("", "memory", ":memory:"):
        raise StoreError(
            "an in-memory chdb store is not supported: give a directory, e.g. chdb://var/clickhouse"
        )
    path = Path(location)
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    path = Path(os.path.realpath(path))
    return StoreDsn(dsn=f"chdb://{path}", path=path)
