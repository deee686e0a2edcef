"""Bars of several instruments gathered into steps: a strategy over many instruments decides
once every instrument has its bar for the same close time."""

from __future__ import annotations

from runtime.messages import Bar

__all__ = ["BarSync"]


class BarSync:
    """``add(bar)`` is True when, with this bar, every instrument has a bar closing at
    ``bar.ts_event``: then ``closes`` holds each one's close (fixed point), in the order of
    ``instruments``. An instrument whose bar is missing at a time skips that step."""

    def __init__(self, instruments: tuple[str, ...]) -> None:
        self.instruments = instruments
        self.bars: dict[str, Bar] = {}

    def add(self, bar: Bar) -> bool:
        self.bars[bar.instrument_id] = bar
        ts = bar.ts_event
        return len(self.bars) == len(self.instruments) and all(
            b.ts_event == ts for b in self.bars.values()
        )

    @property
    def closes(self) -> list[int]:
        return [self.bars[i].close for i in self.instruments]
