"""The strategies of a kernel: by id, who hears each instrument, and what an operator changed.

A disabled strategy hears no market data and no timers (its order events still reach it: its
orders live on). An operator's params change replaces the strategy's params with the model
validated as a whole (:meth:`runtime.strategy.StrategyParams.updated`). Both are part of the
kernel's state (:meth:`Roster.state`), present only once an operator changed something: a run
without operator commands (every backtest) has the state it always had.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runtime.errors import ConfigError, InvariantError, OperatorError
from runtime.instruments import InstrumentRegistry
from runtime.messages import ParamValue
from runtime.strategy import Strategy

__all__ = ["OPERATOR", "Roster"]

#: the strategy id of an operator's own orders (a flatten's close-outs): no strategy may use it
OPERATOR = "operator"


class Roster:
    """Strategies by id and by instrument (enabled ones only), in the order given."""

    def __init__(self, strategies: Sequence[Strategy[Any]], registry: InstrumentRegistry) -> None:
        self.strategies = list(strategies)
        self.by_id = {s.strategy_id: s for s in self.strategies}
        if len(self.by_id) != len(self.strategies):
            ids = [s.strategy_id for s in self.strategies]
            repeated = next(i for i in ids if ids.count(i) > 1)
            raise InvariantError(f"strategy ids must be unique: {repeated!r} appears twice")
        if OPERATOR in self.by_id:
            raise ConfigError(f"strategy id {OPERATOR!r} is reserved for an operator's orders")
        for strategy in self.strategies:
            for instrument_id in strategy.instruments:
                registry.get(instrument_id)  # unknown instruments fail at start, clearly
        self.disabled: set[str] = set()
        self.params_changed: set[str] = set()
        #: instrument -> the enabled strategies that hear it (the same lists always)
        self.subs: dict[str, list[Strategy[Any]]] = {}
        self._subscribe()

    def get(self, strategy_id: str) -> Strategy[Any]:
        """The strategy, or :class:`OperatorError` naming the ones this kernel runs."""
        strategy = self.by_id.get(strategy_id)
        if strategy is None:
            raise OperatorError(
                f"no strategy {strategy_id!r} here (this kernel runs {sorted(self.by_id)})"
            )
        return strategy

    def enabled(self, strategy_id: str) -> bool:
        return strategy_id not in self.disabled

    def set_enabled(self, strategy_id: str, enabled: bool) -> None:
        self.get(strategy_id)
        if enabled:
            self.disabled.discard(strategy_id)
        else:
            self.disabled.add(strategy_id)
        self._subscribe()

    def set_params(self, strategy_id: str, changes: Mapping[str, ParamValue]) -> None:
        strategy = self.get(strategy_id)
        strategy.params = strategy.params.updated(changes)
        self.params_changed.add(strategy_id)

    def check_params(self, strategy_id: str, changes: Mapping[str, ParamValue]) -> None:
        """What :meth:`set_params` would refuse, refused without changing anything."""
        self.get(strategy_id).params.updated(changes)

    def _subscribe(self) -> None:
        """Who hears each instrument: rebuilt in place (runners hold the lists)."""
        for listeners in self.subs.values():
            listeners.clear()
        for strategy in self.strategies:
            if strategy.strategy_id in self.disabled:
                continue
            for instrument_id in strategy.instruments:
                self.subs.setdefault(instrument_id, []).append(strategy)

    # --- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any] | None:
        """What operators changed (None when nothing was): disabled ids, and the params of each
        strategy whose params changed, as canonical JSON in the core's units."""
        if not self.disabled and not self.params_changed:
            return None
        return {
            "disabled": sorted(self.disabled),
            "params": {
                sid: self.by_id[sid].params.core_json() for sid in sorted(self.params_changed)
            },
        }

    def load_state(self, state: Mapping[str, Any] | None) -> None:
        self.disabled = set((state or {}).get("disabled", ()))
        self.params_changed = set()
        for sid, data in (state or {}).get("params", {}).items():
            strategy = self.by_id.get(sid)
            if strategy is None:
                raise InvariantError(f"state holds params of {sid!r}, not run here")
            strategy.params = type(strategy.params).from_core_json(data)
            self.params_changed.add(sid)
        self._subscribe()
