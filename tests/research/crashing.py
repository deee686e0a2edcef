"""A strategy that kills its worker process once (a test double for a worker dying mid-chunk).

The SMA crossover, plus two parameters: when ``(fast, slow) == crash_at`` and the file
``crash_marker`` does not exist yet, it creates the file and ends its process at once
(``os._exit``: no exception, no cleanup, as a crash or an OOM kill would).
"""

from __future__ import annotations

import os
from pathlib import Path

from backtest.strategies.sma_cross import SmaCross, SmaCrossParams


class CrashOnceParams(SmaCrossParams):
    crash_marker: str = ""
    crash_at: tuple[int, int] = (0, 0)


class FakeCrashingSma(SmaCross):
    def on_start(self) -> None:
        params: CrashOnceParams = self.params  # type: ignore[assignment]
        marker = Path(params.crash_marker)
        at = (params.fast, params.slow) == params.crash_at
        if params.crash_marker and at and not marker.exists():
            marker.touch()
            os._exit(1)
        super().on_start()


FakeCrashingSma.params_type = CrashOnceParams  # set after __init_subclass__ (SmaCross's params)
