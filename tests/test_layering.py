"""The layering rules: serve → actors → backtest → runtime; runtime has no Ray, clock or RNG."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["runtime", "backtest", "actors", "serve", "cli"]  # each may import only those before it


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", LAYERS)
def test_nothing_imports_upward(package: str) -> None:
    above = set(LAYERS[LAYERS.index(package) + 1:])
    for path in (ROOT / package).rglob("*.py"):
        bad = {name for name in imports(path) if name.split(".")[0] in above}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)} from a higher layer"


def test_runtime_has_no_ray_network_wall_clock_or_global_random() -> None:
    forbidden_modules = {"ray", "socket", "requests", "urllib", "http", "random", "asyncio"}
    forbidden_calls = {("time", "time"), ("time", "time_ns"), ("datetime", "now"),
                       ("datetime", "utcnow"), ("np.random", "seed")}
    for path in (ROOT / "runtime").rglob("*.py"):
        top = {name.split(".")[0] for name in imports(path)}
        assert not top & forbidden_modules, f"{path.name} imports {sorted(top & forbidden_modules)}"
        source = path.read_text()
        for owner, attr in forbidden_calls:
            assert f"{owner}.{attr}(" not in source, f"{path.name} calls {owner}.{attr}()"
