"""The survey step (issue 19): the citizen rates the call after the seat hangs
up. The language (file:line:col, Chinese first), the interpreter over the real
AgiChannel and the simulated Asterisk, the queue option ``c`` that keeps the
caller on the line, and the call summary."""

import datetime as dt
import textwrap
from zoneinfo import ZoneInfo

import pytest

from ivr import logs
from ivr.agi.channel import AgiChannel
from ivr.call_channel import CallInfo, CallLog, QueueResult, QueueStatus
from ivr.calls.service import summary_fields
from ivr.flow import model as m
from ivr.flow.conditions import CallFacts
from ivr.flow.interpreter import FlowInterpreter, RunnerConfig
from ivr.flow.loader import parse_flow
from ivr.flow.references import Catalog, check
from ivr.project import Project, check_files
from ivr.rehearsal.sim.agi_peer import Caller, InMemoryTransport, QueueOutcome, SimChannel

TZ = ZoneInfo("Asia/Shanghai")
NOON = dt.datetime(2026, 11, 23, 12, 0, tzinfo=TZ)
CONFIG = RunnerConfig(queues={"general": "general-q", "emergency": "emergency-q"}, fallback_queue="general-q")
LOG = logs.get("test")
SEAT = "Local/101@ivr-seats/n"

CATALOG = Catalog(prompts=frozenset({"rate-us", "thanks", "again"}),
                  queues={"general": "general-q", "emergency": "emergency-q"},
                  asterisk_queues=frozenset({"general-q", "emergency-q"}))

FLOW = """\
start: line
steps:
  line:
    type: queue
    queue: general
    on_timeout: bye
    on_answered: rate
  rate:
    type: survey
    prompt: rate-us
    answers: {"1": satisfied, "2": basically_satisfied, "3": dissatisfied}
    thanks_prompt: thanks
    next: bye
  bye:
    type: hangup
"""


def problems_of(text):
    parsed = parse_flow(textwrap.dedent(text), "flows/main.yaml", expected_name="main")
    check(parsed, CATALOG)
    return [str(p) for p in parsed.problems.items], parsed


# -- the language ---------------------------------------------------------------

def test_a_survey_step_reads_into_the_model():
    probs, parsed = problems_of(FLOW)
    assert probs == []
    assert parsed.flow.steps["rate"] == m.Survey(
        name="rate", prompt="rate-us", next="bye", thanks_prompt="thanks", where=m.Where(9, 5),
        answers={"1": "satisfied", "2": "basically_satisfied", "3": "dissatisfied"})
    assert parsed.flow.steps["line"].on_answered == "rate"


def test_the_answers_default_to_1_2_3():
    probs, parsed = problems_of(FLOW.replace('    answers: {"1": satisfied, "2": basically_satisfied, '
                                             '"3": dissatisfied}\n', ""))
    assert probs == [] and parsed.flow.steps["rate"].answers == m.DEFAULT_ANSWERS


@pytest.mark.parametrize("old, new, expected", [
    ('{"1": satisfied,', '{"12": satisfied,',
     "flows/main.yaml:11:15: 满意度调查 'rate'：评价按键 '12' 不是单个按键 — "
     "survey 'rate': answer key '12' is not one keypad digit"),
    ('{"1": satisfied,', '{"a": satisfied,',
     "flows/main.yaml:11:15: 满意度调查 'rate'：评价按键 'a' 不是单个按键 — "
     "survey 'rate': answer key 'a' is not one keypad digit"),
    ('{"1": satisfied,', '{"1": satisfid,',
     "flows/main.yaml:11:20: 满意度调查 'rate'：未知的评价 'satisfid'（可选：satisfied, basically_satisfied, "
     "dissatisfied）（是否应为 'satisfied'？） — survey 'rate': unknown rating 'satisfid' "
     "(one of satisfied, basically_satisfied, dissatisfied) (did you mean 'satisfied'?)"),
    ('"3": dissatisfied}', '"3": satisfied}',
     "flows/main.yaml:11:62: 满意度调查 'rate'：评价 'satisfied' 对应了两个按键 — "
     "survey 'rate': rating 'satisfied' is given to two keys"),
    (', "3": dissatisfied}', "}",
     "flows/main.yaml:11:14: 满意度调查 'rate'：评价 dissatisfied 没有对应的按键 — "
     "survey 'rate': no key for rating dissatisfied"),
    ("    prompt: rate-us\n", "",
     "flows/main.yaml:9:5: 满意度调查 'rate'：缺少必填项 'prompt' — survey 'rate': missing required key 'prompt'"),
    ("    prompt: rate-us\n", "    prompt: rate-uss\n",
     "flows/main.yaml:10:13: 满意度调查 'rate'：提示音 'rate-uss' 不在 prompts/ 中（是否应为 'rate-us'？） — "
     "survey 'rate': prompt 'rate-uss' not found in prompts/ (did you mean 'rate-us'?)"),
    ("    next: bye\n", "",
     "flows/main.yaml:9:5: 满意度调查 'rate'：缺少必填项 'next' — survey 'rate': missing required key 'next'"),
    ("    next: bye\n", "    next: bye\n    retries: 9\n",
     "flows/main.yaml:14:14: 满意度调查 'rate'：应为 0 到 3 的整数，实际为 '9' — "
     "survey 'rate': expected a whole number from 0 to 3, got '9'"),
    ("    next: bye\n", "    next: bye\n    answer: {}\n",
     "flows/main.yaml:14:5: 满意度调查 'rate'：未知的键 'answer'（是否应为 'answers'？） — "
     "survey 'rate': unknown key 'answer' (did you mean 'answers'?)"),
])
def test_a_bad_survey_is_refused_at_its_place(old, new, expected):
    assert old in FLOW
    probs, parsed = problems_of(FLOW.replace(old, new, 1))
    assert expected in probs, probs
    assert parsed.problems.errors     # refused: `ivr flows check` and publish stop here


def test_the_shipped_flow_rates_the_general_queue_only(project_home):
    flows, problems = check_files(Project(project_home))
    assert [str(p) for p in problems] == []
    main = flows["main"]
    assert main.steps["general_queue"].on_answered == "survey"
    assert isinstance(main.steps["survey"], m.Survey)
    # an emergency call is never delayed: the emergency queues end at the answer
    for step in main.steps.values():
        if isinstance(step, m.Queue) and step.emergency:
            assert step.on_answered == m.END, step.name


# -- the interpreter over the simulated Asterisk --------------------------------

@pytest.fixture(scope="module")
def shipped(project_home):
    flows, problems = check_files(Project(project_home))
    assert not [p for p in problems if not p.warning]
    return flows


async def run(flows, caller, flow="main"):
    sim = SimChannel(caller, flow=flow)
    ch = AgiChannel(InMemoryTransport(sim), CallInfo.from_agi_env(
        dict(line.rstrip("\n").split(": ", 1) for line in sim.env() if ": " in line)))
    facts = CallFacts(now=NOON, level=0, caller=caller.number)
    record = await FlowInterpreter(CONFIG).run(flows, flow, ch, facts, LOG)
    return record, sim


def survey_asks(sim):
    return [c for c in sim.commands if c.startswith("GET DATA") and "survey" in c]


async def test_the_citizen_rates_the_call_after_the_seat_hangs_up(shipped):
    record, sim = await run(shipped, Caller(digits=["2", "1"]))
    assert sim.queue_options == ["c"]          # the caller stays on the line when the seat hangs up
    assert record.queue_result.status is QueueStatus.ANSWERED and record.queue_result.member == SEAT
    assert record.survey == "satisfied" and record.survey_seat == SEAT
    assert record.steps[-2:] == ["general_queue", "survey"]
    assert len(survey_asks(sim)) == 1 and sim.heard[-1].endswith("survey-thanks")
    assert record.outcome == "completed" and sim.vars["IVR_RESULT"] == "DONE"     # the dialplan hangs up


@pytest.mark.parametrize("digits, rating", [(["2", "2"], "basically_satisfied"), (["2", "3"], "dissatisfied")])
async def test_each_key_is_its_rating(shipped, digits, rating):
    record, _ = await run(shipped, Caller(digits=digits))
    assert record.survey == rating


async def test_silence_then_an_answer(shipped):
    record, sim = await run(shipped, Caller(digits=["2", "", "3"]))
    assert record.survey == "dissatisfied"
    asks = [i for i, c in enumerate(sim.commands) if c.startswith("GET DATA") and "survey" in c]
    assert len(asks) == 2
    assert "timeout" in sim.commands[asks[0] + 1]     # "没有收到您的选择" between the two


async def test_no_answer_is_its_own_outcome_never_satisfied(shipped):
    record, sim = await run(shipped, Caller(digits=["2"]))          # nothing pressed, twice
    assert record.survey == "no_answer" and len(survey_asks(sim)) == 2
    assert not any(h.endswith("survey-thanks") for h in sim.heard)
    assert record.outcome == "completed"


async def test_wrong_keys_until_the_retries_run_out_are_no_answer(shipped):
    record, sim = await run(shipped, Caller(digits=["2", "9", "#"]))
    assert record.survey == "no_answer" and len(survey_asks(sim)) == 2
    assert any(c.startswith("STREAM FILE") and "invalid" in c for c in sim.commands)


async def test_the_caller_hangs_up_during_the_survey(shipped):
    record, sim = await run(shipped, Caller(digits=["2"], hangup_on="survey"))
    assert record.outcome == "caller_hung_up"
    assert record.survey == "no_answer" and record.survey_seat == SEAT


async def test_the_caller_hangs_up_first_at_the_end_of_the_conversation(shipped):
    # app_queue with c: CONTINUE whichever side hung up; the caller is found gone at the next command
    record, sim = await run(shipped, Caller(digits=["2"], queue=QueueOutcome(caller_ends=True)))
    assert record.queue_result.status is QueueStatus.ANSWERED
    assert record.outcome == "caller_hung_up" and record.survey == "no_answer"
    assert survey_asks(sim) == []             # nothing was sent to a dead channel


async def test_an_emergency_call_is_not_surveyed_in_the_shipped_flow(shipped):
    record, sim = await run(shipped, Caller(digits=["1"]))
    assert record.emergency and sim.queue_options == [""]       # no c: the call ends with the seat
    assert record.survey == "" and survey_asks(sim) == []


async def test_the_survey_step_skips_an_emergency_call():
    text = FLOW.replace("    queue: general\n", "    queue: emergency\n    emergency: true\n    priority: 10\n")
    probs, parsed = problems_of(text)
    assert probs == ["flows/main.yaml:3:3: 警告 warning: 排队 'line'：紧急来电不做满意度调查：满意度调查 'rate' "
                     "在这之后不会提问 — queue 'line': an emergency call is never surveyed: survey 'rate' asks "
                     "nothing after it"]
    assert parsed.flow is not None and not parsed.problems.errors     # a warning: the flow may be published
    record, sim = await run({"main": parsed.flow}, Caller(digits=["1"]))
    assert record.emergency and record.queue_result.status is QueueStatus.ANSWERED
    assert record.survey == "" and not any(c.startswith("GET DATA") for c in sim.commands)
    assert record.steps == ["line", "rate", "bye"]


async def test_a_queue_step_with_nothing_after_keeps_asterisks_default():
    probs, parsed = problems_of(FLOW.replace("    on_answered: rate\n", "").replace(
        "  rate:\n", "  unused:\n    type: goto\n    to: rate\n  rate:\n"))
    record, sim = await run({"main": parsed.flow}, Caller(digits=["1"]))
    assert sim.queue_options == [""] and record.survey == "" and record.steps == ["line"]


# -- the simulated Asterisk agrees with app_queue.c --------------------------------

async def test_sim_queue_option_c_returns_continue_like_asterisk():
    """Fact 12 (Asterisk 22): with c, the seat's hang-up returns 0 and QUEUESTATUS=CONTINUE;
    without c, -1 and QUEUESTATUS empty. The channel stays up either way."""
    sim = SimChannel(Caller())
    assert await sim.respond('EXEC Queue "general-q,c,,,300"') == ["200 result=0\n"]
    assert sim.vars["QUEUESTATUS"] == "CONTINUE" and sim.vars["MEMBERINTERFACE"] == SEAT
    assert await sim.respond("STREAM FILE 12345/survey \"\"") == [f"200 result=0 endpos={sim.prompt_samples}\n"]
    sim = SimChannel(Caller())
    assert await sim.respond('EXEC Queue "general-q,m(ivr-peak),,,300"') == ["200 result=-1\n"]
    assert "QUEUESTATUS" not in sim.vars
    sim = SimChannel(Caller())
    assert await sim.respond('EXEC Queue "general-q,cm(ivr-peak),,,300"') == ["200 result=0\n"]


async def test_agi_channel_reads_continue_as_answered():
    sim = SimChannel(Caller())
    ch = AgiChannel(InMemoryTransport(sim), CallInfo("1.1", "13800138000"))
    res = await ch.queue("general-q", 0, 300, continue_after=True)
    assert res == QueueResult(QueueStatus.ANSWERED, SEAT, 0)
    assert sim.commands[0] == 'EXEC Queue "general-q,c,,,300"' and not ch.hung_up


# -- the call summary ---------------------------------------------------------------

def test_the_summary_carries_the_rating_the_seat_and_the_time():
    call = CallInfo("1.2", "13800138000", flow="main")
    rec = CallLog(queue_result=QueueResult(QueueStatus.ANSWERED, SEAT, 4), survey="basically_satisfied",
                  survey_seat=SEAT)
    s = summary_fields(call, rec, 100.0, 160.5, 1)
    assert (s["survey"], s["survey_seat"], s["survey_at"]) == ("basically_satisfied", SEAT, "160.500")
    none = summary_fields(call, CallLog(), 100.0, 101.0, 1)
    assert (none["survey"], none["survey_seat"], none["survey_at"]) == ("", "", "")



async def test_a_survey_prompt_the_pbx_lacks_never_sends_the_citizen_back_into_the_queue(shipped):
    """A failing step goes to the flow's fallback, which queues: not after the conversation."""
    sim = SimChannel(Caller(digits=["2"]), missing_prompts=frozenset({"12345/survey"}))
    ch = AgiChannel(InMemoryTransport(sim), CallInfo("1.3", "13800138000", flow="main"),
                    prompt_prefix="12345/")
    record = await FlowInterpreter(CONFIG).run(shipped, "main", ch, CallFacts(now=NOON, level=0), LOG)
    assert sim.queue_calls == [("general-q", 0, 300)]          # once: the conversation, not again
    assert record.failures == ["survey"] and record.outcome == "completed"
    assert record.survey == ""          # never heard: not offered, not counted either way
    assert sim.vars["IVR_RESULT"] == "DONE"


async def test_a_retry_prompt_the_pbx_lacks_keeps_no_answer(shipped):
    sim = SimChannel(Caller(digits=["2"]), missing_prompts=frozenset({"12345/timeout"}))
    ch = AgiChannel(InMemoryTransport(sim), CallInfo("1.4", "13800138000", flow="main"),
                    prompt_prefix="12345/")
    record = await FlowInterpreter(CONFIG).run(shipped, "main", ch, CallFacts(now=NOON, level=0), LOG)
    assert sim.queue_calls == [("general-q", 0, 300)] and record.survey == "no_answer"
