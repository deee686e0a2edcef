"""Problems found in a data file, and the one error that refuses the file.

A file with any hard problem is refused whole (nothing is written); the error names the file,
the first problem's row and every other problem up to a limit, on one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runtime.errors import DataError

__all__ = ["MAX_LISTED", "DataRefused", "Problem", "refuse"]

MAX_LISTED = 20


@dataclass(frozen=True, order=True)
class Problem:
    """A hard problem at a 1-based data row (the header is not counted), or file-wide."""

    row: int | None
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}" if self.row is not None else self.message


class DataRefused(DataError):
    """A file refused for one or more problems; ``problems`` lists them all."""

    def __init__(
        self, problems: Sequence[Problem], *, source: str | None, max_listed: int = MAX_LISTED
    ) -> None:
        ordered = sorted(problems, key=lambda p: (p.row is not None, p.row or 0, p.message))
        first, rest = ordered[0], ordered[1:]
        message = first.message
        if rest:
            listed = "; ".join(str(p) for p in rest[: max_listed - 1])
            more = len(rest) - (max_listed - 1)
            tail = f"; … {more} more" if more > 0 else ""
            message += f" (file refused, {len(ordered)} problems; also {listed}{tail})"
        super().__init__(message, source=source, row=first.row)
        self.problems = ordered


def refuse(problems: Sequence[Problem], *, source: str | None) -> None:
    """Raise :class:`DataRefused` when there is any problem."""
    if problems:
        raise DataRefused(problems, source=source)
