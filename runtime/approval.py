"""Where a kernel's new orders are checked: here, or by risk in another actor.

A kernel is composed with one of the two (``Kernel(risk_elsewhere=...)``):

* :class:`CheckHere` (a backtest; the risk actor): each new order is checked at once, a linked
  list's own refusal first, then the risk engine. A ``SubmitOrder`` handed to the kernel is an
  intent from a strategy hosted elsewhere (:attr:`Approval.answers` is False).
* :class:`CheckElsewhere` (a strategy actor): a new order leaves as an intent and stays
  initialized, its quantity pending, until risk's answer comes back through ``handle``: the
  approved command (a ``SubmitOrder``: :attr:`Approval.answers` is True) or an ``OrderDenied``.
"""

from __future__ import annotations

from typing import Protocol

from runtime.ledger import denial_of
from runtime.linked import LinkedOrders
from runtime.messages import OrderDenied, SubmitOrder
from runtime.risk import RiskEngine

__all__ = ["Approval", "CheckElsewhere", "CheckHere", "Decision"]

#: (approved command, maybe reduced; or a denial); (None, None): sent to be checked elsewhere
Decision = tuple[SubmitOrder | None, OrderDenied | None]


class Approval(Protocol):
    #: a ``SubmitOrder`` coming into the kernel is risk's answer (True) or an intent (False)
    answers: bool

    def decide(self, intent: SubmitOrder, now_ns: int, *, linked: bool) -> Decision: ...


class CheckHere:
    """Risk runs in this kernel."""

    answers = False

    def __init__(self, risk: RiskEngine, linked: LinkedOrders) -> None:
        self.risk, self.linked = risk, linked

    def decide(self, intent: SubmitOrder, now_ns: int, *, linked: bool) -> Decision:
        refusal = self.linked.refusal(intent) if linked else None
        if refusal is not None:
            return None, denial_of(intent, now_ns, *refusal)
        return self.risk.check(intent, now_ns)


class CheckElsewhere:
    """Risk runs in another actor: every new order waits for its answer."""

    answers = True

    def decide(self, intent: SubmitOrder, now_ns: int, *, linked: bool) -> Decision:
        return None, None
