"""A strategy for broker-stream tests: buys on the first quote it sees, sells on the
``hold``-th after it (a round trip per ``hold + 1`` quotes)."""

from __future__ import annotations

from runtime.messages import QuoteTick
from runtime.strategy import Strategy, StrategyParams
from runtime.values import fixed


class QuoteTakerParams(StrategyParams):
    hold: int = 5
    size: int = 100


class QuoteTaker(Strategy[QuoteTakerParams]):
    def on_start(self) -> None:
        self.seen = 0

    def on_quote(self, quote: QuoteTick) -> None:
        want = self.params.size if self.seen % (self.params.hold + 1) < self.params.hold else 0
        self.seen += 1
        self.target_position(quote.instrument_id, fixed(want))
