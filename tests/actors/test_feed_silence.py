"""A rehearsal's market-data silence (``FeedActor.rehearse("silence", …)``, ``Driver.mute``):
the replayed stream stays connected, but the muted instrument's data reaches no strategy and no
risk (passed over as conflated data is, and journaled so) while the venue, the market, still
applies it; the stream's health (``Driver.last_heard``, what the silence watchdog reads) stops
counting the instrument as heard, and counts it again once the silence is over. In one process,
without Ray (the calls carrier over plain method calls)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from actors.config import FeedConfig
from actors.driver import Driver
from actors.feed import load_messages
from tests.actors.test_conflation import _behind, _Spy
from tests.actors.test_lockstep_inprocess import _ports, _session, data_dir

__all__ = ["data_dir"]  # the module's fixture, shared


def test_a_muted_instrument_reaches_no_strategy_and_is_not_heard(data_dir: Path,
                                                                  tmp_path: Path) -> None:
    _, setup, risk, gateway, hosts = _session("mm", data_dir, tmp_path, minutes=10)
    messages, start_ns = load_messages(setup, FeedConfig())
    ports = _ports(risk, gateway, hosts)
    spy = _Spy(ports)
    driver = _behind(Driver(ports, messages, start_ns=start_ns, carrier=spy, exact=False,
                            speed=1e-3, batch_size=64), 300)

    async def until(cursor: int) -> None:
        while driver.cursor < cursor and await driver.step():
            pass
        await driver.flush()

    async def go() -> None:
        await driver.start()
        await until(100)
        assert "SIM-A" in driver.last_heard()
        driver.heard.clear()  # what was heard before the silence: forgotten, to see it anew
        driver.mute("SIM-A", 3600.0)
        seen = len(spy.inputs)
        risk_before = risk.cursor
        await until(200)
        muted = [inp for inp in spy.inputs[seen:] if inp.msgs]
        assert muted and all(inp.dropped == list(range(len(inp.msgs))) for inp in muted)
        assert "SIM-A" not in driver.heard and "SIM-A" not in driver.last_heard()
        assert gateway.venue.market_count >= 200  # the market moved on
        assert risk.cursor == driver.cursor > risk_before  # risk passed over them
        driver.mute("SIM-A", 0.0)  # the silence is over
        await until(driver.cursor + 1)
        assert not driver.muted
        assert driver.heard["SIM-A"] <= time.time_ns()

    asyncio.run(go())
