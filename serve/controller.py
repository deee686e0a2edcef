"""The control plane's view of one session, and its actions, in the API's process.

A background task reads the actors every ``refresh_s`` (status, risk summary, limits and
positions, supervisor, reconciler, recorder, books, strategies, pings, the feed's latency probe)
into one snapshot: ``/status``, ``/health``, ``/pnl``, ``/risk``, ``/positions``,
``/strategies`` and ``/metrics`` answer from it, so polling the API never adds calls to the
trading actors. ``/orders`` and ``/fills`` ask the risk actor (open and latest orders only) and
the gateway at most once per ``refresh_s`` per distinct query, however often they are polled
(one call in flight, shared by every request waiting for it). Actions go through the feed actor
(between two driver steps, with the request's correlation id) or a strategy actor, are audited,
and refresh the snapshot.

An action takes effect or is refused, and the audit says which: it is refused (409) until the
session is ready to take it — the feed actor exists and reports ``running`` (the API answers
seconds before the tree has started) — and after the feed finished; every action that reaches
:meth:`Controller.act` is audited with its outcome (``done``, ``refused: …``, ``failed: …``),
even when the caller hangs up meanwhile. The control plane keeps no copy of what the actors
hold: ``/strategies`` shows the params and enabled flag each strategy actor reports, and a
params change is checked against the params the strategy actor runs now. Each action becomes a
typed operator command in the actor that takes it (``actors.operator``), journaled and handled
by its kernel like any input, so a restarted actor comes back with it by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.control_config import ControlConfig
from actors.logs import Redactor, json_logger
from runtime.errors import TradewindError
from serve.audit import Audit
from serve.auth import TokenHashes
from serve.metrics import RayGauges, samples
from serve.views import (
    events_in,
    fill_view,
    human_params,
    order_view,
    out_of_range,
    pnl_view,
    position_view,
    restarts,
)

__all__ = ["ActionError", "Controller", "ParamsInvalid", "SessionInfo"]

_CALL_TIMEOUT_S = 5.0
_ACTION_TIMEOUT_S = 60.0
_ABSENT_RECHECK_S = 1.0  # an actor not found is looked up again after this long: the
# supervisor starts its children one by one, so a starting session's feed appears seconds later


class ActionError(Exception):
    """An action that cannot be carried out now (the API answers 409 or 404)."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class ParamsInvalid(Exception):
    """Params refused by the strategy's params model: ``errors`` as pydantic reports them."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("invalid params")
        self.errors = errors


@dataclass(frozen=True)
class SessionInfo:
    """What the control plane knows of its session (no secrets: tokens travel as digests)."""

    session_id: str
    namespace: str | None
    journal_dir: str
    strategies: dict[str, str]  # id -> class (module:Class)
    instruments: tuple[str, ...]
    control: ControlConfig
    token_hashes: TokenHashes
    mode: str = "paper"
    currency: str = "USD"
    extra_secrets: tuple[str, ...] = field(default=())
    #: sha256 of the starting process's secret environment values (``env_secret_digests``)
    secret_hashes: tuple[str, ...] = field(default=())
    #: where the strategy modules are found beside the installed ones (the trading config's
    #: folder, then its ``strategy_paths``)
    strategy_search: tuple[str, ...] = field(default=())


#: finds the session's actor ``tw.<session>.<name>`` (None when it does not exist)
Lookup = Callable[[str], Any]


class Controller:
    def __init__(self, info: SessionInfo, lookup: Lookup | None = None) -> None:
        self.info = info
        self._lookup = lookup or self._ray_lookup
        self.redactor = Redactor(
            info.extra_secrets,
            hashes=(info.token_hashes.operator, info.token_hashes.read, *info.secret_hashes),
        )
        journal = Path(info.journal_dir)
        self.log = json_logger(
            f"tradewind.control.{info.session_id}",
            session_id=info.session_id,
            redactor=self.redactor,
            path=journal / "control.log.jsonl",
        )
        self.audit = Audit(info.session_id, journal / "control.journal", self.redactor, self.log)
        self.snapshot: dict[str, Any] = {}
        self.rendered: dict[str, tuple[Any, bytes]] = {}  # route -> (snapshot ts, body)
        self._handles: dict[str, Any] = {}
        self._absent: dict[str, float] = {}  # name -> when it was last looked up in vain
        self._reads: dict[tuple[Any, ...], tuple[float, asyncio.Future[Any]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._progress = (-1, time.monotonic())
        self._gauges: RayGauges | None = None
        self.started_s = time.time()

    # --- actors ------------------------------------------------------------------------------
    def actor(self, name: str, *, fresh: bool = False) -> Any:
        """The session's actor ``tw.<session>.<name>``, or None when it does not exist (a
        miss is remembered for ``_ABSENT_RECHECK_S``: ``ray.get_actor`` blocks on the GCS;
        ``fresh``, for actions, looks again anyway)."""
        handle = self._handles.get(name)
        if handle is None:
            recent = time.monotonic() - self._absent.get(name, -_ABSENT_RECHECK_S)
            if recent < _ABSENT_RECHECK_S and not fresh:
                return None
            handle = self._lookup(name)
            if handle is None:
                self._absent[name] = time.monotonic()
                return None
            self._absent.pop(name, None)
            self._handles[name] = handle
        return handle

    def _ray_lookup(self, name: str) -> Any:
        import ray

        try:
            return ray.get_actor(f"tw.{self.info.session_id}.{name}", namespace=self.info.namespace)
        except ValueError:
            return None

    def actor_names(self) -> list[str]:
        names = [
            "risk",
            "gateway",
            *(f"strategy.{s}" for s in self.info.strategies),
            *(f"book.{i}" for i in self.info.instruments),
            "store",
            "recorder",
            "reconciler",
            "feed",
            "supervisor",
        ]
        return [n for n in names if self.actor(n) is not None]

    async def call(
        self, name: str, method: str, *args: Any, timeout_s: float = _CALL_TIMEOUT_S
    ) -> Any:
        handle = self.actor(name)
        if handle is None:
            raise ActionError(f"the session's {name} actor is not running", status=503)
        from ray.exceptions import RayActorError

        ref = getattr(handle, method).options(max_task_retries=0).remote(*args)
        try:
            return await asyncio.wait_for(ref, timeout_s)
        except RayActorError:  # the actor died: its supervisor starts another under the name,
            self._handles.pop(name, None)  # looked up again by the next call
            raise

    async def _try(self, name: str, method: str, *args: Any) -> Any:
        from ray.exceptions import RayError

        try:
            return await self.call(name, method, *args)
        except (RayError, TimeoutError, AttributeError, ValueError, ActionError):
            return None

    # --- the snapshot ------------------------------------------------------------------------
    def ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                self.log.exception("control plane refresh failed")
            await asyncio.sleep(self.info.control.refresh_s)

    async def refresh(self) -> dict[str, Any]:
        names = self.actor_names()
        pings = await asyncio.gather(*(self._try(n, "ping") for n in names))
        feed, risk_status, sup, telemetry, recon, recorder = await asyncio.gather(
            self._try("feed", "status"),
            self._try("risk", "operate", "status", {}),
            self._try("supervisor", "status"),
            self._try("feed", "operate", "telemetry", {}),
            self._try("reconciler", "status"),
            self._try("recorder", "stats"),
        )
        books = await asyncio.gather(
            *(self._try(f"book.{i}", "stats") for i in self.info.instruments)
        )
        strategies = await self._strategies()
        risk = (risk_status or {}).get("summary")
        snap: dict[str, Any] = {
            "ts": time.time(),
            "feed": feed,
            "risk": risk,
            "risk_view": (risk_status or {}).get("view"),
            "positions": (risk_status or {}).get("positions"),
            "supervisor": sup,
            "telemetry": telemetry,
            "reconciler": recon,
            "recorder": recorder,
            "strategies": strategies,
            "actors": {n: {"up": p is not None} for n, p in zip(names, pings, strict=True)},
            "pnl": pnl_view(risk) if risk else None,
        }
        snap["events_in"] = events_in(feed, risk, books, self.info.instruments)
        snap["restarts"] = restarts(sup, names)
        snap["feed_lag_s"] = self._feed_lag(feed)
        self.snapshot = snap
        self._export(snap)
        return snap

    def _feed_lag(self, feed: dict[str, Any] | None) -> float:
        now = time.monotonic()
        if not feed or not feed.get("running") or feed.get("paused"):
            self._progress = (-1, now)
            return 0.0
        if feed["cursor"] != self._progress[0]:
            self._progress = (feed["cursor"], now)
        return now - self._progress[1]

    def _export(self, snap: dict[str, Any]) -> None:
        try:
            if self._gauges is None:
                self._gauges = RayGauges(self.info.session_id)
            self._gauges.update(samples(snap))
        except Exception:
            self.log.exception("Ray metrics export failed")

    async def _strategies(self) -> dict[str, Any]:
        sids = list(self.info.strategies)
        answers = await asyncio.gather(
            *(self._try(f"strategy.{sid}", "operate", "params", {}) for sid in sids)
        )
        return dict(zip(sids, answers, strict=True))

    def strategies_view(self) -> dict[str, Any]:
        """``/strategies``: what each strategy actor reported at the latest snapshot (params
        in human units); ``params`` and ``enabled`` are null while it does not answer."""
        live = self.snapshot.get("strategies") or {}
        out = {}
        for sid, cls in self.info.strategies.items():
            answer = live.get(sid) or {}
            params = answer.get("params")
            out[sid] = {
                "class": cls,
                "params": None if params is None else human_params(self._params_type(sid), params),
                "enabled": answer.get("enabled"),
            }
        return {"strategies": out}

    def _params_type(self, sid: str) -> Any:
        from backtest.config import load_strategy_class

        return load_strategy_class(self.info.strategies[sid],
                                   search=tuple(map(Path, self.info.strategy_search))).params_type

    # --- reads that ask the actors, at most once per refresh_s ----------------------------
    async def _read(self, key: tuple[Any, ...], fetch: Any) -> Any:
        """``await fetch()``, shared: a result younger than ``refresh_s`` (or a call in
        flight) answers every request with the same ``key``."""
        now = time.monotonic()
        hit = self._reads.get(key)
        if (
            hit is None
            or now - hit[0] > self.info.control.refresh_s
            or (hit[1].done() and hit[1].exception() is not None)
        ):
            if len(self._reads) > 64:  # ?recent=N: bounded
                self._reads.clear()
            hit = self._reads[key] = (now, asyncio.ensure_future(fetch()))
        return await asyncio.shield(hit[1])

    async def orders(self, recent: int) -> dict[str, Any]:
        async def fetch() -> dict[str, Any]:
            out = await self.call("risk", "operate", "orders", {"recent": recent})
            return {
                "open": [order_view(o) for o in sorted(out["open"], key=lambda o: o["ts_last"])],
                "recent": [order_view(o) for o in out["recent"]],
                "total": out["total"],
            }

        result: dict[str, Any] = await self._read(("orders", recent), fetch)
        return result

    async def fills(self, recent: int) -> dict[str, Any]:
        async def fetch() -> dict[str, Any]:
            fills = await self.call("gateway", "fills")
            return {"fills": [fill_view(f) for f in fills[-recent:]][::-1], "total": len(fills)}

        result: dict[str, Any] = await self._read(("fills", recent), fetch)
        return result

    def positions(self) -> dict[str, Any]:
        return {
            "positions": [
                position_view(p) for p in self.snapshot.get("positions") or () if p["quantity"]
            ],
            "currency": self.info.currency,
        }

    # --- actions -----------------------------------------------------------------------------
    async def act(
        self,
        action: str,
        *,
        who: str,
        scope: str,
        correlation_id: str,
        target: str = "session",
        args: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Carry out ``action`` and audit what happened; shielded: a caller who hangs up does
        not cancel an action half-way, nor its audit record."""
        task = asyncio.ensure_future(
            self._act(action, who, scope, correlation_id, target, self.redactor.value(args or {}))
        )
        return await asyncio.shield(task)

    async def _act(
        self, action: str, who: str, scope: str, cid: str, target: str, args: dict[str, Any]
    ) -> dict[str, Any]:
        if self.audit.store is None:
            self.audit.store = self.actor("store")  # the session records: audit rows too
        try:
            result = await self._carry_out(action, target, args, who, cid)
        except BaseException as exc:
            outcome = _outcome(exc)
            await self.audit.record(
                who=who,
                scope=scope,
                action=action,
                target=target,
                args=args,
                outcome=outcome,
                correlation_id=cid,
            )
            if outcome.startswith("failed"):
                self.log.warning("action %s %s %s", action, target, outcome)
            raise
        entry = await self.audit.record(
            who=who,
            scope=scope,
            action=action,
            target=target,
            args=args,
            outcome="done",
            correlation_id=cid,
        )
        self._reads.clear()  # the next /orders, /fills see the action's effect
        with contextlib.suppress(Exception):
            await self.refresh()
        return {"action": action, "target": target, "result": result, "audit_id": entry["audit_id"]}

    async def _carry_out(
        self, action: str, target: str, args: dict[str, Any], who: str, cid: str
    ) -> Any:
        if action not in _ACTIONS:
            raise ActionError(f"unknown action {action!r}", status=404)
        if target != "session" and target not in self.info.strategies:
            raise ActionError(f"no strategy {target!r}", status=404)
        await self._ready()
        reason = f"operator {who}: {action}" + (
            f" ({args['reason']})" if args.get("reason") else ""
        )
        tag = {"correlation_id": cid}  # the feed actor logs the action under the request's id
        if action in ("halt", "resume", "reduce-only"):
            state = {"halt": "halted", "resume": "active", "reduce-only": "reducing"}[action]
            return await self._feed("set_state", {"state": state, "reason": reason} | tag)
        if action == "kill":
            return await self._feed(action, {"reason": reason} | tag)
        if action == "flatten":  # strategies off first: their orders would hold the close
            for sid in self.info.strategies:
                await self._strategy(sid, "enable", {"enabled": False})
            await self._feed("flatten", {"reason": reason} | tag)
            return await self._close_positions(tag) | {"disabled": list(self.info.strategies)}
        if action == "params":
            internal = await self.checked_params(target, args["params"])
            return await self._strategy(target, "params", {"params": internal})
        return await self._strategy(target, "enable", {"enabled": action == "enable"})

    async def _ready(self) -> None:
        """Refuse (409) until the session can take an action: its feed actor exists and its
        loop runs (``FeedActor.status()["running"]``), which is when every actor of the tree
        is up; and after the feed finished (nothing left to act on)."""
        if self.actor("feed", fresh=True) is None:
            raise ActionError(
                "the session is not ready to take actions yet (its actors are starting): "
                "try again in a few seconds"
            )
        status = await self.call("feed", "status")
        if status.get("running"):
            return
        if status.get("finished"):
            raise ActionError("the session has finished: its feed is no longer running")
        if status.get("error"):
            raise ActionError(f"the session's feed stopped: {status['error']}")
        raise ActionError(
            "the session is not ready to take actions yet (its feed is starting): "
            "try again in a few seconds"
        )

    async def _close_positions(self, tag: dict[str, str]) -> dict[str, Any]:
        """Close-out orders until flat (cancels must be confirmed first), or the timeout."""
        deadline = time.monotonic() + self.info.control.flatten_timeout_s
        sent: list[str] = []
        denied: list[str] = []
        while True:
            out = await self._feed("close_positions", dict(tag))
            sent += out["sent"]
            denied = (denied + out["denied"])[-5:]
            if out["flat"] or time.monotonic() > deadline:
                return {"flat": out["flat"], "state": "reducing", "orders": sent, "denied": denied}
            await asyncio.sleep(0.2)

    async def _feed(self, name: str, args: dict[str, Any]) -> Any:
        return await self.call("feed", "operate", name, args, timeout_s=_ACTION_TIMEOUT_S)

    async def checked_params(self, sid: str, changes: dict[str, Any]) -> dict[str, Any]:
        """``changes`` (human units) checked against the strategy's params model over the params
        its actor runs now; the changed fields in internal units, each finite and representable
        (a 64-bit integer where the model holds an int). :class:`ParamsInvalid` if not."""
        from pydantic import ValidationError

        params_type = self._params_type(sid)
        unknown = sorted(set(changes) - set(params_type.model_fields))
        if unknown:
            raise ParamsInvalid(
                [_error(k, msg="unknown parameter", kind="extra_forbidden") for k in unknown]
            )
        running = await self._strategy(sid, "params", {})
        current = human_params(params_type, running["params"])
        try:
            model = params_type.model_validate({**current, **changes})
        except ValidationError as exc:
            raise ParamsInvalid(
                [_error(*e["loc"], msg=e["msg"], kind=e["type"]) for e in exc.errors()]
            ) from None
        except (TradewindError, ArithmeticError):  # a converter refused (not a ValueError)
            raise ParamsInvalid(_unconvertible(params_type, current, changes)) from None
        internal = {k: getattr(model, k) for k in changes}
        bad = [k for k, v in internal.items() if out_of_range(v)]
        if bad:
            raise ParamsInvalid([_error(k, msg=_RANGE, kind="out_of_range") for k in bad])
        return internal

    async def _strategy(self, sid: str, name: str, args: dict[str, Any]) -> Any:
        if self.actor(f"strategy.{sid}", fresh=True) is None:
            raise ActionError(f"strategy {sid!r} is not running (its actor is not up)")
        return await self.call(
            f"strategy.{sid}", "operate", name, args, timeout_s=_ACTION_TIMEOUT_S
        )


_ACTIONS = ("halt", "resume", "reduce-only", "kill", "flatten", "params", "enable", "disable")
_RANGE = "Value is out of range (it must fit a 64-bit integer in the strategy's units)"


def _error(*loc: Any, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["params", *loc], "msg": msg, "type": kind}


def _unconvertible(
    params_type: Any, current: dict[str, Any], changes: dict[str, Any]
) -> list[dict[str, Any]]:
    """The changed fields a converter refused outright (``Qty``: more than nine decimals,
    not a number), found one at a time."""
    from pydantic import ValidationError

    errors = []
    for key, value in changes.items():
        try:
            params_type.model_validate({**current, key: value})
        except ValidationError:
            continue
        except (TradewindError, ArithmeticError) as exc:
            errors.append(_error(key, msg=f"Value error, {exc}", kind="value_error"))
    return errors or [_error(msg="cannot be converted", kind="value_error")]


def _outcome(exc: BaseException) -> str:
    """What the audit records of an action that did not complete."""
    if isinstance(exc, ActionError):
        return f"{'failed' if exc.status >= 500 else 'refused'}: {exc}"
    if isinstance(exc, ParamsInvalid):
        fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors)
        return f"refused: invalid {fields}"
    return f"failed: {type(exc).__name__}"
