"""The shipped dialplan (asterisk/extensions.conf [ivr-12345]) never drops a
citizen, run by the simulated Asterisk against real engine processes:
the engine killed mid-call (fact 10: AGISTATUS=SUCCESS), an engine that cannot
be reached (fact 9: FAILURE, the next one is tried), no engine at all, and a
call the engine finished itself."""

import asyncio

import pytest

from ivr.rehearsal.sim.agi_peer import Caller, QueueOutcome, SimChannel
from ivr.rehearsal.sim.dialplan import read_context, run_dialplan, substitute
from tests.engine_proc import ROOT, EngineProcess, free_port

DIALPLAN = ROOT / "asterisk" / "extensions.conf"


class Joined:
    """The dialplan's own Queue(): who it put where."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, sim: SimChannel, queue: str, prio: int) -> None:
        self.calls.append((sim.caller.number, queue))


class KillsEngineOnGreeting(SimChannel):
    """SIGKILLs the engine when it starts the first prompt, before answering it."""

    def __init__(self, caller: Caller, engine: EngineProcess) -> None:
        super().__init__(caller)
        self.engine = engine

    async def respond(self, line: str, decide_queue=None) -> list[str]:
        if line.startswith("STREAM FILE") and self.engine.proc.poll() is None:
            await asyncio.to_thread(self.engine.kill)
        return await super().respond(line, decide_queue)


@pytest.fixture
async def engines(redis_url, tmp_path):
    started: list[EngineProcess] = []

    async def start(n: int = 1) -> list[EngineProcess]:
        procs = [EngineProcess(redis_url, tmp_path / f"e{i}") for i in range(n)]
        await asyncio.gather(*(p.start() for p in procs))
        started.extend(procs)
        return procs
    yield start
    for p in started:
        p.stop()


def test_the_simulator_reads_the_shipped_context():
    globals_, prios = read_context(DIALPLAN, "ivr-12345", "12345")
    assert globals_["IVR_ENGINES"].startswith("agi://")
    apps = [p.app for p in prios]
    assert apps.count("agi") == 1 and "queue" in apps
    assert substitute("${CUT(E,&,2)}", {"E": "agi://a:1&agi://b:2"}) == "agi://b:2"
    assert substitute("${CUT(E,&,3)}", {"E": "agi://a:1&agi://b:2"}) == ""


async def test_engine_killed_during_the_greeting_sends_the_caller_to_the_general_queue(engines):
    (engine,) = await engines(1)
    joined = Joined()
    sim = KillsEngineOnGreeting(Caller(number="13800138001"), engine)
    run = await run_dialplan(DIALPLAN, sim, queue_join=joined, engines=engine.url)
    assert engine.proc.returncode == -9
    assert run.agi == ["SUCCESS"]                      # what Asterisk 22 reports (fact 10)
    assert run.queued == "general-q" and joined.calls == [("13800138001", "general-q")]
    assert sim.vars.get("IVR_RESULT") != "DONE"


async def test_unreachable_engine_is_skipped_and_the_next_one_takes_the_call(engines):
    (engine,) = await engines(1)
    joined = Joined()
    caller = Caller(number="13800138002", digits=["2"], queue=QueueOutcome(kind="answered"))
    sim = SimChannel(caller)
    dead = f"agi://127.0.0.1:{free_port()}"
    run = await run_dialplan(DIALPLAN, sim, queue_join=joined, engines=f"{dead}&{engine.url}")
    assert run.agi == ["FAILURE", "SUCCESS"]
    assert sim.vars["IVR_RESULT"] == "DONE" and sim.queue_calls     # the engine queued the caller itself
    assert run.queued == "" and joined.calls == [] and run.apps[-1] == "hangup"


async def test_no_engine_at_all_still_reaches_a_seat():
    joined = Joined()
    sim = SimChannel(Caller(number="13800138003"))
    dead = "&".join(f"agi://127.0.0.1:{free_port()}" for _ in range(2))
    run = await run_dialplan(DIALPLAN, sim, queue_join=joined, engines=dead, connect_timeout_s=2)
    assert run.agi == ["FAILURE", "FAILURE"] and run.queued == "general-q"


async def test_a_call_the_engine_ends_itself_is_hung_up_by_the_dialplan(engines):
    (engine,) = await engines(1)
    joined = Joined()
    # the general queue times out: the engine takes a message and hangs up itself
    sim = SimChannel(Caller(number="13800138004", digits=["2"], queue=QueueOutcome(kind="timeout")))
    run = await run_dialplan(DIALPLAN, sim, queue_join=joined, engines=engine.url)
    assert run.agi == ["HANGUP"] and sim.dead and any(c.startswith("RECORD FILE") for c in sim.commands)
    assert joined.calls == [] and run.queued == ""
