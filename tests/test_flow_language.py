"""The flow language: every error message, with its location."""

import textwrap

import pytest

from ivr.flow import model as m
from ivr.flow.loader import parse_flow
from ivr.flow.references import Catalog, check
from ivr.project import Project, check_files, check_flow_texts

CATALOG = Catalog(prompts=frozenset({"welcome", "menu", "bye", "policy/current"}),
                  queues={"general": "general-q", "emergency": "emergency-q"},
                  asterisk_queues=frozenset({"general-q", "emergency-q"}),
                  lists=frozenset({"urgent"}), calendars=frozenset({"holidays"}),
                  flows=frozenset({"main", "sub"}))

GOOD = """\
start: hello
steps:
  hello:
    type: play
    prompts: [welcome]
    next: pick
  pick:
    type: menu
    prompt: menu
    options: {"1": urgent, "2": line}
    default: line
  urgent:
    type: queue
    queue: emergency
    priority: 10
    on_timeout: line
  line:
    type: queue
    queue: general
    on_timeout: bye
  bye:
    type: hangup
    prompt: bye
"""


def problems_of(text, catalog=CATALOG, name="main"):
    parsed = parse_flow(textwrap.dedent(text), "flows/main.yaml", expected_name=name)
    check(parsed, catalog)
    return [str(p) for p in parsed.problems.items]


def test_good_flow_has_no_problems():
    assert problems_of(GOOD) == []


@pytest.mark.parametrize("edit, expected", [
    (("    default: line\n", "    default: line\n    timout: 5\n"),
     "flows/main.yaml:12:5: menu 'pick': unknown key 'timout' (did you mean 'timeout_s'?)"),
    (("    type: play\n", "    type: plya\n"),
     "flows/main.yaml:4:11: step 'hello': unknown type 'plya' (did you mean 'play'?)"),
    (("    next: pick\n", ""),
     "flows/main.yaml:4:5: play 'hello': missing required key 'next'"),
    (("    next: pick\n", "    next: pik\n"),
     "flows/main.yaml:6:11: play 'hello': no step named 'pik' (did you mean 'pick'?)"),
    (("    prompts: [welcome]\n", "    prompts: [welcom]\n"),
     "flows/main.yaml:5:15: play 'hello': prompt 'welcom' not found in prompts/ (did you mean 'welcome'?)"),
    (("    queue: general\n", "    queue: genral\n"),
     "flows/main.yaml:19:12: queue 'line': queue 'genral' is not defined in queue/queues.yaml (did you mean 'general'?)"),
    (("    priority: 10\n", "    priority: high\n"),
     "flows/main.yaml:15:15: queue 'urgent': expected a whole number from 0 to 100, got 'high'"),
    (('    options: {"1": urgent, "2": line}\n', '    options: {"12": urgent, "2": line}\n'),
     "flows/main.yaml:10:15: menu 'pick': option '12' is not one keypad digit"),
    (("start: hello\n", "start: hello\nstart: bye\n"),
     "flows/main.yaml:2:1: flow: key 'start' appears twice (first on line 1)"),
    (("  bye:\n    type: hangup\n", "  bye:\n    type: hangup\n    to: x\n"),
     "flows/main.yaml:23:5: hangup 'bye': unknown key 'to'"),
])
def test_error_messages(edit, expected):
    old, new = edit
    assert old in GOOD
    assert expected in problems_of(GOOD.replace(old, new, 1))


def test_every_error_is_reported_at_once():
    bad = GOOD.replace("type: play", "type: plya").replace("queue: general", "queue: genral").replace(
        "prompt: bye", "prompt: byebye")
    probs = problems_of(bad)
    assert len([p for p in probs if "warning" not in p]) >= 3


def test_yaml_syntax_error_has_a_location():
    probs = problems_of("start: a\nsteps:\n  a: [unclosed\n")
    assert len(probs) == 1 and probs[0].startswith("flows/main.yaml:4:1: YAML syntax")


def test_queue_missing_from_asterisk_config():
    cat = Catalog(prompts=CATALOG.prompts, queues={"general": "general-q", "emergency": "nope-q"},
                  asterisk_queues=frozenset({"general-q"}))
    assert ("flows/main.yaml:14:12: queue 'urgent': queue 'emergency' maps to Asterisk queue 'nope-q', "
            "which asterisk/queues.conf does not define") in problems_of(GOOD, cat)


@pytest.mark.parametrize("cond, message", [
    ("{level_at_leest: 2}", "unknown condition 'level_at_leest' (did you mean 'level_at_least'?)"),
    ("{time_between: ['8:00', '17:00']}", "expected a time HH:MM, got '8:00'"),
    ("{weekday_in: [mon, fry]}", "unknown day 'fry' (did you mean 'fri'?)"),
    ("{caller_in_list: vip}", "number list 'vip' not found in flows/lists/"),
    ("{calendar: holiday}", "calendar 'holiday' not found in flows/calendars/ (did you mean 'holidays'?)"),
    ("{not: {level_below: 99}}", "expected a whole number from 0 to 10, got '99'"),
])
def test_condition_errors(cond, message):
    text = GOOD.replace("  bye:\n", f"  br:\n    type: branch\n    cases:\n      - when: {cond}\n"
                                    f"        goto: bye\n    otherwise: bye\n  bye:\n")
    text = text.replace("    next: pick\n", "    next: br\n")
    probs = problems_of(text)
    assert any(message in p for p in probs), probs


def test_unreachable_step_is_a_warning():
    text = GOOD + "  lonely:\n    type: hangup\n"
    probs = problems_of(text)
    assert probs == ["flows/main.yaml:24:3: warning: step 'lonely': no path leads here (unreachable)"]


def test_reserved_end_and_self_subflow():
    text = GOOD.replace("  bye:\n", "  end:\n    type: hangup\n  s:\n    type: subflow\n    flow: main\n    next: end\n  bye:\n")
    probs = problems_of(text)
    assert any("step 'end': a step name" in p for p in probs)
    assert any("a flow cannot call itself as a subflow" in p for p in probs)


def test_subflow_cycle_is_refused():
    a = "start: s\nsteps:\n  s:\n    type: subflow\n    flow: b\n    next: end\n"
    b = "start: s\nsteps:\n  s:\n    type: subflow\n    flow: a\n    next: end\n"
    cat = Catalog(prompts=frozenset(), queues={}, asterisk_queues=None, flows=frozenset({"a", "b"}))
    flows, probs = check_flow_texts({"a": ("flows/a.yaml", a), "b": ("flows/b.yaml", b)}, cat)
    assert flows == {}
    assert any("subflows call each other in a loop: a -> b -> a" in str(p) for p in probs)


def test_parsed_model():
    parsed = parse_flow(GOOD, "flows/main.yaml", expected_name="main")
    f = parsed.flow
    assert f.start == "hello"
    assert f.steps["pick"] == m.Menu(name="pick", prompt="menu", options={"1": "urgent", "2": "line"},
                                     default="line", where=m.Where(8, 5))
    assert f.steps["urgent"].priority == 10 and f.steps["urgent"].on_answered == m.END


def test_shipped_flows_are_valid(project_home):
    flows, problems = check_files(Project(project_home))
    assert [str(p) for p in problems] == []
    assert {"main", "announcements"} <= set(flows)
