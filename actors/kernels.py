"""The kernels the actors hold, and their journals.

In a backtest one :class:`runtime.kernel.Kernel` runs the strategies and the risk check together.
In paper trading they live in different actors: the same kernel, composed differently
(:mod:`runtime.approval`), without changing what either computes:

* a strategy actor's kernel (``SessionSetup.strategy_host``, ``risk_elsewhere=True``) runs
  unchanged strategies; their intents leave as messages for risk and an order stays
  ``initialized`` (pending, not open) until the risk actor's answer comes back through
  ``handle``: the approved command or an ``OrderDenied``;
* the risk actor's kernel (``SessionSetup.risk_kernel``) has no strategies: intents come in
  through ``handle`` and go through the same risk engine, orders and portfolio; a repeated
  intent gets the answer it got the first time.

Both move their clock to a report's delivery time (``ts_init``), as the backtest loop does, so
a replay of their journal reproduces the same state (and hash). An operator's commands
(``runtime.messages.OperatorCommand``) are journaled and handled like any input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actors.journals import open_journal
from actors.step import REPLY, Replies
from runtime.messages import (
    Bar,
    BookDeltas,
    BookSnapshot,
    CancelOrder,
    ModifyOrder,
    QuoteTick,
    SubmitOrder,
    TradeTick,
)
from runtime.recovery import FeedLog, JournaledKernel
from runtime.timers import idle_timer

__all__ = [
    "INTENT_TYPES",
    "MARKET_TYPES",
    "idle_timer",
    "open_journaled",
]

INTENT_TYPES = (SubmitOrder, CancelOrder, ModifyOrder)
MARKET_TYPES = (QuoteTick, TradeTick, Bar, BookDeltas, BookSnapshot)


def open_journaled(kernel_factory: Any, path: Path, feed: FeedLog, *, snapshot_every: int,
                   replies: Replies) -> tuple[JournaledKernel, int, bool]:
    """A journaled kernel restored from ``path`` (its latest snapshot, then its tail with the
    market data re-read from ``feed``, the feed's log); its market cursor; whether it had
    started. ``snapshot_every``: a snapshot (the whole kernel) every this many inputs,
    compacting what it covers (``runtime.recovery``). ``replies``: where the journal's latest
    step reply (``actors.step.REPLY``) goes back. A snapshot happens inside a step's
    ``handle``, before the step's reply is journaled, so the latest reply is always in the
    tail."""
    path.parent.mkdir(parents=True, exist_ok=True)
    journal = open_journal(path)
    started = journal.last_seq > 0
    jk = JournaledKernel.restore(kernel_factory, journal, feed, snapshot_every=snapshot_every,
                                 blobs={REPLY: lambda _, payload: replies.load(payload)})
    return jk, jk.position, started
