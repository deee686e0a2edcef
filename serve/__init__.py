"""The Ray Serve control plane of a paper/live session (issue 4): FastAPI routes
(:mod:`serve.app`), the session view and actions (:mod:`serve.controller`), tokens
(:mod:`serve.auth`), metrics (:mod:`serve.metrics`), audit (:mod:`serve.audit`) and deployment
(:mod:`serve.deploy`); JSON logs and redaction are :mod:`actors.logs`, shared with every actor
of the session. See ``docs/control.md``."""

from __future__ import annotations

__all__: list[str] = []
