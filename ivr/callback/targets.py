"""The targets seat managers set for the national figures (``queue/targets.yaml``)
and the colour of a figure against its target. Pure: a text in, the targets
and every problem at its ``file:line:col`` out.

Green: the target is met. Amber: missed by no more than ``amber_within_pct``
points (or, for the average speed of answer, seconds ``amber_within_pct`` per
cent above it). Red: missed by more. A figure with no target (or nothing to
divide yet) has no colour."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from ivr.yamldoc.problems import Problem, Problems, kind_of, scalar
from ivr.yamldoc.schema import MISSING, Reader, compose_mapping

TARGETS_FILE = "queue/targets.yaml"
GREEN, AMBER, RED = "green", "amber", "red"


@dataclass(frozen=True, slots=True)
class Targets:
    """Rates as fractions (0.8 = 80 %); None: no target, no colour."""

    answered_within_15s_rate: float | None = 0.80     # GB/T 33358-2016 leaves the share to the centre
    answer_rate_24h: float | None = 0.95               # GB/T 33358-2016: at least 95 % over any 24 hours
    satisfaction_rate: float | None = 0.90
    average_speed_of_answer_s: float | None = None     # at most
    abandoned_within_15s: int | None = None            # at most, over the rolling 24 hours
    amber_within_pct: float = 5.0

    def colours(self, fig: dict[str, Any]) -> dict[str, str]:
        """figure name -> colour, for the figures ``ivr.callback.figures`` names."""
        out = {k: _at_least(fig.get(k), getattr(self, k), self.amber_within_pct)
               for k in ("answered_within_15s_rate", "answer_rate_24h", "satisfaction_rate")}
        out["average_speed_of_answer_s"] = _at_most(fig.get("average_speed_of_answer_s"),
                                                    self.average_speed_of_answer_s, self.amber_within_pct)
        out["abandoned_within_15s"] = _at_most(fig.get("abandoned_within_15s"), self.abandoned_within_15s,
                                               self.amber_within_pct)
        return out

    def as_dict(self) -> dict[str, float | int | None]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _at_least(v: float | None, target: float | None, margin_pct: float) -> str:
    if v is None or target is None:
        return ""
    return GREEN if v >= target else AMBER if v >= target - margin_pct / 100 else RED


def _at_most(v: float | None, target: float | None, margin_pct: float) -> str:
    if v is None or target is None:
        return ""
    return GREEN if v <= target else AMBER if v <= target * (1 + margin_pct / 100) else RED


DEFAULTS = Targets()
_PCT_DEFAULT = object()
# key in the file -> (field, what it is in Chinese)
_PCT_KEYS = {"answered_within_15s_pct": ("answered_within_15s_rate", "15秒接通率"),
             "answer_rate_24h_pct": ("answer_rate_24h", "24小时接通率"),
             "satisfaction_pct": ("satisfaction_rate", "满意率")}
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def _number(what_zh: str, key: str, lo: float, hi: float, unit_zh: str,
            unit: str) -> Callable[[Reader, yaml.Node], Any]:
    """A converter for one target: a number from ``lo`` to ``hi``, or ``null``
    (no target); anything else refused in Chinese first, naming the key."""
    def conv(r: Reader, n: yaml.Node) -> Any:
        v = scalar(n)
        if isinstance(n, yaml.ScalarNode) and n.tag.endswith(":null"):
            return None
        text = (v or "").strip().removesuffix("%").strip()
        if v is None or not _NUMBER.fullmatch(text):
            r.problems.at(n, f"{what_zh}目标 {key} 应为 {lo:g} 到 {hi:g}{unit_zh}的数（或 null 表示不设目标），"
                             f"实际为 {v if v is not None else kind_of(n)} — {key}: expected a number from {lo:g} "
                             f"to {hi:g}{unit} (or null: no target), got {v if v is not None else kind_of(n)}")
            return MISSING
        f = float(text)
        if not lo <= f <= hi:
            r.problems.at(n, f"{what_zh}目标 {key} 须在 {lo:g} 到 {hi:g}{unit_zh}之间，而不是 {text} — {key}: "
                             f"the target must be from {lo:g} to {hi:g}{unit}, not {text}")
            return MISSING
        return f
    return conv


def parse_targets(text: str, path: str = TARGETS_FILE) -> tuple[Targets | None, list[Problem]]:
    """``queue/targets.yaml``: ``targets:`` with the rates in per cent, the
    average speed of answer in seconds, abandons within 15 s as a count and
    the amber margin in points; every problem at its ``file:line:col``."""
    problems = Problems(path)
    root = compose_mapping(text, problems, "'targets:'")
    if root is None:
        return None, problems.items
    top = Reader(root, problems, "targets file", [])
    node = top.take("targets", lambda r, n: n, required=True)
    top.finish()
    if not isinstance(node, yaml.MappingNode):
        if node is not MISSING:
            problems.at(node, "targets 应为“指标: 目标”映射 — targets: expected a mapping of figure: target")
        return None, problems.items
    r = Reader(node, problems, "targets", [])
    got: dict[str, Any] = {}
    for key, (field, zh) in _PCT_KEYS.items():
        v = r.take(key, _number(zh, key, 0, 100, "% ", " %"), default=_PCT_DEFAULT)
        got[field] = getattr(DEFAULTS, field) if v is _PCT_DEFAULT else v / 100 if isinstance(v, float) else v
    got["average_speed_of_answer_s"] = r.take("average_speed_of_answer_s", _number(
        "平均应答时长", "average_speed_of_answer_s", 1, 3600, " 秒", " s"), default=None)
    ab = r.take("abandoned_within_15s", _number("15秒内放弃", "abandoned_within_15s", 0, 1_000_000, " 次", " calls"),
                default=None)
    got["abandoned_within_15s"] = int(ab) if isinstance(ab, float) else ab
    amber = r.take("amber_within_pct", _number("黄色区间", "amber_within_pct", 0, 100, " 个百分点", " points"),
                   default=None)
    got["amber_within_pct"] = DEFAULTS.amber_within_pct if amber is None else amber
    r.finish()
    problems.items.sort(key=lambda p: (p.line, p.col))     # in the file's order, as the author reads it
    if MISSING in got.values() or problems.errors:
        return None, problems.items
    return Targets(**got), problems.items
