"""The data folders staff edit — flows/, prompts/, queue/, asterisk/ — read into
what the validator and the engine need."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from asterisk.config import Config as _PystConfig

from ivr import names
from ivr.errors import ConfigError, FlowInvalid
from ivr.flow import model as m
from ivr.flow.loader import parse_flow
from ivr.flow.references import Catalog, check, subflow_cycles
from ivr.yamldoc import bounded as yamlfile
from ivr.yamldoc.problems import Problem

if TYPE_CHECKING:  # loaded lazily: the flow checker need not import the plan and policy readers
    from ivr.callback.policy import Policy
    from ivr.contingency.plan import Plan, Seats

AUDIO_EXTENSIONS = {".wav", ".gsm", ".ulaw", ".alaw", ".sln", ".sln16", ".g722", ".WAV"}


@dataclass(frozen=True, slots=True)
class QueueDef:
    name: str
    asterisk: str
    label: str = ""
    emergency: bool = False


@dataclass(frozen=True, slots=True)
class QueueConfig:
    queues: dict[str, QueueDef]
    fallback: str

    @property
    def asterisk_names(self) -> dict[str, str]:
        return {q.name: q.asterisk for q in self.queues.values()}


def load_queue_config(queue_dir: Path) -> QueueConfig:
    path = queue_dir / "queues.yaml"
    raw = yamlfile.load(yamlfile.read(path), str(path)) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'queues:'")
    errors = []
    queues = {}
    for name, spec in (raw.get("queues") or {}).items():
        if not names.NAME.ok(name):
            errors.append(f"{path}: queue '{name}': 名称无效 (invalid name): {names.NAME.what}")
            continue
        if not isinstance(spec, dict) or not names.PBX_TOKEN.ok(spec.get("asterisk")):
            errors.append(f"{path}: queue '{name}': needs 'asterisk: <queue name in queues.conf>'")
            continue
        unknown = set(spec) - {"asterisk", "label", "emergency"}
        if unknown:
            errors.append(f"{path}: queue '{name}': unknown key(s) {', '.join(sorted(unknown))}")
        queues[name] = QueueDef(name, spec["asterisk"], str(spec.get("label", "")), bool(spec.get("emergency", False)))
    fallback = raw.get("fallback", "general")
    if fallback not in queues:
        errors.append(f"{path}: fallback queue '{fallback}' is not one of the queues")
    if errors:
        raise ConfigError("\n".join(errors))
    return QueueConfig(queues, fallback)


class AsteriskConfig(_PystConfig):
    """pyst2's parser, reading the file with a context manager (its own ``load``
    leaves the file open)."""

    def load(self):
        with open(self.filename, encoding="utf-8") as fh:
            self.raw_lines = fh.readlines()


def asterisk_queue_names(asterisk_dir: Path) -> frozenset[str] | None:
    path = asterisk_dir / "queues.conf"
    if not path.exists():
        return None
    return frozenset(c.name for c in AsteriskConfig(str(path)).categories if c.name != "general")


def prompt_names(prompts_dir: Path) -> frozenset[str]:
    out = set()
    for p in prompts_dir.rglob("*"):
        if p.is_file() and p.suffix in AUDIO_EXTENSIONS:
            out.add(p.relative_to(prompts_dir).with_suffix("").as_posix())
    return frozenset(out)


def _names(folder: Path, suffix: str) -> frozenset[str]:
    return frozenset(p.stem for p in folder.glob(f"*{suffix}")) if folder.is_dir() else frozenset()


def load_number_lists(flows_dir: Path) -> dict[str, frozenset[str]]:
    out = {}
    for p in sorted((flows_dir / "lists").glob("*.txt")):
        nums = (line.split("#", 1)[0].strip() for line in p.read_text(encoding="utf-8").splitlines())
        out[p.stem] = frozenset(n for n in nums if n)
    return out


def load_calendars(flows_dir: Path) -> dict[str, frozenset[dt.date]]:
    out = {}
    for p in sorted((flows_dir / "calendars").glob("*.txt")):
        dates = set()
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                dates.add(dt.date.fromisoformat(text))
            except ValueError as exc:
                raise ConfigError(f"{p}:{i}:1: '{text}' is not a date YYYY-MM-DD") from exc
        out[p.stem] = frozenset(dates)
    return out


@dataclass(slots=True)
class Project:
    home: Path

    @property
    def flows_dir(self) -> Path:
        return self.home / "flows"

    def flow_files(self) -> list[Path]:
        return sorted(self.flows_dir.glob("*.yaml"))

    def catalog(self, extra_flows: frozenset[str] = frozenset()) -> Catalog:
        queues = load_queue_config(self.home / "queue")
        return Catalog(
            prompts=prompt_names(self.home / "prompts"),
            queues=queues.asterisk_names,
            asterisk_queues=asterisk_queue_names(self.home / "asterisk"),
            lists=_names(self.flows_dir / "lists", ".txt"),
            calendars=_names(self.flows_dir / "calendars", ".txt"),
            flows=frozenset(p.stem for p in self.flow_files()) | extra_flows,
        )


def check_flow_texts(texts: dict[str, tuple[str, str]], catalog: Catalog) -> tuple[dict[str, m.Flow], list[Problem]]:
    """``texts``: flow name -> (display path, YAML text). Returns the valid flows
    and every problem (errors and warnings) of all of them."""
    problems: list[Problem] = []
    flows: dict[str, m.Flow] = {}
    for name, (path, text) in texts.items():
        parsed = parse_flow(text, path, expected_name=name)
        if parsed.flow is not None or parsed.references:
            check(parsed, catalog)
        problems.extend(parsed.problems.items)
        if parsed.flow is not None and not parsed.problems.errors:
            flows[name] = parsed.flow
    for cycle in subflow_cycles(flows):
        f = flows[cycle[0]]
        problems.append(Problem(f.path, 1, 1, f"subflows call each other in a loop: {' -> '.join(cycle)}"))
        for n in cycle:
            flows.pop(n, None)
    return flows, problems


def check_files(project: Project, paths: list[Path] | None = None,
                announcement_sets: frozenset[str] | None = None) -> tuple[dict[str, m.Flow], list[Problem]]:
    paths = paths or project.flow_files()
    texts = {}
    for p in paths:
        shown = str(p.relative_to(project.home)) if p.is_absolute() and p.is_relative_to(project.home) else str(p)
        texts[p.stem] = (shown, yamlfile.read(p, shown))
    catalog = project.catalog(frozenset(texts))
    if announcement_sets is not None:
        catalog = dataclasses.replace(catalog, announcement_sets=announcement_sets)
    return check_flow_texts(texts, catalog)


@dataclass(frozen=True, slots=True)
class Operations:
    """What seat managers and operations staff set outside the flows: the
    contingency plan, the seat groups it moves, the announcement sets."""

    plan: Plan | None
    seats: Seats | None
    announcements: dict
    problems: list[Problem]
    policy: Policy | None = None      # callback/policy.yaml


def load_operations(project: Project, tz, now: dt.datetime | None = None) -> Operations:
    from ivr.callback.policy import load_policy
    from ivr.contingency.plan import load_plan, load_seats
    from ivr.prompts.announcements import load_announcements

    problems: list[Problem] = []
    prompts = prompt_names(project.home / "prompts")
    sets, p = load_announcements(project.home / "prompts", tz, prompts, now)
    problems += p
    seats, p = load_seats(project.home / "queue")
    problems += p
    queues = load_queue_config(project.home / "queue")
    plan, p = load_plan(project.home / "queue", queues=frozenset(queues.queues), announcement_sets=frozenset(sets),
                        seat_groups=frozenset(seats.groups) if seats else None)
    problems += p
    policy, p = load_policy(project.home / "callback")
    problems += p
    return Operations(plan, seats, sets, problems, policy)


def require_operations(project: Project, tz) -> Operations:
    ops = load_operations(project, tz)
    errors = [str(p) for p in ops.problems if not p.warning]
    if errors:
        raise ConfigError("\n".join(errors))
    return ops


def require_valid(flows: dict[str, m.Flow], problems: list[Problem]) -> dict[str, m.Flow]:
    errors = [p for p in problems if not p.warning]
    if errors:
        raise FlowInvalid(errors)
    return flows
