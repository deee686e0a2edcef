"""``tradewind paper --config configs/paper.yaml [--duration 60s] [--speed 10] [--lockstep]
[--json] [--address ADDR] [--no-dashboard] [--session-id ID]``: a supervised paper-trading session.

Starts a local Ray cluster (or joins ``--address``), the actor tree, a live status line, and
stops cleanly at the end of the data, of the duration, or on SIGTERM or SIGINT (systemd stop,
container stop, Ctrl-C): no new orders, open orders cancelled per config (``cancel_on_stop``),
journals and the recorder flushed, files under ``runs/<session_id>/``, exit 0. A second signal
while stopping gives up on the graceful stop (exit 130). The same ``--session-id`` resumes
from the journals. ``--json`` prints one object: session_id, orders, fills, pnl, restarts,
state_hash.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backtest.config import check_writable_dir
from cli.dashboard import add_dashboard_argument, dashboard_notice
from runtime.errors import ConfigError

if TYPE_CHECKING:
    from actors.config import PaperConfig

__all__ = ["add_session_arguments", "parse_duration", "register", "run_command"]

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``1h`` → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"expected a positive duration like 60s, 5m or 1h, got {text!r}",
                          field="--duration")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _speed(text: str) -> float | str:
    if text == "max":
        return "max"
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"expected a number or max, got {text!r}", field="--speed") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"must be a positive finite number or max, got {text!r}",
                          field="--speed")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("paper", help="paper trading: the supervised actor tree")
    add_session_arguments(parser)
    parser.set_defaults(func=_paper)


def add_session_arguments(parser: Any) -> None:
    """The arguments ``tradewind paper`` and ``tradewind live`` share."""
    parser.add_argument("--config", required=True, help="paper session YAML (configs/paper.yaml)")
    parser.add_argument("--duration", help="stop after this long (60s, 5m, 1h)")
    parser.add_argument("--speed", help="replay speed: data seconds per wall second, or max")
    parser.add_argument("--lockstep", action="store_true",
                        help="deterministic replay: fills equal the backtest's")
    parser.add_argument("--transport", choices=("auto", "sockets", "calls"),
                        help="how a step travels strategies -> risk -> gateway: "
                             "the node's UNIX sockets (one node; nothing polls), Ray calls "
                             "(across nodes), or auto (the default: sockets where they can)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--address", help="join this Ray cluster instead of starting one")
    add_dashboard_argument(parser)
    parser.add_argument("--session-id", help="resume (or name) a session; default: new")
    parser.add_argument("--accept-config-change", action="store_true",
                        help="resume a session with a config other than the one it was started "
                             "with (recorded in its session.json)")
    parser.add_argument("--broker", choices=("paper", "ib", "shioaji", "ccxt", "alpaca"),
                        help="the gateway's broker (default: the config's broker block, else "
                             "paper); see docs/brokers.md")
    parser.add_argument("--host", help="IB: TWS / IB Gateway host (default: the config's)")
    parser.add_argument("--port", type=int, help="IB: TWS / IB Gateway API port")
    parser.add_argument("--dry-run", action="store_true",
                        help="ccxt, alpaca: check the account, print it, refuse every order")


def _status_line(status: dict[str, Any]) -> str:
    feed, risk, sup = status["feed"], status["risk"], status["supervisor"]
    pnl = (risk["equity"] - risk["initial_cash"]) / 1e9
    return (f"\rpaper: {feed['cursor']:,}/{feed['total']:,} events "
            f"{feed['events_per_s']:,.0f}/s  orders {risk['orders']}  fills {risk['fills']}  "
            f"PnL {pnl:,.2f}  restarts {sup['restarts']}  {risk['state'].upper()} ")


class StopSignals:
    """SIGTERM and SIGINT ask the session to stop gracefully.

    The handler only records the request; :meth:`check` (called from the session's status
    callback, between two waits of the driver loop) turns it into the ``KeyboardInterrupt`` the
    session loop stops on — so a signal that lands while the actors are still starting is
    acted on once the session runs, never half-way through building it. A second signal
    raises at once: the operator insists."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: str | None = None

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt  # a second signal: stop waiting for the graceful stop
        self.received = signal.Signals(signum).name
        print(f"\n{self.received}: stopping the session (a second signal forces)",
              file=sys.stderr)

    def check(self) -> None:
        if self.received is not None:
            raise KeyboardInterrupt

    def install(self) -> None:
        """(Again:) ``ray.init`` puts its own SIGTERM handler (``sys.exit``) in place."""
        for s in self.SIGNALS:
            signal.signal(s, self._handle)

    @contextmanager
    def installed(self) -> Iterator[StopSignals]:
        before = {s: signal.getsignal(s) for s in self.SIGNALS}
        self.install()
        try:
            yield self
        finally:
            for s, handler in before.items():
                signal.signal(s, handler)


def _paper(args: argparse.Namespace) -> int:
    return run_command(args, command="paper")


def _broker_config(args: argparse.Namespace, command: str) -> Any:
    """The config with --broker/--host/--port applied and the paper/live rule checked."""
    from actors.config import check_broker_fit, load_paper_config
    from actors.venues.broker_config import check_mode, preflight, with_cli

    config = load_paper_config(args.config)
    broker = with_cli(config.broker, kind=args.broker, host=args.host, port=args.port,
                      dry_run=args.dry_run)
    if broker != config.broker:
        update: dict[str, Any] = {"broker": broker}
        if broker.kind != "paper" and config.feed.lockstep and not args.lockstep:
            update["feed"] = config.feed.model_copy(update={"lockstep": False})
        config = config.model_copy(update=update)
    check_mode(config.broker, command=command,  # type: ignore[arg-type]
               confirm_live=bool(getattr(args, "confirm_live", False)))
    if config.broker.kind != "paper":
        if args.lockstep:
            raise ConfigError("--lockstep replays against the paper broker only",
                              field="--lockstep")
        trading = config.trading_config()
        check_broker_fit(config, trading, args.config)
        report = preflight(config.broker, instruments={i.id: i.build() for i in
                                                       trading.instruments})
        if report:
            print(report, file=sys.stderr)
    return config


def run_command(args: argparse.Namespace, *, command: str) -> int:
    """``tradewind paper`` / ``tradewind live``: the same session; live only when confirmed.
    SIGTERM and SIGINT stop it gracefully from the first moment (:class:`StopSignals`)."""
    stop = StopSignals()
    with stop.installed():
        return _run(args, command=command, stop=stop)


def _run(args: argparse.Namespace, *, command: str, stop: StopSignals) -> int:
    duration = parse_duration(args.duration) if args.duration else None
    speed = _speed(args.speed) if args.speed else None
    config = _broker_config(args, command)
    check_writable_dir(Path(config.journal_dir), field="journal_dir", source=args.config)
    check_writable_dir(Path(config.output_dir), field="output_dir", source=args.config)
    if args.lockstep and speed not in (None, "max"):
        raise ConfigError("--lockstep replays as fast as it goes; drop --speed", field="--speed")
    from actors.session import prepare_session

    prepared = prepare_session(config, session_id=args.session_id,
                               lockstep=True if args.lockstep else None, speed=speed,
                               transport=args.transport,
                               accept_config_change=args.accept_config_change)
    if not args.json:
        claim = prepared.claim
        what = (f"resuming (resume {claim.record['resumes']}, first started "
                f"{claim.record['created_at']})" if claim.resumed else "new")
        print(f"{command} session {claim.session_id}: {what}; journals in "
              f"{os.path.relpath(prepared.setup.journal_dir)}", file=sys.stderr)
    import ray

    from actors.logs import init_ray

    started = not ray.is_initialized()
    if started:  # the hook gives every actor of the session JSON logs (actors.logs)
        try:
            init_ray(args.address, dashboard=dashboard_notice(args))
        except SystemExit as exc:  # Ray's own SIGTERM handler, there while ray.init runs
            if exc.code != signal.SIGTERM:
                raise
            ray.shutdown()
            prepared.claim.release()
            print(f"{command} session {prepared.claim.session_id}: stopped by SIGTERM before "
                  "it started; nothing traded", file=sys.stderr)
            return 0
        stop.install()
    tty = sys.stderr.isatty() and not args.json

    def on_status(status: dict[str, Any]) -> None:
        stop.check()
        if tty:
            sys.stderr.write(_status_line(status))

    # --json: stdout carries the one JSON answer; whatever Ray's driver prints meanwhile (its
    # error channel writes to stdout) goes to stderr with the rest of the diagnostics.
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    try:
        with quiet:
            result = _run_session(config, private=started and not args.address,
                                  prepared=prepared, duration_s=duration,
                                  confirmed_live=command == "live", on_status=on_status)
    finally:
        if started:
            ray.shutdown()
    if tty:
        sys.stderr.write("\n")
    _print(result, as_json=args.json, command=command, broker=config.broker.kind,
           stopped_by=stop.received)
    return 0 if not result["feed"]["error"] else 1


def _run_session(config: PaperConfig, *, private: bool, **kwargs: Any) -> dict[str, Any]:
    """The session's tree with its control API (:func:`serve.deploy.run_session`), or without
    one when the control plane is not installed. In a private Ray session Serve goes down with
    Ray (``ray.shutdown``): ``serve.shutdown`` first would only make Ray print that the Serve
    controller's last task was killed."""
    try:
        from serve.deploy import run_session
    except ModuleNotFoundError as exc:
        if exc.name != "serve.deploy":
            raise
        from actors.session import run_session as plain  # no control plane installed

        return plain(config, **kwargs)
    return run_session(config, shutdown_serve=not private, **kwargs)


def _print(result: dict[str, Any], *, as_json: bool, command: str = "paper",
           broker: str = "paper", stopped_by: str | None = None) -> None:
    if as_json:
        print(json.dumps({k: result[k] for k in (
            "session_id", "orders", "fills", "pnl", "restarts", "state_hash")}
            | {"trading_state": result["trading_state"], "events": result["feed"]["events"],
               "resumed": result["resumed"], "stopped_by": stopped_by,
               "broker": broker, "mode": command, "broker_fills": result["broker_fills"],
               "positions_match": result["positions_match"]}))
        return
    feed = result["feed"]
    print(f"{command} session ({broker}) {result['session_id']}: {feed['events']:,} events, "
          f"{result['orders']} orders, {result['fills']} fills, PnL {result['pnl']:,.2f}, "
          f"restarts {result['restarts']}, trading {result['trading_state']}")
    if feed["error"]:
        print(f"  feed stopped on an error: {feed['error']}")
    if stopped_by:
        print(f"  stopped by {stopped_by}: resume with --session-id {result['session_id']}")
    print(f"  state hash {result['state_hash']}")
    print(f"  files: {os.path.relpath(result['output_dir'])}/{result['session_id']}/ "
          "(orders.csv, fills.csv, positions.csv, account.csv, session.md)")
