"""Asterisk's position announcements inside Queue() (asterisk/queues.conf):
the sounds the shipped queues name are in prompts/, Asterisk's Mandarin
number words are shipped for every place it says, and `ivr flows check`
refuses a queues.conf naming a sound prompts/ lacks, file:line:col."""

import re
from pathlib import Path

import yaml

from ivr.project import ZH_DIGIT_NAMES, ZH_DIGITS, prompt_names, queue_sound_problems
from ivr.services.flows import check_project
from tests.conftest import ROOT, copy_project


def _line_col(text: str, needle: str) -> tuple[int, int]:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line and not line.lstrip().startswith(";"):
            return i, line.index(needle) + 1
    raise AssertionError(needle)


def _settings(text: str, queue: str) -> dict[str, str]:
    body = text.split(f"[{queue}]", 1)[1].split("\n[", 1)[0]
    out = {}
    for line in body.splitlines():
        m = re.match(r"^([a-z0-9-]+)\s*=\s*(.*?)\s*(;.*)?$", line.strip())
        if m:
            out[m[1]] = m[2]
    return out


def test_the_shipped_general_line_says_places_in_mandarin_from_prompts_and_the_emergency_line_says_none():
    text = (ROOT / "asterisk" / "queues.conf").read_text(encoding="utf-8")
    general = _settings(text, "general-q")
    assert 60 <= int(general["announce-frequency"]) <= 90 and int(general["min-announce-frequency"]) >= 30
    assert general["announce-position"] == "more" and general["announce-position-limit"] == "100"
    assert general["announce-holdtime"] == "no"          # the engine's estimate is said, not Asterisk's average
    for key in ("queue-youarenext", "queue-thereare", "queue-callswaiting", "queue-quantity1", "queue-quantity2",
                "queue-thankyou"):
        assert general[key].startswith("12345/queue/"), key
    assert _settings(text, "emergency-q")["announce-frequency"] == "0"   # nothing holds an emergency caller
    assert queue_sound_problems(ROOT / "asterisk", prompt_names(ROOT / "prompts")) == []


def _zh_number_files(n: int) -> list[str]:
    """What main/say.c ast_say_number_full_zh plays for 1..100."""
    if n == 100:
        return ["1", "hundred"]
    tens, ones = divmod(n, 10)
    return ([str(tens * 10)] if tens else []) + ([str(ones)] if ones else [])


def test_every_place_up_to_the_limit_has_its_mandarin_number_words_said_as_a_place():
    words = yaml.safe_load((ROOT / "prompts" / "texts.yaml").read_text(encoding="utf-8"))
    shipped = prompt_names(ROOT / "prompts")
    for n in range(1, 101):
        for f in _zh_number_files(n):
            assert f"{ZH_DIGITS}/{f}" in shipped and f"{ZH_DIGITS}/{f}" in words, (n, f)
    assert {f"{ZH_DIGITS}/{d}" for d in ZH_DIGIT_NAMES} <= shipped
    assert words[f"{ZH_DIGITS}/2"] == "二" and words[f"{ZH_DIGITS}/20"] == "二十"   # 第二位, never 两
    spoken = "".join(words[f"{ZH_DIGITS}/{f}"] for f in _zh_number_files(12))
    assert spoken == "十二"


def test_flows_check_refuses_a_queue_sound_missing_from_prompts(tmp_path):
    home = copy_project(ROOT, tmp_path / "home")
    (home / "prompts" / "queue" / "queue-place.wav").unlink()
    text = (home / "asterisk" / "queues.conf").read_text(encoding="utf-8")
    problems = [str(p) for p in check_project(home, _tz()).errors]
    for key in ("queue-thereare", "queue-quantity1"):
        line, col = _line_col(text, f"{key} = ")
        col += len(f"{key} = ")
        assert any(p.startswith(f"asterisk/queues.conf:{line}:{col}: {key}：录音 '12345/queue/queue-place' 不在 "
                                f"prompts/ 中") for p in problems), problems
    assert len(problems) == 2, problems


def test_a_list_of_sounds_is_checked_each_at_its_column_and_the_pbx_own_sounds_are_left_alone(tmp_path):
    (tmp_path / "queues.conf").write_text(
        "[general]\npersistentmembers = yes\n[q]\nperiodic-announce = 12345/welcome,12345/nope|queue-periodic\n"
        "queue-thereare = queue-thereare\nannounce => 12345/gone ; comment\n", encoding="utf-8")
    problems = queue_sound_problems(tmp_path, frozenset({"welcome"}))
    assert [(p.line, p.col) for p in problems] == [(4, 35), (6, 13)]
    assert "12345/nope" in problems[0].message and "prompts/gone.wav" in problems[1].message


def test_a_queue_saying_places_needs_the_mandarin_number_words(tmp_path):
    (tmp_path / "queues.conf").write_text(
        "[a]\nannounce-frequency = 60\n[b]\nannounce-frequency = 60\nannounce-position = no\n[c]\n"
        "announce-frequency = 0\n", encoding="utf-8")
    all_digits = frozenset(f"{ZH_DIGITS}/{d}" for d in ZH_DIGIT_NAMES)
    assert queue_sound_problems(tmp_path, all_digits) == []
    problems = queue_sound_problems(tmp_path, all_digits - {f"{ZH_DIGITS}/7"})
    assert [(p.line, p.col) for p in problems] == [(2, 22)]          # only [a]: b says no place, c none at all
    assert "[a]" in problems[0].message and "lacks 7 " in problems[0].message


def _tz():
    from zoneinfo import ZoneInfo
    return ZoneInfo("Asia/Shanghai")


def test_the_dialplan_sets_the_callers_language_before_the_engine_and_the_queue():
    text = (ROOT / "asterisk" / "extensions.conf").read_text(encoding="utf-8")
    context = text.split("\n[ivr-12345]\n", 1)[1].split("\n[", 1)[0]
    lines = [line.split(";", 1)[0].strip() for line in context.splitlines() if line.strip().startswith(("exten", "same"))]
    at = lines.index("same => n,Set(CHANNEL(language)=zh)")
    assert at < min(i for i, line in enumerate(lines) if "AGI(" in line or "Queue(" in line)
    assert Path(ROOT / "prompts" / ZH_DIGITS).is_dir()
