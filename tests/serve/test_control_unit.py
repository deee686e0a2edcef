"""The control plane's pieces without Ray: tokens and scopes, redaction and JSON logs, health,
the Prometheus text, the status page, the CLI's parsing, and the observability files."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from actors.logs import JsonFormatter, Redactor, correlation_id
from serve.auth import OPERATE, READ, load_or_create_tokens
from serve.metrics import GAUGES, render, samples
from serve.page import STATUS_PAGE
from serve.views import health_view

ROOT = Path(__file__).resolve().parents[2]


def test_generated_tokens_are_private_and_scoped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRADEWIND_API_TOKEN", raising=False)
    monkeypatch.delenv("TRADEWIND_API_READ_TOKEN", raising=False)
    path = tmp_path / "s" / "api_tokens.json"
    tokens = load_or_create_tokens(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_tokens(path) == tokens  # the same tokens on a restart
    hashes = tokens.hashes()
    assert hashes.scope_of(tokens.operator) == OPERATE
    assert hashes.scope_of(tokens.read) == READ
    assert hashes.scope_of("guess") is None and hashes.scope_of("") is None
    assert tokens.operator not in repr(hashes)


def test_token_from_the_environment_is_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEWIND_API_TOKEN", "env-operator-token-123456")
    path = tmp_path / "api_tokens.json"
    tokens = load_or_create_tokens(path)
    assert tokens.operator == "env-operator-token-123456"
    assert "env-operator-token-123456" not in path.read_text()


def test_redactor_masks_secrets_and_tokens_known_only_by_digest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BROKER_PASSWORD", "hunter2-very-secret")
    monkeypatch.delenv("TRADEWIND_API_TOKEN", raising=False)
    tokens = load_or_create_tokens(tmp_path / "t.json")
    hashes = tokens.hashes()
    redactor = Redactor(hashes=(hashes.operator, hashes.read))
    text = f"pw hunter2-very-secret token {tokens.operator} order tw-mm-000000000012"
    masked = redactor.text(text)
    assert "hunter2" not in masked and tokens.operator not in masked
    assert "tw-mm-000000000012" in masked  # ordinary ids survive
    assert redactor.value({"a": [text]})["a"][0] == masked


def test_json_log_lines_carry_session_seq_and_correlation_id() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tradewind.test.json")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("sess1", Redactor(extra=["s3cr3t-value"])))
    logger.addHandler(handler)
    token = correlation_id.set("req-42")
    try:
        logger.warning("hello %s", "s3cr3t-value")
        logger.warning("again")
    finally:
        correlation_id.reset(token)
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["session_id"] == first["run_id"] == "sess1"
    assert first["correlation_id"] == "req-42" and second["seq"] == first["seq"] + 1
    assert first["msg"] == "hello ***"


def test_health_names_its_reasons() -> None:
    snap = {
        "ts": 1.0,
        "actors": {"risk": {"up": False}, "book.X": {"up": True}},
        "feed": {"error": None},
        "feed_lag_s": 50.0,
        "recorder": {"lag_s": 99.0},
        "reconciler": {"drifts": 2},
    }
    health = health_view(snap, feed_stale_s=10, recorder_lag_s=30)
    assert health["status"] == "down"
    text = " ".join(health["reasons"])
    for reason in ("actor down: risk", "feed stale", "store lagging", "drift"):
        assert reason in text
    core = {name: {"up": True} for name in ("risk", "gateway", "feed")}
    ok = health_view({"ts": 1.0, "actors": core}, feed_stale_s=10, recorder_lag_s=30)
    assert ok["status"] == "ok" and ok["reasons"] == []
    early = health_view({"ts": 1.0, "actors": {"feed": {"up": True}}}, feed_stale_s=10,
                        recorder_lag_s=30)
    assert early["status"] == "starting"
    assert early["reasons"] == ["not started yet: risk", "not started yet: gateway"]
    unread = health_view({}, feed_stale_s=10, recorder_lag_s=30)
    assert unread["status"] == "starting"


def test_prometheus_text_has_every_gauge_and_the_histogram() -> None:
    snap = {
        "risk": {"state": "halted", "fills": 3},
        "actors": {"gateway": {"up": True}},
        "pnl": {"pnl": -1.5},
        "feed": {"cursor": 40, "conflated": 7},
    }
    telemetry = {
        "boundaries": [0.01, 0.1],
        "stages": {"tick_to_order": {"buckets": [1, 2, 3], "sum": 0.5, "count": 6}},
    }
    text = render("s1", samples(snap), telemetry)
    for name in GAUGES:
        assert f"# TYPE ray_{name} gauge" in text
    assert 'ray_tradewind_halted{session="s1"} 1.0' in text
    assert 'ray_tradewind_pnl{session="s1"} -1.5' in text
    assert 'ray_tradewind_feed_conflated{session="s1"} 7.0' in text
    assert (
        'ray_tradewind_latency_seconds_bucket{le="+Inf",session="s1",stage="tick_to_order"} 6.0'
        in text
    )
    assert 'ray_tradewind_latency_seconds_count{session="s1",stage="tick_to_order"} 6.0' in text


def test_adapter_health_and_watchdogs_are_exported() -> None:
    now_s = 1_000.0
    snap = {
        "ts": now_s,
        "reconciler": {
            "reconnects": 2,
            "watchdogs": {"market_data_silence": "tripped", "order_stream_stale": "ok",
                          "unknown_order_storm": "off"},
            "health": {"connected": True, "breaker_open": False, "foreign_reports": 7,
                       "last_report_ns": int(990e9), "exec_waiting_since_ns": None,
                       "market": {"since_ns": 0, "last_ns": {"AAPL": int(940e9)}}},
        },
    }
    text = render("s1", samples(snap), {})
    for line in (
        'ray_tradewind_broker_connected{session="s1"} 1.0',
        'ray_tradewind_broker_reconnects{session="s1"} 2.0',
        'ray_tradewind_unknown_order_reports{session="s1"} 7.0',
        'ray_tradewind_broker_last_report_age_seconds{session="s1"} 10.0',
        'ray_tradewind_broker_unanswered_seconds{session="s1"} 0.0',
        'ray_tradewind_market_data_age_seconds{instrument="AAPL",session="s1"} 60.0',
        'ray_tradewind_watchdog_tripped{session="s1",watchdog="market_data_silence"} 1.0',
        'ray_tradewind_watchdog_tripped{session="s1",watchdog="unknown_order_storm"} -1.0',
    ):
        assert line in text, line


def test_aux_feeds_age_errors_and_last_success_are_exported() -> None:
    """Per auxiliary feed, what the feed actor's status carries (``AuxPolls.telemetry``)."""
    from actors.venues.aux_feeds import AuxFeedConfig, AuxPolls

    polls = AuxPolls([AuxFeedConfig(kind="funding", instrument="BTC-PERP", every_s=60,
                                    ttl_s=120),
                      AuxFeedConfig(kind="open_interest", instrument="BTC-PERP")],
                     backoff_min_s=1, backoff_max_s=60)
    polls.on_ok(("funding", "BTC-PERP"), [], 1_000.0)
    polls.on_error(("funding", "BTC-PERP"), "RequestTimeout", 1_060.0)
    polls.on_error(("funding", "BTC-PERP"), "RequestTimeout", 1_150.0)
    polls.on_error(("open_interest", "BTC-PERP"), "ExchangeNotAvailable", 1_150.0)
    snap = {"ts": 1_150.0, "feed": {"cursor": 1, "aux": polls.telemetry(1_150.0)}}
    text = render("s1", samples(snap), {})
    funding, oi = 'feed="funding/BTC-PERP",session="s1"', 'feed="open_interest/BTC-PERP"'
    for line in (
        f"ray_tradewind_aux_age_seconds{{{funding}}} 150.0",
        f"ray_tradewind_aux_last_success_timestamp_seconds{{{funding}}} 1000.0",
        f"ray_tradewind_aux_stale{{{funding}}} 1.0",  # 150 s old, ttl 120 s
        f"ray_tradewind_aux_errors{{{funding}}} 2.0",
        f"ray_tradewind_aux_consecutive_failures{{{funding}}} 2.0",
        f'ray_tradewind_aux_age_seconds{{{oi},session="s1"}} NaN',  # never polled yet
        f'ray_tradewind_aux_last_success_timestamp_seconds{{{oi},session="s1"}} 0.0',
        f'ray_tradewind_aux_stale{{{oi},session="s1"}} 1.0',
    ):
        assert line in text, line
    polls.on_ok(("funding", "BTC-PERP"), [], 1_160.0)
    again = render("s1", samples({"feed": {"aux": polls.telemetry(1_170.0)}}), {})
    assert f"ray_tradewind_aux_stale{{{funding}}} 0.0" in again
    assert f"ray_tradewind_aux_consecutive_failures{{{funding}}} 0.0" in again
    assert f"ray_tradewind_aux_errors{{{funding}}} 2.0" in again


def test_status_page_is_self_contained() -> None:
    assert "<script src" not in STATUS_PAGE and "http" not in STATUS_PAGE.split("<script>")[1]
    for button in ("halt", "resume", "reduce-only", "flatten", "kill"):
        assert f'data-action="{button}"' in STATUS_PAGE
    assert "confirm(" in STATUS_PAGE and "location.hash" in STATUS_PAGE


def test_observability_files_parse() -> None:
    folder = ROOT / "observability"
    for path in folder.glob("dashboard_*.json"):
        board = json.loads(path.read_text())
        exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
        assert exprs and all("by (" in e for e in exprs), path  # aggregated without WorkerId
    rules = yaml.safe_load((folder / "alerts.yaml").read_text())["groups"][0]["rules"]
    assert all(" by (" in r["expr"] for r in rules)  # aggregated without WorkerId
    assert (folder / "README.md").exists()


def test_control_cli_needs_a_token_and_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    monkeypatch.delenv("TRADEWIND_API_TOKEN", raising=False)
    monkeypatch.delenv("TRADEWIND_API_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["status", "--url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "TRADEWIND_API_TOKEN" in err[0]
    monkeypatch.setenv("TRADEWIND_API_TOKEN", "x" * 20)
    assert main(["halt", "--url", "http://127.0.0.1:9"]) == 2  # nothing listens there
    assert "cannot reach the control API" in capsys.readouterr().err
    assert main(["params", "mm", "size", "--url", "http://127.0.0.1:9"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


def _controller(tmp_path: Path, refresh_s: float = 60.0) -> Any:
    from actors.control_config import ControlConfig
    from serve.auth import TokenHashes
    from serve.controller import Controller, SessionInfo

    info = SessionInfo(
        session_id="u1",
        namespace=None,
        journal_dir=str(tmp_path / "u1"),
        strategies={},
        instruments=(),
        control=ControlConfig(refresh_s=refresh_s),
        token_hashes=TokenHashes(operator="0" * 64, read="1" * 64),
    )
    return Controller(info)


def test_reads_that_ask_an_actor_are_shared_and_errors_are_not_kept(tmp_path: Path) -> None:
    controller = _controller(tmp_path)
    calls: list[int] = []

    async def fetch() -> int:
        calls.append(1)
        await asyncio.sleep(0.05)
        if len(calls) == 1:
            raise TimeoutError("the actor did not answer")
        return len(calls)

    async def scenario() -> list[Any]:
        first = await asyncio.gather(
            *(controller._read(("orders", 5), fetch) for _ in range(3)), return_exceptions=True
        )
        second = await asyncio.gather(*(controller._read(("orders", 5), fetch) for _ in range(3)))
        third = await controller._read(("orders", 5), fetch)  # younger than refresh_s: kept
        other = await controller._read(("orders", 6), fetch)  # another query: its own fetch
        return [first, second, third, other]

    first, second, third, other = asyncio.run(scenario())
    assert all(isinstance(e, TimeoutError) for e in first)  # one call, three waiting requests
    assert second == [2, 2, 2] and third == 2 and other == 3
    assert len(calls) == 3


def test_an_absent_actor_is_not_looked_up_on_every_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    lookups: list[str] = []

    def get_actor(name: str, namespace: str | None = None) -> Any:
        lookups.append(name)
        raise ValueError(f"no actor {name}")

    monkeypatch.setattr(ray, "get_actor", get_actor)
    controller = _controller(tmp_path)
    assert controller.actor("recorder") is None and controller.actor("recorder") is None
    assert lookups == ["tw.u1.recorder"]  # ray.get_actor blocks on the GCS: once per 10 s
    controller._absent["recorder"] -= 11.0
    assert controller.actor("recorder") is None and len(lookups) == 2


def test_positions_come_from_the_snapshot_in_human_units(tmp_path: Path) -> None:
    controller = _controller(tmp_path)
    pos = {
        "instrument_id": "X",
        "quantity": 2 * 10**9,
        "avg_price": 101 * 10**9,
        "mark": 102 * 10**9,
        "realized_pnl": 0,
        "fees": 10**8,
    }
    controller.snapshot = {"positions": [pos, pos | {"instrument_id": "Y", "quantity": 0}]}
    out = controller.positions()
    assert out["positions"] == [
        {
            "instrument_id": "X",
            "quantity": 2.0,
            "avg_price": 101.0,
            "mark": 102.0,
            "realized_pnl": 0.0,
            "fees": 0.1,
        }
    ]


def test_a_busy_port_is_named_with_the_setting_that_moves_it() -> None:
    import socket

    from actors.control_config import ControlConfig
    from serve.deploy import ControlNotStarted, check_ports
    from tests.serve.live_helpers import free_port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ControlNotStarted) as caught:
            check_ports(ControlConfig(port=port, grpc_port=free_port()))
        with pytest.raises(ControlNotStarted, match=r"control\.grpc_port"):
            check_ports(ControlConfig(port=free_port(), grpc_port=port))
        check_ports(ControlConfig(port=free_port(), grpc_port=free_port()))  # free: no error
    message = str(caught.value)
    assert "\n" not in message and f"port {port} on 127.0.0.1 is already in use" in message
    assert "control.port" in message


def test_the_cli_names_its_operator_as_the_api_takes_it() -> None:
    from cli.control import operator_name
    from serve.ids import valid_name

    for user in ("alice", "José Núñez", "a\r\nb", "x" * 500, ""):
        assert valid_name(operator_name(user)), user
    assert operator_name("alice") == "alice" and operator_name("") == "cli"


def test_the_cli_lists_a_strategy_whose_actor_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cli.main import main

    body = json.dumps(
        {"strategies": {"mm": {"class": "m:MarketMaker", "params": None, "enabled": None}}}
    ).encode()

    class FakeApi(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("TRADEWIND_API_TOKEN", "x" * 20)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert main(["strategies", "--url", url]) == 0
    finally:
        server.shutdown()
        server.server_close()
    out = capsys.readouterr().out
    assert "mm" in out and "does not answer" in out
