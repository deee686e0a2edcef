"""A one-line progress display on stderr (only when stderr is a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressLine"]


class ProgressLine:
    """``label: done/total (pct) rate/s ETA``, redrawn in place; silent when not a TTY."""

    def __init__(self, label: str, *, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream: TextIO = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = done / elapsed
        eta = (total - done) / rate if rate and total else 0.0
        pct = 100.0 * done / total if total else 0.0
        self.stream.write(
            f"\r{self.label}: {done:,}/{total:,} ({pct:4.1f}%) "
            f"{rate:,.0f}/s ETA {eta:4.1f}s "
        )
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 72 + "\r")
            self.stream.flush()
