"""AgiChannel against the literal lines real Asterisk sent (see fixtures)."""

import pytest

from ivr.agi.channel import AgiChannel
from ivr.call_channel import CallInfo, QueueStatus
from ivr.errors import AgiClosed, AgiCommandFailed, CallerHungUp, PromptMissing

DEAD = "511 Command Not Permitted on a dead channel or intercept routine"


class Scripted:
    """Answers with pre-recorded lines and records what the channel sent."""

    hangup_signalled = False

    def __init__(self, *lines: str) -> None:
        self.lines = list(lines)
        self.sent: list[str] = []

    def write_line(self, line: str) -> None:
        self.sent.append(line)

    async def read_line(self, timeout_s: float) -> str:
        if not self.lines:
            raise AgiClosed("script exhausted")
        return self.lines.pop(0)


def channel(*lines):
    t = Scripted(*lines)
    return AgiChannel(t, CallInfo("1795373243.22", "13800138000"), prompt_prefix="ivr/"), t


async def test_prompt_played_to_the_end():
    ch, t = channel("200 result=0 endpos=48603")
    assert await ch.play(["welcome"]) is None
    assert t.sent == ['STREAM FILE ivr/welcome ""\n']


async def test_missing_prompt_is_told_apart_from_a_hangup():
    ch, t = channel("200 result=-1 endpos=0", "200 result=6")
    with pytest.raises(PromptMissing):
        await ch.play(["does-not-exist"])
    assert t.sent[-1] == "CHANNEL STATUS\n" and not ch.hung_up


async def test_hangup_during_prompt_then_notice_before_511():
    # caller-hangs-up-during-prompt.json: the HANGUP line precedes the answer.
    ch, t = channel("200 result=-1 endpos=8160", "HANGUP", DEAD)
    with pytest.raises(CallerHungUp):
        await ch.play(["welcome"])
    assert ch.hung_up


async def test_hangup_notice_is_not_taken_for_the_answer():
    # main-full-call.json: GET VARIABLE after HANGUP -> "HANGUP" then "200 result=0".
    ch, t = channel("HANGUP", "200 result=0", "200 result=1")
    assert await ch.get_variable("AFTER_HANGUP") is None
    assert ch.hung_up
    await ch.set_variable("X", "1")  # allowed on a dead channel, still in step
    assert t.sent[-1] == 'SET VARIABLE X "1"\n'


async def test_no_channel_command_is_sent_after_a_hangup():
    ch, t = channel("HANGUP", "200 result=0")
    await ch.get_variable("A")
    with pytest.raises(CallerHungUp):
        await ch.queue("general-q", 0, 30)
    assert not any(s.startswith("EXEC") for s in t.sent)


async def test_get_data_digit_and_timeout():
    ch, _ = channel("200 result=1", "200 result= (timeout)", "200 result=12 (timeout)")
    assert await ch.read_digits("menu", 5, 1) == "1"
    assert await ch.read_digits("menu", 5, 1) == ""
    assert await ch.read_digits("menu", 5, 4) == "12"


async def test_queue_answered_by_seat():
    ch, t = channel("200 result=1", "200 result=-1", "200 result=1 (|Local/101@seats/n|0|)")
    res = await ch.queue("general-q", 5, 20)
    assert res.status is QueueStatus.ANSWERED and res.member == "Local/101@seats/n" and res.hold_s == 0
    assert t.sent[0] == 'SET VARIABLE QUEUE_PRIO "5"\n'
    assert t.sent[1] == 'EXEC Queue "general-q,,,,20"\n'


async def test_queue_timeout_and_withdraw():
    ch, _ = channel("200 result=0", "200 result=1 (TIMEOUT|||)")
    assert (await ch.queue("general-q", 0, 30)).status is QueueStatus.TIMEOUT
    ch, _ = channel("200 result=0", "200 result=1 (WITHDRAW|||callback-offered)")
    res = await ch.queue("general-q", 0, 60)
    assert res.status is QueueStatus.WITHDRAW and res.withdraw_info == "callback-offered"


async def test_queue_abandon_is_seen_through_the_notice():
    # queue-caller-abandons.json: result=-1, then HANGUP before the variable's answer.
    ch, _ = channel("200 result=-1", "HANGUP", "200 result=1 (|||)")
    res = await ch.queue("general-q", 0, 30)
    assert res.status is QueueStatus.ABANDONED and ch.hung_up


async def test_usage_block_keeps_the_dialogue_in_step():
    ch, _ = channel("520-Invalid command syntax.  Proper usage follows:", "Usage: ...",
                    "520 End of proper usage.", "200 result=1 (v)")
    with pytest.raises(AgiCommandFailed) as exc:
        await ch.set_variable("A", "b")
    assert exc.value.code == 520
    assert await ch.get_variable("A") == "v"


async def test_record_hangup_keeps_the_message():
    ch, _ = channel("200 result=-1 (hangup) endpos=16000")
    res = await ch.record("msg-1", 60, 3, True)
    assert res.reason == "hangup" and res.has_audio and ch.hung_up


@pytest.mark.parametrize("bad", ["welcome now", 'x"y', "a\nb", "../../etc/passwd;"])
async def test_unsafe_prompt_names_never_reach_the_wire(bad):
    ch, t = channel("200 result=0")
    with pytest.raises(ValueError):
        await ch.play([bad])
    assert t.sent == []


async def test_caller_values_are_quoted():
    ch, t = channel("200 result=1")
    await ch.set_variable("CALLER_NAME", 'Wang "Lao" \\ 王 HANGUP')
    assert t.sent == ['SET VARIABLE CALLER_NAME "Wang \\"Lao\\" \\\\ 王 HANGUP"\n']
