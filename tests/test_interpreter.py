"""The interpreter over the real AgiChannel, wired in memory to the simulated
Asterisk: behaviour tables, no sockets."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ivr import logs
from ivr.agi.channel import AgiChannel
from ivr.call_channel import CallInfo, QueueStatus
from ivr.calls.service import LiveState
from ivr.flow.conditions import CallFacts
from ivr.flow.interpreter import FlowInterpreter, RunnerConfig
from ivr.flow.references import Catalog
from ivr.project import Project, check_files, check_flow_texts, load_operations
from ivr.rehearsal.sim.agi_peer import Caller, InMemoryTransport, QueueOutcome, SimChannel

TZ = ZoneInfo("Asia/Shanghai")
NOON = dt.datetime(2026, 11, 23, 12, 0, tzinfo=TZ)
CONFIG = RunnerConfig(queues={"general": "general-q", "emergency": "emergency-q"}, fallback_queue="general-q")
LOG = logs.get("test")


@pytest.fixture(scope="module")
def shipped(project_home):
    flows, problems = check_files(Project(project_home))
    assert not [p for p in problems if not p.warning]
    return flows


@pytest.fixture(scope="module")
def ops(project_home):
    return load_operations(Project(project_home), TZ)


async def run(flows, caller, *, flow="main", level=0, now=NOON, missing=frozenset(), lists=None, last_age=None,
              ops=None):
    sim = SimChannel(caller, flow=flow, missing_prompts=missing)
    ch = AgiChannel(InMemoryTransport(sim), CallInfo.from_agi_env(
        dict(line.rstrip("\n").split(": ", 1) for line in sim.env() if ": " in line)))
    if ops is None:
        facts = CallFacts(now=now, level=level, caller=caller.number, lists=lists or {}, last_call_age_s=last_age)
    else:   # what the engine does: the shipped contingency plan decides what the level means
        live = LiveState()
        live.plan, live.announcements = ops.plan, ops.announcements
        live.level, live.lists = level, lists or {}
        facts = live.facts(now, caller=caller.number, last_call_age_s=last_age)
    record = await FlowInterpreter(CONFIG).run(flows, flow, ch, facts, LOG)
    return record, sim


async def test_ordinary_caller_reaches_a_seat(shipped):
    record, sim = await run(shipped, Caller(digits=["2"]))
    assert record.outcome == "completed"
    assert record.steps == ["known_urgent", "admission", "greeting", "policy_announcements",
                            "announcements.announce", "choose_menu", "main_menu", "say_wait", "general_queue",
                            "survey"]
    assert record.queue_result.status is QueueStatus.ANSWERED
    assert sim.queue_calls == [("general-q", 0, 300)]
    assert record.survey == "no_answer"      # the citizen pressed nothing after the conversation


async def test_emergency_key_jumps_the_line(shipped):
    record, sim = await run(shipped, Caller(digits=["1"]))
    assert record.emergency and sim.queue_calls == [("emergency-q", 10, 30)]


async def test_number_on_the_urgent_list_skips_the_menu(shipped):
    record, sim = await run(shipped, Caller(number="13912345678"), lists={"urgent-callers": frozenset({"13912345678"})})
    assert "main_menu" not in record.steps and sim.queue_calls[0][:2] == ("emergency-q", 10)


async def test_no_input_still_reaches_a_person(shipped):
    record, sim = await run(shipped, Caller(digits=["", ""]))
    assert sim.queue_calls == [("general-q", 0, 300)]
    assert sum("GET DATA" in c for c in sim.commands if "survey" not in c) == 2
    assert any("12345/timeout" in c or "timeout" in c for c in sim.commands if c.startswith("STREAM FILE"))


@pytest.mark.parametrize("level, announced, short, music",
                         [(0, False, False, "c"), (1, False, False, "c"), (2, True, False, "cm(ivr-peak)"),
                          (3, True, True, "cm(ivr-peak)")])
async def test_contingency_level_shapes_the_call(shipped, ops, level, announced, short, music):
    record, sim = await run(shipped, Caller(digits=["2"]), level=level, ops=ops)
    played = any("policy/current" in c for c in sim.commands)
    assert played is announced and (record.announcements == 1) is announced
    assert ("short_menu" in record.steps) is short and ("main_menu" in record.steps) is not short
    assert sim.queue_options == [music]
    assert any(f'EXEC Queue "general-q,{music},,,300"' == c for c in sim.commands)


async def test_expired_announcement_never_plays(shipped, ops):
    later = dt.datetime(2028, 1, 1, 12, 0, tzinfo=TZ)    # after the shipped item's valid_until
    record, sim = await run(shipped, Caller(digits=["2"]), level=2, ops=ops, now=later)
    assert not any("policy/current" in c for c in sim.commands) and record.announcements == 0
    assert record.queue_result.status is QueueStatus.ANSWERED


async def test_surge_level_sends_callers_straight_to_a_message(shipped, ops):
    record, sim = await run(shipped, Caller(digits=[""], queue=QueueOutcome("timeout")), level=3, ops=ops)
    assert record.sent_to_message and not record.callback_accepted
    assert record.steps[-3:] == ["offer_callback", "leave_message", "message_thanks"]
    assert not any("callback-offer" in c for c in sim.commands)


async def test_queue_timeout_offers_callback_and_it_is_accepted(shipped):
    record, sim = await run(shipped, Caller(digits=["2", "1"], queue=QueueOutcome("timeout")))
    assert record.callback_accepted and record.wanted_person
    assert record.steps[-2:] == ["offer_callback", "callback_confirmed"]
    assert sim.commands[-1] == "HANGUP"


async def test_declined_callback_leaves_a_message(shipped):
    record, sim = await run(shipped, Caller(digits=["2", "2"], queue=QueueOutcome("timeout")))
    assert record.message_path.startswith("msg-") and record.steps[-1] == "message_thanks"


async def test_withdrawn_for_callback(shipped):
    record, _ = await run(shipped, Caller(digits=["2"], queue=QueueOutcome("withdraw")))
    assert record.queue_result.status is QueueStatus.WITHDRAW and record.steps[-1] == "callback_confirmed"


async def test_abandon_in_queue_is_an_outcome_that_keeps_what_we_knew(shipped):
    record, _ = await run(shipped, Caller(digits=["2"], queue=QueueOutcome("abandon")))
    assert record.outcome == "caller_hung_up" and record.wanted_person
    assert record.queue_result.status is QueueStatus.ABANDONED


async def test_hangup_during_greeting(shipped):
    record, sim = await run(shipped, Caller(hangup_on="welcome"))
    assert record.outcome == "caller_hung_up" and not record.wanted_person
    assert not any(c.startswith("EXEC") for c in sim.commands)


async def test_missing_prompt_goes_to_the_fallback_step(shipped):
    record, sim = await run(shipped, Caller(digits=["2"]), missing=frozenset({"menu"}))
    assert record.failures == ["main_menu"]
    assert record.steps[-1] == "to_general" and sim.queue_calls == [("general-q", 0, 300)]


FLOW_WITHOUT_FALLBACK = """\
start: a
steps:
  a:
    type: play
    prompts: [gone]
    next: end
"""


async def test_no_fallback_step_means_the_builtin_general_queue():
    cat = Catalog(prompts=frozenset({"gone"}), queues={}, asterisk_queues=None)
    flows, _ = check_flow_texts({"x": ("x.yaml", FLOW_WITHOUT_FALLBACK)}, cat)
    record, sim = await run(flows, Caller(), flow="x", missing=frozenset({"gone"}))
    assert record.outcome == "fallback" and sim.queue_calls == [("general-q", 0, 600)]


LOOP = """\
start: a
steps:
  a:
    type: goto
    to: b
  b:
    type: goto
    to: a
"""


async def test_a_loop_is_cut_by_the_step_cap():
    flows, _ = check_flow_texts({"x": ("x.yaml", LOOP)}, Catalog(frozenset(), {}, None))
    record, sim = await run(flows, Caller(), flow="x")
    assert record.outcome == "fallback" and len(record.steps) == CONFIG.max_steps + 1
    assert sim.queue_calls == [("general-q", 0, 600)]


BRANCHES = """\
start: b
steps:
  b:
    type: branch
    cases:
      - when: {all: [{weekday_in: [mon, tue, wed, thu, fri]}, {time_between: ["08:30", "17:30"]},
                     {not: {calendar: holidays}}]}
        goto: day
      - when: {called_within_min: 10}
        goto: again
    otherwise: night
  day: {type: set, variables: {IVR_SHIFT: day}, next: end}
  again: {type: set, variables: {IVR_SHIFT: again}, next: end}
  night: {type: set, variables: {IVR_SHIFT: night}, next: end}
"""


@pytest.mark.parametrize("now, last_age, shift", [
    (dt.datetime(2026, 11, 23, 9, 0, tzinfo=TZ), None, "day"),        # Monday morning
    (dt.datetime(2026, 11, 23, 17, 30, tzinfo=TZ), None, "night"),    # end is exclusive
    (dt.datetime(2026, 11, 22, 10, 0, tzinfo=TZ), None, "night"),     # Sunday
    (dt.datetime(2026, 10, 1, 10, 0, tzinfo=TZ), None, "night"),      # National Day (Thursday)
    (dt.datetime(2026, 11, 22, 10, 0, tzinfo=TZ), 300.0, "again"),    # redialled after 5 minutes
    (dt.datetime(2026, 11, 22, 10, 0, tzinfo=TZ), 900.0, "night"),
])
async def test_branch_conditions(now, last_age, shift):
    cat = Catalog(frozenset(), {}, None, calendars=frozenset({"holidays"}))
    flows, probs = check_flow_texts({"x": ("x.yaml", BRANCHES)}, cat)
    assert flows, probs
    sim = SimChannel(Caller(), flow="x")
    ch = AgiChannel(InMemoryTransport(sim), CallInfo("1.1", "13800138000"))
    facts = CallFacts(now=now, last_call_age_s=last_age,
                      calendars={"holidays": frozenset({dt.date(2026, 10, 1)})})
    await FlowInterpreter(CONFIG).run(flows, "x", ch, facts, LOG)
    assert sim.vars["IVR_SHIFT"] == shift


TRANSFER = """\
start: t
steps:
  t: {type: transfer, to: "12320", on_fail: q}
  q: {type: queue, queue: general, on_timeout: end}
"""


@pytest.mark.parametrize("status, queued", [("ANSWER", False), ("BUSY", True), ("NOANSWER", True)])
async def test_transfer(status, queued):
    flows, _ = check_flow_texts({"x": ("x.yaml", TRANSFER)}, Catalog(frozenset(), {"general": "general-q"}, None))
    record, sim = await run(flows, Caller(dial_status=status), flow="x")
    assert 'EXEC Dial "Local/12320@ivr-transfer,30"' in sim.commands
    assert bool(sim.queue_calls) is queued
