"""Admission in the flow language (issue 23): the `admit` step offers a
callback in the first seconds when the expected wait is beyond the level's
target or lines run low, a registered caller who dials again hears so and is
not queued again, an emergency is never turned away, and `say_wait` tells the
caller their place and expected wait from number recordings. Run by the
interpreter over the real AgiChannel, wired in memory to the simulated
Asterisk."""

import dataclasses
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ivr import logs
from ivr.agi.channel import AgiChannel
from ivr.call_channel import CallInfo
from ivr.calls.service import LiveState
from ivr.flow.interpreter import FlowInterpreter, RunnerConfig
from ivr.project import Project, check_files, check_flow_texts, load_operations
from ivr.rehearsal.sim.agi_peer import Caller, InMemoryTransport, SimChannel
from tests.conftest import copy_project

TZ = ZoneInfo("Asia/Shanghai")
NOON = dt.datetime(2026, 11, 23, 12, 0, tzinfo=TZ)
CONFIG = RunnerConfig(queues={"general": "general-q", "emergency": "emergency-q"}, fallback_queue="general-q")
LOG = logs.get("test")


@pytest.fixture(scope="module")
def shipped(project_home):
    flows, problems = check_files(Project(project_home))
    assert not [p for p in problems if not p.warning], problems
    return flows


@pytest.fixture(scope="module")
def ops(project_home):
    return load_operations(Project(project_home), TZ)


async def call(flows, ops, caller, *, level=2, outlook=None, lines_low=False, registered_ahead=None, flow="main"):
    sim = SimChannel(caller, flow=flow)
    ch = AgiChannel(InMemoryTransport(sim), CallInfo.from_agi_env(
        dict(line.rstrip("\n").split(": ", 1) for line in sim.env() if ": " in line)))
    live = LiveState()
    live.plan, live.announcements, live.level = ops.plan, ops.announcements, level
    live.outlook, live.lines_low = outlook or {}, lines_low
    facts = live.facts(NOON, caller=caller.number, registered_ahead=registered_ahead)
    record = await FlowInterpreter(CONFIG).run(flows, flow, ch, facts, LOG)
    # what the caller heard until they joined the queue (after it: the survey, tests/test_survey.py)
    joined = next((i for i, c in enumerate(sim.commands) if c.startswith("EXEC Queue")), len(sim.commands))
    played = [c.split()[2] for c in sim.commands[:joined] if c.startswith(("STREAM FILE", "GET DATA"))]
    return record, sim, played


LONG = {"general-q": {0: (41, 290.0, 40.0)}}     # 41 ahead, about 5 minutes and a half


async def test_a_long_wait_at_peak_offers_a_callback_in_the_first_seconds(shipped, ops):
    record, sim, played = await call(shipped, ops, Caller(digits=["2"]), outlook=LONG)
    assert record.steps[:2] == ["known_urgent", "admission"]
    # the peak path: a short greeting, the wait said from recordings, rounded up (330 s -> 6 minutes),
    # then the offer: no long greeting, no policy, no menu before it
    assert played[:5] == ["peak-welcome", "queue/queue-wait-about", "numbers/6", "queue/queue-minutes",
                          "admission-offer"]
    assert record.callback_accepted and record.admission_offered and sim.queue_calls == []
    assert record.steps[-1] == "callback_confirmed"


def test_the_peak_path_offers_within_six_seconds_of_the_answer(project_home):
    """Every second of prompt at Beijing's peak holds about 56 lines (issue 23):
    the offer starts within 6 s of the answer, with the shipped recordings."""
    from ivr.rehearsal.sim.agi_peer import prompt_lengths
    lengths = prompt_lengths(Path(project_home) / "prompts")
    longest = ["peak-welcome", "queue/queue-wait-over", "numbers/30", "queue/queue-minutes"]
    assert sum(lengths[p] for p in longest) <= 6.0, {p: lengths[p] for p in longest}


async def test_who_declines_still_waits_and_the_estimate_is_kept_with_the_call(shipped, ops):
    record, sim, played = await call(shipped, ops, Caller(digits=["", "2"]), outlook=LONG)
    assert record.admission_offered and not record.callback_accepted
    assert sim.queue_calls == [("general-q", 0, 300)]
    assert sim.vars["IVR_WAIT_EST"] == "42,290"          # place at join, expected wait (for scoring)
    assert record.wait_estimate_s == 290.0 and record.position_at_join == 42
    # the peak path: no greeting, no menu; the level's policy set, then the wait (general-q's
    # Asterisk says the place as the caller joins: say_place false)
    assert "welcome" not in played and "menu" not in played and "policy/current" in played
    assert played[-3:] == ["queue/queue-wait-about", "numbers/6", "queue/queue-minutes"]
    assert "queue/queue-ahead" not in played


async def test_a_registered_caller_who_dials_again_hears_so_and_is_not_queued_again(shipped, ops):
    record, sim, played = await call(shipped, ops, Caller(digits=["2"]), outlook=LONG, registered_ahead=12)
    assert record.already_registered and sim.queue_calls == []
    assert played[-4:] == ["admission-registered", "queue/queue-ahead", "numbers/12",
                           "queue/queue-callers"]
    assert record.steps[-1] == "registered_bye"


async def test_an_emergency_is_never_turned_away_by_the_offer(shipped, ops):
    record, sim, _ = await call(shipped, ops, Caller(digits=["1"]), outlook=LONG)
    assert record.emergency and sim.queue_calls[0][:2] == ("emergency-q", 10) and not record.callback_accepted


async def test_lines_running_low_offer_a_callback_even_without_a_known_wait(shipped, ops):
    record, sim, played = await call(shipped, ops, Caller(digits=["2"]), lines_low=True, level=0)
    assert record.admission_offered and record.callback_accepted and sim.queue_calls == []
    assert "queue/queue-ahead" not in played


async def test_who_declines_while_lines_run_low_is_registered_all_the_same_and_frees_the_line(shipped, ops):
    record, sim, played = await call(shipped, ops, Caller(digits=[""]), outlook=LONG, lines_low=True)
    assert record.admission_offered and record.callback_accepted and sim.queue_calls == []
    assert played[-2:] == ["admission-offer", "lines-busy-registered"] and record.steps[-1] == "lines_busy"
    # an emergency still reaches the emergency line
    record, sim, _ = await call(shipped, ops, Caller(digits=["1"]), outlook=LONG, lines_low=True)
    assert sim.queue_calls[0][:2] == ("emergency-q", 10) and not record.callback_accepted


async def test_a_short_wait_or_a_level_without_a_target_goes_straight_on_and_is_told_the_wait(shipped, ops):
    short = {"general-q": {0: (0, 20.0, 5.0)}}
    record, sim, played = await call(shipped, ops, Caller(digits=["", "2"]), outlook=short)
    assert not record.admission_offered and sim.queue_calls == [("general-q", 0, 300)]
    assert played[-1] == "menu"      # 25 s: no wait said (a seat takes them at once), the place Asterisk's
    short = {"general-q": {0: (2, 40.0, 5.0)}}
    record, sim, played = await call(shipped, ops, Caller(digits=["", "2"]), outlook=short)
    assert played[-3:] == ["queue/queue-wait-about", "numbers/1", "queue/queue-minutes"]
    # level 0 has no admission_wait_s: a long wait is told, never offered on its account
    record, sim, played = await call(shipped, ops, Caller(digits=["2"]), outlook=LONG, level=0)
    assert not record.admission_offered and sim.queue_calls == [("general-q", 0, 300)]
    assert played[-3:] == ["queue/queue-wait-about", "numbers/6", "queue/queue-minutes"]


async def test_the_queue_step_tells_the_outlook_of_the_moment_the_caller_reaches_it(shipped, ops):
    """A flow runs for seconds to tens of seconds before its queue step. The
    step told the outlook taken with the call's facts at its start: at the
    Beijing drill's cold start (56 calls a second), callers who had started
    while nobody waited reached a line of 700 and were told "next, no wait"."""
    sim = SimChannel(Caller(digits=["2"]), flow="main")
    ch = AgiChannel(InMemoryTransport(sim), CallInfo.from_agi_env(
        dict(line.rstrip("\n").split(": ", 1) for line in sim.env() if ": " in line)))
    live = LiveState()
    live.plan, live.announcements, live.level = ops.plan, ops.announcements, 0
    live.use_outlook(b'{"queues": {"general-q": {"0": [0, 0.0, 0.0]}}, "lines_low": false}')
    facts = live.facts(NOON, caller="13500000001")
    # the leader publishes, the engine reads it (``Engine.refresh``) while the caller hears the greeting
    live.use_outlook(b'{"queues": {"general-q": {"0": [700, 75.0, 20.0]}}, "lines_low": false}')
    record = await FlowInterpreter(CONFIG).run(shipped, "main", ch, facts, LOG)
    assert sim.queue_calls == [("general-q", 0, 300)]
    assert (record.position_at_join, record.wait_estimate_s) == (701, 75.0)
    assert any(c.startswith("SET VARIABLE IVR_WAIT_EST") and "701,75" in c for c in sim.commands), sim.commands


async def test_the_queue_step_reads_the_leaders_latest_outlook_not_the_engines_last_poll(shipped, ops, redis):
    """The engine polls the leader's outlook every half second: at speed 10 in
    the demo drill, 12 of 353 callers first in line were told "no wait" for a
    seat taken since (they waited 8 s on average). The step reads the
    latest one (one GET, shared by the calls that ask at once)."""
    import asyncio

    from redis.exceptions import ConnectionError as RedisConnectionError

    from ivr.redisdb import keys

    def channel():
        sim = SimChannel(Caller(digits=["2"]), flow="main")
        return sim, AgiChannel(InMemoryTransport(sim), CallInfo.from_agi_env(
            dict(line.rstrip("\n").split(": ", 1) for line in sim.env() if ": " in line)))

    live = LiveState()
    live.plan, live.announcements, live.level = ops.plan, ops.announcements, 0
    live.use_outlook(b'{"queues": {"general-q": {"0": [0, 0.0, 0.0]}}, "lines_low": false}')   # the last poll
    await redis.set(keys.OUTLOOK, b'{"queues": {"general-q": {"0": [12, 40.0, 5.0]}}, "lines_low": false}')
    live.outlook_source = lambda: redis.get(keys.OUTLOOK)
    sim, ch = channel()
    record = await FlowInterpreter(CONFIG).run(shipped, "main", ch, live.facts(NOON, caller="13500000001"), LOG)
    assert (record.position_at_join, record.wait_estimate_s) == (13, 40.0)

    # Redis failing, or too slow: the last outlook is told, and the caller is not held for it
    async def failing() -> bytes:
        raise RedisConnectionError("gone")

    async def stalled() -> bytes:
        await asyncio.Event().wait()
        return b""

    for source in (failing, stalled):
        live = LiveState()
        live.plan, live.announcements, live.level = ops.plan, ops.announcements, 0
        live.use_outlook(b'{"queues": {"general-q": {"0": [3, 9.0, 1.0]}}, "lines_low": false}')
        live.outlook_source = source
        sim, ch = channel()
        record = await FlowInterpreter(CONFIG).run(shipped, "main", ch, live.facts(NOON, caller="13500000001"), LOG)
        assert (record.position_at_join, record.wait_estimate_s) == (4, 9.0), source
        assert sim.queue_calls == [("general-q", 0, 300)]
        if live._outlook_reading is not None:
            live._outlook_reading.cancel()
    await redis.delete(keys.OUTLOOK)


async def test_nothing_known_says_nothing(shipped, ops):
    record, sim, played = await call(shipped, ops, Caller(digits=["2"]))
    assert not any(p.startswith("queue/") or p.startswith("numbers/") for p in played)
    assert "IVR_WAIT_EST" not in sim.vars and sim.queue_calls == [("general-q", 0, 300)]


async def test_the_flow_without_a_menu_reaches_a_seat_and_keeps_the_emergency_key(shipped, ops):
    record, sim, _ = await call(shipped, ops, Caller(digits=[""]), flow="direct", level=0)
    assert "main_menu" not in record.steps and sim.queue_calls == [("general-q", 0, 300)]
    record, sim, _ = await call(shipped, ops, Caller(press_during_prompt={"welcome": "1"}), flow="direct")
    assert sim.queue_calls[0][:2] == ("emergency-q", 10)


ADMIT = """
start: a
steps:
  a:
    type: admit
    queue: general
    prompt: callback-offer
    accept_digit: "1"
    emergency_digit: "1"
    on_emergency: b
    on_wait: b
    on_registered: b
  b:
    type: say_wait
    queue: general
    next: end
"""


def test_a_say_wait_without_its_number_recordings_is_refused_at_its_place(project_home, tmp_path):
    home = copy_project(project_home, tmp_path / "home")
    (home / "prompts" / "numbers" / "37.wav").unlink()
    project = Project(home)
    _, problems = check_flow_texts({"t": ("flows/t.yaml", ADMIT)}, project.catalog(frozenset({"t"})))
    errors = [str(p) for p in problems if not p.warning]
    assert any(e.startswith("flows/t.yaml:14:5:") and "numbers/37" in e and e.startswith("flows/t.yaml:14:5: 报")
               for e in errors), errors
    assert any(e.startswith("flows/t.yaml:9:22:") and "emergency_digit 不能与 accept_digit 相同" in e
               for e in errors), errors


def test_a_level_whose_admission_target_makes_no_sense_is_refused(project_home, tmp_path):
    from ivr.contingency.plan import parse_plan
    text = (Path(project_home) / "queue" / "contingency.yaml").read_text(encoding="utf-8")
    bad = text.replace("admission_wait_s: 180", "admission_wait_s: -5", 1)
    plan, problems = parse_plan(bad, "queue/contingency.yaml")
    assert plan is None and any("admission_wait_s" in str(p) or "0 到 3600 秒" in str(p) for p in problems)
    assert dataclasses.is_dataclass(plan) is False
