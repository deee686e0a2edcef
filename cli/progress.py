"""A one-line progress display on stderr (only when stderr is a terminal)."""

from __future__ import annotations

import sys
import time

__all__ = ["ProgressLine"]


class ProgressLine:
    """``label: done/total (pct) rate/s ETA``, redrawn in place; silent when not a TTY."""

    def __init__(self, label: str, *, stream: object = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
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
            f"\r{self.label}: {done:,}/{total:,} ({pct:4.1f}%) "  # type: ignore[attr-defined]
            f"{rate:,.0f}/s ETA {eta:4.1f}s "
        )
        self.stream.flush()  # type: ignore[attr-defined]

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 72 + "\r")  # type: ignore[attr-defined]
            self.stream.flush()  # type: ignore[attr-defined]
