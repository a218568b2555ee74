"""The flow language: every error message, with its location."""

import textwrap

import pytest

from ivr.flow import model as m
from ivr.flow.loader import parse_flow
from ivr.flow.references import Catalog, check
from ivr.project import Project, check_files, check_flow_texts
from tests import english

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
     "flows/main.yaml:12:5: 菜单 'pick'：未知的键 'timout'（是否应为 'timeout_s'？） — "
     "menu 'pick': unknown key 'timout' (did you mean 'timeout_s'?)"),
    (("    type: play\n", "    type: plya\n"),
     "flows/main.yaml:4:11: 步骤 'hello'：未知的步骤类型 'plya'（是否应为 'play'？） — "
     "step 'hello': unknown type 'plya' (did you mean 'play'?)"),
    (("    next: pick\n", ""),
     "flows/main.yaml:4:5: 播放 'hello'：缺少必填项 'next' — play 'hello': missing required key 'next'"),
    (("    next: pick\n", "    next: pik\n"),
     "flows/main.yaml:6:11: 播放 'hello'：没有名为 'pik' 的步骤（是否应为 'pick'？） — "
     "play 'hello': no step named 'pik' (did you mean 'pick'?)"),
    (("    prompts: [welcome]\n", "    prompts: [welcom]\n"),
     "flows/main.yaml:5:15: 播放 'hello'：提示音 'welcom' 不在 prompts/ 中（是否应为 'welcome'？） — "
     "play 'hello': prompt 'welcom' not found in prompts/ (did you mean 'welcome'?)"),
    (("    queue: general\n", "    queue: genral\n"),
     "flows/main.yaml:19:12: 排队 'line'：队列 'genral' 未在 queue/queues.yaml 中定义（是否应为 'general'？） — "
     "queue 'line': queue 'genral' is not defined in queue/queues.yaml (did you mean 'general'?)"),
    (("    priority: 10\n", "    priority: high\n"),
     "flows/main.yaml:15:15: 排队 'urgent'：应为 0 到 100 的整数，实际为 'high' — "
     "queue 'urgent': expected a whole number from 0 to 100, got 'high'"),
    (('    options: {"1": urgent, "2": line}\n', '    options: {"12": urgent, "2": line}\n'),
     "flows/main.yaml:10:15: 菜单 'pick'：选项 '12' 不是单个按键 — menu 'pick': option '12' is not one keypad digit"),
    (("start: hello\n", "start: hello\nstart: bye\n"),
     "flows/main.yaml:2:1: 流程：键 'start' 出现了两次（第一次在第 1 行） — "
     "flow: key 'start' appears twice (first on line 1)"),
    (("  bye:\n    type: hangup\n", "  bye:\n    type: hangup\n    to: x\n"),
     "flows/main.yaml:23:5: 挂机 'bye'：未知的键 'to' — hangup 'bye': unknown key 'to'"),
])
def test_error_messages(edit, expected):
    """Chinese first, the English after; file:line:col stays in front."""
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
    assert len(probs) == 1 and probs[0].startswith("flows/main.yaml:4:1: YAML 格式错误")


def test_queue_missing_from_asterisk_config():
    cat = Catalog(prompts=CATALOG.prompts, queues={"general": "general-q", "emergency": "nope-q"},
                  asterisk_queues=frozenset({"general-q"}))
    assert ("flows/main.yaml:14:12: queue 'urgent': queue 'emergency' maps to Asterisk queue 'nope-q', "
            "which asterisk/queues.conf does not define") in [english(p) for p in problems_of(GOOD, cat)]


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
    assert probs == ["flows/main.yaml:24:3: 警告 warning: 步骤 'lonely'：没有任何路径到达这一步（不可达） — "
                     "step 'lonely': no path leads here (unreachable)"]


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


@pytest.mark.parametrize("old, new", [
    ("    type: play\n", "    type: play\n    colour: red\n"),
    ("    prompts: [welcome]\n", "    prompts: []\n"),
    ("    prompts: [welcome]\n", "    prompts: [welcome]\n    interrupt: abc\n"),
    ("start: hello\n", "name: other\nstart: hello\n"),
    ("start: hello\n", "start: [hello]\n"),
    ("  bye:\n", "  end:\n    type: hangup\n  bye:\n"),
    ("    next: pick\n", "    next: pick\n    on_digit: {a: b}\n"),
    ("    default: line\n", "    default: line\n    retries: many\n"),
    ("    queue: general\n", "    queue: general\n    emergency: perhaps\n"),
    ("  bye:\n", "  b2:\n    type: branch\n    cases: [{when: {weekday_in: [mon, funday]}, goto: bye}]\n"
                 "    otherwise: bye\n"
                 "  b3:\n    type: branch\n    cases: [{when: {time_between: [x]}, goto: bye}]\n    otherwise: bye\n"
                 "  s1:\n    type: set\n    variables: {lower: x}\n    next: bye\n"
                 "  t1:\n    type: transfer\n    to: abc\n    on_fail: bye\n"
                 "  sub:\n    type: subflow\n    flow: nosuch\n    next: bye\n  bye:\n"),
    ("start: hello\n", "start: hello\nsteps: [1]\n"),
    ("", "a: [unclosed\n"),
])
def test_every_validator_message_has_its_chinese(old, new):
    """Staff read Chinese first: no problem the validator reports is English only."""
    text = GOOD.replace(old, new, 1) if old else new
    probs = problems_of(text)
    assert probs
    for p in probs:
        message = p.split(": ", 1)[1].removeprefix("警告 warning: ")
        assert "\u4e00" <= message[0] <= "\u9fff" or " — " in message, p
        assert " — " in message, p
