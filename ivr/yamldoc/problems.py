"""Validation problems with their location, and helpers to read PyYAML nodes.

Line and column are 1-based everywhere (PyYAML marks are 0-based)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

import yaml

from ivr.yamldoc.messages_zh import bilingual


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    line: int
    col: int
    message: str
    warning: bool = False

    def __post_init__(self) -> None:
        # staff read Chinese first: the English the checks write goes after it
        object.__setattr__(self, "message", bilingual(self.message))

    def __str__(self) -> str:
        kind = "警告 warning: " if self.warning else ""
        return f"{self.path}:{self.line}:{self.col}: {kind}{self.message}"


class Problems:
    """Collects every problem of one file, so the author sees them all at once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[Problem] = []

    def at(self, node: yaml.Node | None, message: str, *, warning: bool = False) -> None:
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        self.items.append(Problem(self.path, line, col, message, warning))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if not p.warning]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def scalar(node: yaml.Node) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def mapping_items(node: yaml.MappingNode, problems: Problems, where: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """(key, key_node, value_node) in order, reporting non-scalar and duplicate keys."""
    seen: dict[str, yaml.Node] = {}
    out: list[tuple[str, yaml.Node, yaml.Node]] = []
    for knode, vnode in node.value:
        key = scalar(knode)
        if key is None:
            problems.at(knode, f"{where}: keys must be plain names")
            continue
        if key in seen:
            first = seen[key].start_mark.line + 1
            problems.at(knode, f"{where}: key '{key}' appears twice (first on line {first})")
            continue
        seen[key] = knode
        out.append((key, knode, vnode))
    return out


def kind_of(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"'{node.value}'" if node.value != "" else "nothing"
