"""What the control API answers to requests it must refuse, or take, without Ray: the real app
and controller over fake actors (``fake_session``). Each answer is what a caller sees: the
status, the field or header named, what reached the actors, and what the audit recorded."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.serve.fake_session import OPERATOR, READER, Answer, FakeSession, call, make_app

PARAMS = "/strategies/mm/params"


def run(tmp: Path, session: FakeSession, scenario: Callable[[Any], Awaitable[Any]]) -> Any:
    app, controller = make_app(tmp, session)

    async def go() -> Any:
        return await scenario(app)

    out = asyncio.run(go())
    return out, controller


def _loc(answer: Answer) -> list[Any]:
    assert answer.status == 422, (answer.status, answer.body)
    return list(answer.json()["detail"][0]["loc"])


# --- params: finite, representable, checked before anything reaches an actor ----------------
@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_params_are_422_naming_the_field(tmp_path: Path, raw: bytes) -> None:
    session = FakeSession()

    async def scenario(app: Any) -> list[Answer]:
        return [
            await call(app, "POST", PARAMS, body=b'{"params": {"size": ' + raw + b"}}"),
            await call(app, "POST", PARAMS, body=b'{"params": {"vol_mult": ' + raw + b"}}"),
            await call(app, "POST", "/halt", body=b'{"reason": ' + raw + b"}"),
        ]

    (size, vol, reason), _ = run(tmp_path, session, scenario)
    assert _loc(size) == ["body", "params", "size"]
    assert "finite" in size.json()["detail"][0]["msg"]
    assert _loc(vol) == ["body", "params", "vol_mult"]
    assert _loc(reason) == ["body", "reason"]
    assert session.strategy_changes == [] and session.feed_actions == []


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("size", 10**30, "64-bit"),  # fixed point: 10**39, beyond what the actors carry
        ("requote_ms", 2**70, "64-bit"),
        ("size", 1e-10, "decimals"),  # more than nine decimals: the converter refuses
        ("size", -1, "greater than 0"),
        ("sise", 5, "unknown parameter"),
    ],
)
def test_unrepresentable_params_are_422_naming_the_field_and_audited_as_refused(
    tmp_path: Path, field: str, value: Any, says: str
) -> None:
    session = FakeSession()

    async def scenario(app: Any) -> tuple[Answer, Answer]:
        answer = await call(app, "POST", PARAMS, body={"params": {field: value}})
        return answer, await call(app, "GET", "/audit", token=READER)

    (answer, audit), _ = run(tmp_path, session, scenario)
    assert _loc(answer) == ["body", "params", field]
    assert says in answer.json()["detail"][0]["msg"]
    assert session.strategy_changes == []  # nothing reached the strategy actor
    (entry,) = audit.json()["entries"]
    assert entry["action"] == "params" and entry["outcome"].startswith("refused: invalid")
    assert f"params.{field}" in entry["outcome"]


# --- the token first: 401/403 before the body is read ---------------------------------------
@pytest.mark.parametrize("path", [PARAMS, "/halt"])
def test_the_token_is_checked_before_the_body(tmp_path: Path, path: str) -> None:
    session = FakeSession()
    broken = b'{"params": {"size": 3'

    async def scenario(app: Any) -> list[Answer]:
        return [
            await call(app, "POST", path, token=None, body=broken),
            await call(app, "POST", path, token="not-a-token", body=broken),
            await call(app, "POST", path, token=READER, body=broken),
            await call(app, "POST", path, token=OPERATOR, body=broken),
        ]

    (none, unknown, reader, operator), _ = run(tmp_path, session, scenario)
    assert none.status == 401 and none.header("www-authenticate") == ["Bearer"]
    assert unknown.status == 401 and "unknown token" in unknown.json()["detail"]
    assert reader.status == 403 and "operator scope" in reader.json()["detail"]
    assert operator.status == 422 and operator.json()["detail"][0]["type"] == "json_invalid"
    assert session.feed_actions == [] and session.strategy_changes == []


def test_reads_need_a_token_and_public_pages_do_not(tmp_path: Path) -> None:
    async def scenario(app: Any) -> list[Answer]:
        return [
            await call(app, "GET", "/status", token=None),
            await call(app, "GET", "/orders?recent=0", token=None),  # 401, not 422
            await call(app, "GET", "/status", token=READER),
            await call(app, "GET", "/", token=None),
            await call(app, "GET", "/openapi.json", token=None),
        ]

    (status, query, ok, page, schema), _ = run(tmp_path, FakeSession(), scenario)
    assert status.status == 401 and query.status == 401
    assert ok.status == 200 and page.status == 200 and schema.status == 200


# --- X-Request-ID: bounded, sanitised, echoed once --------------------------------------------
_GENERATED = re.compile(r"[0-9a-f]{16}|[0-9a-f-]{36}")


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ([b"corr-halt-1"], True),
        ([b"x" * 60_000], False),
        ([b"a" * 65], False),
        ([b"abc\r\nSet-Cookie: x=1"], False),
        ([b"caf\xe9"], False),
        ([b"one", b"two"], False),
    ],
)
def test_request_id_is_echoed_once_and_only_when_it_obeys_the_rule(
    tmp_path: Path, given: list[bytes], kept: bool
) -> None:
    from ray.serve._private.http_util import RequestIdMiddleware

    from serve.ids import RequestIdGuard

    headers = [(b"x-request-id", g) for g in given]

    async def scenario(app: Any) -> list[Answer]:
        proxy = RequestIdGuard(RequestIdMiddleware(app))  # Serve's proxy in front of the app
        out = []
        for front in (app, proxy):
            out.append(await call(front, "POST", "/halt", headers=headers))
            out.append(await call(front, "GET", "/status", token=READER, headers=headers))
            out.append(await call(front, "GET", "/status", token=None, headers=headers))
        return out

    answers, controller = run(tmp_path, FakeSession(), scenario)
    for answer in answers:
        (echoed,) = answer.header("x-request-id")  # exactly one
        if kept:
            assert echoed == given[0].decode()
        else:
            assert _GENERATED.fullmatch(echoed), echoed
    ids = [e["correlation_id"] for e in controller.audit.entries()]
    assert len(ids) == 2 and all(len(i) <= 64 for i in ids)


# --- X-Operator: refused (422 naming the header) unless it obeys the rule ----------------------
@pytest.mark.parametrize("name", [b"alice\r\nX-Injected: 1", b"alice\n", b"o" * 5000, b"al ice"])
def test_a_bad_operator_name_is_refused_naming_the_header(tmp_path: Path, name: bytes) -> None:
    session = FakeSession()

    async def scenario(app: Any) -> tuple[Answer, Answer]:
        bad = await call(app, "POST", "/halt", headers=[(b"x-operator", name)])
        good = await call(app, "POST", "/halt", headers=[(b"x-operator", b"alice.ops")])
        return bad, good

    (bad, good), controller = run(tmp_path, session, scenario)
    assert _loc(bad) == ["header", "x-operator"]
    assert good.status == 200
    assert len(session.feed_actions) == 1  # the refused one never reached the feed
    (entry,) = controller.audit.entries()
    assert "/alice.ops@" in entry["who"]
    lines = (tmp_path / "u1" / "control.log.jsonl").read_text().splitlines()
    assert all("X-Injected" not in line for line in lines)


# --- readiness: an action takes effect or is refused, and the audit says which ---------------
def test_actions_are_refused_until_the_session_runs_and_audited_as_refused(
    tmp_path: Path,
) -> None:
    session = FakeSession(running=False, feed_up=False, strategy_up=False)

    async def scenario(app: Any) -> list[Answer]:
        out = [await call(app, "POST", PARAMS, body={"params": {"size": 3}})]
        out.append(await call(app, "POST", "/halt"))
        session.feed_up = session.strategy_up = True  # the tree is up, the feed not yet
        out.append(await call(app, "POST", PARAMS, body={"params": {"size": 3}}))
        out.append(await call(app, "POST", "/strategies/mm/disable"))
        session.running = True
        out.append(await call(app, "POST", PARAMS, body={"params": {"size": 3}}))
        out.append(await call(app, "GET", "/strategies", token=READER))
        return out

    answers, controller = run(tmp_path, session, scenario)
    *early, done, strategies = answers
    assert [a.status for a in early] == [409, 409, 409, 409]
    assert all("not ready" in a.json()["detail"] for a in early)
    assert done.status == 200
    assert session.strategy_changes == [("params", {"params": {"size": 3 * 10**9}})]
    assert strategies.json()["strategies"]["mm"]["params"]["size"] == 3
    outcomes = [e["outcome"] for e in controller.audit.entries()]
    assert outcomes[:4] == ["refused: " + a.json()["detail"] for a in early]
    assert outcomes[4] == "done"


def test_strategies_show_what_the_actor_runs_not_a_copy(tmp_path: Path) -> None:
    session = FakeSession()

    async def scenario(app: Any) -> list[Answer]:
        await call(app, "POST", PARAMS, body={"params": {"size": 3}})
        await call(app, "POST", "/strategies/mm/disable")
        # the actor changes behind the control plane's back (a restart from an old journal)
        session.params["size"] = 7 * 10**9
        session.enabled = True
        await call(app, "POST", "/halt")  # any action refreshes the snapshot
        first = await call(app, "GET", "/strategies", token=READER)
        session.strategy_up = False
        await call(app, "POST", "/resume")
        return [first, await call(app, "GET", "/strategies", token=READER)]

    (running, gone), _ = run(tmp_path, session, scenario)
    mm = running.json()["strategies"]["mm"]
    assert mm["params"]["size"] == 7 and mm["params"]["max_inventory"] == 150
    assert mm["enabled"] is True
    gone_mm = gone.json()["strategies"]["mm"]
    assert gone_mm["params"] is None and gone_mm["enabled"] is None  # unknown, not stale


@pytest.mark.parametrize(("error", "status"), [(TimeoutError(), 503), (RuntimeError("x"), 500)])
def test_an_action_that_fails_is_audited_as_failed(
    tmp_path: Path, error: BaseException, status: int
) -> None:
    session = FakeSession()

    async def scenario(app: Any) -> Answer:
        session.fail_strategy = error
        return await call(app, "POST", "/strategies/mm/disable")

    answer, controller = run(tmp_path, session, scenario)
    assert answer.status == status
    (entry,) = controller.audit.entries()
    assert entry["outcome"] == f"failed: {type(error).__name__}"


def test_reads_of_an_absent_actor_are_503_naming_it(tmp_path: Path) -> None:
    async def scenario(app: Any) -> list[Answer]:  # the fake session has no risk, no gateway
        return [
            await call(app, "GET", "/orders?recent=999", token=READER),
            await call(app, "GET", "/fills?recent=999", token=READER),
        ]

    (orders, fills), _ = run(tmp_path, FakeSession(), scenario)
    assert orders.status == 503 and "risk actor is not running" in orders.json()["detail"]
    assert fills.status == 503 and "gateway actor is not running" in fills.json()["detail"]


def test_actions_after_the_feed_finished_are_refused_saying_so(tmp_path: Path) -> None:
    session = FakeSession(running=False, finished=True)

    async def scenario(app: Any) -> Answer:
        return await call(app, "POST", "/halt")

    answer, controller = run(tmp_path, session, scenario)
    assert answer.status == 409 and "has finished" in answer.json()["detail"]
    assert session.feed_actions == []
    assert controller.audit.entries()[0]["outcome"].startswith("refused: the session has finished")


def test_a_caller_hanging_up_cancels_neither_the_action_nor_its_audit(tmp_path: Path) -> None:
    session = FakeSession(strategy_delay_s=0.2)
    _, controller = make_app(tmp_path, session)

    async def scenario() -> None:
        request = asyncio.ensure_future(
            controller.act("disable", who="w", scope="operate", correlation_id="c1", target="mm")
        )
        await asyncio.sleep(0.05)
        request.cancel()  # what Serve does when the client disconnects
        with pytest.raises(asyncio.CancelledError):
            await request
        await asyncio.sleep(0.5)

    asyncio.run(scenario())
    assert session.enabled is False
    (entry,) = controller.audit.entries()
    assert (entry["action"], entry["outcome"], entry["correlation_id"]) == ("disable", "done", "c1")
