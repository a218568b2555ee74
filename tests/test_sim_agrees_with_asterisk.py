"""The simulated Asterisk answers the real engine-side commands of every captured
call exactly as Asterisk 22 did (endpos sample counts aside)."""

import re

import pytest

from ivr.rehearsal.sim.agi_peer import Caller, QueueOutcome, SimChannel
from tests.conftest import load_transcript

SCENARIOS = {
    "main-full-call.json": dict(
        caller=Caller(digits=["1", "5"], queue=QueueOutcome("answered"), message_samples=0),
        missing=frozenset({"ivr/does-not-exist"})),
    "main-call-queue-timeout.json": dict(
        caller=Caller(digits=["1", "5"], queue=QueueOutcome("timeout"), message_samples=0),
        missing=frozenset({"ivr/does-not-exist"})),
    "caller-hangs-up-during-prompt.json": dict(caller=Caller(hangup_on="STREAM FILE ivr/welcome")),
    "queue-answered-by-seat.json": dict(
        caller=Caller(queue=QueueOutcome("answered", member="Local/101@seats/n", hold_s=0))),
    "queue-caller-abandons.json": dict(caller=Caller(queue=QueueOutcome("abandon"))),
    "queue-priority-raised-then-answered.json": dict(caller=Caller(queue=QueueOutcome("answered"))),
    # issue 19: Queue option c keeps the citizen on the line for the survey (fact 12)
    "queue-continue-then-survey.json": dict(
        caller=Caller(queue=QueueOutcome("answered", member="Local/101@ivr-seats/n", hold_s=0))),
    "queue-answered-without-c.json": dict(
        caller=Caller(queue=QueueOutcome("answered", member="Local/102@ivr-seats/n", hold_s=0))),
    "queue-withdrawn-for-callback.json": dict(
        caller=Caller(queue=QueueOutcome("withdraw", withdraw_info="callback-offered"))),
}


def _norm(line: str) -> str:
    return re.sub(r"endpos=[1-9]\d*", "endpos=N", line)


def _dialogue(exchange):
    """[(engine command, [asterisk lines answering it])] after the header."""
    out = []
    started = False
    for e in (e for e in exchange if "from" in e):       # not the capture's own events ("closed")
        if e["from"] == "engine":
            started = True
            out.append((e["raw"].rstrip("\n"), []))
        elif started:
            out[-1][1].append(e["raw"])
    return out


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_simulator_answers_like_asterisk(name):
    t = load_transcript(name)
    spec = SCENARIOS[name]
    sim = SimChannel(spec["caller"], missing_prompts=spec.get("missing", frozenset()))
    dialogue = _dialogue(t["exchange"])
    assert dialogue, name
    for command, real in dialogue:
        got = await sim.respond(command)
        assert [_norm(x) for x in got] == [_norm(x) for x in real], f"{name}: {command!r}"


def test_simulator_header_has_the_real_keys_in_order():
    real = [e["raw"].split(":")[0] for e in load_transcript("queue-answered-by-seat.json")["exchange"]
            if e["raw"].startswith("agi_")]
    ours = [line.split(":")[0] for line in SimChannel(Caller()).env() if line.startswith("agi_")]
    assert ours == real


async def test_unknown_command_and_bad_usage():
    sim = SimChannel(Caller())
    assert await sim.respond("FROB NICATE") == ["510 Invalid or unknown command\n"]
    usage = await sim.respond("SET VARIABLE ONLYNAME")
    assert usage[0].startswith("520-") and usage[-1].startswith("520 ")
