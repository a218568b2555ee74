"""The survey after a callback conversation (issue 19): the shipped dialplan
sends the citizen's leg on with Dial's F() when the seat hangs up (fact 14),
``[ivr-callback-survey]`` runs flow ``callback_survey`` on an engine, and the
answer is kept with the callback record, the seat and the time; no_answer is
its own outcome. Checked over real sockets with the simulated Asterisk (which
runs the shipped context) and real engine processes, against the real
Asterisk 22 transcript (tests/fixtures/asterisk-22/agi/callback-seat-hangs-up-then-survey.json)."""

import asyncio
import json
import time

import pytest

from ivr import logs
from ivr.agi.channel import AgiChannel
from ivr.call_channel import CallInfo
from ivr.callback.capture import MissedCallCapture
from ivr.callback.policy import load_policy
from ivr.callback.store import CallbackStore
from ivr.callback.trail import read_trail
from ivr.calls.service import read_summary, summary_fields
from ivr.flow import model as m
from ivr.flow.conditions import CallFacts
from ivr.flow.interpreter import FlowInterpreter
from ivr.project import Project, check_files
from ivr.redisdb import keys
from ivr.rehearsal.sim.agi_peer import Caller, InMemoryTransport, SimChannel
from ivr.rehearsal.sim.dialplan import read_context, run_dialplan
from tests.conftest import FIXTURES
from tests.engine_proc import ROOT, EngineProcess, free_port
from tests.test_survey import CONFIG, NOON, TZ

DIALPLAN = ROOT / "asterisk" / "extensions.conf"
SEAT = "Local/102@ivr-seats/n"
NUMBER = "13900000007"
REAL = FIXTURES / "asterisk-22" / "agi" / "callback-seat-hangs-up-then-survey.json"
LOG = logs.get("test")


class NeverQueued:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, sim: SimChannel, queue: str, prio: int) -> None:
        self.calls.append(queue)


def _leg(number: str = NUMBER, cid: str = "1", kind: str = "ordinary", **caller) -> SimChannel:
    """The citizen's leg as Dial's F() hands it to [ivr-callback-survey]: the
    variables [ivr-callback] made inheritable (__IVR_CB_*)."""
    sim = SimChannel(Caller(number=number, name="12345回拨", **caller), flow="callback_survey")
    sim.channel = f"Local/{number}@trunk-00000002;1"
    sim.answered = True
    sim.vars.update({"IVR_CB_ID": cid, "IVR_CB_SEAT": SEAT, "IVR_CB_KIND": kind, "IVR_CB_NUMBER": number})
    return sim


# -- the shipped dialplan -------------------------------------------------------------

def test_the_shipped_callback_dials_the_citizen_with_F_into_the_survey():
    _, prios = read_context(DIALPLAN, "ivr-callback", "_X.")
    dial = next(p for p in prios if p.app == "dial")
    assert "F(ivr-callback-survey^s^1)" in dial.data and "b(ivr-trunk-line^s^1)" in dial.data
    inherited = [p.data.split("=", 1)[0] for p in prios if p.app == "set" and p.data.startswith("__")]
    assert inherited == ["__IVR_CB_ID", "__IVR_CB_SEAT", "__IVR_CB_KIND", "__IVR_CB_NUMBER"]
    assert prios.index(dial) > max(i for i, p in enumerate(prios) if p.app == "set")   # set before the dial
    _, survey = read_context(DIALPLAN, "ivr-callback-survey", "s")
    apps = [p.app for p in survey]
    assert "agi" in apps and "queue" not in apps           # never a queue after the conversation


async def test_no_engine_reachable_the_citizen_is_never_queued():
    joined = NeverQueued()
    dead = f"agi://127.0.0.1:{free_port()}&agi://127.0.0.1:{free_port()}"
    run = await run_dialplan(DIALPLAN, _leg(), queue_join=joined, context="ivr-callback-survey", exten="s",
                             engines=dead, connect_timeout_s=1)
    assert run.agi == ["FAILURE", "FAILURE"] and run.apps[-1] == "hangup" and joined.calls == []


def test_the_simulated_leg_sends_what_asterisk_22_sent():
    """The header the simulator sends for the survey leg: the same agi_*
    keys in the same order as the real one, the arguments after agi_threadid."""
    real = json.loads(REAL.read_text())["env"]
    sim = _leg()
    sim.context, sim.extension, sim.priority = "ivr-callback-survey", "s", "4"
    sim.args = tuple(real[k] for k in real if k.startswith("agi_arg_"))
    env = dict(line.rstrip("\n").split(": ", 1) for line in sim.env() if ": " in line)
    assert list(env) == list(real)
    for k in ("agi_network_script", "agi_context", "agi_extension", "agi_arg_1", "agi_arg_2", "agi_arg_3",
              "agi_arg_4"):
        assert env[k].replace(SEAT, "Local/101@ivr-seats/n") == real[k], k


# -- the engine: the flow, the facts, the summary ---------------------------------------

@pytest.fixture(scope="module")
def shipped(project_home):
    flows, problems = check_files(Project(project_home))
    assert not [p for p in problems if not p.warning]
    return flows


async def _run_leg(shipped, sim: SimChannel):
    env = dict(line.rstrip("\n").split(": ", 1) for line in sim.env() if ": " in line)
    call = CallInfo.from_agi_env(env)
    ch = AgiChannel(InMemoryTransport(sim), call)
    args = call.named_args()
    facts = CallFacts(now=NOON, caller=NUMBER, outbound=call.outbound, rated_seat=args["seat"],
                      emergency_matter=args["kind"] == "emergency")
    return await FlowInterpreter(CONFIG).run(shipped, "callback_survey", ch, facts, LOG), call


def _args(kind: str = "ordinary") -> tuple[str, ...]:
    return ("callback=7", f"seat={SEAT}", f"kind={kind}", f"number={NUMBER}")


async def test_the_shipped_flow_rates_the_callback_seat(shipped):
    sim = _leg(digits=["3"])
    sim.args = _args()
    record, call = await _run_leg(shipped, sim)
    assert record.survey == "dissatisfied" and record.survey_seat == SEAT and record.steps == ["survey"]
    assert sim.queue_calls == [] and sim.vars["IVR_RESULT"] == "DONE"
    s = summary_fields(call, record, 100.0, 112.5, 1)
    assert (s["kind"], s["callback_id"], s["survey"], s["survey_seat"], s["survey_at"]) == \
        ("callback", "7", "dissatisfied", SEAT, "112.500")
    assert s["wanted_person"] == "0"


async def test_silence_is_no_answer_never_satisfied(shipped):
    sim = _leg(digits=["", ""])
    sim.args = _args()
    record, _ = await _run_leg(shipped, sim)
    assert record.survey == m.NO_ANSWER and len([c for c in sim.commands if c.startswith("GET DATA")]) == 2


async def test_an_emergency_callback_is_not_surveyed(shipped):
    sim = _leg(digits=["1"])
    sim.args = _args("emergency")
    record, _ = await _run_leg(shipped, sim)
    assert record.survey == "" and not [c for c in sim.commands if c.startswith("GET DATA")]


async def test_a_failing_survey_never_queues_the_citizen():
    """A flow whose step fails after a callback's conversation: the call ends,
    never the built-in fallback (the general queue)."""
    flows = {"callback_survey": m.Flow(name="callback_survey", start="go",
                                       steps={"go": m.Subflow(name="go", flow="nowhere", next=m.END)})}
    sim = _leg()
    sim.args = _args()
    record, _ = await _run_leg(flows, sim)
    assert record.outcome == "failed" and record.failures == ["go"]
    assert sim.queue_calls == [] and record.queue == ""


# -- the record: kept with the callback ------------------------------------------------

async def _closed_callback(store: CallbackStore, number: str, now: float, *, finish: bool = True) -> str:
    args = store.record_args(number=number, now=now, started=now - 60, kind="ordinary", reason="abandoned",
                             flow="main", step="general_queue", wait_s=30.0, message="", not_before=now - 1,
                             deadlines={"emergency": 7200, "courtesy": 14400, "ordinary": 86400}, misdial=False)
    _, cid, _ = await store.record(args)
    _, claimed = await store.claim(now=now, lease_s=60, owner="t", count=1)
    assert claimed == [number]
    if finish:
        assert await store.finish(number, "t", outcome="reached", seat=SEAT, now=now, next_at=None,
                                  close_reason="reached") == "closed"
    return cid


async def test_the_answer_is_kept_on_the_closed_callback_once(redis):
    store = CallbackStore(redis)
    cid = await _closed_callback(store, NUMBER, 1000.0)
    assert await store.record_survey(cid, rating="satisfied", seat=SEAT, at=1010.0, call="u1") == \
        ("recorded", NUMBER)
    assert await store.record_survey(cid, rating="satisfied", seat=SEAT, at=1010.0, call="u1") == ("duplicate", "")
    rec = await store.closed_record(cid)
    assert (rec["survey"], rec["survey_seat"], rec["survey_at"], rec["state"]) == ("satisfied", SEAT, "1010.000",
                                                                                   "closed")
    assert await store.record_survey("999", rating="satisfied", seat=SEAT, at=1.0, call="u2") == ("unknown", "")


async def test_an_answer_read_before_the_outcome_is_written_goes_with_the_record(redis):
    """The survey's summary may reach the capture before the scheduler has
    written the attempt's outcome (Redis failing over): kept on the open
    record, it is there once the record is closed."""
    store = CallbackStore(redis)
    cid = await _closed_callback(store, NUMBER, 1000.0, finish=False)
    assert (await store.record_survey(cid, rating=m.NO_ANSWER, seat=SEAT, at=1020.0, call="u1"))[0] == "recorded"
    await store.finish(NUMBER, "t", outcome="reached", seat=SEAT, now=1021.0, next_at=None, close_reason="reached")
    rec = await store.closed_record(cid)
    assert (rec["survey"], rec["closed_reason"]) == (m.NO_ANSWER, "reached")


# -- end to end: the simulated Asterisk runs the shipped context against an engine -----

async def test_the_leg_rates_over_real_sockets_and_the_capture_keeps_it_with_the_callback(
        redis, redis_url, tmp_path, project_home):
    store = CallbackStore(redis)
    now = time.time()
    cid = await _closed_callback(store, NUMBER, now)
    engine = await EngineProcess(redis_url, tmp_path / "e").start()
    try:
        sim = _leg(cid=cid, answers={"/survey": "2"})
        joined = NeverQueued()
        run = await run_dialplan(DIALPLAN, sim, queue_join=joined, context="ivr-callback-survey", exten="s",
                                 engines=engine.url)
    finally:
        engine.stop()
    assert run.agi == ["SUCCESS"] and joined.calls == [] and run.apps[-1] == "hangup"
    assert any("GET DATA 12345/survey" in c for c in sim.commands)
    rows = [read_summary(f) for _, f in await redis.xrange(keys.CALLS)]
    assert len(rows) == 1 and rows[0]["kind"] == "callback" and rows[0]["number"] == NUMBER
    policy, _ = load_policy(project_home / "callback")
    assert policy is not None
    capture = MissedCallCapture(redis, store, policy, TZ, LOG)
    await capture.ensure_group()
    deadline = time.monotonic() + 10
    while not await capture.run_once(now=now + 5):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    rec = await store.closed_record(cid)
    assert (rec["survey"], rec["survey_seat"]) == ("basically_satisfied", SEAT)
    assert await store.open_record(NUMBER) is None           # never a missed call of its own
    assert capture.recorded == 0 and capture.surveys == 1
    trail = [e for _, e in await read_trail(redis, rec)]
    assert trail[-1]["kind"] == "survey" and trail[-1]["rating"] == "basically_satisfied"
    assert trail[-1]["number"] != NUMBER                      # masked in the audit log


class _LiveDuringSurvey(SimChannel):
    """At the survey's question: the summaries flushed, what CALLS_LIVE holds."""

    def __init__(self, caller: Caller, summaries, redis) -> None:
        super().__init__(caller, flow="callback_survey")
        self.summaries, self.redis = summaries, redis
        self.live_then: dict | None = None

    async def respond(self, line: str, decide_queue=None) -> list[str]:
        if line.startswith("GET DATA") and self.live_then is None:
            await self.summaries.flush()
            self.live_then = await self.redis.hgetall(keys.CALLS_LIVE)
        return await super().respond(line, decide_queue)


def _service(redis, summaries):
    from ivr.calls.arrival import ArrivalLookups
    from ivr.calls.service import CallService, LiveState
    from ivr.flow.registry import FlowRegistry
    from ivr.flow.store import FlowStore

    registry = FlowRegistry(FlowStore(redis), LOG)
    return registry, CallService(registry=registry, interpreter=FlowInterpreter(CONFIG), live=LiveState(),
                                 summaries=summaries, arrivals=ArrivalLookups(redis, LOG), timezone=TZ,
                                 prompt_prefix="12345/", recordings_dir="/tmp", log=LOG)


def _env(sim: SimChannel) -> dict[str, str]:
    sim.context, sim.extension = "ivr-callback-survey", "s"
    sim.args = _args()
    sim.channel = f"Local/{NUMBER}@trunk-00000002;1"
    return dict(line.rstrip("\n").split(": ", 1) for line in sim.env() if ": " in line)


async def test_a_callback_leg_is_no_call_in_progress(redis, project_home):
    """Not in ``CALLS_LIVE`` while it runs: were its engine to die mid-survey,
    the leader's sweep would record the citizen just reached as a missed call."""
    from ivr.calls.service import CallSummaries
    from ivr.flow.store import FlowStore

    summaries = CallSummaries(redis, LOG)
    registry, service = _service(redis, summaries)
    await FlowStore(redis).publish("callback_survey", (project_home / "flows" / "callback_survey.yaml").read_text(),
                                   by="test")
    await registry.refresh()
    sim = _LiveDuringSurvey(Caller(number=NUMBER, digits=["1"]), summaries, redis)
    record = await service.handle(_env(sim), InMemoryTransport(sim))
    assert record.survey == "satisfied" and sim.live_then == {}
    # a citizen who called in is there at the same point (the check can see it)
    inbound = _LiveDuringSurvey(Caller(number="13800000001", digits=["1"]), summaries, redis)
    inbound.flow = "callback_survey"
    env = dict(line.rstrip("\n").split(": ", 1) for line in inbound.env() if ": " in line)
    await service.handle(env, InMemoryTransport(inbound))
    assert list(inbound.live_then) == [inbound.uniqueid]


async def test_without_its_flow_a_callback_leg_is_never_queued(redis):
    """Flow callback_survey not published: nothing is sent to the channel (no
    fallback queue); the dialplan hangs up."""
    from ivr.calls.service import CallSummaries

    summaries = CallSummaries(redis, LOG)
    _, service = _service(redis, summaries)
    sim = _leg()
    record = await service.handle(_env(sim), InMemoryTransport(sim))
    assert record.outcome == "failed" and sim.commands == []
    await summaries.flush()
    (row,) = [read_summary(f) for _, f in await redis.xrange(keys.CALLS)]
    assert (row["kind"], row["callback_id"], row["number"], row["survey"]) == ("callback", "7", NUMBER, "")
