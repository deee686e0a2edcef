"""Where a session's HTTP control plane listens (``control:`` in ``configs/paper.yaml``).

Secrets never live here: the operator token comes from ``TRADEWIND_API_TOKEN`` (and the
read-only one from ``TRADEWIND_API_READ_TOKEN``) or from a generated 0600 file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ControlConfig"]


class ControlConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    host: str = Field("127.0.0.1", pattern=r"^[\w.:-]+$")
    port: int = Field(8000, ge=1, le=65535)
    #: Serve's gRPC proxy defaults to 9000 (ClickHouse's native port): moved out of the way
    grpc_port: int = Field(9010, ge=1, le=65535)
    #: generated token file; default ``<journal_dir>/<session_id>/api_tokens.json``
    token_file: str | None = None
    refresh_s: float = Field(0.5, gt=0, le=60)  # how often the control plane reads the actors
    feed_stale_s: float = Field(10.0, gt=0)  # /health: no feed progress for this long
    recorder_lag_s: float = Field(30.0, gt=0)  # /health: recorder behind by more than this
    flatten_timeout_s: float = Field(30.0, gt=0)  # POST /flatten waits this long for flat
    #: how Serve's processes on this node (controller, proxy, replica) yield the CPU to
    #: trading: "nice" (niceness 19; Ray's workers run at 15), "idle" (Linux SCHED_IDLE: they
    #: run only on an idle CPU — can starve the API on a busy host) or "normal"
    cpu_policy: Literal["idle", "nice", "normal"] = "nice"
    access_log: bool = False  # Serve's per-request access log (CPU on every request)

    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
