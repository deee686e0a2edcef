"""Structured JSON logs for every process of a session, with secrets redacted.

Every line is one JSON object: ``ts`` (UTC, ISO 8601, ms), ``level``, ``logger``, ``msg``,
``session_id`` (``run_id`` too: a session's run id is its session id), ``component`` (the
actor: ``risk``, ``feed``, ``strategy.mm``, ``control`` …), ``pid``, ``seq`` (per process,
increasing), ``correlation_id`` (a request's ``X-Request-ID`` or a client order id, where one
applies) and any ``fields`` passed with ``extra={"fields": {...}}``.

How every actor of a session gets it, with no code in the actors themselves:

* the driver that starts Ray passes :data:`RAY_RUNTIME_ENV` to ``ray.init`` — Ray's
  ``worker_process_setup_hook`` (honoured in the job's runtime env only), so every worker
  process of the job runs :func:`setup_worker` before any task or actor code;
* the session creates each actor with :func:`actor_runtime_env` (``runtime_env`` option), whose
  environment variables name the session, the component and the log file;
* :func:`setup_worker` reads them and sends the root logger's records, as JSON lines, to the
  session's ``session.log.jsonl`` (one ``write`` per line on an ``O_APPEND`` descriptor, so the
  processes of a session share the file without tearing lines). A worker without those
  variables (not a session's actor) is left alone.

A line that cannot be written (a full disk) goes to stderr (``logging``'s ``handleError``) and
is remembered (:func:`write_failure`): a broker gateway in that process sends nothing more.

Bounded disk: the file rotates under a size budget (``logs: {max_mb, backups}`` in the paper
config, passed to the workers as ``TRADEWIND_LOG_MAX_BYTES``/``TRADEWIND_LOG_BACKUPS``). The
processes write each line under an exclusive lock on ``session.log.jsonl.lock`` (a few
microseconds: log lines, not ticks): a writer first reopens the path when another process
rotated it (another inode there), writes, and when the file reached ``max_bytes`` shifts
``session.log.jsonl`` → ``.1`` → ``.2`` …, dropping what is past ``backups``. So no line goes to
a file already rotated away, and the logs of a session take at most ``max_bytes × (backups +
1)`` plus one line.

:class:`Redactor` masks (``***``) every known secret: the values of environment variables
whose names look secret (``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``, ``*API_KEY*``,
``*PRIVATE*``), explicit extra values, words whose sha256 is a known digest (the API tokens,
which the control plane knows by digest only), and the password of any ``scheme://user:pw@``
URL (a DSN in a config file).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import fcntl
import hashlib
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from runtime import disk_reserve
from runtime.errors import DiskWriteError

__all__ = [
    "COMPONENT_ENV",
    "LOG_FILE_ENV",
    "OUR_LOGGERS",
    "RAY_RUNTIME_ENV",
    "SESSION_ENV",
    "JsonFormatter",
    "Redactor",
    "actor_runtime_env",
    "correlation_id",
    "env_secret_digests",
    "init_ray",
    "install",
    "json_logger",
    "setup_worker",
    "write_failure",
]

SESSION_ENV = "TRADEWIND_SESSION_ID"
COMPONENT_ENV = "TRADEWIND_COMPONENT"
LOG_FILE_ENV = "TRADEWIND_LOG_FILE"
LEVEL_ENV = "TRADEWIND_LOG_LEVEL"
MAX_BYTES_ENV = "TRADEWIND_LOG_MAX_BYTES"
BACKUPS_ENV = "TRADEWIND_LOG_BACKUPS"
DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_BACKUPS = 4
#: ``ray.init(..., runtime_env=RAY_RUNTIME_ENV)``: every worker of the job runs the hook
RAY_RUNTIME_ENV: dict[str, Any] = {"worker_process_setup_hook": "actors.logs.setup_worker"}

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")


def init_ray(address: str | None = None, *,
             dashboard: Callable[[str], None] | None = None) -> None:
    """``ray.init`` for a command-line driver: a private local Ray session (or ``address``'s
    cluster), with :data:`RAY_RUNTIME_ENV` (JSON worker logs), no worker output copied to the
    driver, and none of Ray's notices on the user's terminal. With ``dashboard``, a private
    session serves Ray's dashboard on 127.0.0.1 (port 8265, or the next free one) and
    ``dashboard`` is called with its URL (a joined cluster's URL is passed on when it has one);
    without it no dashboard process is started:

    * a private session uses token authentication, Ray's default; Ray's logger announcing it
      on every start (``ray._private.authentication``) is set to ERROR (``RAY_AUTH_MODE``, if
      the user set it, is theirs and obeyed as ever);
    * Serve's driver logger (INFO to stderr from the moment ``ray.serve`` is imported:
      "Started Serve", "Application … is ready", "Deleting app") is set to WARNING; the
      session prints its own line with the control API's URL.
    """
    import ray

    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    if address:
        context = ray.init(address=address, log_to_driver=False, configure_logging=False,
                           runtime_env=RAY_RUNTIME_ENV)  # fmt: skip
    else:
        from backtest.research.fanout import init_local

        context = init_local(include_dashboard=dashboard is not None,
                             dashboard_host="127.0.0.1", log_to_driver=False,
                             configure_logging=False, runtime_env=RAY_RUNTIME_ENV)
    url = getattr(context, "dashboard_url", None)
    if dashboard is not None and url:
        dashboard(url if "://" in url else f"http://{url}")
    with contextlib.suppress(ImportError):  # Serve installed: its logger exists once imported
        import ray.serve

        logging.getLogger("ray.serve").setLevel(logging.WARNING)
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE", re.IGNORECASE)
_MASK = "***"
_WORD = re.compile(r"[A-Za-z0-9_\-]{16,}")
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)([^@\s/]+)@")


def _env_secrets() -> set[str]:
    return {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 6}


def env_secret_digests() -> tuple[str, ...]:
    """sha256 digests of this process's secret environment values that a :class:`Redactor`
    can match by digest (token-like, 16+ characters): a process started before the secret was
    set (a Ray worker, the control plane) masks it without ever holding it."""
    return tuple(
        sorted(hashlib.sha256(v.encode()).hexdigest() for v in _env_secrets() if _WORD.fullmatch(v))
    )


class Redactor:
    """Masks secrets (at least 6 characters long, to avoid masking ordinary words): known
    values, URL passwords, and any token-like word whose sha256 is one of ``hashes``."""

    def __init__(self, extra: Iterable[str] = (), hashes: Iterable[str] = ()) -> None:
        found = _env_secrets() | {s for s in extra if len(s) >= 6}
        self.secrets = sorted(found, key=len, reverse=True)
        self.hashes = frozenset(hashes)

    def text(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, _MASK)
        if "://" in text:
            text = _URL_PASSWORD.sub(rf"\1{_MASK}@", text)
        if self.hashes:
            text = _WORD.sub(self._word, text)
        return text

    def _word(self, match: re.Match[str]) -> str:
        word = match.group(0)
        return _MASK if hashlib.sha256(word.encode()).hexdigest() in self.hashes else word

    def value(self, value: Any) -> Any:
        """The same structure with every secret masked (dicts, lists, strings)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


class JsonFormatter(logging.Formatter):
    _seq = itertools.count(1)  # per process, shared by every formatter

    def __init__(self, session_id: str, redactor: Redactor, component: str = "") -> None:
        super().__init__()
        self.session_id, self.redactor, self.component = session_id, redactor, component
        self.pid = os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "session_id": self.session_id,
            "run_id": self.session_id,
            "component": getattr(record, "component", "") or self.component,
            "pid": self.pid,
            "seq": next(self._seq),
            "correlation_id": getattr(record, "correlation_id", "") or correlation_id.get(),
        }
        for key, value in getattr(record, "fields", {}).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return self.redactor.text(json.dumps(self.redactor.value(entry), default=str))


_write_failure: DiskWriteError | None = None  # the first line this process could not log


def write_failure() -> DiskWriteError | None:
    """Why this process could not write the session log (the first failure), or ``None``:
    a broker gateway sends nothing after one (``actors.venues.gateway``)."""
    return _write_failure


class _AppendHandler(logging.Handler):
    """One ``os.write`` per record on an ``O_APPEND`` descriptor, under the session's log lock:
    lines from the processes of a session never tear or interleave in the shared file, and it
    rotates under a size budget (module docstring)."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 backups: int = DEFAULT_BACKUPS) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.max_bytes, self.backups = path, max_bytes, max(1, backups)
        self.lock_fd = os.open(path.with_name(path.name + ".lock"),
                               os.O_WRONLY | os.O_CREAT, 0o600)
        self.fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode()
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
            try:
                self._follow()
                disk_reserve.retrying(self.path, partial(os.write, self.fd, line))
                if os.fstat(self.fd).st_size >= self.max_bytes:
                    self._rotate()
            finally:
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
        except OSError as exc:  # a full disk: the process's gateway stops sending on it
            global _write_failure
            _write_failure = _write_failure or DiskWriteError(
                f"cannot write the session log ({errno.errorcode.get(exc.errno or 0, exc.errno)}"
                f": {exc.strerror}): a record of {record.name} not written", path=str(self.path))
            self.handleError(record)
        except Exception:
            self.handleError(record)

    def _follow(self) -> None:
        """Reopen the path when another process rotated it (another inode there, or none)."""
        try:
            moved = os.stat(self.path).st_ino != os.fstat(self.fd).st_ino
        except FileNotFoundError:
            moved = True
        if moved:
            self._reopen()

    def _reopen(self) -> None:
        old, self.fd = self.fd, self._open()
        with contextlib.suppress(OSError):
            os.close(old)

    def _rotate(self) -> None:
        """Shift the files (the lock held): the current one becomes ``.1``."""
        numbered = [self.path.with_name(f"{self.path.name}.{i}")
                    for i in range(1, self.backups + 1)]
        with contextlib.suppress(FileNotFoundError):
            numbered[-1].unlink()
        for older, newer in zip(numbered[:0:-1], numbered[-2::-1], strict=True):
            with contextlib.suppress(FileNotFoundError):
                newer.rename(older)
        self.path.rename(numbered[0])
        self._reopen()

    def close(self) -> None:
        for fd in (self.fd, self.lock_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        super().close()


def json_logger(
    name: str, *, session_id: str, redactor: Redactor, path: Path | None = None
) -> logging.Logger:
    """A logger of its own writing JSON lines to stderr and, when given, to ``path``."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if path is not None:
        handlers.append(_AppendHandler(path))
    for handler in handlers:
        handler.setFormatter(JsonFormatter(session_id, redactor, component="control"))
        logger.addHandler(handler)
    return logger


#: our loggers, at ``TRADEWIND_LOG_LEVEL`` (INFO); every other library's at WARNING (a broker
#: client logging each order status at INFO would cost the gateway a JSON line per report)
OUR_LOGGERS = ("tradewind", "actors", "serve")


def install(session_id: str, component: str, path: Path, *, level: str = "INFO",
            max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS) -> logging.Handler:
    """This process's root logger → JSON lines appended to ``path``, rotated at ``max_bytes``
    keeping ``backups`` old files (idempotent: a second call replaces the first's handler)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _AppendHandler):
            root.removeHandler(handler)
            handler.close()
    handler = _AppendHandler(path, max_bytes=max_bytes, backups=backups)
    handler.setFormatter(JsonFormatter(session_id, Redactor(), component))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(level.upper())
    return handler


def actor_runtime_env(session_id: str, component: str, log_file: Path | str, *,
                      max_bytes: int = DEFAULT_MAX_BYTES,
                      backups: int = DEFAULT_BACKUPS) -> dict[str, Any]:
    """The ``runtime_env`` option of one actor of a session (for :func:`setup_worker`)."""
    env = {SESSION_ENV: session_id, COMPONENT_ENV: component, LOG_FILE_ENV: str(log_file),
           MAX_BYTES_ENV: str(max_bytes), BACKUPS_ENV: str(backups)}
    if LEVEL_ENV in os.environ:
        env[LEVEL_ENV] = os.environ[LEVEL_ENV]
    return {"env_vars": env}


def setup_worker() -> None:
    """Ray's ``worker_process_setup_hook``: JSON logs when this worker is a session's actor."""
    session_id, path = os.environ.get(SESSION_ENV), os.environ.get(LOG_FILE_ENV)
    if not session_id or not path:
        return
    component = os.environ.get(COMPONENT_ENV, "")
    log = logging.getLogger("tradewind.worker")
    try:
        install(session_id, component, Path(path), level=os.environ.get(LEVEL_ENV, "INFO"),
                max_bytes=int(os.environ.get(MAX_BYTES_ENV, DEFAULT_MAX_BYTES)),
                backups=int(os.environ.get(BACKUPS_ENV, DEFAULT_BACKUPS)))
    except OSError as exc:  # a worker that cannot log must still start: JSON on stderr
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter(session_id, Redactor(), component))
        logging.getLogger().addHandler(handler)
        log.warning("session log %s not writable (%s): logging to stderr", path, exc)
        return
    log.info("%s worker started", component or "session", extra={"fields": {"event": "start"}})
