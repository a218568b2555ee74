"""The contingency plan: loading with file:line:col errors, automatic raise and
stand-down with hysteresis (clock passed in), and the seat actions of a switch."""

import pytest

from ivr.ami.model import Observation
from ivr.contingency.plan import SeatDef, Seats, parse_plan
from ivr.contingency.rules import RuleState, evaluate
from ivr.contingency.seat_steps import seat_steps
from ivr.project import Project, load_operations
from tests import english

PLAN_YAML = """
mode: auto
levels:
  - {level: 0, name: 正常}
  - level: 1
    name: 繁忙
    raise_when: {calls_waiting: 20, abandon_rate: 0.2, for_s: 60}
    stand_down_when: {calls_waiting: 5, for_s: 300}
    seat_actions:
      - {action: unpause, group: front}
  - level: 2
    name: 高峰
    raise_when: {calls_waiting: 60, for_s: 120}
    stand_down_when: {calls_waiting: 20, for_s: 300}
    seat_actions:
      - {action: add, group: back, queue: general, penalty: 5}
"""


@pytest.fixture
def plan():
    p, problems = parse_plan(PLAN_YAML, "queue/contingency.yaml")
    assert problems == []
    return p


def obs(waiting=0, longest=0.0, rate=0.0, offered=100):
    return Observation(waiting, longest, rate, offered)


def run(plan, level, auto, timeline):
    """timeline: [(t, observation)] -> decisions [(t, target)]"""
    state, out = RuleState(), []
    for t, o in timeline:
        d = evaluate(plan, level, auto, o, t, state)
        if d:
            out.append((t, d.target))
            level = d.target
    return out


def test_raise_needs_the_figure_held_for_for_s(plan):
    assert run(plan, 0, False, [(0, obs(25)), (30, obs(25)), (59, obs(25))]) == []
    assert run(plan, 0, False, [(0, obs(25)), (30, obs(25)), (60, obs(25))]) == [(60, 1)]


def test_a_dip_restarts_the_clock(plan):
    timeline = [(0, obs(25)), (30, obs(3)), (60, obs(25)), (100, obs(25)), (120, obs(25))]
    assert run(plan, 0, False, timeline) == [(120, 1)]


def test_a_surge_is_recognised_in_one_step(plan):
    assert run(plan, 0, False, [(t, obs(80)) for t in range(0, 121, 10)]) == [(60, 1), (120, 2)]


def test_abandon_rate_counts_only_over_enough_calls(plan):
    assert run(plan, 0, False, [(0, obs(rate=0.5, offered=5)), (90, obs(rate=0.5, offered=5))]) == []
    assert run(plan, 0, False, [(0, obs(rate=0.5, offered=50)), (90, obs(rate=0.5, offered=50))]) == [(90, 1)]


def test_stand_down_needs_calm_held_and_goes_one_level_at_a_time(plan):
    calm = [(t, obs(2)) for t in range(0, 701, 50)]
    assert run(plan, 2, True, calm) == [(300, 1), (650, 0)]   # each level counts its own calm


def test_hysteresis_between_the_two_figures_keeps_the_level(plan):
    # 10 waiting: below level 1's raise figure (20), above its stand-down figure (5)
    assert run(plan, 1, True, [(t, obs(10)) for t in range(0, 3600, 60)]) == []


def test_a_level_set_by_a_person_is_not_stood_down_automatically(plan):
    assert run(plan, 2, False, [(t, obs(0)) for t in range(0, 3600, 60)]) == []


@pytest.mark.parametrize("text, message", [
    ("levels:\n  - {level: 0, name: a}\n  - {level: 1, name: b, callbak: offer}\n",
     "queue/contingency.yaml:3:25: level 1: unknown key 'callbak' (did you mean 'callback'?)"),
    ("levels:\n  - {level: 0, name: a}\n  - {level: 2, name: b}\n",
     "queue/contingency.yaml:3:13: level 1: levels must be numbered 0, 1, 2 ... in order; found 2"),
    ("levels:\n  - {level: 0, name: a}\n  - level: 1\n    name: b\n    raise_when: {calls_waiting: 10}\n"
     "    stand_down_when: {calls_waiting: 10}\n",
     "queue/contingency.yaml:6:22: level 1: stand-down calls_waiting 10 must be below the raise threshold 10"),
    ("levels:\n  - {level: 0, name: a}\n  - {level: 1, name: b, callback: maybe}\n",
     "queue/contingency.yaml:3:35: level 1: expected 'offer' or 'message', got 'maybe'"),
    ("levels:\n  - {level: 0, name: a}\n  - {level: 1, name: b, announcements: peek}\n",
     "queue/contingency.yaml:3:40: level 1: announcement set 'peek' is not in prompts/announcements.yaml"),
    ("levels:\n  - {level: 0, name: a}\n  - level: 1\n    name: b\n    seat_actions:\n"
     "      - {action: add, group: back}\n",
     "queue/contingency.yaml:6:9: level 1 seat action: 'add' needs 'queue'"),
])
def test_plan_errors_point_at_the_line(text, message):
    plan, problems = parse_plan(text, "queue/contingency.yaml", queues=frozenset({"general"}),
                                announcement_sets=frozenset({"peak"}), seat_groups=frozenset({"back"}))
    assert plan is None
    assert any(english(p).startswith(message) for p in problems), [str(p) for p in problems]


def test_seat_steps_up_and_back_down(plan):
    seats = Seats({"front": (SeatDef("Local/101@s/n", "Seat101", "Custom:seat101"),),
                   "back": (SeatDef("Local/201@s/n", "Seat201", "Custom:seat201"),
                            SeatDef("Local/202@s/n", "Seat202", "Custom:seat202"))})
    up = seat_steps(plan, seats, {"general": "general-q"}, 0, 2)
    assert [(s.level, s.action, s.interface, s.queue, s.penalty) for s in up] == [
        (1, "unpause", "Local/101@s/n", None, 0),
        (2, "add", "Local/201@s/n", "general-q", 5), (2, "add", "Local/202@s/n", "general-q", 5)]
    down = seat_steps(plan, seats, {"general": "general-q"}, 2, 0)
    # seats on break that were called back are not sent on break again (unpause has undo: false)
    assert [(s.action, s.interface) for s in down] == [("remove", "Local/201@s/n"), ("remove", "Local/202@s/n")]
    assert seat_steps(plan, seats, {}, 1, 1) == []


def test_shipped_plan_seats_and_announcements_are_valid(project_home):
    import datetime as dt
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Shanghai")
    ops = load_operations(Project(project_home), tz, dt.datetime(2026, 11, 23, tzinfo=tz))
    assert [str(p) for p in ops.problems] == []
    assert [lv.name_en for lv in ops.plan.levels] == ["normal", "busy", "peak", "surge"]
    assert ops.seats.reserved == frozenset({"Local/109@ivr-seats/n"})


def test_announcement_expiring_within_a_day_is_a_warning(project_home, tmp_path):
    import datetime as dt
    from zoneinfo import ZoneInfo

    from ivr.prompts.announcements import parse_announcements, playable

    tz = ZoneInfo("Asia/Shanghai")
    text = ("sets:\n  peak:\n    - {prompt: policy/current, valid_from: 2026-11-01, valid_until: 2026-11-23}\n"
            "    - {prompt: welcome, valid_until: 2026-11-20}\n")
    now = dt.datetime(2026, 11, 23, 9, 0, tzinfo=tz)
    sets, problems = parse_announcements(text, "prompts/announcements.yaml", tz=tz,
                                         prompts=frozenset({"policy/current", "welcome"}), now=now)
    assert [english(p) for p in problems] == [
        "prompts/announcements.yaml:3:69: warning: set 'peak': 'policy/current' expires within a day "
        "(2026-11-24 00:00); renew it or replace it",
        "prompts/announcements.yaml:4:38: warning: set 'peak': 'welcome' expired on 2026-11-21 00:00 and will not play",
    ]
    assert playable(sets, "peak", now) == ("policy/current",)
    assert playable(sets, "peak", dt.datetime(2026, 11, 24, 0, 0, tzinfo=tz)) == ()
    assert playable(sets, "peak", dt.datetime(2026, 10, 31, 23, 59, tzinfo=tz)) == ("welcome",)


def test_reasons_and_history_read_in_chinese(plan):
    from zoneinfo import ZoneInfo

    from ivr.contingency.history import history_row, who_label
    state = RuleState()
    evaluate(plan, 0, False, obs(71, rate=0.25), 0, state)
    d = evaluate(plan, 0, False, obs(71, rate=0.25), 120, state)
    assert d.target == 2 and d.reason == "排队人数 71 ≥ 60，已持续 120 秒"
    state = RuleState()
    evaluate(plan, 0, False, obs(25, rate=0.25), 0, state)
    assert evaluate(plan, 0, False, obs(25, rate=0.25), 60, state).reason == "排队人数 25 ≥ 20；放弃率 25% ≥ 20%，已持续 60 秒"
    state = RuleState()
    evaluate(plan, 1, True, obs(2), 0, state)
    assert evaluate(plan, 1, True, obs(2), 300, state).reason.startswith("已平稳 300 秒：排队人数 2")
    row = history_row({"kind": "seat_action", "at": 1796054400.0, "by": "system:ami", "action": "add",
                       "name": "Seat201", "queue": "general-q", "result": {"ok": True, "message": ""}},
                      ZoneInfo("Asia/Shanghai"))
    assert (row["time"], row["label"], row["by_label"], row["detail"]) == (
        "2026-12-01 00:00:00", "坐席调整", "系统（AMI 坐席控制）", "Seat201 加入队列 general-q · 成功")
    assert who_label("web:wang") == "wang（控制台）" and who_label("cli:li", "en") == "li (command line)"
