"""Which files make up the configuration, read as ``path -> text``, and the
check of a whole set: each file against the others (a plan naming an
announcement set, a queue, a seat group) and against the flows in force (a
flow naming a queue, a number list or a calendar)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from ivr.errors import ConfigError
from ivr.flow import model as m
from ivr.flow.references import Catalog
from ivr.project import (
    CALENDARS_DIR,
    FILE_RULE,
    FIXED_FILES,
    LISTS_DIR,
    QUEUES_FILE,
    Operations,
    QueueConfig,
    calendar_dates,
    check_flow_texts,
    config_paths,
    is_config_file,
    number_list,
    operations_from_texts,
    parse_queue_config,
    read_texts,
)

__all__ = ["CALENDARS_DIR", "FILE_RULE", "FIXED_FILES", "LISTS_DIR", "Checked", "calendars_of", "check_set",
           "config_paths", "is_config_file", "lists_of", "read_texts"]
from ivr.yamldoc.problems import Problem


def lists_of(texts: Mapping[str, str]) -> dict[str, frozenset[str]]:
    return {Path(p).stem: number_list(t) for p, t in sorted(texts.items()) if p.startswith(LISTS_DIR + "/")}


def calendars_of(texts: Mapping[str, str]) -> tuple[dict[str, frozenset[dt.date]], list[Problem]]:
    out: dict[str, frozenset[dt.date]] = {}
    problems: list[Problem] = []
    for p, t in sorted(texts.items()):
        if p.startswith(CALENDARS_DIR + "/"):
            out[Path(p).stem], found = calendar_dates(t, p)
            problems += found
    return out, problems


@dataclass(frozen=True, slots=True)
class Checked:
    """A configuration set read and checked whole: the parts are None when
    there are errors."""

    ops: Operations
    queues: QueueConfig | None
    lists: dict[str, frozenset[str]]
    calendars: dict[str, frozenset[dt.date]]
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.warning]

    def require(self) -> None:
        if self.errors:
            raise ConfigError("\n".join(str(p) for p in self.errors))


def check_set(texts: Mapping[str, str], *, prompts: frozenset[str], tz: ZoneInfo, now: dt.datetime | None = None,
              flows: Mapping[str, str] | None = None, asterisk_queues: frozenset[str] | None = None) -> Checked:
    """The whole set checked at once. ``flows`` (name -> YAML source: the flows
    in force) are checked against the set's queues, lists, calendars and
    announcement sets, so that no change to those can leave a flow naming what
    is gone."""
    ops = operations_from_texts(texts, prompts, tz, now)
    problems = list(ops.problems)
    queues = parse_queue_config(texts[QUEUES_FILE])[0] if QUEUES_FILE in texts else None
    calendars, found = calendars_of(texts)
    problems += found
    lists = lists_of(texts)
    if flows and queues is not None:
        catalog = Catalog(prompts=prompts, queues=queues.asterisk_names, asterisk_queues=asterisk_queues,
                          lists=frozenset(lists), calendars=frozenset(calendars), flows=frozenset(flows),
                          announcement_sets=frozenset(ops.announcements))
        _, flow_problems = check_flow_texts({n: (f"flows/{n}.yaml (in force)", src) for n, src in flows.items()},
                                            catalog)
        problems += [p for p in flow_problems if not p.warning]
    return Checked(ops, queues, lists, calendars, problems)


def flow_sources(flows: Mapping[str, m.Flow]) -> dict[str, str]:
    return {name: f.source for name, f in flows.items()}
