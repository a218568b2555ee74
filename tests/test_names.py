"""One name rule (ivr/names.py): whole-string matches only, so a name with a
trailing newline ("welcome\\n") is refused everywhere; and no AGI command ever
leaves with a line break inside it."""

from zoneinfo import ZoneInfo

import pytest

from ivr import names
from ivr.accounts.store import Accounts
from ivr.agi.protocol import quote
from ivr.errors import IvrError, UnsafeCommand
from ivr.flow.loader import parse_flow
from ivr.prompts.announcements import parse_announcements
from tests.test_agi_channel import channel
from tests.test_ami_controller import ami  # noqa: F401  (fixture)

RULES = {"NAME": (names.NAME, "main"), "PROMPT": (names.PROMPT, "policy/current"),
         "USER": (names.USER, "ops"), "FLOW_VARIABLE": (names.FLOW_VARIABLE, "AREA"),
         "CHANNEL_VARIABLE": (names.CHANNEL_VARIABLE, "QUEUE_PRIO"), "DIGITS": (names.DIGITS, "12#"),
         "PHONE_NUMBER": (names.PHONE_NUMBER, "13800138000"), "PBX_TOKEN": (names.PBX_TOKEN, "general-q")}


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("tail", ["\n", "\r", "\r\n", " ", "\x00"])
def test_every_rule_refuses_a_trailing_line_break(rule, tail):
    r, good = RULES[rule]
    assert r.ok(good) and r.match(good) and r.fullmatch(good)
    assert not r.ok(good + tail) and not r.match(good + tail)
    assert not r.ok("\n" + good)


def test_the_web_name_checks_use_the_full_match_rules():
    from ivr.accounts import store as accounts
    from ivr.services import prompts
    from ivr.web import api_operations
    for rule, value in ((prompts.PROMPT_NAME, "welcome"), (api_operations.FLOW_NAME, "main"),
                        (accounts.NAME_RE, "ops")):
        assert rule.match(value)
        assert not rule.match(value + "\n")


def test_a_prompt_named_with_a_newline_is_refused_by_validation():
    text = 'start: hello\nsteps:\n  hello:\n    type: play\n    prompts: ["welcome\\n"]\n    next: end\n'
    parsed = parse_flow(text, "flows/x.yaml", expected_name="x")
    assert parsed.flow is None
    assert any(p.line == 5 and "prompt" in p.message for p in parsed.problems.errors), parsed.problems.items


def test_a_step_named_with_a_newline_is_refused():
    text = 'start: "hello\\n"\nsteps:\n  "hello\\n":\n    type: hangup\n'
    parsed = parse_flow(text, "flows/x.yaml", expected_name="x")
    assert parsed.flow is None and parsed.problems.errors


def test_an_announcement_set_named_with_a_newline_is_refused():
    text = 'sets:\n  "peak\\n":\n    - {prompt: welcome, valid_from: 2026-11-01, valid_until: 2030-01-01}\n'
    sets, problems = parse_announcements(text, "prompts/announcements.yaml", tz=ZoneInfo("Asia/Shanghai"),
                                         prompts=frozenset({"welcome"}))
    assert "peak\n" not in sets
    assert any("invalid name" in p.message and p.line == 2 for p in problems)


async def test_a_user_named_with_a_newline_is_refused(redis):
    with pytest.raises(IvrError):
        await Accounts(redis).add("ops\n", "operations", "correct horse battery")
    assert await redis.hlen("ivr:users") == 0


@pytest.mark.parametrize("value", ["a\nHANGUP", "a\r\nEXEC Dial Local/110", "end\n", "cr\r"])
async def test_the_channel_refuses_an_argument_with_a_line_break(value):
    ch, t = channel("200 result=1")
    with pytest.raises(UnsafeCommand):
        await ch.set_variable("CALLER_NAME", value)
    with pytest.raises(ValueError):      # UnsafeCommand is a ValueError: a step failure -> the fallback
        quote(value)
    assert t.sent == []


async def test_no_command_leaves_with_a_line_break_inside():
    ch, t = channel("200 result=1")
    for line in ("ANSWER\nHANGUP\n", "ANSWER\r\n", "ANSWER"):
        with pytest.raises(UnsafeCommand):
            await ch._run(line)
    assert t.sent == []


async def test_no_ami_action_leaves_with_a_line_break(ami):  # noqa: F811
    pbx, server, controller = ami
    res = await controller.pause("Local/102@ivr-seats/n", True,
                                 reason="培训\r\nAction: Originate\r\nChannel: Local/110@ivr-seats")
    assert not res.ok and res.attempts == 0 and "line break" in res.message
    assert not [m for q in pbx.queues.values() for m in q.members.values()
                if m.interface == "Local/102@ivr-seats/n" and m.paused]
