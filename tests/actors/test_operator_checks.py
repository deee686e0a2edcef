"""An operator command is checked as it will be journaled before anything is written: a field
of the wrong type, a value beyond what the journal carries or an unknown action is refused,
naming it (no Ray here: ``actors.operator`` is plain Python)."""

from __future__ import annotations

from typing import Any

import pytest

from actors.operator import checked, dispatch
from runtime.errors import OperatorError
from runtime.messages import (
    CancelAllOrders,
    SetStrategyEnabled,
    SetStrategyParams,
    SetTradingState,
    TradingState,
)

T = {"seq": 0, "ts_event": 1, "ts_init": 1}


def test_a_well_formed_command_passes_unchanged() -> None:
    command = SetStrategyParams(**T, strategy_id="mm", params={"size": 3, "vol": 0.5, "on": True})
    assert checked(command) == command
    halt = SetTradingState(**T, state=TradingState.HALTED, reason="op")
    assert checked(halt) == halt
    loose = SetTradingState(**T, state="halted", reason="op")  # type: ignore[arg-type]
    assert checked(loose).state is TradingState.HALTED  # as the journal will replay it


@pytest.mark.parametrize(
    ("command", "match"),
    [
        (SetTradingState(**T, state="bogus", reason="x"),  # type: ignore[arg-type]
         "SetTradingState refused: Invalid enum value 'bogus'"),
        (SetStrategyEnabled(**T, strategy_id="mm", enabled="yes"),  # type: ignore[arg-type]
         "SetStrategyEnabled refused: Expected `bool`, got `str`"),
        (SetStrategyParams(**T, strategy_id="mm", params={"levels": [1, 2]}),  # type: ignore[dict-item]
         "SetStrategyParams refused: Expected `bool | int | float | str | null`, got `array`"),
        (SetStrategyParams(**T, strategy_id="mm", params={"size": 10**30}),
         "SetStrategyParams refused: can.t serialize ints"),
        (CancelAllOrders(**T, reason=None),  # type: ignore[arg-type]
         r"CancelAllOrders refused: Expected `str`, got `None` - at `\$.reason`"),
    ],
)
def test_a_malformed_command_is_refused_naming_what_was_wrong(command: Any, match: str) -> None:
    with pytest.raises(OperatorError, match=match):
        checked(command)


def test_an_unknown_action_or_state_is_refused_naming_it() -> None:
    with pytest.raises(OperatorError, match=r"no operator action strategy\.reboot"):
        dispatch("strategy", object(), "reboot", {})

    class FakeDriver:
        def data_now(self) -> int:
            return 5

        async def command(self, command: Any) -> list[Any]:
            raise AssertionError("a refused state must not reach risk")

    class FakeFeed:
        driver = FakeDriver()

    import asyncio

    with pytest.raises(OperatorError, match="unknown trading state 'paused'"):
        asyncio.run(dispatch("feed", FakeFeed(), "set_state", {"state": "paused", "reason": "x"}))
