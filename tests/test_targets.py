"""The targets seat managers set for the national figures (queue/targets.yaml):
read with every problem at its file:line:col, Chinese first; the colours a
figure takes against them."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ivr.callback.targets import AMBER, GREEN, RED, Targets, parse_targets
from ivr.configset.texts import check_set
from ivr.project import FIXED_FILES, prompt_names, read_texts

TZ = ZoneInfo("Asia/Shanghai")


def test_the_shipped_file_is_part_of_the_configuration_set(project_home):
    assert "queue/targets.yaml" in FIXED_FILES
    texts = read_texts(project_home)
    checked = check_set(texts, prompts=prompt_names(project_home / "prompts"), tz=TZ, now=dt.datetime.now(TZ))
    assert checked.errors == []
    assert checked.ops.targets == Targets(0.80, 0.95, 0.90, None, None, 5.0)


def test_a_file_that_states_some_targets_keeps_the_defaults_of_the_others():
    t, problems = parse_targets("targets:\n  satisfaction_pct: 94\n  average_speed_of_answer_s: 12\n"
                                "  abandoned_within_15s: 30\n  answer_rate_24h_pct: null\n")
    assert problems == []
    assert t == Targets(answered_within_15s_rate=0.80, answer_rate_24h=None, satisfaction_rate=0.94,
                        average_speed_of_answer_s=12.0, abandoned_within_15s=30)


@pytest.mark.parametrize("text, where, words", [
    ("targets:\n  answered_within_15s_pct: 120\n", "2:28", ["15秒接通率目标 answered_within_15s_pct 须在 0 到 100% 之间",
                                                           "must be from 0 to 100 %, not 120"]),
    ("targets:\n  satisfaction_pct: -5\n", "2:21", ["满意率目标 satisfaction_pct 应为 0 到 100% 的数", "got -5"]),
    ("targets:\n  answer_rate_24h_pct: 95.5.1\n", "2:24", ["24小时接通率目标", "got 95.5.1"]),
    ("targets:\n  answer_rate_24h_pct: [95]\n", "2:24", ["应为 0 到 100", "got a list"]),
    ("targets:\n  average_speed_of_answer_s: 0\n", "2:30", ["平均应答时长目标", "须在 1 到 3600 秒之间"]),
    ("targets:\n  amber_within_pct: 101\n", "2:21", ["黄色区间目标", "须在 0 到 100"]),
    ("targets:\n  satisfaction: 90\n", "2:3", ["未知的键 'satisfaction'", "did you mean 'satisfaction_pct'"]),
    ("targets: 90\n", "1:10", ["targets 应为", "expected a mapping of figure: target"]),
    ("target:\n  satisfaction_pct: 90\n", "1:1", ["缺少必填项 'targets'"]),
    ("", "1:1", ["文件为空", "the file is empty"]),
])
def test_bad_targets_are_refused_at_their_place_chinese_first(text, where, words):
    t, problems = parse_targets(text)
    assert t is None
    first = str(problems[0])
    assert first.startswith(f"queue/targets.yaml:{where}:"), first
    for w in words:
        assert w in first, first
    chinese, _, english = first.split(": ", 1)[1].partition(" — ")
    assert english and any("\u4e00" <= ch <= "\u9fff" for ch in chinese), f"Chinese first: {first}"


def test_every_problem_at_once():
    _, problems = parse_targets("targets:\n  satisfaction_pct: 190\n  answer_rate_24h_pct: x\n  y: 1\n")
    assert [p.line for p in problems] == [2, 3, 4]


def test_a_bad_targets_file_is_refused_with_the_set(project_home):
    texts = read_texts(project_home) | {"queue/targets.yaml": "targets:\n  satisfaction_pct: 900\n"}
    checked = check_set(texts, prompts=prompt_names(project_home / "prompts"), tz=TZ, now=dt.datetime.now(TZ))
    assert [str(p).split(": ", 1)[0] for p in checked.errors] == ["queue/targets.yaml:2:21"]
    assert checked.ops.targets is None


@pytest.mark.parametrize("fig, colour", [
    ({"answered_within_15s_rate": 0.80}, GREEN),    # exactly the target: met
    ({"answered_within_15s_rate": 0.75}, AMBER),    # 5 points below: amber
    ({"answered_within_15s_rate": 0.7499}, RED),
    ({"answered_within_15s_rate": None}, ""),       # nothing to divide: no colour
])
def test_a_rate_against_its_target(fig, colour):
    assert Targets().colours(fig)["answered_within_15s_rate"] == colour


def test_figures_without_a_target_have_no_colour_and_at_most_targets_turn_the_other_way():
    c = Targets().colours({"average_speed_of_answer_s": 40.0, "abandoned_within_15s": 3})
    assert (c["average_speed_of_answer_s"], c["abandoned_within_15s"]) == ("", "")
    t = Targets(average_speed_of_answer_s=20.0, abandoned_within_15s=10)
    assert t.colours({"average_speed_of_answer_s": 20.0})["average_speed_of_answer_s"] == GREEN
    assert t.colours({"average_speed_of_answer_s": 21.0})["average_speed_of_answer_s"] == AMBER   # within 5 %
    assert t.colours({"average_speed_of_answer_s": 21.5})["average_speed_of_answer_s"] == RED
    assert t.colours({"abandoned_within_15s": 11})["abandoned_within_15s"] == RED
