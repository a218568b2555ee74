"""Drill profiles (queue/drills/*.yaml): how many citizens call, when, and how
they behave; how many seats answer. Read with file:line:col errors."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ivr import names
from ivr.errors import ConfigError
from ivr.yamldoc import bounded as yamlfile
from ivr.yamldoc.problems import Problems
from ivr.yamldoc.schema import MISSING, Reader, compose_mapping, read_int, read_seconds, read_text


@dataclass(frozen=True, slots=True)
class CallerBehaviour:
    emergency_share: float = 0.02
    patience_s: float = 120.0
    handle_s: float = 240.0
    wrapup_s: float = 15.0
    satisfied_by_announcement: float = 0.2
    accept_callback: float = 0.6
    redial_probability: float = 0.5
    redial_after_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    duration_s: float
    speed: float
    seats: int
    emergency_seats: int
    arrivals: tuple[tuple[float, float], ...]     # (at_s, calls per hour), linear in between
    callers: CallerBehaviour
    callback_reach: float = 0.7

    def rate_per_s(self, t: float) -> float:
        pts = self.arrivals
        if t <= pts[0][0]:
            return pts[0][1] / 3600
        for (t0, r0), (t1, r1) in itertools.pairwise(pts):
            if t0 <= t <= t1:
                return (r0 + (r1 - r0) * (t - t0) / (t1 - t0 if t1 > t0 else 1)) / 3600
        return pts[-1][1] / 3600

    @property
    def peak_per_s(self) -> float:
        return max(r for _, r in self.arrivals) / 3600

    @property
    def expected_calls(self) -> float:
        pts = self.arrivals
        total = sum((t1 - t0) * (r0 + r1) / 2 for (t0, r0), (t1, r1) in itertools.pairwise(pts)) / 3600
        return total + max(0.0, self.duration_s - pts[-1][0]) * pts[-1][1] / 3600


_share = read_seconds(0, 1)     # a probability: 0 to 1


def parse_profile(text: str, path: str, name: str) -> Profile:
    problems = Problems(path)
    root = compose_mapping(text, problems, "'arrivals:' and 'seats:'")
    prof = None if root is None else _profile(root, problems, name)
    if prof is None:
        raise ConfigError("\n".join(str(p) for p in problems.errors) or f"{path}: not a drill profile")
    return prof


def _profile(root: yaml.MappingNode, problems: Problems, name: str) -> Profile | None:
    r = Reader(root, problems, f"drill '{name}'", [])
    desc = r.take("description", read_text, default="")
    duration = r.take("duration_s", read_seconds(10, 7 * 86400), required=True)
    speed = r.take("speed", read_seconds(0.1, 1000), default=1.0)
    seats = r.take("seats", read_int(1, 20000), required=True)
    em = r.take("emergency_seats", read_int(0, 2000), default=1)
    anode = r.take("arrivals", lambda rr, n: n, required=True)
    cnode = r.take("callers", lambda rr, n: n, default=None)
    cbnode = r.take("callbacks", lambda rr, n: n, default=None)
    r.finish()
    points = [] if anode is MISSING else _arrivals(r, anode, name)
    behaviour = CallerBehaviour() if cnode is None else _callers(r, cnode, name)
    reach = 0.7 if cbnode is None else _callback_reach(r, cbnode, name)
    values = (desc, duration, speed, seats, em, reach)
    if not problems.errors and MISSING not in values and points:
        return Profile(name, desc, duration, speed, seats, em, tuple(points), behaviour, reach)
    return None


def _arrivals(r: Reader, anode: yaml.Node, name: str) -> list[tuple[float, float]]:
    """The 'arrivals' points (at_s, per_hour), in time order."""
    points: list[tuple[float, float]] = []
    if not isinstance(anode, yaml.SequenceNode) or not anode.value:
        r.bad(anode, "a list of {at_s, per_hour}")
        return points
    for pn in anode.value:
        if not isinstance(pn, yaml.MappingNode):
            r.bad(pn, "{at_s, per_hour}")
            continue
        p = Reader(pn, r.problems, f"drill '{name}' arrivals", [])
        at = p.take("at_s", read_seconds(0, 7 * 86400), required=True)
        rate = p.take("per_hour", read_seconds(0, 10_000_000), required=True)
        p.finish()
        if MISSING not in (at, rate):
            if points and at < points[-1][0]:
                r.problems.at(pn, f"drill '{name}' arrivals: at_s must not go back in time")
            points.append((at, rate))
    return points


_PROBABILITIES = ("emergency_share", "satisfied_by_announcement", "accept_callback", "redial_probability")


def _callers(r: Reader, cnode: yaml.Node, name: str) -> CallerBehaviour:
    """The 'callers' behaviour; the defaults where it has errors."""
    if not isinstance(cnode, yaml.MappingNode):
        r.bad(cnode, "a mapping of caller behaviour")
        return CallerBehaviour()
    c = Reader(cnode, r.problems, f"drill '{name}' callers", [])
    d = CallerBehaviour()
    vals = {k: c.take(k, _share if k in _PROBABILITIES else read_seconds(0.1, 86400), default=getattr(d, k))
            for k in CallerBehaviour.__dataclass_fields__}
    c.finish()
    return CallerBehaviour(**vals) if MISSING not in vals.values() else CallerBehaviour()


def _callback_reach(r: Reader, cbnode: yaml.Node, name: str) -> Any:
    """'callbacks: {reach_probability}' (MISSING when wrong); 0.7 when 'callbacks' is not a mapping."""
    if not isinstance(cbnode, yaml.MappingNode):
        return 0.7
    cb = Reader(cbnode, r.problems, f"drill '{name}' callbacks", [])
    reach = cb.take("reach_probability", _share, default=0.7)
    cb.finish()
    return reach


def profile_names(home: Path) -> list[str]:
    return sorted(p.stem for p in (home / "queue" / "drills").glob("*.yaml"))


def load_profile(home: Path, name: str) -> Profile:
    path = home / "queue" / "drills" / f"{name}.yaml"
    if not names.NAME.ok(name) or not path.exists():
        raise ConfigError(f"no drill profile '{name}' in queue/drills/ (there are: {', '.join(profile_names(home))})")
    return parse_profile(yamlfile.read(path), f"queue/drills/{name}.yaml", name)
