"""``deploy/``: the systemd units and the container recipe start commands the real CLI accepts,
with configs that exist, and stop with SIGTERM with time for the graceful stop."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from cli.main import build_parser

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"


def _unit(name: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for line in (DEPLOY / name).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys[key.strip()] = value.strip()
    return keys


@pytest.mark.parametrize(("unit", "instance", "command"),
                         [("tradewind-paper@.service", "paper", "paper"),
                          ("tradewind-live@.service", "live_ib", "live")])
def test_each_unit_starts_a_command_the_cli_accepts(unit: str, instance: str,
                                                    command: str) -> None:
    keys = _unit(unit)
    argv = shlex.split(keys["ExecStart"].replace("%i", instance))
    assert argv[0] == "/opt/tradewind/.venv/bin/tradewind"
    args = build_parser().parse_args(argv[1:])
    assert args.command == command and args.session_id == instance
    assert (ROOT / args.config).exists()  # configs/<instance>.yaml ships with the repository
    assert keys["KillSignal"] == "SIGTERM" and keys["KillMode"] == "mixed"
    assert int(keys["TimeoutStopSec"]) >= 60 and keys["Restart"] == "on-failure"
    assert keys["EnvironmentFile"] == "/etc/tradewind/tradewind.env"
    assert not re.search(r"(TOKEN|SECRET|KEY|PASSWORD)\s*=", (DEPLOY / unit).read_text())


def test_the_container_recipe_runs_a_command_the_cli_accepts() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["tradewind"\]$', text, re.M)
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    args = build_parser().parse_args(cmd)
    assert args.command == "paper" and (ROOT / args.config).exists()
    for source in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (ROOT / source).exists(), source
    assert not re.search(r"^ENV .*(TOKEN|SECRET|KEY|PASSWORD)", text, re.M)  # no secrets baked
