"""The data folders staff edit — flows/, prompts/, queue/, asterisk/ — read into
what the validator and the engine need."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import yaml
from asterisk.config import Config as _PystConfig

from ivr import names
from ivr.errors import ConfigError, FlowInvalid
from ivr.flow import model as m
from ivr.flow.loader import parse_flow
from ivr.flow.references import Catalog, check, subflow_cycles
from ivr.yamldoc import bounded
from ivr.yamldoc import bounded as yamlfile
from ivr.yamldoc.problems import Problem, Problems, mapping_items
from ivr.yamldoc.schema import MISSING, Reader, compose_mapping, read_bool, read_text

if TYPE_CHECKING:  # loaded lazily: the flow checker need not import the plan and policy readers
    from ivr.admission.lines import LinesConfig
    from ivr.callback.policy import Policy
    from ivr.callback.targets import Targets
    from ivr.configset.pbxs import PbxConfig
    from ivr.contingency.plan import Plan, Seats
    from ivr.prompts.announcements import AnnouncementSets

QUEUES_FILE = "queue/queues.yaml"
PLAN_FILE = "queue/contingency.yaml"
SEATS_FILE = "queue/seats.yaml"
ANNOUNCEMENTS_FILE = "prompts/announcements.yaml"
POLICY_FILE = "callback/policy.yaml"
LINES_FILE = "queue/lines.yaml"      # ivr.admission.lines reads it
PBXS_FILE = "queue/pbxs.yaml"        # ivr.configset.pbxs reads it
TARGETS_FILE = "queue/targets.yaml"  # ivr.callback.targets reads it
AUDIO_EXTENSIONS = {".wav", ".gsm", ".ulaw", ".alaw", ".sln", ".sln16", ".g722", ".WAV"}


# -- the configuration files outside the flows, as path -> text ------------------

FIXED_FILES = (QUEUES_FILE, PLAN_FILE, SEATS_FILE, ANNOUNCEMENTS_FILE, POLICY_FILE, LINES_FILE, PBXS_FILE, TARGETS_FILE)
LISTS_DIR, CALENDARS_DIR = "flows/lists", "flows/calendars"
LISTED_FILE = re.compile(r"flows/(lists|calendars)/[A-Za-z][A-Za-z0-9_-]{0,63}\.txt")

FILE_RULE = ("不是可编辑的配置文件 — not a configuration file: one of " + ", ".join(FIXED_FILES)
             + f", {LISTS_DIR}/NAME.txt or {CALENDARS_DIR}/NAME.txt")


def is_config_file(path: str) -> bool:
    return path in FIXED_FILES or LISTED_FILE.fullmatch(path) is not None


# the same files as one JSON Schema pattern, for the API's document and its guard
CONFIG_FILE_PATTERN = "^(?:" + "|".join(re.escape(f) for f in FIXED_FILES) + f"|{LISTED_FILE.pattern})$"


def config_paths(home: Path) -> list[str]:
    """The configuration files present on disk, as paths in the project."""
    out = [f for f in FIXED_FILES if (home / f).is_file()]
    for folder in (LISTS_DIR, CALENDARS_DIR):
        if (home / folder).is_dir():
            out += [f"{folder}/{p.name}" for p in sorted((home / folder).glob("*.txt"))
                    if is_config_file(f"{folder}/{p.name}")]
    return out


def read_texts(home: Path) -> dict[str, str]:
    """Every configuration file on disk, bounded (``ConfigError`` names one
    that cannot be read)."""
    return {path: bounded.read(home / path, path) for path in config_paths(home)}



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


def parse_queue_config(text: str, path: str = QUEUES_FILE) -> tuple[QueueConfig | None, list[Problem]]:
    """``queue/queues.yaml``: the queues flows may name and the fallback; every
    problem at its ``file:line:col``."""
    problems = Problems(path)
    root = compose_mapping(text, problems, "'queues:' and 'fallback:'")
    if root is None:
        return None, problems.items
    top = Reader(root, problems, "queues", [])
    qnode = top.take("queues", lambda r, n: n, required=True)
    fallback = top.take("fallback", read_text, default="general")
    top.finish()
    queues: dict[str, QueueDef] = {}
    if isinstance(qnode, yaml.MappingNode):
        for name, knode, vnode in mapping_items(qnode, problems, "queues"):
            queue = _queue_def(name, knode, vnode, problems)
            if queue is not None:
                queues[name] = queue
    elif qnode is not MISSING:
        problems.at(qnode, "queues: expected a mapping of queue name: {asterisk: ...}")
    if isinstance(fallback, str) and qnode is not MISSING and fallback not in queues:
        where = top.items["fallback"][1] if "fallback" in top.items else root
        problems.at(where, f"fallback queue '{fallback}' is not one of the queues")
    if problems.errors:
        return None, problems.items
    return QueueConfig(queues, fallback), problems.items


def _queue_def(name: str, knode: yaml.Node, vnode: yaml.Node, problems: Problems) -> QueueDef | None:
    if not names.NAME.ok(name):
        problems.at(knode, f"queue '{name}': 名称无效 (invalid name): {names.NAME.what}")
        return None
    if not isinstance(vnode, yaml.MappingNode):
        problems.at(vnode, f"queue '{name}': needs 'asterisk: <queue name in queues.conf>'")
        return None
    r = Reader(vnode, problems, f"queue '{name}'", [])
    asterisk = r.take("asterisk", read_text, required=True)
    label = r.take("label", read_text, default="")
    emergency = r.take("emergency", read_bool, default=False)
    r.finish()
    if asterisk is MISSING:
        return None
    if not names.PBX_TOKEN.ok(asterisk):
        problems.at(r.items["asterisk"][1], f"queue '{name}': needs 'asterisk: <queue name in queues.conf>'")
        return None
    return QueueDef(name, asterisk, label if isinstance(label, str) else "", emergency is True)


def load_queue_config(queue_dir: Path) -> QueueConfig:
    path = queue_dir / "queues.yaml"
    qc, problems = parse_queue_config(yamlfile.read(path, QUEUES_FILE))
    if qc is None:
        raise ConfigError("\n".join(str(p) for p in problems if not p.warning))
    return qc


class AsteriskConfig(_PystConfig):  # type: ignore[misc]  # pyst2 ships no type hints
    """pyst2's parser, reading the file with a context manager (its own ``load``
    leaves the file open)."""

    def load(self) -> None:
        with open(self.filename, encoding="utf-8") as fh:
            self.raw_lines = fh.readlines()


def asterisk_queue_names(asterisk_dir: Path) -> frozenset[str] | None:
    path = asterisk_dir / "queues.conf"
    if not path.exists():
        return None
    return frozenset(c.name for c in AsteriskConfig(str(path)).categories if c.name != "general")


def asterisk_wrapup_times(asterisk_dir: Path) -> dict[str, float]:
    """queue -> its ``wrapuptime`` in asterisk/queues.conf (seconds app_queue
    offers a seat nothing after a call); queues without one are left out."""
    path = asterisk_dir / "queues.conf"
    if not path.exists():
        return {}
    out: dict[str, float] = {}
    for cat in AsteriskConfig(str(path)).categories:
        for item in cat.items:
            if cat.name != "general" and item.name.strip() == "wrapuptime":
                try:
                    out[cat.name] = float(str(item.value).split(";", 1)[0].strip())
                except ValueError:
                    continue
    return out


# queues.conf settings whose value is a sound Asterisk plays to the waiting
# caller (app_queue.c queue_set_param); periodic-announce takes a list
QUEUE_SOUND_KEYS = frozenset({
    "announce", "periodic-announce", "queue-youarenext", "queue-thereare", "queue-callswaiting",
    "queue-quantity1", "queue-quantity2", "queue-holdtime", "queue-minutes", "queue-minute", "queue-seconds",
    "queue-thankyou", "queue-callerannounce", "queue-reporthold"})
SHIPPED_PROMPT_PREFIX = "12345/"     # how the shipped asterisk/ files name prompts/ (README: the sounds link)
# Asterisk's number words in Mandarin (main/say.c ast_say_number_full_zh), kept in
# prompts/ and installed as the PBX's sounds/zh/digits (README): a queue that
# says places needs them, or the number is skipped in silence
ZH_DIGITS = "lang-zh/digits"
ZH_DIGIT_NAMES = (*(str(n) for n in range(10)), *(str(n) for n in range(10, 100, 10)), "hundred", "thousand", "wan")
_CONF_SECTION = re.compile(r"^\s*\[([^\]]+)\]")
_CONF_SETTING = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=>?\s*(.*?)\s*$")
QUEUES_CONF = "asterisk/queues.conf"


def queue_sound_problems(asterisk_dir: Path, prompts: frozenset[str]) -> list[Problem]:
    """Every sound a queue in asterisk/queues.conf plays from prompts/ (named
    ``12345/<prompt>``) that prompts/ does not hold, and the Mandarin number
    words a queue announcing places needs, file:line:col: Asterisk would skip
    them in silence. Sounds named otherwise are the PBX's own."""
    path = asterisk_dir / "queues.conf"
    if not path.exists():
        return []
    problems: list[Problem] = []
    section = ""
    frequency: dict[str, tuple[str, int, int]] = {}    # queue -> announce-frequency, its line and column
    position: dict[str, str] = {}                      # queue -> announce-position (Asterisk's default: yes)
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split(";", 1)[0]
        head = _CONF_SECTION.match(line)
        if head is not None:
            section = head.group(1).strip()
            continue
        setting = _CONF_SETTING.match(line)
        if setting is None:
            continue
        key, value, col = setting.group(1).lower(), setting.group(2), setting.start(2) + 1
        if key in QUEUE_SOUND_KEYS:
            problems += _missing_sounds(lineno, col, key, value, prompts)
        elif key == "announce-frequency":
            frequency[section] = (value, lineno, col)
        elif key == "announce-position":
            position[section] = value.lower()
    missing = [d for d in ZH_DIGIT_NAMES if f"{ZH_DIGITS}/{d}" not in prompts]
    for queue, (value, lineno, col) in frequency.items():
        if missing and value.isdigit() and int(value) > 0 and position.get(queue, "yes") != "no":
            problems.append(Problem(QUEUES_CONF, lineno, col, (
                f"[{queue}] 报排队位置所需的数字录音缺失：prompts/{ZH_DIGITS}/ 中没有 {', '.join(missing)}"
                f"（安装为 PBX 的 sounds/zh/digits；可用 ivr prompts draft 生成） — [{queue}] says callers' places, "
                f"but prompts/{ZH_DIGITS}/ lacks {', '.join(missing)} (installed as the PBX's sounds/zh/digits)")))
    return problems


def _missing_sounds(lineno: int, col: int, key: str, value: str, prompts: frozenset[str]) -> list[Problem]:
    out = []
    for sound in re.split(r"[,|]", value):
        name = sound.strip()
        at = col + len(sound) - len(sound.lstrip())
        col += len(sound) + 1
        if name.startswith(SHIPPED_PROMPT_PREFIX) and name[len(SHIPPED_PROMPT_PREFIX):] not in prompts:
            wav = f"prompts/{name[len(SHIPPED_PROMPT_PREFIX):]}.wav"
            out.append(Problem(QUEUES_CONF, lineno, at,
                               f"{key}：录音 '{name}' 不在 prompts/ 中（缺少 {wav}），排队时将无声跳过 — "
                               f"{key}: sound '{name}' is not in prompts/ (no {wav}); Asterisk would skip it in silence"))
    return out


def prompt_names(prompts_dir: Path) -> frozenset[str]:
    out = set()
    for p in prompts_dir.rglob("*"):
        if p.is_file() and p.suffix in AUDIO_EXTENSIONS:
            out.add(p.relative_to(prompts_dir).with_suffix("").as_posix())
    return frozenset(out)


def _names(folder: Path, suffix: str) -> frozenset[str]:
    return frozenset(p.stem for p in folder.glob(f"*{suffix}")) if folder.is_dir() else frozenset()


def number_list(text: str) -> frozenset[str]:
    nums = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(n for n in nums if n)


def calendar_dates(text: str, path: str) -> tuple[frozenset[dt.date], list[Problem]]:
    dates: set[dt.date] = set()
    problems: list[Problem] = []
    for i, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", entry):    # fromisoformat takes 20261001 and 2026-W40-4 too
            problems.append(Problem(path, i, 1, f"'{entry}' is not a date YYYY-MM-DD"))
            continue
        try:
            dates.add(dt.date.fromisoformat(entry))
        except ValueError:
            problems.append(Problem(path, i, 1, f"there is no such day: '{entry}'"))
    return frozenset(dates), problems


def load_number_lists(flows_dir: Path) -> dict[str, frozenset[str]]:
    return {p.stem: number_list(p.read_text(encoding="utf-8")) for p in sorted((flows_dir / "lists").glob("*.txt"))}


def load_calendars(flows_dir: Path) -> dict[str, frozenset[dt.date]]:
    out = {}
    for p in sorted((flows_dir / "calendars").glob("*.txt")):
        dates, problems = calendar_dates(p.read_text(encoding="utf-8"), str(p))
        if problems:
            raise ConfigError("\n".join(str(x) for x in problems))
        out[p.stem] = dates
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
                announcement_sets: frozenset[str] | None = None,
                pbx_prompts: Mapping[str, frozenset[str]] | None = None) -> tuple[dict[str, m.Flow], list[Problem]]:
    """The flow files (all, or ``paths``) against the project; ``pbx_prompts``
    (publishing): also against what each known PBX holds."""
    paths = paths or project.flow_files()
    texts = {}
    for p in paths:
        shown = str(p.relative_to(project.home)) if p.is_absolute() and p.is_relative_to(project.home) else str(p)
        texts[p.stem] = (shown, yamlfile.read(p, shown))
    catalog = project.catalog(frozenset(texts))
    if announcement_sets is not None:
        catalog = dataclasses.replace(catalog, announcement_sets=announcement_sets)
    if pbx_prompts is not None:
        catalog = dataclasses.replace(catalog, pbx_prompts=pbx_prompts)
    return check_flow_texts(texts, catalog)


@dataclass(frozen=True, slots=True)
class Operations:
    """What seat managers and operations staff set outside the flows: the
    contingency plan, the seat groups it moves, the announcement sets, the
    callback policy, the trunk lines and the PBXs."""

    plan: Plan | None
    seats: Seats | None
    announcements: AnnouncementSets
    problems: list[Problem]
    policy: Policy | None = None      # callback/policy.yaml
    lines: LinesConfig | None = None  # queue/lines.yaml; None: absent (no line-based admission)
    pbxs: PbxConfig | None = None     # queue/pbxs.yaml (absent: one PBX on IVR_AMI_URL); None: not read, or wrong
    targets: Targets | None = None    # queue/targets.yaml; None: absent or refused (the defaults apply)


def load_operations(project: Project, tz: ZoneInfo, now: dt.datetime | None = None) -> Operations:
    return operations_from_texts(read_texts(project.home), prompt_names(project.home / "prompts"), tz, now)


def operations_from_texts(texts: Mapping[str, str], prompts: frozenset[str], tz: ZoneInfo,
                          now: dt.datetime | None = None) -> Operations:
    """The plan, seat groups, announcement sets, callback policy and lines,
    each file checked against the others (a plan naming a set that is not there, a queue
    that is not one): ``texts`` maps a file's path in the project (e.g.
    ``queue/contingency.yaml``) to its text; a file that is absent takes its
    default, as on disk."""
    from ivr.admission.lines import parse_lines
    from ivr.callback.policy import Policy, parse_policy
    from ivr.callback.targets import parse_targets
    from ivr.configset.pbxs import Known, default_pbxs, parse_pbxs
    from ivr.contingency.plan import Level, Plan, Seats, parse_plan, parse_seats
    from ivr.prompts.announcements import parse_announcements

    problems: list[Problem] = []
    sets: AnnouncementSets = {}
    if ANNOUNCEMENTS_FILE in texts:
        sets, p = parse_announcements(texts[ANNOUNCEMENTS_FILE], ANNOUNCEMENTS_FILE, tz=tz, prompts=prompts, now=now)
        problems += p
    seats: Seats | None = Seats()
    if SEATS_FILE in texts:
        seats, p = parse_seats(texts[SEATS_FILE], SEATS_FILE)
        problems += p
    queue_names: frozenset[str] | None = None
    asterisk_queues: frozenset[str] | None = None
    if QUEUES_FILE in texts:
        qc, p = parse_queue_config(texts[QUEUES_FILE])
        problems += p
        queue_names = frozenset(qc.queues) if qc else None
        asterisk_queues = frozenset(qc.asterisk_names.values()) if qc else None
    else:
        problems.append(Problem(QUEUES_FILE, 1, 1, "缺少队列文件 (the file is missing)"))
    plan: Plan | None = Plan((Level(0, "正常", "normal"), Level(1, "高峰", "peak")))
    if PLAN_FILE in texts:
        plan, p = parse_plan(texts[PLAN_FILE], PLAN_FILE, queues=queue_names, announcement_sets=frozenset(sets),
                             seat_groups=frozenset(seats.groups) if seats else None)
        problems += p
    policy: Policy | None = Policy()
    if POLICY_FILE in texts:
        policy, p = parse_policy(texts[POLICY_FILE], POLICY_FILE)
        problems += p
    lines = None
    if LINES_FILE in texts:
        lines, p = parse_lines(texts[LINES_FILE], LINES_FILE)
        problems += p
    pbxs: PbxConfig | None = default_pbxs()
    if PBXS_FILE in texts:
        known = Known(queues=asterisk_queues, lines=frozenset(lines.pbxs) if lines else None,
                      seats=frozenset(s.interface for g in seats.groups.values() for s in g) | seats.reserved
                      if seats else None)
        pbxs, p = parse_pbxs(texts[PBXS_FILE], PBXS_FILE, known)
        problems += p
    targets = None
    if TARGETS_FILE in texts:
        targets, p = parse_targets(texts[TARGETS_FILE], TARGETS_FILE)
        problems += p
    return Operations(plan, seats, sets, problems, policy, lines, pbxs, targets)


def require_operations(project: Project, tz: ZoneInfo) -> Operations:
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
