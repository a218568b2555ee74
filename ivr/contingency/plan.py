"""The contingency plan (queue/contingency.yaml) and the seat groups it moves
(queue/seats.yaml), read and checked with file:line:col errors. Pure.

A level says what callers hear and are offered (announcement set, callback or
straight to a message, a shortened menu, the hold music class) and which seat
actions the AMI controller carries out when the level is entered. Automatic
thresholds raise a level when any of them is exceeded for ``for_s`` seconds, and
stand it down only when all of the (lower) stand-down figures hold for their
own ``for_s``: the gap between the two is the hysteresis that stops flapping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import yaml

from ivr import names
from ivr.errors import LevelInvalid
from ivr.yamldoc import bounded as yamlfile
from ivr.yamldoc.problems import Problem, Problems
from ivr.yamldoc.schema import MISSING, Reader, Reference, compose_mapping, read_bool, read_int, read_seconds, read_text

CALLBACK_MODES = ("offer", "message")
SEAT_ACTIONS = ("add", "remove", "pause", "unpause")
METRICS = ("calls_waiting", "longest_wait_s", "abandon_rate")
UNDO = {"add": "remove", "remove": "add", "pause": "unpause", "unpause": "pause"}


@dataclass(frozen=True, slots=True)
class Thresholds:
    calls_waiting: int | None = None
    longest_wait_s: float | None = None
    abandon_rate: float | None = None
    for_s: float = 60.0

    def values(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in METRICS if getattr(self, k) is not None}


@dataclass(frozen=True, slots=True)
class SeatAction:
    action: str             # add | remove | pause | unpause
    group: str
    queue: str | None = None     # logical queue (queue/queues.yaml); pause/unpause: all queues when absent
    penalty: int = 0
    reason: str = ""
    undo: bool = True       # reverse it when the level is stood down


@dataclass(frozen=True, slots=True)
class Level:
    level: int
    name: str
    name_en: str = ""
    announcements: str | None = None
    callback: str = "offer"
    short_menu: bool = False
    hold_music: str | None = None
    expire_after_h: float | None = None
    raise_when: Thresholds | None = None
    stand_down_when: Thresholds | None = None
    seat_actions: tuple[SeatAction, ...] = ()
    # admission (the flows' `admit` step): offer a callback in the first seconds
    # when the expected wait is beyond this; None: never for the wait alone
    admission_wait_s: float | None = None
    say_wait: bool = False      # tell waiting callers their place and expected wait (`say_wait` steps)


MAX_LEVEL = 99


def is_level(value: object) -> TypeGuard[int]:
    """A level is an ``int`` from 0 to 99, never a ``bool`` (``True == 1`` in Python:
    a level of ``true`` once reached Redis and made /metrics answer 500)."""
    return type(value) is int and 0 <= value <= MAX_LEVEL


def check_level(value: object, top: int | None = None) -> int:
    """``value`` if it is a level (and at most ``top``), else ``LevelInvalid``."""
    if is_level(value) and (top is None or value <= top):
        return value
    upto = MAX_LEVEL if top is None else top
    raise LevelInvalid(f"应急级别必须是 0 到 {upto} 的整数 (the level must be a whole number from 0 to {upto}): "
                       f"{value!r}")


def level_from_text(raw: str | bytes | None) -> int:
    """The level key every process polls (``"2"``), 0 when unset. Anything but
    plain digits (``"True"``) raises ``LevelInvalid``."""
    if raw is None or raw == "" or raw == b"":
        return 0
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    if not (text.isascii() and text.isdigit()):
        raise LevelInvalid(f"Redis 中的应急级别无效 (the level stored in Redis is not a whole number): {text!r}")
    return check_level(int(text))


def level_or_minus_one(raw: str | bytes | None) -> int:
    """For reports (/metrics): the level, or -1 when the stored value is not one."""
    try:
        return level_from_text(raw)
    except LevelInvalid:
        return -1


@dataclass(frozen=True, slots=True)
class Plan:
    levels: tuple[Level, ...]
    mode: str = "propose"           # auto | propose
    evaluate_every_s: float = 5.0
    queues: tuple[str, ...] = ("general",)
    abandon_min_calls: int = 20     # an abandon rate over fewer calls says nothing

    def level(self, n: int) -> Level:
        return self.levels[max(0, min(n, len(self.levels) - 1))]

    @property
    def top(self) -> int:
        return len(self.levels) - 1


@dataclass(frozen=True, slots=True)
class SeatDef:
    interface: str
    name: str
    state_interface: str


@dataclass(frozen=True, slots=True)
class Seats:
    groups: dict[str, tuple[SeatDef, ...]] = field(default_factory=dict)
    reserved: frozenset[str] = frozenset()


def _choice(options: tuple[str, ...]) -> Callable[[Reader, yaml.Node], Any]:
    def conv(r: Reader, n: yaml.Node) -> Any:
        v = n.value if isinstance(n, yaml.ScalarNode) else None
        return v if v in options else r.bad(n, " or ".join(repr(o) for o in options))
    return conv


def _rate(r: Reader, n: yaml.Node) -> Any:
    v = read_seconds(0.0, 1.0)(r, n)
    return v if v is MISSING else float(v)


def _thresholds(r: Reader, n: yaml.Node) -> Any:
    if not isinstance(n, yaml.MappingNode):
        return r.bad(n, "thresholds (calls_waiting, longest_wait_s, abandon_rate, for_s)")
    t = Reader(n, r.problems, r.where, r.refs)
    vals = {"calls_waiting": t.take("calls_waiting", read_int(1, 1_000_000)),
            "longest_wait_s": t.take("longest_wait_s", read_seconds(1, 86_400)),
            "abandon_rate": t.take("abandon_rate", _rate),
            "for_s": t.take("for_s", read_seconds(0, 86_400), default=60.0)}
    t.finish()
    if MISSING in vals.values():
        return MISSING
    th = Thresholds(**vals)
    if not th.values():
        return r.bad(n, "at least one of calls_waiting, longest_wait_s, abandon_rate")
    return th


def _seat_actions(r: Reader, n: yaml.Node) -> Any:
    if not isinstance(n, yaml.SequenceNode):
        return r.bad(n, "a list of seat actions")
    out: list[tuple[SeatAction, yaml.Node]] = []
    for an in n.value:
        if not isinstance(an, yaml.MappingNode):
            r.bad(an, "a seat action {action, group, queue, penalty}")
            continue
        a = Reader(an, r.problems, f"{r.where} seat action", r.refs)
        action = a.take("action", _choice(SEAT_ACTIONS), required=True)
        group = a.take("group", read_text, required=True)
        queue = a.take("queue", read_text)
        penalty = a.take("penalty", read_int(0, 100), default=0)
        reason = a.take("reason", read_text, default="")
        undo = a.take("undo", read_bool, default=action in ("add", "pause"))
        a.finish()
        if MISSING in (action, group, queue, penalty, reason, undo):
            continue
        if action in ("add", "remove") and not queue:
            r.problems.at(an, f"{r.where} seat action: '{action}' needs 'queue'")
            continue
        out.append((SeatAction(action, group, queue, penalty, reason, undo), an))
    return out


def parse_plan(text: str, path: str, *, queues: frozenset[str] | None = None,
               announcement_sets: frozenset[str] | None = None,
               seat_groups: frozenset[str] | None = None) -> tuple[Plan | None, list[Problem]]:
    problems = Problems(path)
    root = compose_mapping(text, problems, "'levels:'")
    if root is None:
        return None, problems.items
    refs: list[Reference] = []
    top = Reader(root, problems, "contingency plan", refs)
    mode = top.take("mode", _choice(("auto", "propose")), default="propose")
    every = top.take("evaluate_every_s", read_seconds(1, 3600), default=5.0)
    qnode = top.take("queues", lambda r, n: n)
    min_calls = top.take("abandon_min_calls", read_int(1, 100_000), default=20)
    lnode = top.take("levels", lambda r, n: n, required=True)
    top.finish()
    watched = ["general"] if qnode is None else _watched_queues(qnode, problems, queues)
    if lnode is MISSING:
        return None, problems.items
    if not isinstance(lnode, yaml.SequenceNode) or len(lnode.value) < 2:
        problems.at(lnode, "contingency plan: 'levels' must list at least two levels (0 normal, 1 ...)")
        return None, problems.items
    known = _Known(queues, announcement_sets, seat_groups)
    levels = [level for i, node in enumerate(lnode.value)
              if (level := _level(i, node, problems, refs, known)) is not None]
    if problems.errors or MISSING in (mode, every, min_calls):
        return None, problems.items
    return Plan(tuple(levels), mode, every, tuple(watched), min_calls), problems.items


@dataclass(frozen=True, slots=True)
class _Known:
    """The names a plan may refer to; None: not checked."""
    queues: frozenset[str] | None
    announcement_sets: frozenset[str] | None
    seat_groups: frozenset[str] | None


def _watched_queues(qnode: Any, problems: Problems, queues: frozenset[str] | None) -> list[str]:
    """The 'queues' the plan watches; the general queue when the list is malformed."""
    if not (isinstance(qnode, yaml.SequenceNode) and all(isinstance(x, yaml.ScalarNode) for x in qnode.value)):
        problems.at(qnode, "contingency plan: 'queues' must be a list of queue names")
        return ["general"]
    for x in qnode.value:
        if queues is not None and x.value not in queues:
            problems.at(x, f"contingency plan: queue '{x.value}' is not in queue/queues.yaml")
    return [x.value for x in qnode.value]


def _level(i: int, node: yaml.Node, problems: Problems, refs: list[Reference], known: _Known) -> Level | None:
    """Level ``i`` of the 'levels' list; None when it has errors."""
    where = f"level {i}"
    if not isinstance(node, yaml.MappingNode):
        problems.at(node, f"{where}: expected a mapping")
        return None
    r = Reader(node, problems, where, refs)
    number = r.take("level", read_int(0, 99), required=True)
    name = r.take("name", read_text, required=True)
    name_en = r.take("name_en", read_text, default="")
    ann = r.take("announcements", read_text)
    callback = r.take("callback", _choice(CALLBACK_MODES), default="offer")
    short = r.take("short_menu", read_bool, default=False)
    music = r.take("hold_music", read_text)
    expire = r.take("expire_after_h", read_seconds(0.1, 24 * 14))
    up = r.take("raise_when", _thresholds)
    down = r.take("stand_down_when", _thresholds)
    actions = r.take("seat_actions", _seat_actions, default=[])
    admit = r.take("admission_wait_s", read_seconds(0, 3600))
    say = r.take("say_wait", read_bool, default=False)
    r.finish()
    _check_order(r, i, number, up, down)
    _check_hysteresis(r, up, down)
    _check_names(r, ann, actions, known)
    if MISSING in (number, name, name_en, ann, callback, short, music, expire, up, down, actions, admit, say):
        return None
    return Level(i, name, name_en, None if ann in (None, "none") else ann, callback, short, music,
                 expire, up, down, tuple(a for a, _ in actions), admit, say)


def _check_order(r: Reader, i: int, number: Any, up: Any, down: Any) -> None:
    """Levels are numbered in order, and the normal level (0) has no thresholds."""
    if number is not MISSING and number != i:
        r.problems.at(r.items["level"][1], f"{r.where}: levels must be numbered 0, 1, 2 ... in order; found {number}")
    if i == 0 and up not in (None, MISSING):
        r.problems.at(r.items["raise_when"][0], "level 0: the normal level has no 'raise_when'")
    if i == 0 and down not in (None, MISSING):
        r.problems.at(r.items["stand_down_when"][0], "level 0: the normal level has no 'stand_down_when'")


def _check_hysteresis(r: Reader, up: Any, down: Any) -> None:
    """Each stand-down figure lies below the raise threshold of the same metric."""
    if not (isinstance(up, Thresholds) and isinstance(down, Thresholds)):
        return
    for metric, high in up.values().items():
        low = down.values().get(metric)
        if low is not None and low >= high:
            r.problems.at(r.items["stand_down_when"][1],
                          f"{r.where}: stand-down {metric} {low:g} must be below the raise threshold {high:g} "
                          "(otherwise the level flaps)")


def _check_names(r: Reader, ann: Any, actions: Any, known: _Known) -> None:
    """The announcement set, seat groups and queues a level names exist."""
    sets = known.announcement_sets
    if isinstance(ann, str) and ann != "none" and sets is not None and ann not in sets:
        r.problems.at(r.items["announcements"][1],
                      f"{r.where}: announcement set '{ann}' is not in prompts/announcements.yaml")
    for action, anode in actions if actions is not MISSING else []:
        if known.seat_groups is not None and action.group not in known.seat_groups:
            r.problems.at(anode, f"{r.where} seat action: seat group '{action.group}' is not in queue/seats.yaml")
        if action.queue and known.queues is not None and action.queue not in known.queues:
            r.problems.at(anode, f"{r.where} seat action: queue '{action.queue}' is not in queue/queues.yaml")


def parse_seats(text: str, path: str) -> tuple[Seats | None, list[Problem]]:
    problems = Problems(path)
    root = compose_mapping(text, problems, "'groups:'")
    if root is None:
        return None, problems.items
    top = Reader(root, problems, "seats", [])
    gnode = top.take("groups", lambda r, n: n, default=None)
    rnode = top.take("reserved", lambda r, n: n, default=None)
    top.finish()
    groups: dict[str, tuple[SeatDef, ...]] = {}
    if gnode is not None:
        if not isinstance(gnode, yaml.MappingNode):
            problems.at(gnode, "groups: expected a mapping of group name: list of seats")
        else:
            for knode, vnode in gnode.value:
                name = knode.value
                if not names.NAME.ok(name):
                    problems.at(knode, f"group '{name}': 名称无效 (invalid name): {names.NAME.what}")
                    continue
                if not isinstance(vnode, yaml.SequenceNode):
                    problems.at(vnode, f"group '{name}': expected a list of seats")
                    continue
                seats = []
                for sn in vnode.value:
                    if not isinstance(sn, yaml.MappingNode):
                        problems.at(sn, f"group '{name}': expected {{interface, name, state}}")
                        continue
                    s = Reader(sn, problems, f"group '{name}'", [])
                    iface = s.take("interface", read_text, required=True)
                    sname = s.take("name", read_text, default="")
                    state = s.take("state", read_text, default="")
                    s.finish()
                    if MISSING not in (iface, sname, state):
                        seats.append(SeatDef(iface, sname or iface, state or iface))
                groups[name] = tuple(seats)
    reserved: set[str] = set()
    if rnode is not None:
        if isinstance(rnode, yaml.SequenceNode) and all(isinstance(x, yaml.ScalarNode) for x in rnode.value):
            reserved = {x.value for x in rnode.value}
        else:
            problems.at(rnode, "reserved: expected a list of seat interfaces")
    if problems.errors:
        return None, problems.items
    return Seats(groups, frozenset(reserved)), problems.items


def load_seats(queue_dir: Path) -> tuple[Seats | None, list[Problem]]:
    path = queue_dir / "seats.yaml"
    if not path.exists():
        return Seats(), []
    return parse_seats(yamlfile.read(path), "queue/seats.yaml")


def load_plan(queue_dir: Path, *, queues: frozenset[str] | None, announcement_sets: frozenset[str] | None,
              seat_groups: frozenset[str] | None) -> tuple[Plan | None, list[Problem]]:
    path = queue_dir / "contingency.yaml"
    if not path.exists():
        return Plan((Level(0, "正常", "normal"), Level(1, "高峰", "peak"))), []
    return parse_plan(yamlfile.read(path), "queue/contingency.yaml", queues=queues,
                      announcement_sets=announcement_sets, seat_groups=seat_groups)
