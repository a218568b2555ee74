"""Policy announcement sets (prompts/announcements.yaml) and their validity windows.

Pure. A set is an ordered list of prompts, each valid from one moment until
another; an item outside its window is never played, whatever the flow says.
Dates without a time mean the whole day in the hotline's time zone: valid from
the start of ``valid_from`` until the end of ``valid_until``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from ivr import names
from ivr.yamldoc import bounded as yamlfile
from ivr.yamldoc.problems import Problem, Problems, kind_of, mapping_items
from ivr.yamldoc.schema import MISSING, Reader, Reference, compose_mapping, read_text

EXPIRY_WARNING = dt.timedelta(days=1)
FILE = "announcements.yaml"


@dataclass(frozen=True, slots=True)
class Announcement:
    prompt: str
    title: str
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None

    def valid_at(self, now: dt.datetime) -> bool:
        return ((self.valid_from is None or self.valid_from <= now)
                and (self.valid_until is None or now < self.valid_until))


AnnouncementSets = dict[str, tuple[Announcement, ...]]


def playable(sets: AnnouncementSets, name: str | None, now: dt.datetime) -> tuple[str, ...]:
    """The prompts of set ``name`` valid at ``now``, in order."""
    if not name:
        return ()
    return tuple(a.prompt for a in sets.get(name, ()) if a.valid_at(now))


def _moment(r: Reader, n: yaml.Node, tz: ZoneInfo, end_of_day: bool) -> Any:  # a datetime, or MISSING
    v = n.value if isinstance(n, yaml.ScalarNode) else None
    try:
        if v is not None and len(v) == 10:
            day = dt.date.fromisoformat(v)
            start = dt.datetime.combine(day, dt.time(), tz)
            return start + dt.timedelta(days=1) if end_of_day else start
        if v is not None:
            t = dt.datetime.fromisoformat(v)
            return t if t.tzinfo else t.replace(tzinfo=tz)
    except ValueError:
        pass
    return r.bad(n, "a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM")


def parse_announcements(text: str, path: str, *, tz: ZoneInfo, prompts: frozenset[str] | None,
                        now: dt.datetime | None = None) -> tuple[AnnouncementSets, list[Problem]]:
    problems = Problems(path)
    refs: list[Reference] = []
    sets: AnnouncementSets = {}
    if not text.strip():
        return sets, problems.items
    root = compose_mapping(text, problems, "'sets:'")
    if root is None:
        return sets, problems.items
    top = Reader(root, problems, "announcements", refs)
    sets_node = top.take("sets", lambda r, n: n, required=True)
    top.finish()
    if sets_node is MISSING:
        return sets, problems.items
    if not isinstance(sets_node, yaml.MappingNode):
        problems.at(sets_node, f"sets: expected a mapping of set name: list, got {kind_of(sets_node)}")
        return sets, problems.items
    ctx = _Context(problems, refs, tz, prompts, now)
    for name, knode, lnode in mapping_items(sets_node, problems, "sets"):
        items = _announcement_set(ctx, name, knode, lnode)
        if items is not None:
            sets[name] = items
    return sets, problems.items


@dataclass(frozen=True, slots=True)
class _Context:
    """What every announcement of the file is read and checked against."""
    problems: Problems
    refs: list[Reference]
    tz: ZoneInfo
    prompts: frozenset[str] | None      # None: not checked
    now: dt.datetime | None             # None: no expiry warnings


def _announcement_set(ctx: _Context, name: str, knode: yaml.Node,
                      lnode: yaml.Node) -> tuple[Announcement, ...] | None:
    """One set; None when its name or its shape is wrong (its items are not read)."""
    if not names.NAME.ok(name):
        ctx.problems.at(knode, f"set '{name}': 名称无效 (invalid name): {names.NAME.what}")
        return None
    if not isinstance(lnode, yaml.SequenceNode):
        ctx.problems.at(lnode, f"set '{name}': expected a list of announcements, got {kind_of(lnode)}")
        return None
    where = f"set '{name}'"
    return tuple(a for inode in lnode.value if (a := _announcement(ctx, where, inode)) is not None)


def _announcement(ctx: _Context, where: str, inode: yaml.Node) -> Announcement | None:
    """One item of a set; None when it has errors."""
    if not isinstance(inode, yaml.MappingNode):
        ctx.problems.at(inode, f"{where}: expected an announcement (prompt, valid_from, valid_until)")
        return None
    tz = ctx.tz
    r = Reader(inode, ctx.problems, where, ctx.refs)
    prompt = r.take("prompt", read_text, required=True)
    title = r.take("title", read_text, default="")
    start = r.take("valid_from", lambda rr, n: _moment(rr, n, tz, False))
    until = r.take("valid_until", lambda rr, n: _moment(rr, n, tz, True))
    r.finish()
    if MISSING in (prompt, title, start, until):
        return None
    if ctx.prompts is not None and prompt not in ctx.prompts:
        ctx.problems.at(r.items["prompt"][1], f"{where}: prompt '{prompt}' has no audio file in prompts/")
    if start and until and until <= start:
        ctx.problems.at(r.items["valid_until"][1], f"{where}: '{prompt}' ends before it starts")
    if until and ctx.now is not None:
        _warn_expiry(ctx.problems, r.items["valid_until"][1], where, prompt, until, ctx.now)
    return Announcement(prompt, title, start, until)


def _warn_expiry(problems: Problems, node: yaml.Node, where: str, prompt: str, until: dt.datetime,
                 now: dt.datetime) -> None:
    """A warning for an item that has expired or expires within a day."""
    if until <= now:
        problems.at(node, f"{where}: '{prompt}' expired on {until:%Y-%m-%d %H:%M} and will not play",
                    warning=True)
    elif until - now <= EXPIRY_WARNING:
        problems.at(node, f"{where}: '{prompt}' expires within a day ({until:%Y-%m-%d %H:%M}); "
                          "renew it or replace it", warning=True)


def load_announcements(prompts_dir: Path, tz: ZoneInfo, prompts: frozenset[str] | None = None,
                       now: dt.datetime | None = None) -> tuple[AnnouncementSets, list[Problem]]:
    path = prompts_dir / FILE
    if not path.exists():
        return {}, []
    shown = f"prompts/{FILE}"
    return parse_announcements(yamlfile.read(path, shown), shown, tz=tz, prompts=prompts, now=now)
