"""A running paper session driven only over its HTTP control API (one Serve app per module):
every route, auth scopes, halt/resume, params, enable/disable, flatten, metrics against the
dashboards and alerts, the status page in headless Chromium, a schemathesis run, and a planted
secret that must appear nowhere. Tests run in file order and share the session."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.actors.paper_helpers import write_paper_config, write_sample
from tests.serve.live_helpers import Api, Cdp, free_port, until

pytestmark = pytest.mark.usefixtures("ray_local")

ROOT = Path(__file__).resolve().parents[2]
SECRET = "tw-planted-SECRET-4f9a2c7d1e"  # the operator token: must leak nowhere
ENV_SECRET = "tw-planted-ENVSECRET-77b3e1a9"  # a broker key in the starting process's env
CONFIG_SECRET = "tw-planted-CONFIGPW-5c2d"  # a password inside a DSN (a config value)
PLANTED = (SECRET, ENV_SECRET, CONFIG_SECRET)
CHROMIUM = "/usr/bin/chromium"


class Live:
    def __init__(self, tmp: Path, session: Any, control: Any) -> None:
        self.tmp, self.session, self.control = tmp, session, control
        self.api = Api(control.url, SECRET)
        self.read = Api(control.url, control.tokens.read, self.api.seen)
        self.stopped = False
        self.early: list[tuple[int, Any]] = []  # actions sent before the tree was up

    def stop(self) -> None:
        if not self.stopped:
            from serve.deploy import stop_control

            self.stopped = True
            stop_control(self.control)
            self.session.stop()


@pytest.fixture(scope="module")
def live(ray_local: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from actors.config import load_paper_config
    from actors.session import prepare_session, start_session
    from serve.deploy import start_control

    tmp = tmp_path_factory.mktemp("control")
    old = os.environ.get("TRADEWIND_API_TOKEN")
    os.environ["TRADEWIND_API_TOKEN"] = SECRET
    os.environ["TRADEWIND_BROKER_SECRET"] = ENV_SECRET  # set after Ray started: no worker has it
    path = write_paper_config(
        tmp / "cfg",
        "mm",
        write_sample(tmp / "data"),
        minutes=90,
        record=True,
        store_dsn=f"chdb://{tmp / 'store'}",
        feed={"lockstep": False, "speed": 15},
        control={
            "port": free_port(),
            "grpc_port": free_port(),
            "refresh_s": 0.3,
            "flatten_timeout_s": 20,
        },
    )
    config = load_paper_config(path)
    prepared = prepare_session(config, session_id="ctl1")
    control = start_control(config, "ctl1", quiet=True)  # as `tradewind paper`: API first
    api = Api(control.url, SECRET)
    early = [
        api.call("/strategies/mm/params", method="POST", body={"params": {"size": 3}}),
        api.call("/halt", method="POST"),
    ]
    session = start_session(config, prepared=prepared)
    live = Live(tmp, session, control)
    live.early = early
    live.api.seen += api.seen
    try:
        yield live
    finally:
        live.stop()
        os.environ.pop("TRADEWIND_BROKER_SECRET", None)
        if old is None:
            os.environ.pop("TRADEWIND_API_TOKEN", None)
        else:
            os.environ["TRADEWIND_API_TOKEN"] = old


def _submitted(live: Live) -> int:
    import ray

    return len(ray.get(live.session.gateway.submitted.remote()))


READS = [
    "/health",
    "/status",
    "/positions",
    "/orders",
    "/fills",
    "/pnl",
    "/risk",
    "/strategies",
    "/metrics",
    "/audit",
]


def test_every_read_route_answers_with_a_read_token_and_refuses_without(live: Live) -> None:
    until(lambda: (live.read.get("/status")["orders"] or 0) > 0)
    for path in READS:
        status, body = live.read.call(path)
        assert status == 200, (path, body)
        assert live.read.call(path, token="")[0] == 401, path
        assert live.read.call(path, token="not-a-token")[0] == 401, path
    status = live.read.get("/status")
    assert status["mode"] == "paper" and status["trading_state"] == "active"
    assert {"risk", "gateway", "feed", "strategy.mm", "recorder"} <= set(status["actors"])
    assert all(a["health"] == "up" for a in status["actors"].values())
    assert live.read.get("/health")["status"] in ("ok", "degraded")
    risk = live.read.get("/risk")
    assert risk["limits"]["max_position"] == 150.0 and "daily_loss" in risk["usage"]
    assert live.read.get("/strategies")["strategies"]["mm"]["params"]["size"] == 10
    assert set(live.read.get("/orders")) >= {"open", "recent"}
    page = urllib.request.urlopen(live.control.url + "/").read().decode()
    assert "<title>Tradewind session</title>" in page
    schema = json.loads(urllib.request.urlopen(live.control.url + "/openapi.json").read())
    assert "/strategies/{strategy_id}/params" in schema["paths"]


def test_actions_before_the_session_runs_are_refused_and_audited(live: Live) -> None:
    assert [status for status, _ in live.early] == [409, 409], live.early
    assert all("not ready" in body["detail"] for _, body in live.early)
    until(lambda: live.read.get("/strategies")["strategies"]["mm"]["params"])
    assert live.read.get("/strategies")["strategies"]["mm"]["params"]["size"] == 10
    assert live.read.get("/status")["trading_state"] == "active"
    audit = live.read.get("/audit")["entries"]
    early = [e for e in audit if e["outcome"].startswith("refused: the session is not ready")]
    assert [e["action"] for e in early] == ["params", "halt"]


def test_actions_need_the_operator_scope_and_bad_requests_name_the_field(live: Live) -> None:
    assert live.read.call("/halt", method="POST")[0] == 403
    status, body = live.api.call(
        "/strategies/mm/params", method="POST", body={"params": {"size": -1}}
    )
    assert status == 422 and body["detail"][0]["loc"] == ["body", "params", "size"]
    status, body = live.api.call(
        "/strategies/mm/params", method="POST", body={"params": {"sise": 5}}
    )
    assert status == 422 and "sise" in body["detail"][0]["loc"]
    status, body = live.api.call("/halt", method="POST", body={"reason": "x" * 500})
    assert status == 422 and body["detail"][0]["loc"] == ["body", "reason"]
    assert live.api.call("/strategies/nope/disable", method="POST")[0] == 404
    assert live.read.get("/status")["trading_state"] == "active"  # nothing happened


def _raw(
    live: Live, path: str, data: bytes, headers: dict[str, str], token: str | None = SECRET
) -> tuple[int, Any, Any]:
    """(status, headers, JSON body) of a POST with ``data`` sent as it is."""
    sent = {"Content-Type": "application/json", **headers}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(live.control.url + path, data=data, method="POST", headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=90) as resp:
            status, got, raw = resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, got, raw = exc.code, exc.headers, exc.read().decode()
    live.api.seen.append(raw)
    return status, got, json.loads(raw)


def test_bad_values_and_headers_are_refused_naming_them_while_running(live: Live) -> None:
    params = "/strategies/mm/params"
    for raw in (b'{"params": {"size": NaN}}', b'{"params": {"size": Infinity}}'):
        status, _, body = _raw(live, params, raw, {})
        assert status == 422 and body["detail"][0]["loc"] == ["body", "params", "size"], body
    status, _, body = _raw(live, params, b'{"params": {"size": 1' + b"0" * 30 + b"}}", {})
    assert status == 422 and body["detail"][0]["loc"] == ["body", "params", "size"], body
    assert "64-bit" in body["detail"][0]["msg"]
    broken = b'{"params": {"size": 3'
    assert _raw(live, params, broken, {}, token=None)[0] == 401  # the token before the body
    assert _raw(live, params, broken, {}, token=live.control.tokens.read)[0] == 403
    status, _, body = _raw(live, "/halt", b"{}", {"X-Operator": "o" * 5000})
    assert status == 422 and body["detail"][0]["loc"] == ["header", "x-operator"]
    status, got, _ = _raw(live, "/resume", b"{}", {"X-Request-ID": "r" * 60_000})
    (echoed,) = got.get_all("X-Request-ID")  # one, generated: the 60 KB id is not carried
    assert status == 200 and len(echoed) <= 64 and not echoed.startswith("rrr")
    status, got, _ = _raw(live, "/resume", b"{}", {"X-Request-ID": "corr-once-1"})
    assert got.get_all("X-Request-ID") == ["corr-once-1"]
    assert live.read.get("/strategies")["strategies"]["mm"]["params"]["size"] == 10
    assert live.read.get("/status")["trading_state"] == "active"  # nothing happened
    refused = [e for e in live.read.get("/audit")["entries"] if e["action"] == "params"]
    assert refused and all(e["outcome"].startswith("refused: ") for e in refused)
    assert any(e["outcome"] == "refused: invalid params.size" for e in refused)


def test_halt_stops_orders_at_the_gateway_and_resume_continues(live: Live) -> None:
    out = live.api.post("/halt", {"reason": "test halt"})
    assert out["result"]["state"] == "halted" and out["audit_id"]
    assert live.read.get("/status")["trading_state"] == "halted"
    at_halt = _submitted(live)
    denied_before = live.read.get("/risk")["usage"]["denials"]
    until(lambda: live.read.get("/risk")["usage"]["denials"] > denied_before, 30)
    assert _submitted(live) == at_halt  # the strategy kept trying; nothing reached the gateway
    live.api.post("/resume")
    assert live.read.get("/status")["trading_state"] == "active"
    until(lambda: _submitted(live) > at_halt, 30)


def test_params_change_takes_effect_without_restart(live: Live) -> None:
    restarts = live.read.get("/status")["restarts"]
    live.api.post("/strategies/mm/params", {"params": {"size": 3}})
    assert live.read.get("/strategies")["strategies"]["mm"]["params"]["size"] == 3
    until(
        lambda: any(
            o["quantity"] == 3.0 and o["strategy_id"] == "mm"
            for o in live.read.get("/orders?recent=20")["recent"]
        ),
        30,
    )
    assert live.read.get("/status")["restarts"] == restarts
    audit = live.read.get("/audit")["entries"]
    assert any(
        e["action"] == "params" and e["target"] == "mm" and e["who"].startswith("operate:")
        for e in audit
    )


def test_disable_stops_a_strategy_and_enable_restarts_it(live: Live) -> None:
    live.api.post("/strategies/mm/disable")
    assert live.read.get("/strategies")["strategies"]["mm"]["enabled"] is False
    before = _submitted(live)
    until(lambda: live.read.get("/status")["feed"]["cursor"] > 0)
    cursor = live.read.get("/status")["feed"]["cursor"]
    until(lambda: live.read.get("/status")["feed"]["cursor"] > cursor + 30, 30)
    assert _submitted(live) == before
    live.api.post("/strategies/mm/enable")
    until(lambda: _submitted(live) > before, 30)


def test_flatten_closes_every_position(live: Live) -> None:
    until(lambda: live.read.get("/positions")["positions"], 90)
    out = live.api.post("/flatten", {"reason": "test flatten"})
    assert out["result"]["flat"] is True, (
        live.read.get("/orders")["open"],
        out,
        live.read.get("/positions"),
    )
    assert live.read.get("/positions")["positions"] == []
    assert live.read.get("/status")["trading_state"] == "reducing"
    assert live.read.get("/strategies")["strategies"]["mm"]["enabled"] is False
    live.api.post("/resume")
    live.api.post("/strategies/mm/enable")


def _metric_names(text: str) -> set[str]:
    names = set(re.findall(r"\bray_tradewind_[a-z_]+", text))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_every_metric_of_the_dashboards_and_alerts_is_exported(live: Live) -> None:
    used: set[str] = set()
    folder = ROOT / "observability"
    dashboards = sorted(folder.glob("dashboard_*.json"))
    assert len(dashboards) == 3
    for path in dashboards:
        board = json.loads(path.read_text())
        exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
        used |= _metric_names("\n".join(exprs))
    rules = yaml.safe_load((folder / "alerts.yaml").read_text())["groups"][0]["rules"]
    assert {r["alert"] for r in rules} >= {
        "TradewindHalted",
        "TradewindRestartStorm",
        "TradewindFeedStale",
        "TradewindRecorderLag",
        "TradewindDrift",
        "TradewindDailyLossNearLimit",
        "TradewindGatewayDisconnected",
    }
    used |= _metric_names("\n".join(r["expr"] for r in rules))
    until(lambda: 'stage="tick_to_order"' in live.read.get("/metrics"), 30)
    exported = _metric_names(live.read.get("/metrics"))
    assert used and used <= exported, sorted(used - exported)
    text = live.read.get("/metrics")
    assert re.search(r'ray_tradewind_recorder_rows\{session="ctl1",table="fills"\} [1-9]', text)


def test_audit_reaches_the_journal_and_clickhouse(live: Live) -> None:
    import ray

    journal = Path(live.session.setup.journal_dir) / "control.journal"
    assert journal.exists()
    store = live.session.children["store"]
    table = ray.get(
        store.query_arrow.remote(
            "SELECT action, who FROM control_audit FINAL WHERE session_id = {s:String}",
            {"s": "ctl1"},
        )
    )
    actions = table.column("action").to_pylist()
    assert {"halt", "resume", "params", "flatten"} <= set(actions)
    assert all(w.startswith("operate:") for w in table.column("who").to_pylist())


def _chromium(url: str, profile: Path, port: int) -> subprocess.Popen[bytes]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--remote-debugging-port={port}",
        "--remote-debugging-address=127.0.0.1",
    ]
    return subprocess.Popen(
        [CHROMIUM, *flags, url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def _drive_page(port: int) -> dict[str, Any]:
    import websockets

    def target() -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as resp:
            pages = [t for t in json.loads(resp.read()) if t["type"] == "page"]
        return pages[0]["webSocketDebuggerUrl"] if pages else None

    ws_url = until(lambda: _quiet(target), 30)
    async with websockets.connect(ws_url, max_size=None) as ws:
        cdp = Cdp(ws)
        await cdp.send("Page.enable")
        await cdp.until("document.getElementById('state').textContent === 'ACTIVE'")
        seen = {
            k: await cdp.eval(f"document.getElementById('{k}').textContent")
            for k in ("session", "pnl", "orders-n", "fills-n")
        }
        seen["actors"] = await cdp.eval("document.querySelectorAll('#actors tbody tr').length")
        await cdp.eval("document.getElementById('btn-halt').click()")  # confirm() accepted
        await cdp.until("document.getElementById('state').textContent === 'HALTED'")
        seen["result"] = await cdp.eval("document.getElementById('action-result').textContent")
        return seen


def _quiet(fn: Any) -> Any:
    try:
        return fn()
    except OSError:
        return None


def test_status_page_renders_live_values_and_halt_works_in_chromium(
    live: Live, tmp_path: Path
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs {CHROMIUM} (apt-get install chromium; CI installs it)")
    pytest.importorskip("websockets")
    port = free_port()
    proc = _chromium(f"{live.control.url}/#token={SECRET}", tmp_path / "profile", port)
    try:
        seen = asyncio.run(_drive_page(port))
    finally:
        proc.terminate()
        proc.wait(10)
    assert "ctl1" in seen["session"] and seen["actors"] >= 5
    assert seen["pnl"] and int(seen["orders-n"]) > 0
    assert seen["result"].startswith("halt: done")
    assert live.read.get("/status")["trading_state"] == "halted"
    assert any(e["action"] == "halt" for e in live.read.get("/audit")["entries"])
    live.api.post("/resume")


def _schemathesis(live: Live, tmp_path: Path, *extra: str, env: dict[str, str]) -> str:
    st = Path(sys.executable).parent / "st"
    if not st.exists():
        pytest.skip("needs schemathesis (pip install schemathesis)")
    cmd = [
        str(st),
        "run",
        f"{live.control.url}/openapi.json",
        *extra,
        "--max-examples",
        "8",
        "--request-timeout",
        "60",
        "--workers",
        "1",
        "--generation-deterministic",
        "--no-color",
    ]
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"PYTHONPATH": str(ROOT), "SCHEMATHESIS_HOOKS": "tests.serve.st_hooks"} | env
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    tested = re.search(r"Tested: (\d+)", output)
    assert tested and int(tested.group(1)) >= 17, output[-3000:]  # every operation exercised
    return output


def test_schemathesis_finds_no_server_error(live: Live, tmp_path: Path) -> None:
    """Generated requests, valid and not (bodies, queries, path ids, X-Operator), with the
    operator token: never a 5xx; without a token: 401, every one, whatever the body."""
    _schemathesis(
        live,
        tmp_path / "operator",
        "-H",
        f"Authorization: Bearer {SECRET}",
        "--checks",
        "not_a_server_error",
        env={},
    )
    _schemathesis(
        live,
        tmp_path / "anonymous",
        "--checks",
        "not_a_server_error,expected_status",
        env={"TW_ST_EXPECT_STATUS": "401"},
    )
    assert live.read.get("/status")["actors"]["risk"]["health"] == "up"


def test_cli_talks_to_the_session(live: Live, capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import main

    url = ["--url", live.control.url]
    assert main(["status", *url, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["session_id"] == "ctl1"
    assert main(["status", *url]) == 0
    out = capsys.readouterr().out
    assert "session ctl1 (paper): trading" in out and "actor" in out and "gateway" in out
    assert main(["halt", *url, "--reason", "from the cli"]) == 0
    assert live.read.get("/status")["trading_state"] == "halted"
    assert main(["resume", *url]) == 0
    assert main(["params", "mm", "size=4", *url]) == 0
    assert main(["strategies", *url]) == 0
    table = capsys.readouterr().out
    assert "size=4" in table and "MarketMaker" in table
    assert main(["params", "mm", "size=-4", *url]) == 2
    assert "params.size" in capsys.readouterr().err
    assert SECRET not in table


def test_control_logs_are_json_lines_with_ids(live: Live) -> None:
    path = Path(live.session.setup.journal_dir) / "control.log.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    audits = [e for e in lines if "audit" in e]
    assert audits and all(e["session_id"] == "ctl1" and e["seq"] > 0 for e in lines)
    assert all(e["correlation_id"] for e in audits)
    ids = {e["correlation_id"] for e in audits}
    assert len(ids) == len(audits)  # one request, one id


def _post_with_id(live: Live, path: str, request_id: str, body: Any = None) -> Any:
    req = urllib.request.Request(
        live.control.url + path,
        data=json.dumps(body or {}).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {SECRET}",
            "Content-Type": "application/json",
            "X-Request-ID": request_id,
        },
    )
    with urllib.request.urlopen(req, timeout=90) as resp:
        assert resp.headers["X-Request-ID"] == request_id
        raw = resp.read().decode()
    live.api.seen.append(raw)
    return json.loads(raw)


def _session_log(live: Live) -> list[dict[str, Any]]:
    path = Path(live.session.setup.journal_dir) / "session.log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]  # every line is JSON


def test_every_actor_of_the_session_logs_json_with_the_session_id(live: Live) -> None:
    _post_with_id(live, "/halt", "corr-halt-1", {"reason": "log test"})
    _post_with_id(live, "/resume", "corr-resume-1")
    lines = _session_log(live)
    assert lines and all(e["session_id"] == e["run_id"] == "ctl1" for e in lines)
    fields = {"ts", "level", "logger", "msg", "component", "pid", "seq", "correlation_id"}
    assert all(fields <= set(e) for e in lines)
    components = {e["component"] for e in lines}
    expected = {"risk", "gateway", "strategy.mm", "book.SIM-A", "feed", "supervisor", "store"}
    assert expected | {"recorder", "control"} <= components, components
    by_pid: dict[int, list[int]] = {}
    for entry in lines:
        by_pid.setdefault(entry["pid"], []).append(entry["seq"])
    assert all(seqs == sorted(seqs) for seqs in by_pid.values())  # per process, increasing
    # the request's id flows: HTTP → control plane (audit) → the feed actor that applies it
    halt = [e for e in lines if e["correlation_id"] == "corr-halt-1"]
    assert [(e["component"], e["msg"]) for e in halt] == [
        ("feed", "operator action feed.set_state")
    ]
    assert halt[0]["args"]["state"] == "halted"
    control = Path(live.session.setup.journal_dir) / "control.log.jsonl"
    audited = [json.loads(line) for line in control.read_text().splitlines()]
    assert any(e["correlation_id"] == "corr-halt-1" and "audit" in e for e in audited)
    # a flatten's close-out orders are logged under its request id, with their order ids
    flatten = {
        e["correlation_id"]
        for e in audited
        if isinstance(e.get("audit"), dict) and e["audit"].get("action") == "flatten"
    }
    closes = [e for e in lines if e["msg"].startswith("close-out order")]
    assert closes and all(e["correlation_id"] in flatten for e in closes), (closes, flatten)
    # named by the risk kernel's id generator: the same after a replay of its journal
    assert all(re.fullmatch(r"ctl1-operator-\d+", e["client_order_id"]) for e in closes)


def test_planted_secret_appears_nowhere(live: Live) -> None:
    import ray

    # the operator pastes secrets where they could travel: the token, a key from the starting
    # process's environment, a DSN with its password (a config value) — into a reason, which
    # the audit, the journals, the feed actor's log and the store all see
    pasted = f"oops {SECRET} {ENV_SECRET} http://trader:{CONFIG_SECRET}@db:8123/tw"
    _post_with_id(live, "/halt", "corr-secret-1", {"reason": pasted})
    live.api.post("/resume", {"reason": f"again {SECRET}"})
    applied = [e for e in _session_log(live) if e["correlation_id"] == "corr-secret-1"]
    assert applied and "***" in applied[0]["args"]["reason"]  # it reached the worker, masked
    store = live.session.children["store"]
    rows = ray.get(
        store.query_arrow.remote(
            "SELECT reason FROM risk_events FINAL "
            "UNION ALL SELECT args_json FROM control_audit FINAL"
        )
    )
    values = [str(v) for v in rows.column(0).to_pylist()]
    assert values and not any(s in v for v in values for s in PLANTED)
    live.stop()  # session files written, journals closed
    assert not any(s in body for body in live.api.seen for s in PLANTED)
    places = [live.tmp, Path(ray._private.worker._global_node.get_logs_dir_path())]
    for place in places:
        for path in place.rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                data = path.read_bytes()
                assert not any(s.encode() in data for s in PLANTED), path
    assert any(places[1].rglob("*serve*"))  # the scan covered the Serve logs too
    token_file = Path(live.session.setup.journal_dir) / "api_tokens.json"
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert SECRET not in token_file.read_text()
