"""Drill profiles (queue/drills/*.yaml): how many citizens call, when, and how
they behave; how many seats answer and how many trunk lines the PBX has (no
``lines:``: unlimited). Read with file:line:col errors."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from ivr import names
from ivr.callback.followup import checked_source, parse_share
from ivr.errors import ConfigError, InvalidInput
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
class FollowupPlan:
    """``followup: {at_s, share, of}``: at ``at_s`` a seat manager of the drill
    chooses a follow-up batch (智能回访) of ``share`` of the day's ``of``
    (ivr.callback.followup.SOURCES) through the service, as `ivr followup
    sample` does."""
    at_s: float
    share: str          # as a seat manager types it: "20%"
    of: str = "reached-callbacks"


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
    lines: int | None = None      # trunk lines of the PBX; None: unlimited
    # what queue/lines.yaml says of those lines in the drill (the shipped file states a small PBX's):
    # kept for emergencies, and the free lines below which the flow offers an early callback
    # (None: 1 % of the lines, at least 2; 20 % of the lines, at least the reserve)
    lines_emergency_reserve: int | None = None
    lines_callback_below_free: int | None = None
    # IVR_LINES, what the site writes in [globals]: above it the dialplan records the caller before busy
    # (None: the lines themselves, so the carrier refuses first and nothing is recorded)
    lines_dialplan_limit: int | None = None
    followup: FollowupPlan | None = None      # a follow-up batch chosen during the drill (None: none)
    # the quiet hours run faster: (at_s, times the drill's speed from then on), ascending; a long day's
    # evening brings a tenth of its peak's calls and needs not take as long on the wall as its peak
    faster_later: tuple[tuple[float, float], ...] = ()

    def later_speeds(self, speed: float, duration_s: float) -> tuple[tuple[float, float], ...]:
        """The drill clock's changes of speed (``ScaledClock.later``) for a run
        at ``speed`` of ``duration_s``."""
        return tuple((at, speed * times) for at, times in self.faster_later if at < duration_s)

    def dialplan_line_limit(self, lines: int) -> int:
        return min(lines, self.lines_dialplan_limit) if self.lines_dialplan_limit is not None else lines

    def line_rules(self, lines: int) -> tuple[int, int]:
        """-> (emergency_reserve, callback_below_free) for ``lines`` lines."""
        reserve = self.lines_emergency_reserve if self.lines_emergency_reserve is not None else max(2, lines // 100)
        below = (self.lines_callback_below_free if self.lines_callback_below_free is not None
                 else max(reserve, lines // 5))
        return min(reserve, lines - 1), min(max(below, reserve), lines)

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
    prof = None
    if root is not None:
        r = Reader(root, problems, f"drill '{name}'", [])
        desc = r.take("description", read_text, default="")
        duration = r.take("duration_s", read_seconds(10, 7 * 86400), required=True)
        speed = r.take("speed", read_seconds(0.1, 1000), default=1.0)
        seats = r.take("seats", read_int(1, 20000), required=True)
        em = r.take("emergency_seats", read_int(0, 2000), default=1)
        lines = r.take("lines", read_int(1, 1_000_000), default=None)
        reserve = r.take("lines_emergency_reserve", read_int(0, 1_000_000), default=None)
        below = r.take("lines_callback_below_free", read_int(0, 1_000_000), default=None)
        limit = r.take("lines_dialplan_limit", read_int(1, 1_000_000), default=None)
        anode = r.take("arrivals", lambda rr, n: n, required=True)
        cnode = r.take("callers", lambda rr, n: n, default=None)
        cbnode = r.take("callbacks", lambda rr, n: n, default=None)
        fnode = r.take("followup", lambda rr, n: n, default=None)
        qnode = r.take("faster_later", lambda rr, n: n, default=None)
        r.finish()
        points = _arrivals(r, anode, problems, name)
        behaviour = _callers(r, cnode, problems, name)
        reach = _callbacks(cbnode, problems, name)
        followup = _followup(r, fnode, problems, name, duration)
        faster = _faster_later(r, qnode, problems, name)
        values = (desc, duration, speed, seats, em, reach)
        if not problems.errors and MISSING not in values and points:
            prof = Profile(name, desc, duration, speed, seats, em, tuple(points), behaviour, reach,
                           None if lines is MISSING else lines, None if reserve is MISSING else reserve,
                           None if below is MISSING else below, None if limit is MISSING else limit, followup,
                           faster)
    if prof is None:
        raise ConfigError("\n".join(str(p) for p in problems.errors) or f"{path}: not a drill profile")
    return prof


def _arrivals(r: Reader, anode, problems: Problems, name: str) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    if anode is MISSING:
        return points
    if not isinstance(anode, yaml.SequenceNode) or not anode.value:
        r.bad(anode, "a list of {at_s, per_hour}")
        return points
    for pn, p in _items(r, anode, problems, f"drill '{name}' arrivals", "{at_s, per_hour}"):
        at = p.take("at_s", read_seconds(0, 7 * 86400), required=True)
        rate = p.take("per_hour", read_seconds(0, 10_000_000), required=True)
        p.finish()
        if MISSING not in (at, rate):
            if points and at < points[-1][0]:
                problems.at(pn, f"drill '{name}' arrivals: at_s must not go back in time")
            points.append((at, rate))
    return points


def _items(r: Reader, seq: yaml.SequenceNode, problems: Problems, where: str,
           what: str) -> Iterator[tuple[yaml.MappingNode, Reader]]:
    """Each mapping of a list, with its reader; any other item is named as not ``what``."""
    for node in seq.value:
        if isinstance(node, yaml.MappingNode):
            yield node, Reader(node, problems, where, [])
        else:
            r.bad(node, what)


def _faster_later(r: Reader, qnode, problems: Problems, name: str) -> tuple[tuple[float, float], ...]:
    """``faster_later: [{at_s, times}]``: from ``at_s`` the drill's clock runs
    ``times`` its speed (at least 1, ascending in time)."""
    if qnode is None:
        return ()
    if not isinstance(qnode, yaml.SequenceNode):
        r.bad(qnode, "a list of {at_s, times}")
        return ()
    out: list[tuple[float, float]] = []
    for pn, p in _items(r, qnode, problems, f"drill '{name}' faster_later", "{at_s, times}"):
        at = p.take("at_s", read_seconds(1, 7 * 86400), required=True)
        times = p.take("times", read_seconds(1, 100, "times the speed"), required=True)
        p.finish()
        if MISSING not in (at, times):
            if out and at <= out[-1][0]:
                problems.at(pn, f"演练 '{name}' faster_later：at_s 应逐项增大 — drill '{name}' faster_later: "
                                "at_s must go forward in time")
            out.append((at, times))
    return tuple(out)


def _callers(r: Reader, cnode, problems: Problems, name: str) -> CallerBehaviour:
    if cnode is None:
        return CallerBehaviour()
    if not isinstance(cnode, yaml.MappingNode):
        r.bad(cnode, "a mapping of caller behaviour")
        return CallerBehaviour()
    c = Reader(cnode, problems, f"drill '{name}' callers", [])
    d = CallerBehaviour()
    vals = {k: c.take(k, _share if k in ("emergency_share", "satisfied_by_announcement", "accept_callback",
                                         "redial_probability") else read_seconds(0.1, 86400),
                      default=getattr(d, k)) for k in CallerBehaviour.__dataclass_fields__}
    c.finish()
    return CallerBehaviour(**vals) if MISSING not in vals.values() else d


def _callbacks(cbnode, problems: Problems, name: str):
    if not isinstance(cbnode, yaml.MappingNode):
        return 0.7
    cb = Reader(cbnode, problems, f"drill '{name}' callbacks", [])
    reach = cb.take("reach_probability", _share, default=0.7)
    cb.finish()
    return reach


def _followup(r: Reader, fnode, problems: Problems, name: str, duration) -> FollowupPlan | None:
    """``followup: {at_s, share, of}``, checked as `ivr followup sample` checks
    its share and source (Chinese first), and ``at_s`` within the drill."""
    if fnode is None:
        return None
    if not isinstance(fnode, yaml.MappingNode):
        r.bad(fnode, "{at_s, share, of}")
        return None
    f = Reader(fnode, problems, f"drill '{name}' followup", [])
    at = f.take("at_s", read_seconds(0, 7 * 86400), required=True)
    share = f.take("share", read_text, required=True)
    of = f.take("of", read_text, default="reached-callbacks")
    f.finish()
    ok = MISSING not in (at, share, of)
    for key, check in (("share", parse_share), ("of", checked_source)):
        value = {"share": share, "of": of}[key]
        if value is MISSING:
            continue
        try:
            check(str(value))
        except InvalidInput as exc:
            zh, _, en = str(exc).partition(" — ")
            problems.at(f.items[key][1] if key in f.items else fnode,
                        f"演练 '{name}' 回访 followup：{zh} — drill '{name}' followup: {en}")
            ok = False
    if at is not MISSING and duration is not MISSING and at >= duration:
        problems.at(f.items["at_s"][1], f"演练 '{name}' 回访 followup：抽样时间 at_s {at:g} 不在演练时长 duration_s "
                                        f"{duration:g} 之内 — drill '{name}' followup: at_s {at:g} is not within "
                                        f"the drill (duration_s {duration:g})")
        ok = False
    return FollowupPlan(at, str(share), str(of)) if ok else None


def profile_names(home: Path) -> list[str]:
    return sorted(p.stem for p in (home / "queue" / "drills").glob("*.yaml"))


def load_profile(home: Path, name: str) -> Profile:
    path = home / "queue" / "drills" / f"{name}.yaml"
    if not names.NAME.ok(name) or not path.exists():
        raise ConfigError(f"no drill profile '{name}' in queue/drills/ (there are: {', '.join(profile_names(home))})")
    return parse_profile(yamlfile.read(path), f"queue/drills/{name}.yaml", name)
