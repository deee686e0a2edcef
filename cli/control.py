"""``tradewind status|halt|resume|flatten|kill|reduce-only|params|strategies``: talk to a running
session's control API.

Where: ``--url``, else ``TRADEWIND_API_URL``, else the pointer file the session writes
(``<journal_dir>/control.json``, journal_dir from ``--config``, default ``configs/paper.yaml``),
else ``http://127.0.0.1:8000``. Token: ``TRADEWIND_API_TOKEN``, else ``--token-file`` /
the session's generated token file (the operator token). ``--json`` prints the API's answer.
A ``--config`` that does not exist, or that no session has run from, is named in the error.

``status`` of a session still starting (its risk actor has not answered yet) waits up to
``--wait`` seconds (default 10) for a first full answer; if none comes it says ``starting``,
names what has not answered, and exits 3.

    tradewind status
    tradewind halt --reason "news"
    tradewind params mm size=5 half_spread_ticks=2
    tradewind strategies --disable mm
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runtime.errors import ConfigError, TradewindError

__all__ = ["register"]

_DEFAULT_URL = "http://127.0.0.1:8000"
_DEFAULT_CONFIG = "configs/paper.yaml"
STARTING = 3
"""``status``'s exit code when the session has not given a full answer yet."""
_ACTIONS = {
    "halt": "halt trading (new orders denied)",
    "resume": "resume trading",
    "flatten": "disable strategies, close-only, cancel orders, close every position",
    "kill": "halt and cancel every open order",
    "reduce-only": "close-only: orders that add to a position are denied",
}


class ControlError(TradewindError):
    """The control API refused or could not be reached."""


def register(subparsers: Any) -> None:
    status = subparsers.add_parser("status", help="a running session: state, actors, PnL")
    _common(status)
    status.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="while the session is starting, wait this long for a full answer (default 10); "
        "exit 3 if none came",
    )
    status.set_defaults(func=_status)
    for action, text in _ACTIONS.items():
        parser = subparsers.add_parser(action, help=f"a running session: {text}")
        _common(parser)
        parser.add_argument("--reason", help="why (kept in the audit trail)")
        parser.set_defaults(func=_action, action=action)
    params = subparsers.add_parser("params", help="change a running strategy's params")
    _common(params)
    params.add_argument("strategy", help="strategy id")
    params.add_argument(
        "assignments",
        nargs="+",
        metavar="NAME=VALUE",
        help="params to change (VALUE parsed as JSON when it can be)",
    )
    params.set_defaults(func=_params)
    strategies = subparsers.add_parser("strategies", help="list, enable or disable strategies")
    _common(strategies)
    group = strategies.add_mutually_exclusive_group()
    group.add_argument("--enable", metavar="ID")
    group.add_argument("--disable", metavar="ID")
    strategies.set_defaults(func=_strategies)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help=f"control API URL (default: session pointer, {_DEFAULT_URL})")
    parser.add_argument(
        "--config",
        help=f"the session's paper config: finds its URL and token file "
        f"(default {_DEFAULT_CONFIG})",
    )
    parser.add_argument("--token-file", help="token file (default: the session's)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")


def _pointer(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The session pointer found through ``--config`` (URL, token file) and, when it gives no
    token file, what was looked for (for the error that names it)."""
    path = Path(args.config or _DEFAULT_CONFIG)
    if not path.is_file():
        if args.config is not None:
            raise ConfigError(f"no such config file: {path} (the paper config the session was "
                              "started with)", field="--config")  # fmt: skip
        return {}, f"no {_DEFAULT_CONFIG} here ({Path.cwd()}) to find the session by: pass --config"
    from actors.config import load_paper_config

    config = load_paper_config(path)  # a bad config is named as such, not as a missing token
    pointer = Path(config.journal_dir) / "control.json"
    if not pointer.is_absolute():
        pointer = Path.cwd() / pointer
    if not pointer.is_file():
        return {"url": config.control.url()}, (
            f"no session has run from {path} here: {pointer} does not exist (start one with "
            f"`tradewind paper --config {path}`, or run this from the folder it ran in)"
        )
    try:
        found = json.loads(pointer.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the session pointer: {exc}", path=str(pointer)) from None
    found.setdefault("url", config.control.url())
    return dict(found), "the session pointer names no token file"


def _target(args: argparse.Namespace) -> tuple[str, str]:
    pointer, looked = (
        _pointer(args) if not (args.url or os.environ.get("TRADEWIND_API_URL")) else ({}, "")
    )
    url = args.url or os.environ.get("TRADEWIND_API_URL") or pointer.get("url") or _DEFAULT_URL
    _check_url(url, "--url" if args.url else "TRADEWIND_API_URL")
    token = os.environ.get("TRADEWIND_API_TOKEN", "")
    token_file = args.token_file or pointer.get("token_file")
    if not token and token_file:
        try:
            token = json.loads(Path(token_file).read_text())["operator"]
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(
                f"cannot read the operator token: {exc}", path=str(token_file)
            ) from None
    if not token:
        raise ConfigError(
            "no token: set TRADEWIND_API_TOKEN or pass --token-file"
            + (f"; {looked}" if looked else ""),
            field="--token-file",
        )
    return url.rstrip("/"), token


def _check_url(url: str, field: str) -> None:
    """An http(s) URL with a host, e.g. http://127.0.0.1:8000; a ConfigError otherwise."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{url!r} is not a control API URL: expected http(s)://host:port, "
                          f"e.g. {_DEFAULT_URL}", field=field)


def operator_name(user: str) -> str:
    """``$USER`` as an ``X-Operator`` the API takes (:mod:`serve.ids`: 1-64 of
    ``A-Z a-z 0-9 . _ : -``): other characters become ``_``; ``cli`` when empty."""
    return re.sub(r"[^A-Za-z0-9._:-]", "_", user)[:64] or "cli"


def request(
    url: str, token: str, path: str, *, method: str = "GET", body: dict[str, Any] | None = None
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{url}{path}",
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "X-Operator": operator_name(os.environ.get("USER", "")),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=90) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise ControlError(f"{method} {path}: HTTP {exc.code}: {_detail(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ControlError(f"cannot reach the control API at {url}: {exc}") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(exc.read()).get("detail")
    except ValueError:
        return exc.reason if isinstance(exc.reason, str) else "error"
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail
        )
    return str(detail)


def _table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def not_answering(status: dict[str, Any]) -> list[str]:
    """What a ``/status`` answer lacks while its session starts: ``risk`` (trading state, orders,
    fills, PnL all come from it); empty once it has answered."""
    pnl = (status.get("pnl") or {}).get("pnl")
    if status.get("orders") is None or pnl is None or status.get("trading_state") in (
        None, "unknown"
    ):  # fmt: skip
        return ["risk (trading state, orders, fills, PnL)"]
    return []


def _status(args: argparse.Namespace) -> int:
    if not (args.wait >= 0 and args.wait < float("inf")):
        raise ConfigError(f"expected a number of seconds >= 0, got {args.wait}", field="--wait")
    url, token = _target(args)
    deadline = time.monotonic() + args.wait
    status = request(url, token, "/status")
    while not_answering(status) and time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        status = request(url, token, "/status")
    missing = not_answering(status)
    if args.json:
        print(json.dumps(status))
        return STARTING if missing else 0
    actors = _table(
        [[n, a["health"], a["restarts"]] for n, a in status["actors"].items()],
        ["actor", "health", "restarts"],
    )
    head = f"session {status['session_id']} ({status['mode']})"
    if missing:
        print(f"{head}: starting — not answering yet: {', '.join(missing)} "
              f"(waited {args.wait:g} s; run status again)\n")  # fmt: skip
        print(actors)
        return STARTING
    pnl = status["pnl"]["pnl"]
    feed = status["feed"]
    print(
        f"{head}: trading {status['trading_state'].upper()}"
        + (f" — {status['state_reason']}" if status.get("state_reason") else "")
    )
    print(
        f"orders {status['orders']} (open {status['open_orders']}), fills {status['fills']}, "
        f"PnL {pnl:,.2f}, restarts {status['restarts']}"
    )
    if feed.get("cursor") is None:
        print("feed not answering\n")
    else:
        print(
            f"feed {feed['cursor']}"
            + ("" if feed.get("total") is None else f"/{feed['total']}")
            + " events"
            + (" finished" if feed["finished"] else "")
            + f", lag {feed['lag_s']:.1f} s\n"
        )
    print(actors)
    return 0


def _action(args: argparse.Namespace) -> int:
    url, token = _target(args)
    body = {"reason": args.reason} if args.reason else None
    out = request(url, token, f"/{args.action}", method="POST", body=body)
    print(json.dumps(out) if args.json else f"{args.action}: done (audit {out['audit_id']})")
    return 0


def _params(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    for item in args.assignments:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"expected NAME=VALUE, got {item!r}", field="params")
        try:
            changes[name] = json.loads(value)
        except ValueError:
            changes[name] = value
    url, token = _target(args)
    out = request(
        url, token, f"/strategies/{args.strategy}/params", method="POST", body={"params": changes}
    )
    print(
        json.dumps(out)
        if args.json
        else f"params of {args.strategy}: {changes} applied (audit {out['audit_id']})"
    )
    return 0


def _strategies(args: argparse.Namespace) -> int:
    url, token = _target(args)
    if args.enable or args.disable:
        sid, action = (args.enable, "enable") if args.enable else (args.disable, "disable")
        out = request(url, token, f"/strategies/{sid}/{action}", method="POST")
        print(json.dumps(out) if args.json else f"{action} {sid}: done (audit {out['audit_id']})")
        return 0
    out = request(url, token, "/strategies")
    if args.json:
        print(json.dumps(out))
        return 0
    rows = [
        [
            sid,
            "?" if s["enabled"] is None else "yes" if s["enabled"] else "no",
            s["class"],
            "(its actor does not answer)" if s["params"] is None
            else ", ".join(f"{k}={v}" for k, v in sorted(s["params"].items())),
        ]
        for sid, s in out["strategies"].items()
    ]
    print(_table(rows, ["strategy", "enabled", "class", "params"]))
    return 0
