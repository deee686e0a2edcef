"""The one YAML reader of every config (backtest, paper, sweep, walk-forward), with bounds.

A config is at most :data:`MAX_CONFIG_BYTES`, holds at most :data:`MAX_ALIASES` aliases and
expands to at most :data:`MAX_NODES` values once its aliases are followed: a small file of
nested aliases (a "billion laughs") is refused while it is still a graph of a few nodes, before
anything walks its expansion. Everything a user can get wrong about the file itself — missing,
a directory, unreadable, binary, too large, not YAML (with line and column), not a mapping — is
one :class:`~runtime.errors.ConfigError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

from runtime.errors import ConfigError

__all__ = ["MAX_ALIASES", "MAX_CONFIG_BYTES", "MAX_NODES", "read_yaml_source"]

MAX_CONFIG_BYTES = 1 << 20
MAX_ALIASES = 100
MAX_NODES = 100_000


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that stops at the :data:`MAX_ALIASES`-th alias."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _TooBig(f"more than {MAX_ALIASES} aliases (*name)")
        return super().compose_node(parent, index)


class _TooBig(Exception):
    pass


def read_yaml_source(source: str | Path | dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The mapping of a YAML file (or a dict, copied), with ``base_dir`` set to its folder, and
    the name errors should use. Every problem with the file itself is a ConfigError."""
    if isinstance(source, dict):
        raw, name, base = dict(source), "<dict>", "."
    else:
        path = Path(source)
        name, base = str(path), str(path.parent)
        raw = _load(_read_text(path), name)
        if not isinstance(raw, dict):
            raise ConfigError("expected a mapping at the top level", path=name)
    raw.setdefault("base_dir", base)
    return raw, name


def _read_text(path: Path) -> str:
    name = str(path)
    if path.is_dir():
        raise ConfigError("is a directory, not a config file", path=name)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{size:,} bytes is too large for a config (at most "
                              f"{MAX_CONFIG_BYTES:,})", path=name)
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("no such file", path=name) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", path=name) from None
    if b"\0" in data:
        raise ConfigError("not a text file (it holds NUL bytes): expected YAML", path=name)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start}): expected YAML", path=name) \
            from None


def _load(text: str, name: str) -> Any:
    try:
        loader = _BoundedLoader(text)  # reads (and checks) the characters at once
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {str(exc).splitlines()[0]}", path=name) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_NODES:
            raise _TooBig(f"more than {MAX_NODES:,} values once its aliases are expanded")
        return loader.construct_document(node)
    except _TooBig as exc:
        raise ConfigError(f"refused: the YAML has {exc}", path=name) from None
    except RecursionError:
        raise ConfigError("refused: the YAML is nested too deeply", path=name) from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(f"not valid YAML{_where(exc)}: {exc.problem}", path=name) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {str(exc).splitlines()[0]}", path=name) from None
    finally:
        loader.dispose()


def _where(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    return "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"


def _expanded_size(node: Node, seen: dict[int, int]) -> int:
    """Values in ``node`` with aliases followed (each shared node counted once per use);
    memoised per node, so a graph of n nodes costs O(n) however large its expansion."""
    key = id(node)
    if key in seen:
        return seen[key]
    seen[key] = MAX_NODES + 1  # a cycle (a recursive alias) counts as too big
    total = 1
    if isinstance(node, SequenceNode):
        total += sum(_expanded_size(child, seen) for child in node.value)
    elif isinstance(node, MappingNode):
        total += sum(_expanded_size(k, seen) + _expanded_size(v, seen) for k, v in node.value)
    seen[key] = min(total, MAX_NODES + 1)
    return seen[key]
