"""The risk actor: the one place orders and positions change (a kernel without strategies,
behind its journal).

Like every actor of the step (``actors.step``): a thin shell that owns one runtime object,
rebuilds it in ``__init__`` from its snapshot and journal, and delegates. Synchronous, one call
at a time: a carrier (``actors.carriers``) may call ``hot_step`` from a thread of its own, and
every call takes the actor's lock (``actors.base.serialized``), so a step and a call never
interleave. A step that comes again (a carrier's retry) gets the reply it got
(``actors.step.Replies``); what else it sees twice after a crash it dedupes: market data by feed
index, intents by client order id, reports by fill id.

The orders its kernel retires go to the archive beside its journal (``actors.order_archive``:
``risk.orders``) after each commit and before any snapshot, so the session's files list every
order however long it ran, each once, across crashes and restarts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors.base import ACTOR_OPTIONS, WATCH_GROUPS, Child, actor, serialized
from actors.kernels import Views, open_journaled
from actors.operator import checked
from actors.order_archive import OrderArchive
from actors.setup import SessionSetup
from actors.step import (
    Replies,
    decode_answer,
    decode_input,
    encode,
    taken,
)
from runtime.errors import InvariantError
from runtime.messages import (
    MarketData,
    Message,
    OperatorCommand,
)
from runtime.orders import Order

__all__ = ["RiskActor"]

@actor(concurrency_groups=WATCH_GROUPS, **ACTOR_OPTIONS)
@serialized
class RiskActor(Child):
    """The kernel without strategies, behind its journal: risk checks, orders, portfolio."""

    def __init__(self, setup: SessionSetup) -> None:
        self.setup = setup
        self.replies = Replies()
        self.jk, self.cursor, self.started = open_journaled(
            setup.risk_kernel, setup.path("risk"), setup.feed_log(),
            snapshot_every=setup.snapshot_every, replies=self.replies)
        kernel = self.jk.kernel
        if kernel.retired_orders is None:  # a snapshot from before the archive: from now on
            kernel.retired_orders = []
        self.archive = OrderArchive(setup.path("risk"))
        self.archive.restored(self._retired)

    @property
    def _retired(self) -> list[Order]:
        """The orders the kernel retired and the archive does not hold yet."""
        retired = self.jk.kernel.retired_orders
        if retired is None:
            raise InvariantError("the risk kernel must keep the orders it retires")
        return retired

    def _flush(self) -> None:
        """Commit; archive what retired (``actors.order_archive``); snapshot when due."""
        self.jk.flush(committed=lambda: self.archive.settle(self._retired))

    def start(self, ts_ns: int) -> list[Message]:
        if self.started:
            return []
        self.started = True
        out = self.jk.start(ts_ns)
        self._flush()
        return out

    def _step(self, batches: Sequence[Sequence[Message]]) -> list[Message]:
        """Batches of own inputs in order; the outputs (approved commands, denials, position
        and trading-state changes)."""
        out: list[Message] = []
        handle = self.jk.handle
        for msgs in batches:
            for msg in msgs:
                out.extend(handle(msg))
        return out

    def _market(self, index: int, msgs: Sequence[MarketData], books: bytes,
                dropped: Sequence[int] = ()) -> list[Message]:
        """Market data from feed ``index`` on (what it has not taken yet), read with the book
        actors' views (its marks), passing over what the feed conflated (``dropped``:
        positions in ``msgs``); the outputs."""
        skip = min(max(self.cursor - index, 0), len(msgs))
        views = Views(self.jk, index, msgs, books, skip, dropped)
        out: list[Message] = []
        handle = self.jk.handle
        for k, msg in enumerate(msgs[skip:], index + skip):
            if views.take(k, msg):
                out.extend(handle(msg))
        self.cursor = max(self.cursor, index + len(msgs))
        views.note(self.cursor)
        return out

    def hot_step(self, data: bytes, books: bytes, *answers: bytes) -> bytes:
        """One step (``actors.step``): the reports and the market data the strategies took
        (with the book actors' views, ``books``), then their intents (in config order); the
        outputs, encoded."""
        inp = decode_input(data)
        if inp.index < 0:  # a carrier's warm-up: nothing to take
            return encode([])
        key = Replies.digest(data, books, *answers)
        again = self.replies.get(key)
        if again is not None:  # the same step again (a carrier's retry): the same reply
            return again
        decoded = [decode_answer(a) for a in answers]
        n, r = taken(inp, decoded)
        out = self._step([inp.reports[:r]])
        out += self._market(inp.index, inp.msgs[:n], books,  # type: ignore[arg-type]
                            inp.dropped)
        out += self._step([[m for a in decoded for m in a.intents]])
        record = self.replies.keep(key, encode(out))
        if out:
            self.jk.append(record)
        self._flush()
        return self.replies.reply

    def apply(self, msgs: Sequence[Message]) -> list[Message]:
        """Own inputs (not market data), journaled and handled; the outputs."""
        out = self._step([msgs])
        self._flush()
        return out

    def command(self, command: OperatorCommand) -> list[Message]:
        """An operator's command (halt, resume, reduce-only, cancel all, close positions):
        refused (``OperatorError``) before anything is journaled when it is malformed or this
        kernel cannot take it; else journaled and handled like any input. The outputs: the
        trading-state change, the cancels and close-out orders approved (for the gateway) or
        denied."""
        command = checked(command)
        self.jk.kernel.check(command)
        return self.apply([command])

    def stop(self, ts_ns: int) -> list[Message]:
        out = self.jk.stop(ts_ns)
        self.archive.settle(self._retired)
        return out

    def state_hash(self) -> str:
        return self.jk.kernel.state_hash()

    def view(self) -> dict[str, Any]:
        kernel = self.jk.kernel
        return {
            "positions": {k: p.quantity for k, p in sorted(kernel.portfolio.positions.items())
                          if p.quantity},
            "open_orders": sorted(kernel.open),
            "fills": kernel.ledger.fill_ids(),  # retired orders' included
        }

    def summary(self) -> dict[str, Any]:
        kernel = self.jk.kernel
        portfolio = kernel.portfolio
        return {
            "cursor": self.cursor, "now": kernel.now, "state": str(kernel.risk.state),
            "state_reason": kernel.risk.state_reason, "orders": kernel.ledger.total,
            "retired": kernel.ledger.retired.count, "late_reports": kernel.late_reports,
            "open": len(kernel.open), "fills": portfolio.n_fills, "cash": portfolio.cash,
            "equity": portfolio.equity(), "realized": portfolio.realized_pnl,
            "unrealized": portfolio.unrealized_pnl(), "fees": portfolio.fees,
            "initial_cash": portfolio.initial_cash, "state_hash": kernel.state_hash(),
        }

    def operate(self, name: str, args: dict[str, Any]) -> Any:
        """An operator's read (``actors.operator.risk_<name>``)."""
        from actors.operator import dispatch

        return dispatch("risk", self, name, args)

    def records(self) -> dict[str, Any]:
        """Orders (every one: archived and held) and positions for the session's files."""
        kernel = self.jk.kernel
        registry = kernel.registry
        return {
            "orders": self.archive.orders(kernel.all_orders()),  # archived ones first
            "positions": [
                {"instrument_id": k, "quantity": p.quantity, "realized_pnl": p.realized_pnl,
                 "fees": p.fees, "mark": p.mark,
                 "avg_price": p.avg_price(registry.get(k).multiplier)}
                for k, p in sorted(kernel.portfolio.positions.items())
            ],
        }
