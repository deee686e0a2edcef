"""The one exception tree of Tradewind.

::

    TradewindError
    ├── ConfigError        bad configuration, raised at load time with the file and field
    ├── DataError          bad or missing market data, with the row or message that was wrong
    ├── StoreError         the store cannot be opened or used (locked, unreachable, bad DSN)
    ├── DiskWriteError     a journal or the session log cannot be written (disk full):
    │                      names the file and what was not written
    ├── InvariantError     a bug: crash and let the supervisor restart
    ├── OperatorError      an operator's command refused as given (before it is journaled)
    ├── VenueError         raised by broker adapters only
    │   ├── VenueUnavailable
    │   └── VenueProtocolError
    └── SupervisionError
        ├── ChildStartError
        └── RestartLimitExceeded

Rejections by risk or by a venue are *events* (``OrderDenied``, ``OrderRejected``), never
exceptions. Foreign errors are translated once, at the edge, with ``raise ... from``.
"""

from __future__ import annotations

__all__ = [
    "ChildStartError",
    "ConfigError",
    "DataError",
    "DiskWriteError",
    "InvariantError",
    "OperatorError",
    "RestartLimitExceeded",
    "StoreError",
    "SupervisionError",
    "TradewindError",
    "VenueError",
    "VenueProtocolError",
    "VenueUnavailable",
]


class TradewindError(Exception):
    """Base of every error Tradewind raises on purpose."""


class ConfigError(TradewindError):
    """Bad configuration. The message names the file, the field and what was expected."""

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None) -> None:
        where = ": ".join(p for p in (path, field) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.field = field


class DataError(TradewindError):
    """Bad or missing market data. The message names the row or message that was wrong."""

    def __init__(self, message: str, *, source: str | None = None, row: int | None = None) -> None:
        where = source or ""
        if row is not None:
            where = f"{where} row {row}" if where else f"row {row}"
        super().__init__(f"{where}: {message}" if where else message)
        self.source = source
        self.row = row


class StoreError(TradewindError):
    """The store cannot be opened or used."""


class DiskWriteError(TradewindError):
    """A journal or the session log could not be written (the disk is full, an I/O error).
    The message names the file and what was not written; for a journal, up to which seq the
    file is intact: the records not written were dropped (the file holds exactly its committed
    prefix), so nothing they describe may happen (an order whose submit failed to journal is
    never sent)."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class InvariantError(TradewindError):
    """A broken invariant: a bug. Crash and let the supervisor restart."""


class OperatorError(TradewindError):
    """An operator's command that cannot be carried out as given (an unknown strategy or param,
    a value of the wrong type or out of its range): refused before anything is journaled."""


class VenueError(TradewindError):
    """Raised by broker adapters only."""


class VenueUnavailable(VenueError):
    """The venue cannot be reached."""


class VenueProtocolError(VenueError):
    """The venue said something the adapter does not understand."""


class SupervisionError(TradewindError):
    """A supervision failure."""


class ChildStartError(SupervisionError):
    """A child could not be started."""


class RestartLimitExceeded(SupervisionError):
    """Restarts exceeded the intensity within the period: escalate."""
