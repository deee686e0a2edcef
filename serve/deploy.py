"""Start and stop a session's control plane on Ray Serve.

::

    control = start_control(config, session_id)      # after ray.init, before or after the tree
    ...                                               # http://127.0.0.1:8000/ (config.control)
    stop_control(control)

One Serve application per session (``tradewind-<session>``, route prefix ``/``), one replica
holding no CPU (``num_cpus=0``: DESIGN, Ray pitfalls), HTTP on ``control.host:control.port``
(loopback by default), the gRPC proxy moved off 9000 (ClickHouse's port). The replica finds the
session's actors by name in the driver's namespace. Tokens: see :mod:`serve.auth`; the replica
holds their sha256 digests only. :func:`run_session` is :func:`actors.session.run_session` with
the control plane around it (``tradewind paper`` uses it).
"""

from __future__ import annotations

import errno
import json
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.config import PaperConfig
from actors.control_config import ControlConfig
from actors.logs import env_secret_digests
from serve.auth import Tokens, load_or_create_tokens
from serve.controller import SessionInfo

__all__ = [
    "ControlHandle",
    "ControlNotStarted",
    "check_ports",
    "run_session",
    "session_info",
    "start_control",
    "stop_control",
]

_READY_TIMEOUT_S = 60.0

#: Serve's own per-request machinery, made cheaper (Ray's "throughput optimized" settings,
#: ``ray/serve/_private/constants.py``, without direct ingress, which binds ports of its own):
#: the proxy hands each request to the replica over gRPC (the replica's inter-deployment gRPC
#: server, which Serve starts in every replica anyway) instead of a Ray actor call with a
#: streaming generator — measured here ≈ 35 % less CPU per request in proxy and replica; the
#: replica runs the app on its main event loop and the proxy its router on its own (no
#: cross-thread hand-off per request); Serve's logs go to its files only. And the proxy puts
#: :class:`serve.ids.RequestIdGuard` in front of its own ``X-Request-ID`` echo. Set in the
#: Serve controller's environment (the proxy inherits it) and in the replica's.
SERVE_ENV = {
    "RAY_SERVE_PROXY_USE_GRPC": "1",
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    "RAY_SERVE_LOG_TO_STDERR": "0",
    "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "serve.ids.proxy_middlewares",
}


class ControlNotStarted(RuntimeError):
    """The control API could not start; the message is one line saying why and what to do."""


@dataclass(frozen=True)
class ControlHandle:
    app_name: str
    url: str
    token_file: Path
    tokens: Tokens
    pointer: Path


def session_info(config: PaperConfig, session_id: str, tokens: Tokens) -> SessionInfo:
    import ray

    trading = config.trading_config()
    journal_dir = Path(config.journal_dir).absolute() / session_id
    return SessionInfo(
        session_id=session_id,
        namespace=ray.get_runtime_context().namespace,
        journal_dir=str(journal_dir),
        strategies={s.id: s.class_ for s in trading.strategies},
        instruments=tuple(i.id for i in trading.instruments),
        control=config.control,
        token_hashes=tokens.hashes(),
        currency=trading.currency,
        secret_hashes=env_secret_digests(),
        strategy_search=tuple(map(str, trading.strategy_search())),
    )


def _deployment(session_id: str, log_file: Path, *, max_bytes: int, backups: int) -> Any:
    from ray import serve

    from actors.logs import actor_runtime_env
    from serve.app import build_app
    from serve.controller import Controller

    runtime_env = actor_runtime_env(session_id, "control", log_file, max_bytes=max_bytes,
                                    backups=backups)
    runtime_env["env_vars"] |= SERVE_ENV

    @serve.deployment(
        ray_actor_options={"num_cpus": 0, "runtime_env": runtime_env},
        num_replicas=1,
        max_ongoing_requests=64,
        health_check_period_s=5,
    )
    @serve.ingress()
    class ControlApi:
        def __init__(self, info: SessionInfo) -> None:
            self.controller = Controller(info)

        def __serve_build_asgi_app__(self) -> Any:
            return build_app(self.controller)

    return ControlApi


def start_control(config: PaperConfig, session_id: str, *, quiet: bool = False) -> ControlHandle:
    """Deploy the control API for ``session_id`` and wait until it answers."""
    from ray import serve

    control = config.control
    journal_dir = Path(config.journal_dir).absolute()
    token_file = (
        Path(control.token_file)
        if control.token_file
        else (journal_dir / session_id / "api_tokens.json")
    )
    tokens = load_or_create_tokens(token_file.absolute())
    _start_serve(control)
    name = f"tradewind-{session_id}"
    log_file = journal_dir / session_id / "session.log.jsonl"
    serve.run(
        _deployment(session_id, log_file, max_bytes=config.logs.max_bytes,
                    backups=config.logs.backups)
        .options(logging_config=_logging(control))
        .bind(session_info(config, session_id, tokens)),
        name=name,
        route_prefix="/",
        blocking=False,
    )
    url = control.url()
    _wait_ready(url)
    if control.cpu_policy != "normal":
        _yield_cpu(name, idle=control.cpu_policy == "idle")
    pointer = journal_dir / "control.json"
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_text(
        json.dumps({"url": url, "session_id": session_id, "token_file": str(token_file.absolute())})
    )
    if not quiet:
        print(
            f"control API: {url}/  (token file: {token_file.absolute()}; status page: "
            f"{url}/#token=<operator token>)",
            file=sys.stderr,
        )
    return ControlHandle(
        app_name=name, url=url, token_file=token_file.absolute(), tokens=tokens, pointer=pointer
    )


def _logging(control: ControlConfig) -> dict[str, Any]:
    return {"enable_access_log": control.access_log, "encoding": "JSON"}


def check_ports(control: ControlConfig) -> None:
    """:class:`ControlNotStarted`, in one line naming the port and the setting that chooses
    another, when ``control.port`` or ``control.grpc_port`` is taken on ``control.host``."""
    for setting, port in (("control.port", control.port), ("control.grpc_port", control.grpc_port)):
        with socket.socket(socket.AF_INET6 if ":" in control.host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                sock.bind((control.host, port))
            except OSError as exc:
                why = "is already in use" if exc.errno == errno.EADDRINUSE else f"({exc.strerror})"
                raise ControlNotStarted(
                    f"port {port} on {control.host} {why}: choose a free one with {setting} "
                    "in the session's config (control: in configs/paper.yaml)"
                ) from None


def _serve_running() -> bool:
    """Whether Serve already runs in this Ray cluster (then its ports are its own)."""
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        return False
    return True


def _start_serve(control: ControlConfig) -> None:
    """Serve with the control plane's ports and settings (when it does not run yet): the ports
    checked first, and a failure to start said in one line (Ray's is a remote traceback)."""
    from ray import serve
    from ray.exceptions import RayError

    if _serve_running():
        return
    check_ports(control)
    try:
        serve.start(
            http_options={"host": control.host, "port": control.port},
            grpc_options={"port": control.grpc_port},
            logging_config=_logging(control),
            controller_options={"runtime_env": {"env_vars": dict(SERVE_ENV)}},
        )
    except RayError as exc:
        serve.shutdown()  # type: ignore[no-untyped-call]
        last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise ControlNotStarted(f"Ray Serve did not start: {last}") from exc


def _wait_ready(url: str) -> None:
    """Until ``/health`` answers (401 without a token: the app is up)."""
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the control API at {url} did not come up")
        time.sleep(0.2)


def _yield_cpu(app_name: str, *, idle: bool) -> None:
    """Lower the scheduling priority of Serve's processes on this node: SCHED_IDLE (``idle``)
    or niceness 19. Best effort: Linux, this node only, Ray's actor table read through its
    private state API (pinned Ray 2.60)."""

    try:
        from ray._private import state

        actors = state.actors().values()
    except (ImportError, AttributeError, RuntimeError):
        return
    replica = f"ServeReplica:{app_name}:"
    for actor in actors:
        cls, pid = str(actor.get("ActorClassName", "")), actor.get("Pid")
        serve_process = cls in ("ProxyActor", "ServeController") or cls.startswith(replica)
        if not (serve_process and actor.get("State") == "ALIVE" and pid):
            continue
        _deprioritize(int(pid), idle=idle)


def _deprioritize(pid: int, *, idle: bool) -> None:
    """Every thread of ``pid`` (Linux schedules threads: a process-wide call reaches one)."""
    import os

    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, 19)
            if idle:
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        except (OSError, AttributeError):
            continue


def _start_or_warn(config: PaperConfig, session_id: str) -> ControlHandle | None:
    """:func:`start_control`, or one warning line on stderr (trading runs on without it)."""
    try:
        return start_control(config, session_id)
    except (TimeoutError, OSError, RuntimeError) as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        print(
            f"warning: control API not started: {why}; trading runs without it "
            "(the kill file still halts it)",
            file=sys.stderr,
        )
        return None


def stop_control(handle: ControlHandle | None, *, shutdown: bool = True) -> None:
    if handle is None:
        return
    from ray import serve

    serve.delete(handle.app_name)
    if shutdown:
        serve.shutdown()  # type: ignore[no-untyped-call]
    handle.pointer.unlink(missing_ok=True)


def run_session(config: PaperConfig, **kwargs: Any) -> dict[str, Any]:
    """:func:`actors.session.run_session` with the control plane started first (when
    ``config.control.enabled``) and stopped after. A control port already taken is a warning:
    the session runs on without it (the kill file still halts trading). ``shutdown_serve=False``
    deletes the session's app and leaves Serve to go down with a private Ray session."""
    from actors.session import prepare_session
    from actors.session import run_session as run_tree

    prepared = kwargs.pop("prepared", None) or prepare_session(
        config,
        session_id=kwargs.pop("session_id", None),
        lockstep=kwargs.pop("lockstep", None),
        speed=kwargs.pop("speed", None),
        store=kwargs.get("store"),
    )
    shutdown_serve = kwargs.pop("shutdown_serve", True)
    handle = None
    if config.control.enabled:
        handle = _start_or_warn(config, prepared.setup.session_id)
    try:
        return run_tree(config, prepared=prepared, **kwargs)
    finally:
        stop_control(handle, shutdown=shutdown_serve)
