"""End to end over real TCP: the engine's FastAGI server, a real Redis, and the
simulated Asterisk dialling in."""

import asyncio

import orjson
import pytest

from ivr import logs
from ivr.agi.fastagi import FastAgiServer
from ivr.callback.store import CallbackStore
from ivr.calls.service import read_summary
from ivr.flow.store import FlowStore
from ivr.redisdb import keys
from ivr.rehearsal.sim.agi_peer import Caller, QueueOutcome, SimChannel, run_call
from ivr.runtime.engine import Engine
from ivr.services import callbacks as callbacks_service
from ivr.settings import load_settings


@pytest.fixture
async def engine(redis, project_home, tmp_path):
    settings = load_settings({"IVR_HOME": str(project_home), "IVR_DATA_DIR": str(tmp_path),
                              "IVR_AGI_LISTEN": "127.0.0.1:0", "IVR_HTTP_LISTEN": "127.0.0.1:0", "IVR_DRAIN_S": "5"})
    eng = Engine(settings, redis, logs.get("test"))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(eng.run(stop, ready))
    await asyncio.wait_for(ready.wait(), 10)
    eng.port = eng.agi.port
    yield eng
    stop.set()
    try:
        await asyncio.wait_for(asyncio.shield(task), 15)
    except TimeoutError:
        for t in asyncio.all_tasks():
            print("STUCK", t.get_coro(), t.get_stack(limit=5))
        raise


async def call(engine, caller, **kw):
    return await run_call("127.0.0.1", engine.port, SimChannel(caller, **kw))


def holder():
    """A queue wait the test ends: (entered, released, wait coroutine)."""
    entered, released = asyncio.Event(), asyncio.Event()

    async def hold():
        entered.set()
        await released.wait()
    return entered, released, hold


async def summaries(redis, n):
    async def wait():
        while await redis.xlen(keys.CALLS) < n:
            await asyncio.sleep(0.02)
    await asyncio.wait_for(wait(), 5)
    return [read_summary(f) for _, f in await redis.xrange(keys.CALLS)]


async def test_complete_call_answered_by_a_seat(engine, redis):
    res = await call(engine, Caller(digits=["2"]))
    lines = [line for who, line in res.transcript if who == "engine"]
    assert lines[0] == "ANSWER\n" and 'EXEC Queue "general-q,c,,,300"\n' in lines
    assert res.closed_by_engine
    [s] = await summaries(redis, 1)
    assert s["outcome"] == "completed" and s["queue_status"] == "ANSWERED"
    assert s["member"] == "Local/101@ivr-seats/n" and s["version"] == "1"


async def test_survey_after_the_seat_hangs_up_is_kept_with_the_call(engine, redis):
    """Issue 19: Queue with c, the seat hangs up (CONTINUE), the citizen presses 2 (基本满意)."""
    res = await call(engine, Caller(digits=["2", "2"]))
    lines = [line for who, line in res.transcript if who == "engine"]
    assert 'EXEC Queue "general-q,c,,,300"\n' in lines
    assert ("asterisk", "200 result=0\n") in res.transcript          # what Asterisk 22 answers with c (fact 12)
    assert any(line.startswith("GET DATA 12345/survey ") for line in lines)
    assert lines[-1] == 'SET VARIABLE IVR_RESULT "DONE"\n' and res.closed_by_engine   # the dialplan hangs up
    [s] = await summaries(redis, 1)
    assert s["outcome"] == "completed" and s["queue_status"] == "ANSWERED"
    assert (s["survey"], s["survey_seat"]) == ("basically_satisfied", "Local/101@ivr-seats/n")
    assert s["survey_at"] == s["ended"] and s["last_step"] == "survey"


async def test_a_citizen_gone_during_the_survey_is_no_answer(engine, redis):
    await call(engine, Caller(digits=["2"], hangup_on="survey"))
    [s] = await summaries(redis, 1)
    assert s["outcome"] == "caller_hung_up" and s["survey"] == "no_answer" and s["survey_at"]


async def test_hangup_during_prompt(engine, redis):
    res = await call(engine, Caller(hangup_on="welcome"))
    engine_lines = [line for who, line in res.transcript if who == "engine"]
    assert engine_lines[-1] == "CHANNEL STATUS\n" and res.closed_by_engine
    [s] = await summaries(redis, 1)
    assert s["outcome"] == "caller_hung_up" and s["wanted_person"] == "0"


async def test_missing_prompt_sends_caller_to_the_general_queue(engine, redis):
    res = await call(engine, Caller(digits=["2"]), missing_prompts=frozenset({"12345/menu"}))
    assert res.channel.queue_calls == [("general-q", 0, 300)]
    [s] = await summaries(redis, 1)
    assert s["failures"] == "main_menu" and s["last_step"] == "to_general"


async def test_queue_timeout_then_message(engine, redis):
    res = await call(engine, Caller(digits=["2", "2"], queue=QueueOutcome("timeout")))
    assert any(line.startswith("RECORD FILE") for who, line in res.transcript if who == "engine")
    [s] = await summaries(redis, 1)
    assert s["queue_status"] == "TIMEOUT" and s["message"].startswith("msg-") and s["wanted_person"] == "1"


async def test_unknown_flow_still_reaches_a_seat(engine, redis):
    res = await call(engine, Caller(), flow="no-such-flow")
    assert res.channel.queue_calls == [("general-q", 0, 600)]


async def test_abandon_keeps_the_record(engine, redis):
    await call(engine, Caller(digits=["1"], queue=QueueOutcome("abandon")))
    [s] = await summaries(redis, 1)
    assert s["outcome"] == "caller_hung_up" and s["emergency"] == "1" and s["queue_status"] == "ABANDONED"
    assert s["number"] == "13800138000"


async def test_a_call_finishes_on_the_version_it_started_with(engine, redis):
    store = FlowStore(redis)
    entered, released, hold = holder()

    first = asyncio.create_task(call(engine, Caller(digits=["2"], queue=QueueOutcome("timeout", wait=hold))))
    await asyncio.wait_for(entered.wait(), 5)
    # Publish a flow whose timeout path hangs up at once; the waiting call must not see it.
    current = await store.get("main")
    new = current.source.replace("    on_timeout: offer_callback\n", "    on_timeout: message_thanks\n", 1)
    assert new != current.source
    res = await store.publish("main", new, by="test")
    await engine.refresh()
    released.set()
    old_call = await first
    assert any("callback-offer" in line for who, line in old_call.transcript if who == "engine")
    second = await call(engine, Caller(digits=["2"], queue=QueueOutcome("timeout")))
    assert not any("callback-offer" in line for who, line in second.transcript if who == "engine")
    s = await summaries(redis, 2)
    assert [x["version"] for x in s] == ["1", str(res.version)]


async def test_many_concurrent_calls(engine, redis):
    results = await asyncio.gather(*(call(engine, Caller(number=f"1380000{i:04d}", digits=["2"]))
                                     for i in range(200)))
    assert all(r.closed_by_engine for r in results)
    s = await summaries(redis, 200)
    assert {x["outcome"] for x in s} == {"completed"} and len({x["uniqueid"] for x in s}) == 200


def _played(res):
    return [c.split()[2] for c in res.channel.commands if c.startswith(("STREAM FILE", "GET DATA"))]


async def test_a_citizen_who_registered_hears_so_on_the_next_call_and_not_after_the_callback_closed(engine, redis):
    """Issue 23's registered redial, through the engine's own parts: registered
    in the flow (the early offer, key 2), recorded by the leader's capture, then
    dialling again: told so and not queued; once the callback is closed,
    dialling again is an ordinary call (offered again, not told)."""
    await redis.set(keys.CONTINGENCY_LEVEL, "2")
    await redis.set(keys.OUTLOOK, orjson.dumps({"queues": {"general-q": {"0": [41, 290.0, 40.0]}}}))
    await engine.refresh()
    number = "13912340000"
    first = await call(engine, Caller(number=number, digits=["2"]))
    assert "12345/admission-offer" in _played(first) and first.channel.queue_calls == []
    store = CallbackStore(redis)

    async def recorded():
        while await store.open_record(number) is None:
            await asyncio.sleep(0.02)
    await asyncio.wait_for(recorded(), 10)          # the capture reads the summary and opens the callback

    again = await call(engine, Caller(number=number, digits=["2"]))
    assert "12345/admission-registered" in _played(again) and "12345/admission-offer" not in _played(again)
    assert again.channel.queue_calls == []

    await callbacks_service.cancel(redis, number, reason="市民来电已办结", by="test")
    third = await call(engine, Caller(number=number, digits=["3"]))     # declines the offer this time
    assert "12345/admission-registered" not in _played(third) and "12345/admission-offer" in _played(third)
    assert third.channel.queue_calls and third.channel.queue_calls[0][0] == "general-q"
    s = await summaries(redis, 3)
    assert [x["already_registered"] for x in s] == ["0", "1", "0"]
    assert [x["callback_accepted"] for x in s] == ["1", "0", "0"]


async def test_drain_lets_calls_in_progress_finish(engine, redis):
    entered, released, hold = holder()

    task = asyncio.create_task(call(engine, Caller(digits=["2"], queue=QueueOutcome("answered", wait=hold))))
    await asyncio.wait_for(entered.wait(), 5)
    stopping = asyncio.create_task(engine.agi.stop(drain_s=5))
    await asyncio.sleep(0.05)
    with pytest.raises(OSError):  # no new calls accepted
        await asyncio.open_connection("127.0.0.1", engine.port)
    released.set()
    res = await task
    assert await stopping == 0 and res.closed_by_engine


async def test_half_open_and_stalled_peers_do_not_spin():
    log = logs.get("test")
    handled = []

    async def handler(env, transport):
        handled.append(env)

    server = FastAgiServer(handler, "127.0.0.1", 0, log)
    await server.start()
    import ivr.agi.fastagi as fa
    old = fa.HEADER_TIMEOUT_S
    fa.HEADER_TIMEOUT_S = 0.5
    try:
        # half a header, then EOF
        r, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(b"agi_network: yes\nagi_channel: Lo")
        w.write_eof()
        assert await asyncio.wait_for(r.read(), 2) == b""
        w.close()
        # a peer that sends nothing: dropped after the header deadline
        r2, w2 = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(r2.read(), fa.HEADER_TIMEOUT_S + 2) == b""
        w2.close()
    finally:
        fa.HEADER_TIMEOUT_S = old
        await server.stop(0)
    assert handled == [] and not server.calls
