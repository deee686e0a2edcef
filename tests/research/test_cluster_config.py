"""cluster.yaml is a valid `ray up` config (Ray's own schema and checks), and so is its
commented on-premises variant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"


def _validate(config: dict[str, Any]) -> None:
    jsonschema.validate(config, json.loads(SCHEMA.read_text()))
    validate_config(prepare_config(config))  # what `ray up` runs before touching a cloud


def test_cluster_yaml_passes_rays_validation() -> None:
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    _validate(config)
    assert config["provider"]["type"] == "aws"
    assert {"head", "worker"} <= set(config["available_node_types"])
    worker = config["available_node_types"]["worker"]
    assert worker["min_workers"] <= worker["max_workers"] <= config["max_workers"]
    assert any("pip install" in c and "tradewind" in c for c in config["setup_commands"])
    # ports private: only SSH is opened to the world, the dashboard binds to localhost
    rules = config["provider"]["security_group"]["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"]) for r in rules] == [(22, 22)]
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])


def test_the_commented_local_provider_variant_is_valid_too() -> None:
    text = (ROOT / "cluster.yaml").read_text()
    block = text[text.index("# >>> local\n") + 12 : text.index("# <<< local")]
    variant = yaml.safe_load("\n".join(ln[2:] for ln in block.splitlines()))
    config = yaml.safe_load(text)
    for key in ("available_node_types", "head_node_type", "provider", "auth"):
        config.pop(key)
    config.update(variant)
    _validate(config)
    assert config["provider"]["type"] == "local"
