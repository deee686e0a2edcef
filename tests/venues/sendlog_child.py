"""A gateway process for the compaction test (``test_send_log_restart``): IB orders against the
loopback fake, one at a time, each settled and committed, the send log compacted as it goes;
prints ``<orders done> <orders retired> <report base>`` after each, until it is killed.

``python -m tests.venues.sendlog_child <port> <folder>``. The horizons are zero here (an order
retires as soon as it is closed, settled and behind the cursor), so a short run compacts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import actors.venues.send_log as send_log
from actors.venues.gateway import BrokerGateway
from actors.venues.ib_support import ContractSpec, IbConfig
from actors.venues.links import open_broker_gateway
from runtime.messages import OrderSide, OrderType, SubmitOrder, TimeInForce
from runtime.values import FIXED_SCALE


def config(port: int) -> IbConfig:
    return IbConfig(port=port, client_id=23, reset_window=("00:00", "00:00"),
                    contracts={"SIM-A": ContractSpec(symbol="SIMA")})


def submit(cid: str) -> SubmitOrder:
    return SubmitOrder(seq=1, ts_event=1, ts_init=1, client_order_id=cid, strategy_id="s",
                       instrument_id="SIM-A", side=OrderSide.BUY, order_type=OrderType.MARKET,
                       quantity=10 * FIXED_SCALE, price=None, time_in_force=TimeInForce.DAY)


def main(port: int, folder: Path) -> None:
    send_log.COMPACT_MIN_ENTRIES = 40
    BrokerGateway.retire_after_s = 0.0
    BrokerGateway.cursor_settle_s = 0.0
    BrokerGateway.keep_commands = BrokerGateway.compact_every = 5
    gateway = open_broker_gateway(config(port), folder, instruments={}, confirmed_live=False)
    seen = 0
    for i in range(100_000):
        gateway.send([submit(f"k-{i}")])
        while (more := gateway.drain(seen)) is not None:
            seen += len(more)
        gateway.commit()
        print(i + 1, gateway.send_log.retired, gateway.report_base, flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
