"""The paper broker stays bounded in a long session (``actors.venues.paper``): the reports
behind the driver's cursor leave its memory and snapshots but the latest ``KEEP_REPORTS``, a
gateway rebuilt from its journal hands out the same reports from the cursor on, and a cursor
behind what it keeps is refused by name. No Ray: the gateway actor's class, in process."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from actors.config import FeedConfig
from actors.feed import write_cache
from actors.gateway import GatewayActor
from actors.setup import SessionSetup
from actors.venues import paper
from backtest.config import load_config
from runtime.errors import InvariantError
from runtime.messages import CancelOrder, OrderSide, OrderType, SubmitOrder
from runtime.values import FIXED_SCALE
from tests.actors.paper_helpers import trading_config, write_sample

KEEP = 20


def _gateway(setup: SessionSetup) -> Any:
    return GatewayActor.__ray_metadata__.modified_class(setup)


@pytest.fixture
def setup(tmp_path: Path) -> SessionSetup:
    config = load_config(trading_config("mm", write_sample(tmp_path / "data"), minutes=10))
    setup = SessionSetup("S1", str(tmp_path / "var"), config, lockstep=False, snapshot_every=25)
    write_cache(setup, FeedConfig())
    return setup


def _orders(n: int, ts: int) -> list[Any]:
    submit = SubmitOrder(seq=0, ts_event=ts, ts_init=ts, client_order_id=f"S1-mm-{n}",
                         strategy_id="mm", instrument_id="SIM-A", side=OrderSide.BUY,
                         order_type=OrderType.LIMIT, quantity=FIXED_SCALE, price=FIXED_SCALE)
    cancel = CancelOrder(seq=0, ts_event=ts, ts_init=ts, client_order_id=f"S1-mm-{n}",
                         strategy_id="mm", instrument_id="SIM-A")
    return [submit, cancel]


def test_reports_behind_the_cursor_leave_and_a_rebuilt_gateway_agrees(
        setup: SessionSetup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paper, "KEEP_REPORTS", KEEP)
    gateway = _gateway(setup)
    venue = gateway.venue
    feed = setup.feed_log().all()
    seen, handed = 0, []
    for i, msg in enumerate(feed[:200]):
        venue.apply(i, [msg])
        venue.send(_orders(i, venue.venue.now_ns), lockstep=False)
        new = venue.reports_due(seen)
        handed += new
        seen += len(new)
        venue.commit()
    assert venue.reports_total == seen == len(handed) > 10 * KEEP
    assert len(venue.reports) <= 2 * KEEP + 30  # a snapshot's worth beyond what is kept
    assert venue.report_base > 0
    assert venue.reports_after(seen - 3) == handed[-3:]
    size = len(pickle.dumps(venue.reports))
    assert size < len(pickle.dumps(handed)) / 4
    with pytest.raises(InvariantError, match="holds them from"):
        venue.reports_after(venue.report_base - 1)
    before = gateway.state_hash()
    venue.journal.close()
    again = _gateway(setup)  # rebuilt from the snapshot and the journal's tail
    assert again.state_hash() == before
    assert again.venue.reports_after(seen - 3) == handed[-3:]
    assert again.venue.submitted == venue.submitted
    assert len(set(venue.submitted)) == len(venue.submitted) == 200
