"""The callback policy (callback/policy.yaml) and the rules built on it. Pure:
the clock is always an argument.

What counts as a missed call, which kind it is, its deadline, when the next
attempt may be made (spacing, calling hours), and the order callbacks are
made in: emergency first, then by deadline (so an accepted courtesy callback,
with its short deadline, goes before ordinary ones), then by age.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from ivr.yamldoc import bounded as yamlfile
from ivr.yamldoc.problems import Problem, Problems
from ivr.yamldoc.schema import MISSING, Reader, compose_mapping, read_int, read_seconds, read_text

KINDS = ("emergency", "courtesy", "ordinary")
LINES_FULL = "lines_full"        # the outcome and miss reason of an attempt the dialplan refused
DEFAULT_DEADLINES = {"emergency": 7200.0, "courtesy": 14400.0, "ordinary": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)")   # always fullmatch: see ivr/names.py
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# queue outcomes that mean "wanted a person, did not get one"
_MISSED_STATUSES = {"ABANDONED": "abandoned", "TIMEOUT": "queue_timeout", "FULL": "queue_full",
                    "JOINEMPTY": "no_seats", "LEAVEEMPTY": "no_seats", "JOINUNAVAIL": "no_seats",
                    "LEAVEUNAVAIL": "no_seats", "WITHDRAW": "callback_accepted", "UNKNOWN": "queue_failed"}


@dataclass(frozen=True, slots=True)
class Policy:
    short_abandon_s: float = 5
    spacing_s: tuple[float, ...] = (600, 1800, 7200)
    after_last_attempt: str = "close_unreached"
    calling_hours: tuple[dt.time, dt.time] = (dt.time(8), dt.time(21))
    deadlines_s: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DEADLINES))
    calm_queues: tuple[str, ...] = ("general",)
    calm_max_waiting: int = 5
    calm_max_longest_wait_s: float = 60
    keep_idle: int = 1
    max_parallel: int = 50
    seat_ring_s: float = 20
    citizen_ring_s: float = 40
    claim_lease_s: float = 180
    caller_id: str = "12345"
    in_queue_digit: str | None = "1"   # pressed while waiting: leave the line, keep the place, be called back

    @property
    def max_attempts(self) -> int:
        return len(self.spacing_s) + 1

    def deadline(self, kind: str, first_at: float) -> float:
        return first_at + self.deadlines_s[kind]


@dataclass(frozen=True, slots=True)
class Miss:
    kind: str        # emergency | courtesy | ordinary
    reason: str      # abandoned | queue_timeout | ... | message_left | callback_accepted | hung_up_in_flow
    misdial: bool    # a very short abandon: recorded, not called back


def classify(s: Mapping[str, str], policy: Policy) -> Miss | None:
    """A call summary (ivr.calls.service.summary_fields) -> the missed call it is, if any."""
    if s.get("wanted_person") != "1":
        return None
    status = s.get("queue_status", "")
    if status == "ANSWERED":
        return None
    emergency = s.get("emergency") == "1"
    accepted = s.get("callback_accepted") == "1" or status == "WITHDRAW"
    if accepted:
        reason = "callback_accepted"
    elif s.get("message"):
        reason = "message_left"
    elif s.get("sent_to_message") == "1":
        reason = "sent_to_message"
    elif status:
        reason = _MISSED_STATUSES.get(status, "queue_failed")
    elif s.get("outcome") == LINES_FULL:
        reason = LINES_FULL       # the dialplan answered busy: every line in use (ivr.callback.blocked)
    else:
        reason = "hung_up_in_flow"
    kind = "emergency" if emergency else "courtesy" if accepted else "ordinary"
    hold = _float(s.get("hold_s"))
    if hold is None:
        # a summary whose times are not numbers has no hold time (it used to raise TypeError)
        started, ended = _float(s.get("started")), _float(s.get("ended"))
        if started is not None and ended is not None:
            hold = ended - started
    misdial = reason == "abandoned" and hold is not None and hold < policy.short_abandon_s and not emergency
    return Miss(kind, reason, misdial)


def reached_a_person(s: Mapping[str, object]) -> bool:
    return s.get("queue_status") == "ANSWERED"


def _float(v: str | float | None) -> float | None:
    if v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def in_calling_hours(ts: float, tz: ZoneInfo, policy: Policy) -> bool:
    t = dt.datetime.fromtimestamp(ts, tz).time()
    start, end = policy.calling_hours
    return start <= t < end if start <= end else (t >= start or t < end)


def next_calling_time(ts: float, tz: ZoneInfo, policy: Policy) -> float:
    """``ts`` itself if within calling hours, else the next opening."""
    if in_calling_hours(ts, tz, policy):
        return ts
    local = dt.datetime.fromtimestamp(ts, tz)
    opening = local.replace(hour=policy.calling_hours[0].hour, minute=policy.calling_hours[0].minute,
                            second=0, microsecond=0)
    if opening <= local:
        opening += dt.timedelta(days=1)
    return opening.timestamp()


def first_attempt_at(recorded_at: float, emergency: bool, tz: ZoneInfo, policy: Policy) -> float:
    return recorded_at if emergency else next_calling_time(recorded_at, tz, policy)


def next_attempt_at(attempts_made: int, failed_at: float, emergency: bool, tz: ZoneInfo,
                    policy: Policy) -> float | None:
    """After ``attempts_made`` failed attempts: when to try again, or None."""
    if attempts_made >= policy.max_attempts:
        return None
    at = failed_at + policy.spacing_s[attempts_made - 1]
    return at if emergency else next_calling_time(at, tz, policy)


def rank(kind: str, deadline: float) -> float:
    """ZSET score: emergencies first, then the earliest deadline. Within a kind
    the deadline is first_at plus a constant, so it also orders by age."""
    return (0 if kind == "emergency" else 1) * 1e10 + deadline


# -- reading callback/policy.yaml -------------------------------------------------

def _duration(r: Reader, n: yaml.Node) -> Any:
    v = n.value.strip() if isinstance(n, yaml.ScalarNode) else ""
    m = _DURATION.fullmatch(v)
    if not m:
        return r.bad(n, "a duration like 90s, 10m, 2h or 1d")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _hhmm(r: Reader, n: yaml.Node) -> Any:
    v = n.value if isinstance(n, yaml.ScalarNode) else ""
    try:
        return dt.time.fromisoformat(v) if re.fullmatch(r"\d\d:\d\d", v) else r.bad(n, "a time HH:MM")
    except ValueError:
        return r.bad(n, "a time HH:MM")


def parse_policy(text: str, path: str) -> tuple[Policy | None, list[Problem]]:
    problems = Problems(path)
    root = compose_mapping(text, problems, "the policy keys")
    if root is None:
        return None, problems.items
    r = Reader(root, problems, "callback policy", [])
    short = r.take("short_abandon_s", read_seconds(0, 600), default=5.0)
    anode = r.take("attempts", lambda rr, n: n, default=None)
    after = r.take("after_last_attempt", lambda rr, n: n.value if isinstance(n, yaml.ScalarNode)
                   and n.value in ("close_unreached", "keep_open") else rr.bad(n, "close_unreached or keep_open"),
                   default="close_unreached")
    hnode = r.take("calling_hours", lambda rr, n: n, default=None)
    dnode = r.take("deadlines", lambda rr, n: n, default=None)
    cnode = r.take("live_queue_calm", lambda rr, n: n, default=None)
    keep = r.take("keep_idle", read_int(0, 10_000), default=1)
    par = r.take("max_parallel", read_int(1, 10_000), default=50)
    seat_ring = r.take("seat_ring_s", read_seconds(5, 120), default=20.0)
    cit_ring = r.take("citizen_ring_s", read_seconds(5, 180), default=40.0)
    lease = r.take("claim_lease_s", read_seconds(30, 3600), default=180.0)
    cid = r.take("caller_id", read_text, default="12345")
    digit = r.take("in_queue_digit", lambda rr, n: (None if n.value in ("", "none") else n.value)
                   if isinstance(n, yaml.ScalarNode) and n.value in ("", "none", *"0123456789*#")
                   else rr.bad(n, "one keypad digit, or none"), default="1")
    r.finish()
    spacing: tuple[float, ...] = (600, 1800, 7200)
    if anode is not None:
        if isinstance(anode, yaml.SequenceNode) and anode.value:
            spacing = tuple(_duration(r, x) for x in anode.value)
        else:
            r.bad(anode, "a list of durations (the spacing after each failed attempt)")
    hours = (dt.time(8), dt.time(21))
    if hnode is not None:
        if isinstance(hnode, yaml.SequenceNode) and len(hnode.value) == 2:
            hours = (_hhmm(r, hnode.value[0]), _hhmm(r, hnode.value[1]))
        else:
            r.bad(hnode, '["HH:MM", "HH:MM"]')
    deadlines = dict(DEFAULT_DEADLINES)
    if dnode is not None:
        d = Reader(dnode, problems, "deadlines", []) if isinstance(dnode, yaml.MappingNode) else None
        if d is None:
            r.bad(dnode, "a mapping of kind: duration")
        else:
            for k in KINDS:
                deadlines[k] = d.take(k, _duration, default=deadlines[k])
            d.finish()
    calm = (["general"], 5, 60.0)
    if cnode is not None:
        c = Reader(cnode, problems, "live_queue_calm", []) if isinstance(cnode, yaml.MappingNode) else None
        if c is None:
            r.bad(cnode, "a mapping (queues, max_waiting, max_longest_wait_s)")
        else:
            qn = c.take("queues", lambda rr, n: [x.value for x in n.value] if isinstance(n, yaml.SequenceNode)
                        else rr.bad(n, "a list of queue names"), default=["general"])
            calm = (qn, c.take("max_waiting", read_int(0, 100_000), default=5),
                    c.take("max_longest_wait_s", read_seconds(0, 86_400), default=60.0))
            c.finish()
    values = [short, after, keep, par, seat_ring, cit_ring, lease, cid, digit, *spacing, *hours, *deadlines.values(), *calm]
    if problems.errors or MISSING in values:
        return None, problems.items
    return Policy(short, spacing, after, hours, deadlines, tuple(calm[0]), calm[1], calm[2], keep, par, seat_ring,
                  cit_ring, lease, cid, digit), problems.items


def load_policy(callback_dir: Path) -> tuple[Policy | None, list[Problem]]:
    path = callback_dir / "policy.yaml"
    if not path.exists():
        return Policy(), []
    return parse_policy(yamlfile.read(path), "callback/policy.yaml")
