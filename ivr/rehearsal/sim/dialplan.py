"""The shipped dialplan, run by the simulated Asterisk.

Reads one context of ``asterisk/extensions.conf`` (``[ivr-12345]``) and runs it
the way Asterisk's pbx core does, for the handful of applications that context
uses: ``NoOp``, ``Set`` (also ``Set(GROUP(category)=group)``: the trunk-line
count), ``GotoIf``, ``Goto``, ``AGI``, ``Answer``, ``Queue`` and ``Hangup``,
with ``${VAR}``, ``${CUT(VAR,sep,n)}`` and ``$[a = b]`` / ``$[a != b]`` /
``$[a + b]``. So the simulator cannot drift from the file a real PBX runs.

What ``AGI()`` leaves behind follows the real Asterisk 22
(tests/fixtures/asterisk-22/README.md):
- fact 9: the engine cannot be reached -> ``AGISTATUS=FAILURE``, the dialplan
  continues at the next priority;
- fact 10: the engine's socket closes in the middle of the call (the engine
  died) -> ``AGISTATUS=SUCCESS``, the dialplan continues with the variables the
  engine had set so far;
- a caller who hung up ends the dialplan (only the ``h`` extension would run).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ivr.rehearsal.sim.agi_peer import QueueDecider, SimChannel, run_call

_VAR = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_CUT = re.compile(r"\$\{CUT\(([A-Za-z0-9_]+),(.),([0-9]+)\)\}")
_EXPR = re.compile(r"\$\[([^\[\]]*)\]")
_APP = re.compile(r"^([A-Za-z]+)\((.*)\)$")
_GROUP = re.compile(r"^GROUP\(([^)]*)\)$", re.IGNORECASE)
_GROUP_COUNT = re.compile(r"\$\{GROUP_COUNT\(([^@)]*)(?:@([^)]*))?\)\}", re.IGNORECASE)
_DB = re.compile(r"^DB\(([^)]*)\)$", re.IGNORECASE)
MAX_STEPS = 200


@dataclass(frozen=True, slots=True)
class Priority:
    label: str
    app: str
    data: str


_parsed: dict[tuple[str, str, str, int], tuple[dict[str, str], list[Priority]]] = {}


def read_context(path: Path, context: str, exten: str) -> tuple[dict[str, str], list[Priority]]:
    """``[globals]`` and the priorities of ``exten`` in ``context``, in order
    (read once per version of the file: a drill runs it for every call)."""
    key = (str(path), context, exten, path.stat().st_mtime_ns)
    if key not in _parsed:
        _parsed[key] = _read_context(path, context, exten)
    globals_, prios = _parsed[key]
    return dict(globals_), prios


def _read_context(path: Path, context: str, exten: str) -> tuple[dict[str, str], list[Priority]]:
    section, globals_ = "", {}
    prios: list[Priority] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section == "globals" and "=" in line:
            k, v = line.split("=", 1)
            globals_[k.strip()] = v.strip()
            continue
        if section != context:
            continue
        kind, _, rest = line.partition("=>")
        kind, rest = kind.strip(), rest.strip()
        if kind == "exten":
            name, prio, app = rest.split(",", 2)
            if name != exten:
                continue
        elif kind == "same" and prios:
            prio, app = rest.split(",", 1)
        else:
            continue
        m = re.match(r"^n(?:\((\w+)\))?$", prio) or re.match(r"^(\d+)$", prio)
        label = m.group(1) if m and prio.startswith("n") else ""
        am = _APP.match(app.strip())
        if am is None:
            raise ValueError(f"{path}: [{context}] cannot read {app!r}")
        prios.append(Priority(label or "", am.group(1).lower(), am.group(2)))
    return globals_, prios


def substitute(text: str, variables: dict[str, str]) -> str:
    text = _VAR.sub(lambda m: variables.get(m.group(1), ""), text)          # innermost first
    text = _CUT.sub(lambda m: _cut(variables.get(m.group(1), ""), m.group(2), int(m.group(3))), text)
    return _EXPR.sub(lambda m: _expr(m.group(1)), text)


def _cut(value: str, sep: str, n: int) -> str:
    parts = value.split(sep)
    return parts[n - 1].strip() if 0 < n <= len(parts) else ""


def _expr(text: str) -> str:
    for op in ("!=", "=", "+", ">", "<"):
        if op in text:
            a, b = (x.strip().strip('"') for x in text.split(op, 1))
            if op == "+":
                return str(int(a or 0) + int(b or 0))
            if op in "<>":
                try:
                    x, y = int(a or 0), int(b or 0)
                except ValueError:              # as Asterisk: not two numbers, compared as strings
                    return str(int(a > b if op == ">" else a < b))
                return str(int(x > y if op == ">" else x < y))
            return str(int((a == b) == (op == "=")))
    return text.strip()


class DialplanPbx(Protocol):
    """What the PBX does for the dialplan beyond the channel: its groups, its
    AstDB, events to AMI, and a refused caller's busy signal."""

    def group_count(self, group: str, category: str = "") -> int: ...

    def epoch(self) -> int: ...

    def db_put(self, key: str, value: str) -> None: ...

    def user_event(self, sim: SimChannel, name: str, fields: list[tuple[str, str]]) -> None: ...

    async def busy(self, sim: SimChannel) -> None: ...


QueueJoin = Callable[[SimChannel, str, int], Awaitable[None]]
SetGroup = Callable[[SimChannel, str, str], None]     # (channel, category, group)


@dataclass
class DialplanRun:
    """What happened to one call in the dialplan."""
    apps: list[str] = field(default_factory=list)       # applications run, in order
    agi: list[str] = field(default_factory=list)        # AGISTATUS of each AGI() run
    queued: str = ""                                     # the queue the dialplan itself put the caller in
    refused: bool = False                                # above IVR_LINES: recorded, then busy


async def run_dialplan(path: Path, sim: SimChannel, *, queue_join: QueueJoin,
                       decide_queue: QueueDecider | None = None, context: str = "ivr-12345",
                       exten: str = "12345", engines: str | None = None, timeout_s: float = 24 * 3600,
                       connect_timeout_s: float = 5.0, set_group: SetGroup | None = None,
                       pbx: DialplanPbx | None = None, site_globals: Mapping[str, str] | None = None) -> DialplanRun:
    """Run ``[context]`` for one call. ``engines`` overrides ``IVR_ENGINES`` of
    ``[globals]`` (the addresses of the engines under test), ``site_globals``
    any other global as a site writes it (``IVR_LINES``); ``set_group``
    receives what ``Set(GROUP(category)=group)`` does (the simulated PBX counts
    the channel in that group); ``pbx`` answers ``GROUP_COUNT()`` and runs
    ``Set(DB(...))``, ``UserEvent()`` and ``Busy()``."""
    globals_, prios = read_context(path, context, exten)
    globals_.update(site_globals or {})
    globals_.update({"IVR_ENGINES": engines} if engines is not None else {})
    labels = {p.label: i for i, p in enumerate(prios) if p.label}
    variables = dict(globals_)
    out = DialplanRun()
    i = steps = 0
    while 0 <= i < len(prios) and not sim.dead:
        steps += 1
        if steps > MAX_STEPS:
            raise RuntimeError(f"[{context}] loops: more than {MAX_STEPS} priorities")
        p = prios[i]
        out.apps.append(p.app)
        data = _expand(p.data, sim, variables, pbx)
        i += 1
        if p.app == "set":
            _set(sim, data, variables, set_group, pbx)
        elif p.app in ("userevent", "busy") and pbx is not None:
            if await _pbx_app(p.app, data, sim, pbx):
                out.refused = True
                break
        elif p.app == "gotoif":
            i = _goto_if(data, labels, i)
        elif p.app == "goto":
            i = labels[data.strip()]
        elif p.app == "agi":
            sim.context, sim.extension, sim.priority = context, exten, str(i)
            status = await _agi(data, sim, decide_queue, timeout_s, connect_timeout_s)
            variables["AGISTATUS"] = sim.vars["AGISTATUS"] = status
            out.agi.append(status)
        elif p.app == "answer":
            sim.answered = True
        elif p.app == "queue":
            queue = data.split(",", 1)[0]
            out.queued = queue
            await queue_join(sim, queue, int(sim.vars.get("QUEUE_PRIO", "0") or 0))
        elif p.app == "hangup":
            break
        elif p.app != "noop":
            raise ValueError(f"the simulated dialplan does not know {p.app}()")
    return out


def _expand(data: str, sim: SimChannel, variables: dict[str, str], pbx: DialplanPbx | None) -> str:
    """An application's argument with its variables and functions put in."""
    if pbx is not None:
        data = _GROUP_COUNT.sub(lambda m: str(pbx.group_count(m.group(1), m.group(2) or "")), data)
        data = data.replace("${EPOCH}", str(pbx.epoch()))
    return substitute(data.replace("${CALLERID(num)}", sim.caller.number),
                      variables | sim.vars | {"UNIQUEID": sim.uniqueid})


def _goto_if(data: str, labels: dict[str, int], i: int) -> int:
    cond, _, dest = data.partition("?")
    true_dest, _, false_dest = dest.partition(":")
    target = true_dest if cond.strip() not in ("", "0") else false_dest
    return labels[target.strip()] if target else i


async def _pbx_app(app: str, data: str, sim: SimChannel, pbx: DialplanPbx) -> bool:
    """``UserEvent()`` and ``Busy()``; True when the call ends (busy)."""
    if app == "busy":
        await pbx.busy(sim)
        return True
    name, *pairs = data.split(",")
    pbx.user_event(sim, name.strip(), [(k.strip(), v.strip()) for k, _, v in (pair.partition(":") for pair in pairs)])
    return False


def _set(sim: SimChannel, data: str, variables: dict[str, str], set_group: SetGroup | None,
         pbx: DialplanPbx | None = None) -> None:
    name, _, value = data.partition("=")
    name = name.strip()
    db = _DB.match(name)
    if db is not None:                          # Set(DB(family/key)=value): the PBX's AstDB
        if pbx is not None:
            pbx.db_put(f"/{db.group(1).strip('/')}", value)
        return
    group = _GROUP.match(name)
    if group is None:
        variables[name] = sim.vars[name] = value
    elif set_group is not None:                 # Set(GROUP(category)=group): counted by the PBX, not a variable
        set_group(sim, group.group(1), value.strip())


async def _agi(data: str, sim: SimChannel, decide_queue, timeout_s: float, connect_timeout_s: float) -> str:
    """``AGI(url[,arg...])``: the path is the script (the flow), the rest its
    arguments (``agi_arg_N``)."""
    url, *args = data.split(",")
    m = re.match(r"^agi://([^:/]+)(?::(\d+))?(/.*)?$", url.strip())
    if m is None:
        return "FAILURE"
    host, port = m.group(1), int(m.group(2) or 4573)
    if m.group(3) and m.group(3).strip("/"):
        sim.flow = m.group(3).strip("/")
    sim.args = tuple(args)
    try:
        await run_call(host, port, sim, decide_queue=decide_queue, timeout_s=timeout_s,
                       connect_timeout_s=connect_timeout_s)
    except (TimeoutError, OSError):
        return "FAILURE"                                  # fact 9: never reached
    return "HANGUP" if sim.dead else "SUCCESS"            # fact 10: also when it died mid-call
