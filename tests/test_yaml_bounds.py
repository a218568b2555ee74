"""Every staff-edited YAML file goes through one bounded reader (ivr/yamldoc/bounded.py):
no anchors or aliases (a 600-byte "billion laughs" flow used to cost seconds per
check, and slowed every call while it was checked), a size cap, a depth cap."""

import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ivr.contingency.plan import parse_plan
from ivr.errors import ConfigError
from ivr.flow.loader import parse_flow
from ivr.project import load_queue_config
from ivr.prompts.announcements import parse_announcements
from ivr.yamldoc import bounded as yamlfile

MESSAGE = "不允许使用 YAML 锚点/别名 (anchors and aliases are not allowed)"


def billion_laughs(levels: int = 8) -> str:
    """A branch whose conditions nest 9^levels references to one tiny condition."""
    lines = ["start: b", "steps:", "  b:", "    type: branch", "    cases:",
             "      - when: &c0 {short_menu: true}", "        goto: end"]
    for i in range(1, levels):
        lines += [f"      - when: &c{i} {{any: [{', '.join([f'*c{i - 1}'] * 9)}]}}", "        goto: end"]
    return "\n".join(lines + ["    otherwise: end", ""])


def test_billion_laughs_flow_is_refused_fast_with_its_location():
    text = billion_laughs()
    assert len(text.encode()) < 1024
    started = time.perf_counter()
    parsed = parse_flow(text, "flows/x.yaml", expected_name="x")
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5
    assert parsed.flow is None
    assert [str(p) for p in parsed.problems.errors] == [f"flows/x.yaml:6:15: {MESSAGE}"]


def test_an_alias_alone_is_refused_too():
    text = "start: a\nsteps:\n  a: {type: hangup}\n  b: *x\n"
    parsed = parse_flow(text, "flows/x.yaml", expected_name="x")
    assert [str(p) for p in parsed.problems.errors] == [f"flows/x.yaml:4:6: {MESSAGE}"]


def test_the_other_staff_files_refuse_anchors():
    text = "sets:\n  peak: &p\n    - {prompt: welcome, valid_from: 2026-11-01, valid_until: 2030-01-01}\n  calm: *p\n"
    _, problems = parse_announcements(text, "prompts/announcements.yaml", tz=ZoneInfo("Asia/Shanghai"),
                                      prompts=frozenset({"welcome"}))
    assert [str(p) for p in problems] == [f"prompts/announcements.yaml:2:9: {MESSAGE}"]
    _, problems = parse_plan("levels: &l []\nx: *l\n", "queue/contingency.yaml", queues=None,
                             announcement_sets=None, seat_groups=None)
    assert [str(p) for p in problems] == [f"queue/contingency.yaml:1:9: {MESSAGE}"]


def test_plain_yaml_files_refuse_anchors(tmp_path: Path):
    (tmp_path / "queues.yaml").write_text("queues:\n  general: &g {asterisk: general-q}\n  other: *g\n")
    with pytest.raises(ConfigError) as err:
        load_queue_config(tmp_path)
    assert str(err.value) == f"queue/queues.yaml:2:12: {MESSAGE}"


def test_size_and_depth_caps(tmp_path: Path):
    big = "start: a\n" + "#" * (yamlfile.MAX_BYTES + 1) + "\n"
    parsed = parse_flow(big, "flows/big.yaml", expected_name="big")
    assert len(parsed.problems.errors) == 1 and "文件过大 (file too large)" in parsed.problems.errors[0].message
    (tmp_path / "big.yaml").write_text(big)
    with pytest.raises(ConfigError, match="文件过大"):
        yamlfile.read(tmp_path / "big.yaml")
    deep = "start: " + "[" * 200 + "]" * 200 + "\n"
    parsed = parse_flow(deep, "flows/deep.yaml", expected_name="deep")
    assert "嵌套层级过深" in parsed.problems.errors[0].message


def test_shipped_files_still_load(project_home):
    from ivr.project import Project, check_files, load_operations
    flows, problems = check_files(Project(project_home))
    assert "main" in flows and not [p for p in problems if not p.warning]
    ops = load_operations(Project(project_home), ZoneInfo("Asia/Shanghai"))
    assert not [p for p in ops.problems if not p.warning]


@pytest.mark.parametrize("text, line, starts", [
    ("a:\n  b: 1\n c: 2\n", 3, "缩进有误"),
    ("a:\n\tb: 1\n", 2, "不能用制表符"),
    ("a: b: c\n", 1, "这里不能再有“键: 值”"),
])
def test_common_yaml_mistakes_are_told_the_way_staff_fix_them(text, line, starts):
    """Issue 18: an indentation mistake read "expected <block end>, but found
    '<block mapping start>'", with nothing about indentation."""
    from ivr.yamldoc.problems import Problems
    from ivr.yamldoc.schema import compose_mapping
    problems = Problems("queue/seats.yaml")
    assert compose_mapping(text, problems, "'groups:'") is None
    (p,) = problems.items
    assert p.line == line and p.message.startswith(starts), str(p)
