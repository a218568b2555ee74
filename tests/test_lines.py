"""Trunk lines, pure: queue/lines.yaml read with every problem at
file:line:col (Chinese first), the figures staff see from what AMI answered,
the dialplan's record of a refused attempt, and what the rest of the product
makes of it (the miss reason, the report, the callback scheduler, the wall,
``ivr status``)."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ivr.admission.lines import (
    LineReading,
    LinesConfig,
    PbxLines,
    blocked_from_astdb,
    blocked_from_event,
    count_value,
    figures,
    parse_lines,
)
from ivr.callback.blocked import summary
from ivr.callback.labels import MISS_REASONS, label
from ivr.callback.policy import Policy, classify
from ivr.callback.report import hotline_figures
from ivr.callback.scheduler import is_calm
from ivr.cli.engine import render_status
from ivr.configset.texts import check_set
from ivr.project import FIXED_FILES, prompt_names, read_texts
from ivr.services.status import lines as lines_of
from ivr.web import wallboard as wall

TZ = ZoneInfo("Asia/Shanghai")
GOOD = """pbxs:
  main:
    lines: 3000
    emergency_reserve: 60
    callback_below_free: 300
"""


def test_the_shipped_file_is_part_of_the_configuration_set(project_home):
    assert "queue/lines.yaml" in FIXED_FILES
    texts = read_texts(project_home)
    checked = check_set(texts, prompts=prompt_names(project_home / "prompts"), tz=TZ, now=dt.datetime.now(TZ))
    assert checked.errors == []
    assert checked.ops.lines is not None and checked.ops.lines.for_link() == PbxLines("main", 30, 2, 6)


def test_a_good_file():
    config, problems = parse_lines(GOOD)
    assert problems == []
    assert config == LinesConfig({"main": PbxLines("main", 3000, 60, 300)})


@pytest.mark.parametrize("text, where, words", [
    ("pbxs:\n  main: {lines: 30, emergency_reserve: 31}\n", "1:2:40", ["紧急预留线路 (31) 不能达到或超过线路数 (30)",
                                                                         "emergency_reserve (31) must be below lines"]),
    ("pbxs:\n  main: {lines: 30, emergency_reserve: 30}\n", "1:2:40", ["emergency_reserve (30) must be below"]),
    ("pbxs:\n  main: {lines: -5}\n", "1:2:17", ["应为 1 到 1000000 的整数", "got '-5'"]),
    ("pbxs:\n  main: {lines: 30, emergency_reserve: -1}\n", "1:2:40", ["应为 0 到 1000000 的整数", "got '-1'"]),
    ("pbxs:\n  main: {lines: 30, callback_below_free: -2}\n", "1:2:42", ["got '-2'"]),
    ("pbxs:\n  main: {lines: 30, emergency_reserve: 5, callback_below_free: 3}\n", "1:2:64",
     ["回拨提议门槛 (3) 低于紧急预留 (5)", "callback_below_free (3) is below emergency_reserve (5)"]),
    ("pbxs:\n  main: {lines: 30, callback_below_free: 31}\n", "1:2:42", ["callback_below_free (31) is above lines"]),
    ("pbxs:\n  main: {lines: 30, reserve: 2}\n", "1:2:21", ["未知的键 'reserve'", "unknown key 'reserve'"]),
    ("pbxs:\n  main: {emergency_reserve: 2}\n", "1:2:9", ["缺少必填项 'lines'"]),
    ("pbxs:\n  main: 30\n", "1:2:9", ["应为映射", "PBX 'main': expected a mapping"]),
    ("pbxs:\n  9main: {lines: 30}\n", "1:2:3", ["名称无效"]),
    ("pbxs: {}\n", "1:1:7", ["至少需要一个 PBX", "name at least one PBX"]),
    ("pbxs: [main]\n", "1:1:7", ["pbxs 应为", "pbxs: expected a mapping"]),
    ("pbx:\n  main: {lines: 30}\n", "1:1:1", ["缺少必填项 'pbxs'"]),
    ("", "1:1:1", ["文件为空", "the file is empty"]),
    ("pbxs:\n  main: {lines: 30\n", "1:3:1", ["YAML"]),
])
def test_bad_files_are_refused_at_their_place(text, where, words):
    config, problems = parse_lines(text)
    assert config is None
    first = str(problems[0])
    assert first.startswith(f"queue/lines.yaml:{where.split(':', 1)[1]}:"), first
    for w in words:
        assert w in first, first
    message = first.split(": ", 1)[1]
    chinese, _, english = message.partition(" — ")
    assert english and any("\u4e00" <= ch <= "\u9fff" for ch in chinese), f"Chinese first: {first}"


def test_every_problem_at_once():
    _, problems = parse_lines("pbxs:\n  a: {lines: 0}\n  b: {lines: 5, emergency_reserve: 9}\n  c: {lines: 5, x: 1}\n")
    assert [p.line for p in problems] == [2, 3, 4]


def test_callback_threshold_defaults_to_the_reserve():
    config, _ = parse_lines("pbxs:\n  main: {lines: 30, emergency_reserve: 4}\n")
    assert config is not None and config.pbxs["main"].callback_below_free == 4


def test_a_bad_lines_file_is_refused_with_the_set(project_home):
    texts = read_texts(project_home) | {"queue/lines.yaml": "pbxs:\n  main: {lines: 10, emergency_reserve: 12}\n"}
    checked = check_set(texts, prompts=prompt_names(project_home / "prompts"), tz=TZ, now=dt.datetime.now(TZ))
    assert [str(p).split(": ", 1)[0] for p in checked.errors] == ["queue/lines.yaml:2:40"]
    assert checked.ops.lines is None


@pytest.mark.parametrize("pbxs, expected", [
    ({"main": 30, "east": 20}, "main"),
    ({"east": 20}, "east"),
    ({"east": 20, "west": 10}, None),
])
def test_the_pbx_of_the_ami_link(pbxs, expected):
    config = LinesConfig({n: PbxLines(n, v) for n, v in pbxs.items()})
    got = config.for_link()
    assert (got.name if got else None) == expected


PBX = PbxLines("main", 100, 5, 20)
NOW = 1_000.0


@pytest.mark.parametrize("pbx, reading, connected, reason", [
    (None, LineReading(NOW, 10, 95), True, "no lines configured for PBX 'main' in queue/lines.yaml"),
    (PBX, LineReading(NOW, 10, 95), False, "the AMI link is down"),
    (PBX, None, True, "have not been read yet"),
    (PBX, LineReading(NOW, limit=95, error="Getvar GROUP_COUNT(trunk@ivr): Permission denied"), True,
     "cannot be read: Getvar GROUP_COUNT(trunk@ivr): Permission denied"),
    (PBX, LineReading(NOW, 0, None), True, "has no IVR_LINES in [globals]"),
    (PBX, LineReading(NOW - 30, 10, 95), True, "the count is 30 s old"),
])
def test_lines_unknown_say_why(pbx, reading, connected, reason):
    f = figures(pbx, reading, now=NOW, connected=connected, waiting=1, talking=1, callbacks=0)
    assert not f["known"] and reason in f["reason"]
    assert f["in_use"] is None and f["free"] is None and f["in_flows"] is None


@pytest.mark.parametrize("limit, in_use, free, warning", [
    (95, 40, 55, ""),            # the dialplan's limit is the lower
    (95, 99, 0, ""),             # over it (the headroom is in use): none free
    (0, 40, 60, "the dialplan sets no limit"),
    (100, 40, 60, "is not below the trunk's 100 lines"),
    (120, 40, 60, "is not below the trunk's 100 lines"),
])
def test_free_lines_and_warnings(limit, in_use, free, warning):
    f = figures(PBX, LineReading(NOW, in_use, limit), now=NOW, connected=True, waiting=10, talking=15, callbacks=3)
    assert f["known"] and f["reason"] == ""
    assert (f["in_use"], f["total"], f["limit"], f["free"]) == (in_use, 100, limit, free)
    assert (warning in f["warning"]) if warning else f["warning"] == ""


def test_lines_in_use_split_by_what_holds_them():
    f = figures(PBX, LineReading(NOW, 40, 95), now=NOW, connected=True, waiting=10, talking=15, callbacks=3)
    assert (f["in_flows"], f["waiting"], f["talking"], f["callbacks"]) == (12, 10, 15, 3)
    f = figures(PBX, LineReading(NOW, 5, 95), now=NOW, connected=True, waiting=10, talking=0, callbacks=0)
    assert f["in_flows"] == 0                    # events ahead of the count: never negative


@pytest.mark.parametrize("value, count", [("0", 0), ("17", 17), (" 3 ", 3), ("", None), ("-1", None),
                                          ("abc", None), (None, None), (["1", "2"], None)])
def test_count_value(value, count):
    assert count_value(value) == count


def test_the_dialplans_record_read_from_the_event_and_from_astdb():
    event = {"Event": "UserEvent", "UserEvent": "IvrBlocked", "Uniqueid": "1796541678.6",
             "CallerIDNum": "13900000003", "Number": "13900000003", "At": "1796541678", "InUse": "3", "Limit": "2"}
    b = blocked_from_event(event)
    assert b is not None and (b.uniqueid, b.number, b.at) == ("1796541678.6", "13900000003", 1796541678.0)
    assert blocked_from_astdb("/ivr_blocked/1796541678.6", "1796541678|13900000003") == b
    assert blocked_from_event({**event, "UserEvent": "IvrCallback"}) is None
    assert blocked_from_event({**event, "Uniqueid": ""}) is None
    assert blocked_from_astdb("/other/1.2", "1|2") is None
    anonymous = blocked_from_event({**event, "Number": "", "CallerIDNum": "<unknown>", "At": "x"})
    assert anonymous is not None and anonymous.at is None


def test_a_refused_attempt_is_a_missed_call_of_its_own_reason():
    b = blocked_from_astdb("/ivr_blocked/1796541678.6", "1796541678|13900000003")
    assert b is not None
    s = summary(b, now=2e9)
    assert (s["number"], s["started"], s["outcome"], s["wanted_person"]) == ("13900000003", "1796541678.000",
                                                                             "lines_full", "1")
    miss = classify(s, Policy())
    assert miss is not None and (miss.kind, miss.reason, miss.misdial) == ("ordinary", "lines_full", False)
    assert label(MISS_REASONS, "lines_full") == "线路忙未接通"
    odd = blocked_from_astdb("/ivr_blocked/1.1", "x|<unknown>")
    assert odd is not None and summary(odd, now=5.0)["number"] == "" and summary(odd, now=5.0)["started"] == "5.000"


def test_the_report_counts_blocked_attempts():
    blocked = {"wanted_person": "1", "outcome": "lines_full", "number": "139", "queue_status": ""}
    answered = {"wanted_person": "1", "outcome": "done", "number": "138", "queue_status": "ANSWERED"}
    h = hotline_figures([blocked, blocked | {"number": "137"}, answered], [], {})
    assert (h["blocked_attempts"], h["calls_wanting_person"], h["calls_answered_live"]) == (2, 3, 1)


def _live(lines=None):
    queue = {"waiting": 0, "longest_wait_s": 0, "answered": 0, "abandoned": 0, "service_level": None,
             "emergency": False}
    snap = {"ami_connected": True, "emergency": {"waiting": 0}, "queues": {"general-q": queue}, "seats": [],
            "seat_states": {}, "at": NOW}
    if lines is not None:
        snap["lines"] = lines
    return snap


def _figs(in_use, limit=95):
    return figures(PBX, LineReading(NOW, in_use, limit), now=NOW, connected=True, waiting=0, talking=0, callbacks=0)


def test_callbacks_never_take_one_of_the_last_lines():
    queues = {"general": "general-q"}
    assert is_calm(_live(), Policy(), queues) == (True, "")
    assert is_calm(_live(_figs(40)), Policy(), queues) == (True, "")
    assert is_calm(_live(_figs(80)), Policy(), queues) == (False, "lines: 15 free")
    unknown = figures(PBX, None, now=NOW, connected=True, waiting=0, talking=0, callbacks=0)
    assert is_calm(_live(unknown), Policy(), queues) == (True, "")       # unknown: today's behaviour


@pytest.mark.parametrize("in_use, colour", [(40, "green"), (78, "amber"), (90, "red"), (95, "red")])
def test_the_wall_tile(in_use, colour):
    fig = wall.figures(_live(_figs(in_use)), ("general",), {"general": "general-q"}, set(), 0, None)
    assert (fig["lines_in_use"], fig["lines_total"], fig["lines_known"]) == (in_use, 100, True)
    assert wall.colours(fig, wall.plan_thresholds(None))["lines"] == colour


def test_the_wall_without_lines():
    fig = wall.figures(None, ("general",), {"general": "general-q"}, set(), 0, None)
    assert not fig["lines_known"] and fig["lines_in_use"] is None
    assert wall.colours(fig, wall.plan_thresholds(None))["lines"] == ""


def test_ivr_status_lines():
    snap = _live(_figs(40)) | {"resynced_at": NOW, "window_s": 900, "queues": {},
                                "emergency": {"waiting": 0, "wait_p50_s": None, "wait_p95_s": None, "answered": 0},
                                "ordinary": {"wait_p50_s": None, "wait_p95_s": None, "answered": 0}}
    out = "\n".join(render_status(snap, "0 正常", TZ, NOW, blocked=7))
    assert "线路 lines (main): 在用 in use 40 / 共 100, 拨号方案上限 IVR_LINES 95; 空闲 free 55" in out
    assert "线路忙已记录 blocked and recorded 7" in out
    out = "\n".join(render_status(None, "0 正常", TZ, NOW))
    assert "线路 lines (main): 未知 unknown — 无实时数据" in out and "no line-based admission" in out
    assert lines_of(None)["known"] is False


def test_the_snapshot_carries_the_lines(project_home, tmp_path):
    from ivr import logs
    from ivr.runtime.snapshot import SnapshotSource, load_snapshot
    from tests.conftest import copy_project

    assert load_snapshot(project_home, TZ).lines == LinesConfig({"main": PbxLines("main", 30, 2, 6)})
    home = copy_project(project_home, tmp_path / "home")
    (home / "queue" / "lines.yaml").unlink()
    source = SnapshotSource(home, TZ, logs.get("test"))
    assert source.current.lines is None                      # absent: no line-based admission
    (home / "queue" / "lines.yaml").write_text("pbxs:\n  main: {lines: 8, emergency_reserve: 9}\n")
    assert not source.refresh() and "queue/lines.yaml:2:39" in (source.error or "")
    (home / "queue" / "lines.yaml").write_text("pbxs:\n  main: {lines: 8, emergency_reserve: 1}\n")
    assert source.refresh() and source.current.lines == LinesConfig({"main": PbxLines("main", 8, 1, 1)})
