"""``tradewind paper --broker ib|shioaji`` and ``tradewind live --confirm-live``: the opt-in rules
(each refusal one clear line, exit 2, before anything starts), the example configs, and whole
sessions through the CLI against the loopback IB fake."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.main import main
from tests.venues.broker_helpers import FakeIbThread, write_bars, write_broker_config
from tests.venues.conftest import PLANTED_KEY, PLANTED_SECRET

ROOT = Path(__file__).resolve().parents[2]
SIM = {"id": "SIM-A", "price_precision": 2, "lot_size": 1, "min_quantity": 1}


def _ib(port: int, **extra: Any) -> dict[str, Any]:
    return {"kind": "ib", "port": port, "client_id": 9, "reset_window": ["00:00", "00:00"],
            "contracts": {"SIM-A": {"symbol": "SIMA"}}, **extra}


_STREAM = {"mode": "broker", "lockstep": False, "speed": "max"}
_STREAMABLE = {"SIM-A": {"symbol": "SIMA", "con_id": 4242}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bars(tmp_path_factory.mktemp("bars"), "SIM-A")


def _config(tmp: Path, bars: Path, broker: dict[str, Any], **paper: Any) -> str:
    return str(write_broker_config(tmp, bars, broker, instrument=SIM, size=100, **paper))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- refusals (no Ray, nothing started) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("broker", "flags", "named"),
    [
        ({"paper": False}, [], ["live: true in the config", "--confirm-live"]),
        ({"paper": False}, ["--confirm-live"], ["live: true in the config"]),
        ({"paper": False, "live": True}, [], ["--confirm-live"]),
        ({"paper": True}, ["--confirm-live"], ["live: true in the config"]),
    ],
)
def test_live_refuses_naming_what_is_missing(tmp_path: Path, bars: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             broker: dict[str, Any], flags: list[str],
                                             named: list[str]) -> None:
    path = _config(tmp_path, bars, _ib(_free_port(), **broker, contracts=_STREAMABLE),
                   feed=_STREAM)  # a real-money account streams the broker's own data
    code, _, err = _run(capsys, "live", "--config", path, *flags)
    assert code == 2
    assert err.count("\n") == 1 and "refusing to trade live" in err
    for what in named:
        assert what in err
    missing = {"live: true in the config", "--confirm-live"} - set(named)
    for what in missing:
        assert what not in err


def test_live_refuses_a_paper_account_and_the_paper_broker(tmp_path: Path, bars: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    path = _config(tmp_path, bars, _ib(_free_port(), live=True))
    code, _, err = _run(capsys, "live", "--config", path, "--confirm-live")
    assert code == 2 and "broker.paper: true is a paper account" in err
    path = _config(tmp_path / "p", bars, {"kind": "paper"})
    code, _, err = _run(capsys, "live", "--config", path, "--confirm-live")
    assert code == 2 and "the paper broker cannot trade live" in err


def test_paper_refuses_a_live_flag_or_a_real_money_account(tmp_path: Path, bars: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    path = _config(tmp_path, bars, _ib(_free_port(), live=True))
    code, _, err = _run(capsys, "paper", "--config", path)
    assert code == 2 and "broker.live" in err and "tradewind live --confirm-live" in err
    path = _config(tmp_path / "real", bars, _ib(_free_port(), paper=False,
                                                contracts=_STREAMABLE), feed=_STREAM)
    code, _, err = _run(capsys, "paper", "--config", path)
    assert code == 2 and "broker.paper: false is a real-money account" in err


def test_paper_broker_ib_with_no_gateway_listening_is_one_clear_line(
        tmp_path: Path, bars: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()
    path = _config(tmp_path, bars, {"kind": "paper"})
    code, _, err = _run(capsys, "paper", "--config", path, "--broker", "ib", "--port", str(port))
    assert code == 2  # no contract for SIM-A in IB's defaults: named before any connection
    assert "broker.contracts.SIM-A: no IB contract for SIM-A" in err
    path = _config(tmp_path / "ib", bars, _ib(1))
    code, _, err = _run(capsys, "paper", "--config", path, "--port", str(port))
    assert code == 2 and f"IB gateway 127.0.0.1:{port} is not reachable" in err
    assert "Traceback" not in err


def test_bad_broker_blocks_name_the_field(tmp_path: Path, bars: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, bars, {"kind": "schwab"})
    code, _, err = _run(capsys, "paper", "--config", path)
    assert code == 2 and "broker" in err and "'paper', 'ib', 'shioaji'" in err
    path = _config(tmp_path / "l", bars, _ib(1), feed={"lockstep": True})
    code, _, err = _run(capsys, "paper", "--config", path)
    assert code == 2 and "feed.lockstep" in err
    stream = {"mode": "broker", "lockstep": False, "speed": "max"}
    path = _config(tmp_path / "s1", bars, {"kind": "paper"}, feed=stream)
    code, _, err = _run(capsys, "paper", "--config", path)
    assert code == 2 and "feed.mode: broker streams from a broker block (ib, shioaji, ccxt, " \
        "alpaca), not the paper broker" in err
    path = _config(tmp_path / "s2", bars, _ib(1), feed=stream)
    code, _, err = _run(capsys, "paper", "--config", path)
    assert code == 2 and "broker.contracts.SIM-A.con_id" in err
    path = _config(tmp_path / "s3", bars, _ib(1), feed=stream | {"speed": 10})
    code, _, err = _run(capsys, "paper", "--config", path)
    assert code == 2 and "feed.speed: a broker stream runs in real time" in err
    path = _config(tmp_path / "h", bars, {"kind": "shioaji"})
    code, _, err = _run(capsys, "paper", "--config", path, "--port", "4002")
    assert code == 2 and "--host/--port are for the IB gateway" in err


def test_shioaji_credentials_missing_name_the_variable_never_a_value(
        tmp_path: Path, bars: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, bars, {"kind": "shioaji", "api_key_env": "TW_TEST_SJ_API_KEY",
                                    "secret_key_env": "TW_TEST_NOT_SET_SECRET"})
    code, out, err = _run(capsys, "paper", "--config", path)
    assert code == 2 and "set the environment variable TW_TEST_NOT_SET_SECRET" in err
    assert PLANTED_KEY not in out + err and PLANTED_SECRET not in out + err


@pytest.mark.parametrize("kind", ["ccxt", "alpaca"])
def test_ccxt_and_alpaca_follow_the_opt_in_rules(kind: str) -> None:
    """Paper accounts run with ``tradewind paper``; a real-money account needs ``live: true``
    and ``--confirm-live``, and a dry run changes none of that."""
    from actors.venues.alpaca_support import AlpacaConfig
    from actors.venues.broker_config import check_mode
    from actors.venues.ccxt_support import CcxtConfig
    from runtime.errors import ConfigError

    cls = CcxtConfig if kind == "ccxt" else AlpacaConfig
    assert str(check_mode(cls(), command="paper", confirm_live=False)) == "paper"
    assert str(check_mode(cls(dry_run=True), command="paper", confirm_live=False)) == "paper"
    with pytest.raises(ConfigError, match=r"broker\.paper: false is a real-money account"):
        check_mode(cls(paper=False, dry_run=True), command="paper", confirm_live=False)
    with pytest.raises(ConfigError, match="missing --confirm-live"):
        check_mode(cls(paper=False, live=True), command="live", confirm_live=False)
    with pytest.raises(ConfigError, match="paper: true is a paper account"):
        check_mode(cls(live=True), command="live", confirm_live=True)
    assert str(check_mode(cls(paper=False, live=True), command="live",
                          confirm_live=True)) == "live"


def test_ccxt_and_alpaca_credentials_missing_name_the_variable(
        tmp_path: Path, bars: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crypto = {"id": "SIM-A", "asset_class": "crypto", "price_precision": 2, "lot_size": 1,
              "min_quantity": 1}
    ccxt = {"kind": "ccxt", "symbols": {"SIM-A": "SIM/USDT"}, "api_key_env": "TW_UNSET_KEY"}
    path = write_broker_config(tmp_path / "c", bars, ccxt, instrument=crypto, size=1)
    code, _, err = _run(capsys, "paper", "--config", str(path))
    assert code == 2 and "set the environment variable TW_UNSET_KEY" in err
    alpaca = {"kind": "alpaca", "secret_env": "TW_UNSET_SECRET",
              "api_key_env": "TW_TEST_ALPACA_KEY"}
    path = write_broker_config(tmp_path / "a", bars, alpaca, instrument=SIM, size=1)
    code, _, err = _run(capsys, "paper", "--config", str(path))
    assert code == 2 and "set the environment variable TW_UNSET_SECRET" in err
    path = write_broker_config(tmp_path / "w", bars, ccxt | {"symbols": {}}, instrument=crypto,
                               size=1)
    code, _, err = _run(capsys, "paper", "--config", str(path))
    assert code == 2 and "broker.symbols.SIM-A" in err
    path = tmp_path / "a" / "paper.yaml"
    code, _, err = _run(capsys, "paper", "--config", str(path), "--broker", "ib", "--dry-run")
    assert code == 2 and "--dry-run is for the ccxt and alpaca brokers" in err


def test_example_configs_load_and_pass_the_opt_in_rules() -> None:
    from actors.config import load_paper_config
    from actors.venues.broker_config import check_mode

    for name, kind in (("paper_ib", "ib"), ("paper_shioaji", "shioaji"), ("live_ib", "ib"),
                       ("paper_ib_stream", "ib"), ("paper_ccxt", "ccxt"),
                       ("paper_alpaca", "alpaca")):
        config = load_paper_config(ROOT / "configs" / f"{name}.yaml")
        assert config.broker.kind == kind
        command = "live" if name.startswith("live") else "paper"
        assert str(check_mode(config.broker, command=command, confirm_live=True)) == command


# --- whole sessions through the CLI (Ray) -------------------------------------------------------


@pytest.fixture
def fake_ib() -> Iterator[FakeIbThread]:
    fake = FakeIbThread(auto_fill_price=100.0)
    yield fake
    fake.close()


@pytest.mark.usefixtures("ray_local")
def test_paper_broker_ib_runs_a_session_against_the_fake(fake_ib: FakeIbThread, tmp_path: Path,
                                                         bars: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """``--broker ib --port``: the port comes from the command line. The replay runs at a
    speed the broker keeps up with (a bar every 40 ms): far faster than the broker's round
    trips and rate limit, orders would pile up while fills are on their way and risk would
    deny some (docs/paper.md, "Real time")."""
    path = _config(tmp_path, bars, _ib(1), speed=1500)
    code, out, _ = _run(capsys, "paper", "--config", path, "--broker", "ib", "--port",
                        str(fake_ib.port), "--json", "--session-id", "cli_ib1")
    assert code == 0
    result = json.loads(out)
    broker_side = fake_ib.snapshot()
    assert (result["broker"], result["mode"]) == ("ib", "paper")
    assert result["orders"] == len(broker_side["placed"]) == len(set(broker_side["placed"])) > 0
    assert result["fills"] == result["broker_fills"] == len(broker_side["executions"])
    assert result["positions_match"]


@pytest.mark.usefixtures("ray_local")
def test_live_with_both_opt_ins_runs(fake_ib: FakeIbThread, tmp_path: Path, bars: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A real-money session trades on the broker's own market data (the fake's quotes)."""
    broker = _ib(fake_ib.port, paper=False, live=True,
                 contracts={"SIM-A": {"symbol": "SIMA", "con_id": 4242}})
    path = _config(tmp_path, bars, broker, feed={"mode": "broker", "lockstep": False,
                                                 "speed": "max"})
    trading = yaml.safe_load((tmp_path / "trading.yaml").read_text())
    trading["strategies"] = [{"id": "taker", "class": "tests.venues.quote_taker:QuoteTaker",
                              "instruments": ["SIM-A"], "params": {"hold": 3}}]
    (tmp_path / "trading.yaml").write_text(yaml.safe_dump(trading))
    fake = fake_ib.fake
    quoting = threading.Thread(target=_quote_when_subscribed, args=(fake_ib, fake), daemon=True)
    quoting.start()
    code, out, _ = _run(capsys, "live", "--config", path, "--confirm-live", "--json",
                        "--session-id", "cli_live1", "--duration", "8s")
    quoting.join(30)
    assert code == 0
    result = json.loads(out)
    assert (result["broker"], result["mode"]) == ("ib", "live")
    assert result["fills"] == len(fake_ib.snapshot()["executions"]) > 0
    assert result["positions_match"]


def _quote_when_subscribed(fake_ib: FakeIbThread, fake: Any) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not fake_ib.call(
            lambda: bool(fake._live(fake.mkt_subs, "SIMA"))):
        time.sleep(0.05)
    for i in range(24):
        fake_ib.call(fake.quote, "SIMA", 100 + i / 100, 300, 100.05 + i / 100, 200)
        time.sleep(0.05)


def test_a_real_money_session_on_replayed_data_is_refused(tmp_path: Path, bars: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    """Safety: real money trades only on the broker's own market data, never on a replay (of
    stored, file or generated data); refused at load time, naming both, before anything
    starts."""
    for mode in ("replay",):
        path = _config(tmp_path / mode, bars, _ib(4001, paper=False, live=True),
                       feed={"mode": mode, "lockstep": False, "speed": 1})
        code, _, err = _run(capsys, "live", "--config", path, "--confirm-live")
        assert code == 2
        assert f"feed.mode: a real-money account (ib, paper: false) trades only on the " \
               f"broker's own market data, not on a {mode} feed" in err
        assert not (tmp_path / mode / "var").exists()
