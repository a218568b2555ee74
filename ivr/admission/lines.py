"""Trunk lines: what seat managers configure (``queue/lines.yaml``), what the
PBX says of them, and the figures staff see. Pure: texts, AMI answers and the
clock in; values out.

How the engine knows (docs/lines.md):

- the shipped dialplan puts every citizen's call (``[ivr-12345]``) and every
  leg the PBX dials out over the trunk (Dial's ``b(ivr-trunk-line^s^1)``:
  callbacks, transfers) in ``GROUP(ivr)=trunk``; a channel leaves the group
  when it hangs up;
- AMI ``Getvar`` of ``GROUP_COUNT(trunk@ivr)`` without a ``Channel`` is the
  number of lines in use (manager.c ``action_getvar`` evaluates a function on
  a dummy channel); ``Getvar`` of ``IVR_LINES`` is the dialplan's limit, from
  ``[globals]``, empty when the dialplan predates lines;
- above ``IVR_LINES`` the dialplan records the attempt in Asterisk's own
  database (``ivr_blocked/<uniqueid>`` = ``<epoch>|<number>``), sends
  ``UserEvent(IvrBlocked)``, and answers ``Busy()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

import yaml

from ivr import names
from ivr.yamldoc.problems import Problem, Problems, mapping_items
from ivr.yamldoc.schema import MISSING, Reader, compose_mapping, read_int

LINES_FILE = "queue/lines.yaml"
LINK_PBX = "main"               # the PBX of IVR_AMI_URL while there is one (several PBXs: issue 20)
GROUP, CATEGORY = "trunk", "ivr"
IN_USE_VAR = f"GROUP_COUNT({GROUP}@{CATEGORY})"
LIMIT_VAR = "IVR_LINES"
BLOCKED_EVENT = "IvrBlocked"
BLOCKED_FAMILY = "ivr_blocked"  # AstDB family: one key per refused attempt until an engine recorded it
MAX_LINES = 1_000_000
STALE_S = 10.0                  # a count older than this is not a count


# -- queue/lines.yaml ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PbxLines:
    """One PBX's trunk, as seat managers state it."""

    name: str
    lines: int                       # the trunk's channels (what the carrier gives this PBX)
    emergency_reserve: int = 0       # lines kept for emergency callers
    callback_below_free: int = 0     # fewer free lines than this: the flow offers an early callback


@dataclass(frozen=True, slots=True)
class LinesConfig:
    pbxs: dict[str, PbxLines]

    def for_link(self) -> PbxLines | None:
        """The PBX of the engine's one AMI link: ``main``, or the only one named."""
        if LINK_PBX in self.pbxs:
            return self.pbxs[LINK_PBX]
        return next(iter(self.pbxs.values())) if len(self.pbxs) == 1 else None


def parse_lines(text: str, path: str = LINES_FILE) -> tuple[LinesConfig | None, list[Problem]]:
    """``queue/lines.yaml``: ``pbxs:`` name -> ``{lines, emergency_reserve,
    callback_below_free}``; every problem at its ``file:line:col``."""
    problems = Problems(path)
    root = compose_mapping(text, problems, "'pbxs:'")
    if root is None:
        return None, problems.items
    top = Reader(root, problems, "lines", [])
    node = top.take("pbxs", lambda r, n: n, required=True)
    top.finish()
    pbxs: dict[str, PbxLines] = {}
    if isinstance(node, yaml.MappingNode):
        for name, knode, vnode in mapping_items(node, problems, "pbxs"):
            pbx = _pbx(name, knode, vnode, problems)
            if pbx is not None:
                pbxs[name] = pbx
        if not node.value:
            problems.at(node, "至少需要一个 PBX — pbxs: name at least one PBX")
    elif node is not MISSING:
        problems.at(node, "pbxs 应为“PBX 名: {lines: ...}”映射 — pbxs: expected a mapping of PBX name: {lines: ...}")
    if problems.errors:
        return None, problems.items
    return LinesConfig(pbxs), problems.items


def _pbx(name: str, knode: yaml.Node, vnode: yaml.Node, problems: Problems) -> PbxLines | None:
    if not names.NAME.ok(name):
        problems.at(knode, f"PBX '{name}': 名称无效 (invalid name): {names.NAME.what}")
        return None
    if not isinstance(vnode, yaml.MappingNode):
        problems.at(vnode, f"PBX '{name}' 应为映射 — PBX '{name}': expected a mapping with 'lines:'")
        return None
    r = Reader(vnode, problems, f"PBX '{name}'", [])
    lines = r.take("lines", read_int(1, MAX_LINES), required=True)
    reserve = r.take("emergency_reserve", read_int(0, MAX_LINES), default=0)
    below = r.take("callback_below_free", read_int(0, MAX_LINES), default=None)
    r.finish()
    if MISSING in (lines, reserve, below):
        return None
    if below is None:                 # not stated: offered once the reserve is reached
        below = reserve
    if reserve >= lines:
        problems.at(r.items["emergency_reserve"][1],
                    f"PBX '{name}'：紧急预留线路 ({reserve}) 不能达到或超过线路数 ({lines}) — emergency_reserve "
                    f"({reserve}) must be below lines ({lines}): no line would be left for other callers")
        return None
    if below > lines:
        problems.at(r.items["callback_below_free"][1],
                    f"PBX '{name}'：回拨提议门槛 ({below}) 超过线路数 ({lines}) — callback_below_free ({below}) "
                    f"is above lines ({lines})")
        return None
    if below < reserve:
        problems.at(r.items["callback_below_free"][1],
                    f"PBX '{name}'：回拨提议门槛 ({below}) 低于紧急预留 ({reserve})，普通来电会先占用预留线路 — "
                    f"callback_below_free ({below}) is below emergency_reserve ({reserve}): other callers would "
                    "take the reserved lines before anyone offers them a callback")
        return None
    return PbxLines(name, lines, reserve, below)


# -- what the PBX says -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LineReading:
    """What AMI answered the last time it was asked (``at``: the engine's clock)."""

    at: float
    in_use: int | None = None
    limit: int | None = None     # IVR_LINES in the PBX's [globals]; None: not read, or not set there
    error: str = ""              # why the count could not be read ('' when it was)


def count_value(value: object) -> int | None:
    """A ``Getvar`` answer as a count; None for anything but a whole number >= 0."""
    text = value.strip() if isinstance(value, str) else ""
    return int(text) if text.isdigit() else None


class LineFigures(TypedDict):
    """The ``lines`` of the live snapshot: what ``ivr status``, the wall,
    ``/metrics``, ``/healthz`` and the flows' admission read."""

    pbx: str
    known: bool            # False: no line-based admission (today's behaviour); ``reason`` says why
    reason: str
    warning: str           # known, but the dialplan cannot record every refused attempt
    in_use: int | None
    total: int | None      # queue/lines.yaml
    limit: int | None      # IVR_LINES (0: the dialplan does not limit)
    free: int | None       # below the lower of total and limit
    emergency_reserve: int
    callback_below_free: int
    in_flows: int | None   # the rest: in a flow, being transferred, or between steps
    waiting: int | None
    talking: int | None
    callbacks: int | None
    read_at: float | None


def figures(pbx: PbxLines | None, reading: LineReading | None, *, now: float, connected: bool, waiting: int,
            talking: int, callbacks: int, pbx_name: str = LINK_PBX) -> LineFigures:
    """The lines of one PBX. ``waiting``/``talking``/``callbacks``: citizens
    in a queue, with a seat, on a callback's line (what the live model and the
    callback scheduler know); the rest of the lines in use are in the flows."""
    reason = _unknown(pbx, reading, now=now, connected=connected, pbx_name=pbx_name)
    known = not reason
    in_use = reading.in_use if known and reading is not None else None
    limit = reading.limit if reading is not None else None
    total = pbx.lines if pbx is not None else None
    free: int | None = None
    warning = ""
    if known and in_use is not None and total is not None:
        cap = min(total, limit) if limit else total
        free = max(0, cap - in_use)
        warning = _warning(total, limit)
    split: list[int | None] = [None, None, None, None]
    if in_use is not None:
        split = [max(0, in_use - waiting - talking - callbacks), waiting, talking, callbacks]
    return {"pbx": pbx.name if pbx is not None else pbx_name, "known": known, "reason": reason,
            "warning": warning, "in_use": in_use, "total": total, "limit": limit, "free": free,
            "emergency_reserve": pbx.emergency_reserve if pbx else 0,
            "callback_below_free": pbx.callback_below_free if pbx else 0,
            "in_flows": split[0], "waiting": split[1], "talking": split[2], "callbacks": split[3],
            "read_at": reading.at if reading is not None else None}


def _unknown(pbx: PbxLines | None, reading: LineReading | None, *, now: float, connected: bool,
             pbx_name: str) -> str:
    if pbx is None:
        return (f"{LINES_FILE} 未配置 PBX '{pbx_name}' 的线路 — no lines configured for PBX '{pbx_name}' "
                f"in {LINES_FILE}")
    if not connected:
        return "AMI 未连接 — the AMI link is down"
    if reading is None:
        return "尚未读取在用线路 — the lines in use have not been read yet"
    if reading.error:
        return f"无法读取在用线路 — the lines in use cannot be read: {reading.error}"
    if reading.limit is None:
        return (f"拨号方案未设置 {LIMIT_VAR} — the PBX's dialplan has no {LIMIT_VAR} in [globals]: its "
                f"extensions.conf predates the line count (GROUP({CATEGORY})={GROUP}), so {IN_USE_VAR} would "
                "read 0 whatever is in use")
    if now - reading.at > STALE_S:
        return f"在用线路数已过时 — the count is {now - reading.at:.0f} s old"
    return ""


def _warning(total: int, limit: int | None) -> str:
    if not limit:
        return (f"拨号方案不限制线路 ({LIMIT_VAR} = 0) — the dialplan sets no limit: when the trunk is full the "
                "carrier answers busy and nothing is recorded")
    if limit >= total:
        return (f"{LIMIT_VAR} ({limit}) 不低于线路数 ({total}) — {LIMIT_VAR} ({limit}) is not below the trunk's "
                f"{total} lines: the carrier refuses before the dialplan can record the attempt")
    return ""


# -- attempts the dialplan refused -----------------------------------------------------

@dataclass(frozen=True, slots=True)
class Blocked:
    """An attempt the dialplan answered busy, as it recorded it."""

    uniqueid: str
    number: str           # the caller's number as the PBX saw it (may be empty or not digits)
    at: float | None      # the PBX's clock (EPOCH); None when unreadable


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def blocked_from_event(event: Mapping[str, Any]) -> Blocked | None:
    """``UserEvent: IvrBlocked`` (the channel's own ``Uniqueid``, then
    ``Number``, ``At``, ``InUse``, ``Limit``) -> the attempt; None for any
    other event."""
    if event.get("Event") != "UserEvent" or event.get("UserEvent") != BLOCKED_EVENT:
        return None
    uid = _text(event.get("Uniqueid"))
    if not uid:
        return None
    number = _text(event.get("Number")) or _text(event.get("CallerIDNum"))
    return Blocked(uid, number, _epoch(_text(event.get("At"))))


def blocked_from_astdb(key: str, value: str) -> Blocked | None:
    """A ``DBGetTreeResponse`` entry (``Key: /ivr_blocked/<uniqueid>``,
    ``Val: <epoch>|<number>``) -> the attempt; None for a key of another family."""
    family, _, uid = key.strip("/").partition("/")
    if family != BLOCKED_FAMILY or not uid:
        return None
    at, _, number = value.partition("|")
    return Blocked(uid, number.strip(), _epoch(at.strip()))


def _epoch(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None
