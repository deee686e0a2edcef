"""``tradewind rehearse [--dir DIR] [--address ADDR] [--json] [--timeout 120s]``: the runbook's
drills against a paper session on generated sample data (``actors.rehearsal``), then a table of
each drill's guard, result (PASS, FAIL, or N/A for a guard a session cannot trip: the
rehearsal trips every one), what fired and what the session did. No network, no store, no
data files: everything lives under ``--dir`` (default: a temporary folder, removed
afterwards). Exit 0 when no drill failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cli.paper import StopSignals, parse_duration

__all__ = ["exit_code", "register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rehearse", help="rehearse the runbook's drills on a paper session of sample data")
    parser.add_argument("--dir", help="keep the session's configs, journals and files here "
                                      "(default: a temporary folder, removed afterwards)")
    parser.add_argument("--address", help="join this Ray cluster instead of starting one")
    parser.add_argument("--timeout", default="120s",
                        help="how long each drill waits for the session (default 120s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_rehearse)


def _rehearse(args: argparse.Namespace) -> int:
    timeout_s = parse_duration(args.timeout)
    if args.dir:
        return _in(Path(args.dir).absolute(), args, timeout_s)
    folder = Path(tempfile.mkdtemp(prefix="tradewind-rehearsal-"))
    try:
        return _in(folder, args, timeout_s)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _in(folder: Path, args: argparse.Namespace, timeout_s: float) -> int:
    import ray

    from actors.config import load_paper_config
    from actors.drills import Drill, Drills, graceful_stop
    from actors.logs import init_ray
    from actors.rehearsal import SESSION_ID, write_workspace
    from actors.session import prepare_session, run_session

    config = load_paper_config(write_workspace(folder))
    prepared = prepare_session(config, session_id=SESSION_ID)
    stop = StopSignals()
    drills: list[Drill] = []
    with stop.installed():
        init_ray(args.address)
        stop.install()  # ray.init put its own SIGTERM handler in place
        runner = Drills(session_id=SESSION_ID, journal_dir=Path(prepared.setup.journal_dir),
                        kill_file=Path(str(config.kill_file)), timeout_s=timeout_s)

        sent = [0.0]

        def rehearse() -> None:
            try:
                runner.running()
                drills.extend(runner.run())
            except Exception as exc:  # the session never started: every drill failed
                drills.append(Drill("session start", "", False,
                                    f"{type(exc).__name__}: {exc}"))
            finally:  # the last drill: the stop a service manager sends
                sent[0] = time.monotonic()
                os.kill(os.getpid(), signal.SIGTERM)

        thread = threading.Thread(target=rehearse, name="rehearsal", daemon=True)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                thread.start()
                result = run_session(config, prepared=prepared,
                                     on_status=lambda _: stop.check())
        finally:
            runner.over.set()  # a drill still waiting gives up: the actors are gone
            thread.join()
            ray.shutdown()
    stopping = graceful_stop(result, stop.received, Path(config.output_dir))
    stopping.seconds = round(time.monotonic() - sent[0], 1)
    drills.append(stopping)
    _print(drills, as_json=args.json)
    return exit_code(drills)


def exit_code(drills: list[Any]) -> int:
    """1 when a drill failed; a guard the rehearsal cannot trip (N/A) is no failure."""
    return 1 if any(d.passed is False for d in drills) else 0


def _print(drills: list[Any], *, as_json: bool) -> None:
    """The table: drill, guard, result, seconds, then what fired and what the session did
    (indented under each row: they are sentences)."""
    failed = [d for d in drills if d.passed is False]
    if as_json:
        print(json.dumps({"passed": not failed, "drills": [d.as_dict() for d in drills]}))
        return
    name_w = max(len(d.name) for d in drills)
    guard_w = max(len(d.guard) for d in drills)
    print(f"{'drill':<{name_w}}  {'guard':<{guard_w}}  result  seconds")
    for d in drills:
        print(f"{d.name:<{name_w}}  {d.guard:<{guard_w}}  {d.result:<6}  {d.seconds:>7.1f}")
        print(f"    fired: {d.fired}")
        if d.did:
            print(f"    did:   {d.did}")
    skipped = sum(d.passed is None for d in drills)
    print(f"{sum(d.passed is True for d in drills)} passed, {len(failed)} failed, "
          f"{skipped} not rehearsable here")
