"""One mapping of a staff-edited YAML file read against a schema, every
problem collected with its ``file:line:col``; the value converters the flow
language, the contingency plan, the announcement sets, the callback policy and
the drill profiles share, so every file speaks one style of error message."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import yaml

from ivr.yamldoc import bounded
from ivr.yamldoc.problems import Problem, Problems, did_you_mean, kind_of, mapping_items, scalar

MISSING: Final = object()   # a value that was required or malformed: the problem is already recorded


@dataclass(slots=True)
class Reference:
    kind: str   # step | prompt | queue | list | calendar | flow
    value: str
    node: yaml.Node
    where: str  # "menu 'main_menu'"


class Reader:
    """Reads the keys of one mapping against a schema, collecting problems."""

    def __init__(self, node: yaml.MappingNode, problems: Problems, where: str,
                 refs: list[Reference]) -> None:
        self.node = node
        self.problems = problems
        self.where = where
        self.refs = refs
        self.items = {k: (kn, vn) for k, kn, vn in mapping_items(node, problems, where)}
        self.allowed: set[str] = set()

    def take(self, key: str, conv: Callable[[Reader, yaml.Node], Any], *,
             required: bool = False, default: Any = None) -> Any:
        self.allowed.add(key)
        if key not in self.items:
            if required:
                self.problems.at(self.node, f"{self.where}: missing required key '{key}'")
                return MISSING
            return default
        return conv(self, self.items[key][1])

    def finish(self) -> None:
        for key, (knode, _) in self.items.items():
            if key not in self.allowed:
                self.problems.at(knode, f"{self.where}: unknown key '{key}'{did_you_mean(key, self.allowed)}")

    def bad(self, node: yaml.Node, what: str) -> Any:
        self.problems.at(node, f"{self.where}: expected {what}, got {kind_of(node)}")
        return MISSING

    def ref(self, kind: str, value: str, node: yaml.Node) -> str:
        self.refs.append(Reference(kind, value, node, self.where))
        return value


def read_text(r: Reader, n: yaml.Node) -> Any:
    v = scalar(n)
    return v if v is not None else r.bad(n, "text")


def read_int(lo: int, hi: int) -> Callable[[Reader, yaml.Node], Any]:
    def conv(r: Reader, n: yaml.Node) -> Any:
        v = scalar(n)
        if v is None or not re.fullmatch(r"-?\d+", v) or not lo <= int(v) <= hi:
            return r.bad(n, f"a whole number from {lo} to {hi}")
        return int(v)
    return conv


def read_seconds(lo: float, hi: float, what: str = "seconds") -> Callable[[Reader, yaml.Node], Any]:
    """A number from ``lo`` to ``hi`` (``what`` names its unit in the message)."""
    def conv(r: Reader, n: yaml.Node) -> Any:
        v = scalar(n)
        try:
            f = float(v) if v is not None else None
        except ValueError:
            f = None
        if f is None or not lo <= f <= hi:
            return r.bad(n, f"{what} from {lo:g} to {hi:g}")
        return f
    return conv


def read_bool(r: Reader, n: yaml.Node) -> Any:
    v = (scalar(n) or "").lower()
    if v in ("true", "yes", "on"):
        return True
    if v in ("false", "no", "off"):
        return False
    return r.bad(n, "true or false")



class _Failed(enum.Enum):
    COMPOSE_FAILED = "compose failed"


COMPOSE_FAILED: Final = _Failed.COMPOSE_FAILED


def compose_or_report(text: str, problems: Problems) -> yaml.Node | None | Literal[_Failed.COMPOSE_FAILED]:
    """The node tree of a staff-edited YAML text (bounded: ``ivr.yamldoc.bounded``), or
    ``COMPOSE_FAILED`` with the problem recorded at its line and column."""
    try:
        return bounded.compose(text)
    except yaml.YAMLError as exc:
        line, col = bounded.location(exc)
        problems.items.append(Problem(problems.path, line, col, bounded.message(exc)))
        return COMPOSE_FAILED


def compose_mapping(text: str, problems: Problems, expected: str) -> yaml.MappingNode | None:
    """The top mapping of a staff-edited YAML file, or None with the problem
    recorded (not YAML at all, or not a mapping)."""
    root = compose_or_report(text, problems)
    if root is COMPOSE_FAILED:
        return None
    if not isinstance(root, yaml.MappingNode):
        if root is not None:
            problems.at(root, f"expected a mapping with {expected}, got {kind_of(root)}")
        else:
            problems.at(None, f"the file is empty: expected a mapping with {expected}")
        return None
    return root
