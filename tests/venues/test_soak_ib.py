"""The IB soak (``bench/soak.py --broker ib``) in short: a session through the fake IB gateway,
with the gateway down once (sockets closed, connects refused) and the store down for a few
seconds, checked against the broker's own record: nothing sent twice, nothing lost, every fill
counted once (by the gateway, risk and the store), positions equal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.usefixtures("ray_local"), pytest.mark.slow]  # ~70 s under load
pytest.importorskip("ib_async")


def test_a_short_ib_soak_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    from bench.soak import parser, run_ib

    args = parser().parse_args(["--minutes", "0.3", "--disconnects", "1", "--down-s", "3",
                                "--outage-s", "6", "--every", "4", "--dir", str(tmp_path)])
    out: dict[str, Any] = run_ib(args)

    assert out["settled"], out
    assert out["disconnects"] == 1 and out["reconnects"] >= 1, out  # down once, back
    assert out["placed"] > 3 and out["fills_broker"] > 3, out  # it traded
    assert out["duplicates"] == 0 and out["lost"] == 0 and out["filled_qty_wrong"] == [], out
    assert out["fills_twice"] == out["fills_missed"] == out["fills_unknown"] == 0, out
    assert out["fills_ours"] == out["fills_risk"] == out["fills_broker"], out
    assert out["positions_equal"], out
    assert out["trading_state"] == "active", out  # no watchdog took the outages for a desync
    assert out["recorder_outages"] == 1 and out["store_pending"] == 0, out  # the outage drained
    assert out["store_fills"] == out["fills_broker"], out  # every fill in the store, once
