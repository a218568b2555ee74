"""YAML text -> ``Flow``, reporting every problem with its file:line:col.

PyYAML's ``compose`` keeps each node's position, so the reader walks nodes
itself instead of loading plain dicts. Every step says its ``type:`` explicitly;
nothing is guessed from which keys are present."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from ivr import names
from ivr.flow import conditions as c
from ivr.flow import model as m
from ivr.yamldoc.problems import Problems, did_you_mean, kind_of, mapping_items, scalar
from ivr.yamldoc.schema import (
    COMPOSE_FAILED,
    MISSING,
    Reader,
    Reference,
    compose_or_report,
    read_bool,
    read_int,
    read_seconds,
    read_text,
)

NAME_RE = names.NAME
PROMPT_RE = names.PROMPT
VARIABLE_RE = names.FLOW_VARIABLE
DIGITS_RE = names.DIGITS
NUMBER_RE = names.PHONE_NUMBER


@dataclass(slots=True)
class ParsedFlow:
    flow: m.Flow | None
    problems: Problems
    references: list[Reference] = field(default_factory=list)
    step_nodes: dict[str, yaml.Node] = field(default_factory=dict)
    name: str = ""


def _step_ref(r: Reader, n: yaml.Node) -> Any:
    v = scalar(n)
    if v is None or not NAME_RE.fullmatch(v):
        return r.bad(n, "a step name")
    return r.ref("step", v, n)


def _prompt(r: Reader, n: yaml.Node) -> Any:
    v = scalar(n)
    if v is None or not PROMPT_RE.fullmatch(v):
        return r.bad(n, "a prompt name (letters, digits, '-', '_', '/')")
    return r.ref("prompt", v, n)


def _prompts(r: Reader, n: yaml.Node) -> Any:
    if isinstance(n, yaml.SequenceNode):
        if not n.value:
            return r.bad(n, "at least one prompt")
        out = tuple(_prompt(r, x) for x in n.value)
        return MISSING if MISSING in out else out
    p = _prompt(r, n)
    return MISSING if p is MISSING else (p,)


def _digits(r: Reader, n: yaml.Node) -> Any:
    v = scalar(n)
    if v is None or (v and not DIGITS_RE.fullmatch(v)):
        return r.bad(n, "keypad digits (0-9, * and #)")
    return v


def _digit(r: Reader, n: yaml.Node) -> Any:
    v = scalar(n)
    if v is None or len(v) != 1 or not DIGITS_RE.fullmatch(v):
        return r.bad(n, "one keypad digit")
    return v


def _queue_ref(r: Reader, n: yaml.Node) -> Any:
    v = scalar(n)
    if v is None or not NAME_RE.fullmatch(v):
        return r.bad(n, "a queue name")
    return r.ref("queue", v, n)


def _flow_ref(r: Reader, n: yaml.Node) -> Any:
    v = scalar(n)
    if v is None or not NAME_RE.fullmatch(v):
        return r.bad(n, "a flow name")
    return r.ref("flow", v, n)


def _number(r: Reader, n: yaml.Node) -> Any:
    v = scalar(n)
    if v is None or not NUMBER_RE.fullmatch(v):
        return r.bad(n, "a phone number (digits, 3 to 20)")
    return v


def _options(r: Reader, n: yaml.Node) -> Any:
    if not isinstance(n, yaml.MappingNode) or not n.value:
        return r.bad(n, "a mapping of digit: step")
    out = {}
    for key, knode, vnode in mapping_items(n, r.problems, r.where):
        if len(key) != 1 or not DIGITS_RE.fullmatch(key):
            r.problems.at(knode, f"{r.where}: option '{key}' is not one keypad digit")
            continue
        target = _step_ref(r, vnode)
        if target is not MISSING:
            out[key] = target
    return out


def _variables(r: Reader, n: yaml.Node) -> Any:
    if not isinstance(n, yaml.MappingNode) or not n.value:
        return r.bad(n, "a mapping of VARIABLE: value")
    out = {}
    for key, knode, vnode in mapping_items(n, r.problems, r.where):
        if not VARIABLE_RE.fullmatch(key):
            r.problems.at(knode, f"{r.where}: variable '{key}' must be upper case letters, digits and '_'")
            continue
        v = scalar(vnode)
        if v is None:
            r.bad(vnode, "text")
            continue
        out[key] = v
    return out


def _time(r: Reader, n: yaml.Node) -> Any:
    v = scalar(n)
    try:
        return dt.time.fromisoformat(v) if v and re.fullmatch(r"\d\d:\d\d", v) else r.bad(n, "a time HH:MM")
    except ValueError:
        return r.bad(n, "a time HH:MM")


def _condition(r: Reader, n: yaml.Node) -> Any:
    if not isinstance(n, yaml.MappingNode) or len(n.value) != 1:
        return r.bad(n, f"one condition ({', '.join(CONDITION_KEYS)})")
    knode, v = n.value[0]
    key = scalar(knode) or ""
    read = _CONDITIONS.get(key)
    if read is None:
        r.problems.at(knode, f"{r.where}: unknown condition '{key}'{did_you_mean(key, CONDITION_KEYS)}")
        return MISSING
    return read(r, v)


# One reader per condition kind, each ``(reader, value node) -> condition or MISSING``;
# the table that names them follows.

def _then(read: Callable[[Reader, yaml.Node], Any], make: Callable[[Any], Any]) -> Callable[[Reader, yaml.Node], Any]:
    """A condition of one value: ``make`` applied to what ``read`` reads."""
    def conv(r: Reader, v: yaml.Node) -> Any:
        x = read(r, v)
        return x if x is MISSING else make(x)
    return conv


def _time_between(r: Reader, v: yaml.Node) -> Any:
    if not isinstance(v, yaml.SequenceNode) or len(v.value) != 2:
        return r.bad(v, "[start, end] times HH:MM")
    a, b = _time(r, v.value[0]), _time(r, v.value[1])
    return MISSING if MISSING in (a, b) else c.TimeBetween(a, b)


def _weekday_in(r: Reader, v: yaml.Node) -> Any:
    if not isinstance(v, yaml.SequenceNode) or not v.value:
        return r.bad(v, f"a list of days ({', '.join(c.WEEKDAYS)})")
    days = set()
    for d in v.value:
        name = (scalar(d) or "").lower()
        if name not in c.WEEKDAYS:
            r.problems.at(d, f"{r.where}: unknown day '{scalar(d)}'{did_you_mean(name, c.WEEKDAYS)}")
            return MISSING
        days.add(c.WEEKDAYS.index(name))
    return c.WeekdayIn(frozenset(days))


def _calendar(r: Reader, v: yaml.Node) -> Any:
    calendar = scalar(v)
    return r.bad(v, "a calendar name") if not calendar else c.InCalendar(r.ref("calendar", calendar, v))


def _caller_in_list(r: Reader, v: yaml.Node) -> Any:
    number_list = scalar(v)
    return r.bad(v, "a number-list name") if not number_list else c.CallerInList(r.ref("list", number_list, v))


def _variable_equals(r: Reader, v: yaml.Node) -> Any:
    sub = Reader(v, r.problems, r.where, r.refs) if isinstance(v, yaml.MappingNode) else None
    if sub is None:
        return r.bad(v, "{name: VARIABLE, value: text}")
    name = sub.take("name", read_text, required=True)
    value = sub.take("value", read_text, required=True)
    sub.finish()
    return MISSING if MISSING in (name, value) else c.VariableEquals(name, value)


def _combined(make: Callable[[tuple[Any, ...]], Any]) -> Callable[[Reader, yaml.Node], Any]:
    """``all`` or ``any``: a non-empty list of conditions."""
    def conv(r: Reader, v: yaml.Node) -> Any:
        if not isinstance(v, yaml.SequenceNode) or not v.value:
            return r.bad(v, "a list of conditions")
        parts = tuple(_condition(r, x) for x in v.value)
        if MISSING in parts:
            return MISSING
        return make(parts)
    return conv


_CONDITIONS: dict[str, Callable[[Reader, yaml.Node], Any]] = {
    "level_at_least": _then(read_int(0, 9), c.LevelAtLeast),
    "level_below": _then(read_int(0, 10), c.LevelBelow),
    "short_menu": _then(read_bool, c.ShortMenu),
    "time_between": _time_between,
    "weekday_in": _weekday_in,
    "calendar": _calendar,
    "called_within_min": _then(read_int(1, 7 * 24 * 60), c.CalledWithin),
    "caller_in_list": _caller_in_list,
    "variable_equals": _variable_equals,
    "all": _combined(c.AllOf),
    "any": _combined(c.AnyOf),
    "not": _then(_condition, c.Not),
}
CONDITION_KEYS = tuple(_CONDITIONS)


def _cases(r: Reader, n: yaml.Node) -> Any:
    if not isinstance(n, yaml.SequenceNode) or not n.value:
        return r.bad(n, "a list of {when: condition, goto: step}")
    out = []
    for item in n.value:
        if not isinstance(item, yaml.MappingNode):
            r.bad(item, "{when: condition, goto: step}")
            continue
        sub = Reader(item, r.problems, r.where, r.refs)
        when = sub.take("when", _condition, required=True)
        goto = sub.take("goto", _step_ref, required=True)
        sub.finish()
        if MISSING not in (when, goto):
            out.append(m.Case(when, goto))
    return tuple(out)


# -- step schemas -------------------------------------------------------------

def _play(r: Reader, name: str) -> dict[str, Any]:
    return dict(prompts=r.take("prompts", _prompts, required=True),
                next=r.take("next", _step_ref, required=True),
                interrupt=r.take("interrupt", _digits, default=""),
                on_digit=r.take("on_digit", _step_ref))


def _announcement_set(r: Reader, n: yaml.Node) -> Any:
    v = scalar(n)
    if v is None or not NAME_RE.fullmatch(v):
        return r.bad(n, "'current' or the name of a set in prompts/announcements.yaml")
    return None if v == "current" else r.ref("announcement_set", v, n)


def _announce(r: Reader, name: str) -> dict[str, Any]:
    return dict(set=r.take("set", _announcement_set, default=None),
                next=r.take("next", _step_ref, required=True),
                interrupt=r.take("interrupt", _digits, default=""),
                on_digit=r.take("on_digit", _step_ref))


def _menu(r: Reader, name: str) -> dict[str, Any]:
    return dict(prompt=r.take("prompt", _prompt, required=True),
                options=r.take("options", _options, required=True),
                timeout_s=r.take("timeout_s", read_seconds(1, 30), default=5.0),
                retries=r.take("retries", read_int(0, 5), default=2),
                invalid_prompt=r.take("invalid_prompt", _prompt),
                timeout_prompt=r.take("timeout_prompt", _prompt),
                default=r.take("default", _step_ref))


def _branch(r: Reader, name: str) -> dict[str, Any]:
    return dict(cases=r.take("cases", _cases, required=True),
                otherwise=r.take("otherwise", _step_ref, required=True))


def _set(r: Reader, name: str) -> dict[str, Any]:
    return dict(variables=r.take("variables", _variables, required=True),
                next=r.take("next", _step_ref, required=True))


def _queue(r: Reader, name: str) -> dict[str, Any]:
    fields = dict(queue=r.take("queue", _queue_ref, required=True),
                  on_timeout=r.take("on_timeout", _step_ref, required=True),
                  priority=r.take("priority", read_int(0, 100), default=0),
                  max_wait_s=r.take("max_wait_s", read_int(5, 3600), default=300),
                  emergency=r.take("emergency", read_bool, default=False),
                  on_full=r.take("on_full", _step_ref),
                  on_no_seats=r.take("on_no_seats", _step_ref),
                  on_withdrawn=r.take("on_withdrawn", _step_ref),
                  on_answered=r.take("on_answered", _step_ref, default=m.END),
                  other_pbxs=r.take("other_pbxs", read_bool, default=False))
    if fields["other_pbxs"] is True and (fields["emergency"] is not True or fields["priority"] != m.EMERGENCY_PRIORITY):
        r.problems.at(r.items["other_pbxs"][1], f"{r.where}: other_pbxs 只用于紧急排队（emergency: true, priority: "
                                                f"{m.EMERGENCY_PRIORITY}）— other_pbxs moves emergency callers only: set "
                                                f"emergency: true and priority: {m.EMERGENCY_PRIORITY}, or remove it")
    return fields


def _record(r: Reader, name: str) -> dict[str, Any]:
    return dict(next=r.take("next", _step_ref, required=True),
                prompt=r.take("prompt", _prompt),
                max_s=r.take("max_s", read_int(3, 300), default=60),
                silence_s=r.take("silence_s", read_int(1, 30), default=3),
                beep=r.take("beep", read_bool, default=True))


def _offer_callback(r: Reader, name: str) -> dict[str, Any]:
    return dict(prompt=r.take("prompt", _prompt, required=True),
                on_accept=r.take("on_accept", _step_ref, required=True),
                on_decline=r.take("on_decline", _step_ref, required=True),
                accept_digit=r.take("accept_digit", _digit, default="1"),
                timeout_s=r.take("timeout_s", read_seconds(1, 30), default=5.0))


def _spoken(r: Reader, n: yaml.Node) -> None:
    """The recordings a spoken place and wait are played from: checked to exist."""
    r.ref("spoken", "", n)


def _admit(r: Reader, name: str) -> dict[str, Any]:
    _spoken(r, r.node)
    fields = _admit_fields(r)
    if (fields["emergency_digit"] is None) != (fields["on_emergency"] is None):
        r.problems.at(r.node, f"{r.where}: emergency_digit and on_emergency go together")
    elif fields["emergency_digit"] is not None and fields["emergency_digit"] == fields["accept_digit"]:
        r.problems.at(r.items["emergency_digit"][1], f"{r.where}: emergency_digit must differ from accept_digit")
    return fields


def _admit_fields(r: Reader) -> dict[str, Any]:
    return dict(queue=r.take("queue", _queue_ref, required=True),
                prompt=r.take("prompt", _prompt, required=True),
                on_wait=r.take("on_wait", _step_ref, required=True),
                on_registered=r.take("on_registered", _step_ref, required=True),
                priority=r.take("priority", read_int(0, 100), default=0),
                accept_digit=r.take("accept_digit", _digit, default="1"),
                timeout_s=r.take("timeout_s", read_seconds(1, 30), default=6.0),
                registered_prompt=r.take("registered_prompt", _prompt),
                on_already_registered=r.take("on_already_registered", _step_ref),
                emergency_digit=r.take("emergency_digit", _digit),
                on_emergency=r.take("on_emergency", _step_ref),
                on_declined=r.take("on_declined", _step_ref),
                on_declined_no_lines=r.take("on_declined_no_lines", _step_ref),
                intro_prompt=r.take("intro_prompt", _prompt))


def _say_wait(r: Reader, name: str) -> dict[str, Any]:
    _spoken(r, r.node)
    return dict(queue=r.take("queue", _queue_ref, required=True),
                next=r.take("next", _step_ref, required=True),
                priority=r.take("priority", read_int(0, 100), default=0),
                say_place=r.take("say_place", read_bool, default=True))


def _survey_answers(r: Reader, n: yaml.Node) -> Any:
    """digit: rating, each of the three ratings exactly once."""
    wanted = ", ".join(m.RATINGS)
    if not isinstance(n, yaml.MappingNode) or not n.value:
        return r.bad(n, f"a mapping of digit: rating ({wanted})")
    out: dict[str, str] = {}
    ok = True
    for key, knode, vnode in mapping_items(n, r.problems, r.where):
        rating = scalar(vnode) or ""
        if len(key) != 1 or not DIGITS_RE.fullmatch(key):
            r.problems.at(knode, f"{r.where}: answer key '{key}' is not one keypad digit")
            ok = False
        elif rating not in m.RATINGS:
            r.problems.at(vnode, f"{r.where}: unknown rating '{rating}' (one of {wanted})"
                                 f"{did_you_mean(rating, m.RATINGS)}")
            ok = False
        elif rating in out.values():
            r.problems.at(vnode, f"{r.where}: rating '{rating}' is given to two keys")
            ok = False
        else:
            out[key] = rating
    if ok and len(out) != len(m.RATINGS):
        missing = [x for x in m.RATINGS if x not in out.values()]
        r.problems.at(n, f"{r.where}: no key for rating {', '.join(missing)}")
        ok = False
    return out if ok else MISSING


def _survey(r: Reader, name: str) -> dict[str, Any]:
    return dict(prompt=r.take("prompt", _prompt, required=True),
                next=r.take("next", _step_ref, required=True),
                answers=r.take("answers", _survey_answers, default=dict(m.DEFAULT_ANSWERS)),
                timeout_s=r.take("timeout_s", read_seconds(1, 30), default=5.0),
                retries=r.take("retries", read_int(0, 3), default=1),
                invalid_prompt=r.take("invalid_prompt", _prompt),
                timeout_prompt=r.take("timeout_prompt", _prompt),
                thanks_prompt=r.take("thanks_prompt", _prompt))


def _transfer(r: Reader, name: str) -> dict[str, Any]:
    return dict(to=r.take("to", _number, required=True),
                on_fail=r.take("on_fail", _step_ref, required=True),
                timeout_s=r.take("timeout_s", read_int(5, 120), default=30))


def _goto(r: Reader, name: str) -> dict[str, Any]:
    return dict(to=r.take("to", _step_ref, required=True))


def _subflow(r: Reader, name: str) -> dict[str, Any]:
    return dict(flow=r.take("flow", _flow_ref, required=True),
                next=r.take("next", _step_ref, required=True))


def _hangup(r: Reader, name: str) -> dict[str, Any]:
    return dict(prompt=r.take("prompt", _prompt))


STEP_TYPES: dict[str, tuple[Callable[..., m.Step], Callable[[Reader, str], dict[str, Any]]]] = {
    "play": (m.Play, _play),
    "announce": (m.Announce, _announce),
    "menu": (m.Menu, _menu),
    "branch": (m.Branch, _branch),
    "set": (m.SetVars, _set),
    "queue": (m.Queue, _queue),
    "record": (m.Record, _record),
    "offer_callback": (m.OfferCallback, _offer_callback),
    "transfer": (m.Transfer, _transfer),
    "goto": (m.Goto, _goto),
    "subflow": (m.Subflow, _subflow),
    "hangup": (m.Hangup, _hangup),
    "admit": (m.Admit, _admit),
    "say_wait": (m.SayWait, _say_wait),
    "survey": (m.Survey, _survey),
}


def _step(name: str, node: yaml.Node, problems: Problems, refs: list[Reference]) -> m.Step | None:
    if not isinstance(node, yaml.MappingNode):
        problems.at(node, f"step '{name}': expected a mapping with a 'type', got {kind_of(node)}")
        return None
    items = {k: vn for k, _, vn in mapping_items(node, Problems(problems.path), "")}
    tnode = items.get("type")
    if tnode is None:
        problems.at(node, f"step '{name}': missing required key 'type' (one of {', '.join(STEP_TYPES)})")
        return None
    tname = scalar(tnode) or ""
    if tname not in STEP_TYPES:
        problems.at(tnode, f"step '{name}': unknown type '{tname}'{did_you_mean(tname, STEP_TYPES)}")
        return None
    cls, schema = STEP_TYPES[tname]
    r = Reader(node, problems, f"{tname} '{name}'", refs)
    r.allowed.add("type")
    fields = schema(r, name)
    r.finish()
    if any(v is MISSING for v in fields.values()):
        return None
    where = m.Where(node.start_mark.line + 1, node.start_mark.column + 1)
    return cls(name=name, where=where, **{k: v for k, v in fields.items() if v is not None})


def parse_flow(text: str, path: str, *, expected_name: str | None = None) -> ParsedFlow:
    """Parse and check the shape of one flow file. References to other things
    (steps, prompts, queues...) are collected for ``references.check``."""
    problems = Problems(path)
    root = compose_or_report(text, problems)
    if root is COMPOSE_FAILED:
        return ParsedFlow(None, problems)
    if not isinstance(root, yaml.MappingNode):
        problems.at(root, "a flow file must be a mapping with 'start' and 'steps'")
        return ParsedFlow(None, problems)
    refs: list[Reference] = []
    r = Reader(root, problems, "flow", refs)
    name = r.take("name", read_text, default=expected_name)
    if expected_name and name not in (MISSING, expected_name):
        problems.at(r.items["name"][1], f"flow: name '{name}' differs from the file name '{expected_name}'")
    description = r.take("description", read_text, default="")
    start = r.take("start", _step_ref, required=True)
    fallback = r.take("fallback", _step_ref)
    steps_node = r.items.get("steps", (None, None))[1]
    r.allowed.add("steps")
    r.finish()
    step_nodes: dict[str, yaml.Node] = {}
    steps: dict[str, m.Step] = {}
    if steps_node is None:
        problems.at(root, "flow: missing required key 'steps'")
    elif not isinstance(steps_node, yaml.MappingNode) or not steps_node.value:
        problems.at(steps_node, "flow: 'steps' must be a mapping of step name: step")
    else:
        for sname, knode, vnode in mapping_items(steps_node, problems, "steps"):
            if not NAME_RE.fullmatch(sname) or sname in m.RESERVED_TARGETS:
                problems.at(knode, f"step '{sname}': a step name is a letter then letters, digits, '-' or '_', and not 'end'")
                continue
            step_nodes[sname] = knode
            step = _step(sname, vnode, problems, refs)
            if step is not None:
                steps[sname] = step
    flow = None
    if not problems.errors and name is not MISSING and start is not MISSING:
        subflows = frozenset(ref.value for ref in refs if ref.kind == "flow")
        flow = m.Flow(name=name or "", start=start, steps=steps, description=description,
                      fallback=fallback, path=path, source=text, subflows=subflows)
    return ParsedFlow(flow, problems, refs, step_nodes, name if isinstance(name, str) else "")

