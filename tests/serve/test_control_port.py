"""A control port already taken when a session starts: one clear warning line naming the port
and the setting that chooses another, and no Ray traceback (Serve is not started at all)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests.actors.paper_helpers import write_paper_config, write_sample
from tests.serve.live_helpers import free_port

pytestmark = pytest.mark.usefixtures("ray_local")


def test_a_busy_control_port_is_one_warning_line_naming_it(
    ray_local: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from actors.config import load_paper_config
    from serve.deploy import _serve_running, _start_or_warn

    if _serve_running():
        pytest.skip("Serve already runs in this cluster: its ports are its own")
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = write_paper_config(
            tmp_path / "cfg",
            "mm",
            write_sample(tmp_path / "data"),
            control={"port": port, "grpc_port": free_port()},
        )
        assert _start_or_warn(load_paper_config(path), "busy1") is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"port {port} on 127.0.0.1 is already in use" in err[0]
    assert "control.port" in err[0] and "Traceback" not in err[0]
    assert not _serve_running()  # nothing left half-started
