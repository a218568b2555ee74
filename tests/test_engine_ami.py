"""The engine with its AMI link: the leader process connects to the simulated
Asterisk, publishes the live model, and a level switched from the command line
reaches the next call within a second and moves the seats."""

import asyncio
import os
import subprocess
import sys

import pytest

from ivr import logs
from ivr.rehearsal.sim.agi_peer import Caller, SimChannel, run_call
from ivr.rehearsal.sim.ami_server import SimAmiServer
from ivr.runtime.engine import Engine
from ivr.settings import load_settings
from tests.test_ami_controller import shipped_pbx, until


@pytest.fixture
async def stack(redis, redis_url, project_home, tmp_path):
    pbx = shipped_pbx()
    server = SimAmiServer(pbx)
    await server.start()
    env = {"IVR_HOME": str(project_home), "IVR_DATA_DIR": str(tmp_path), "IVR_AGI_LISTEN": "127.0.0.1:0",
           "IVR_HTTP_LISTEN": "127.0.0.1:0",
           "IVR_REDIS_URL": redis_url, "IVR_AMI_URL": f"ami://ivr:ivrsecret@127.0.0.1:{server.port}"}
    eng = Engine(load_settings(env), redis, logs.get("test"))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(eng.run(stop, ready))
    await asyncio.wait_for(ready.wait(), 10)
    await until(lambda: eng.controller is not None and eng.controller.ready.is_set(), 10)
    yield pbx, server, eng, env
    stop.set()
    await asyncio.wait_for(task, 15)
    await server.stop()


def ivr(args, env):
    return subprocess.run([sys.executable, "-m", "ivr", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


async def test_level_switch_reaches_calls_and_seats(stack):
    pbx, server, eng, env = stack
    before = (await run_call("127.0.0.1", eng.agi.port, SimChannel(Caller(digits=["2"])))).channel
    assert not any("policy/current" in c for c in before.commands)
    res = await asyncio.to_thread(ivr, ["contingency", "set", "2", "--reason", "供暖政策发布"], env)
    assert res.returncode == 0, res.stderr
    await asyncio.sleep(1.0)                       # "within a second on every engine process"
    after = (await run_call("127.0.0.1", eng.agi.port, SimChannel(Caller(digits=["2"])))).channel
    assert any("policy/current" in c for c in after.commands)
    assert after.queue_options == ["cm(ivr-peak)"]     # c: the survey follows
    await until(lambda: "Local/201@ivr-seats/n" in pbx.queues["general-q"].members, 5)
    show = await asyncio.to_thread(ivr, ["contingency", "show"], env)
    assert "应急级别 level in force: 2 高峰 (peak)" in show.stdout and "FAILED" not in show.stdout


async def test_status_shows_live_queues_and_promote_moves_a_caller(stack):
    pbx, server, eng, env = stack
    for s in ("101", "102", "109"):
        pbx.action({"Action": "QueuePause", "Interface": f"Local/{s}@ivr-seats/n", "Paused": "true"})
    pbx.join("general-q", "13800000001")
    late = pbx.join("general-q", "13800000002")
    server.flush()
    await until(lambda: len(eng.controller.model.waiting) == 2)
    await asyncio.sleep(0.5)                       # the snapshot is published every 0.25 s
    res = await asyncio.to_thread(ivr, ["status"], env)
    assert res.returncode == 0, res.stderr
    assert "AMI: 已连接 connected" in res.stdout
    assert "general-q #2   138******02" in res.stdout and "13800000002" not in res.stdout
    res = await asyncio.to_thread(ivr, ["queue", "promote", late.uniqueid], env)
    assert res.returncode == 0, res.stderr
    assert pbx.queues["general-q"].ordered()[0].uniqueid == late.uniqueid


async def test_missed_call_is_captured_called_back_and_audited(stack):
    from ivr.rehearsal.sim.agi_peer import QueueOutcome

    pbx, server, eng, env = stack
    # the general seats paused: the citizen times out in the queue and accepts the callback offer.
    # The reserved seat 109 (general-q's overflow) stays free: the wait estimate is 0, so the
    # courtesy callback is due at once, but a reserved seat takes no callback.
    for s in ("101", "102"):
        pbx.action({"Action": "QueuePause", "Interface": f"Local/{s}@ivr-seats/n", "Paused": "true"})
    server.flush()
    await until(lambda: eng.controller.model.seats["Local/102@ivr-seats/n"].paused)
    assert eng.controller.model.estimated_wait("general-q", eng.clock.now()) == 0.0
    await run_call("127.0.0.1", eng.agi.port,
                   SimChannel(Caller(number="13312345678", digits=["2", "1"], queue=QueueOutcome("timeout"))))
    await until(lambda: eng.capture is not None and eng.capture.recorded == 1, 5)
    assert pbx.originated == []                    # no idle unreserved seat: nobody is dialled
    pbx.action({"Action": "QueuePause", "Interface": "Local/102@ivr-seats/n", "Paused": "false"})
    pbx.action({"Action": "QueuePause", "Interface": "Local/101@ivr-seats/n", "Paused": "false"})
    server.flush()
    await until(lambda: bool(pbx.originated), 10)  # courtesy callback: estimated wait 0 here
    orig = pbx.originated[0]
    assert orig["Exten"] == "13312345678" and orig["Channel"] != "Local/109@ivr-seats/n"
    pbx.originate_result(orig, True)
    pbx.user_event("IvrCallback", orig["Channel"], Id="1", DialStatus="ANSWER")
    server.flush()
    await until(lambda: not eng.scheduler.active, 5)
    lst = await asyncio.to_thread(ivr, ["callbacks", "show", "1"], env)
    assert "closed_reason   reached" in lst.stdout and "133******78" in lst.stdout
    assert "13312345678" not in lst.stdout
    # the trail reads as a timeline in local time with Chinese labels, not codes
    for label in ("已记录漏话", "已分配坐席", "回拨结果", "已接通", "已办结", "回拨接通"):
        assert label in lst.stdout, lst.stdout
    # the seat as staff know it: the queue member's name the attempt recorded, never the interface dialled
    seat = "Seat101" if orig["Channel"] == "Local/101@ivr-seats/n" else "Seat102"
    assert f"坐席 {seat}" in lst.stdout and "Local/10" not in lst.stdout, lst.stdout
    entries = [e for _, e in await eng.scheduler.store.audit.entries("-", "+")]
    assert [e.get("seat_name") for e in entries if e["kind"] in ("assigned", "attempt")] == [seat, seat]
    import datetime as dt
    today = dt.datetime.now(eng.settings.timezone).date().isoformat()
    rep = await asyncio.to_thread(ivr, ["callbacks", "report", "--from", today, "--to", today, "--json"], env)
    figures = __import__("json").loads(rep.stdout)
    assert (figures["callbacks"], figures["called_back"], figures["reached"], figures["reached_within_deadline"]) \
        == (1, 1, 1, 1)
    # the hotline's figures: the one call that wanted a person did not reach one live,
    # the citizen was reached by the callback within its deadline
    h = figures["hotline"]
    assert (h["calls_wanting_person"], h["calls_answered_live"], h["live_answer_rate_pct"]) == (1, 0, 0.0)
    assert (h["citizens_wanting_person"], h["citizens_reached"], h["broad_answer_rate_pct"]) == (1, 1, 100.0)
    assert h["callbacks_made_per_seat"] == 1.0 and h["callbacks_reached_per_seat"] == 1.0
    ver = await asyncio.to_thread(ivr, ["audit", "verify"], env)
    assert ver.returncode == 0 and "callbacks: 完整 intact, 4 entries" in ver.stdout


async def test_a_caller_at_peak_hears_the_expected_wait_and_is_offered_a_callback_in_the_first_seconds(stack):
    """Issue 23 end to end: the leader's AMI model estimates the wait of a
    caller joining now and publishes it; the next call's admit step reads it,
    says the wait and offers a callback; the estimate is kept with the call."""
    pbx, server, eng, env = stack
    for s in ("101", "102", "109"):                # every seat paused: a long line and no seat
        pbx.action({"Action": "QueuePause", "Interface": f"Local/{s}@ivr-seats/n", "Paused": "true"})
    for i in range(8):
        pbx.join("general-q", f"1380000001{i}")
    server.flush()
    await until(lambda: len(eng.controller.model.waiting) == 8)
    from ivr.redisdb import keys
    await until(lambda: eng.live.outlook.get("general-q", {}).get(0, (0,))[0] == 8, 5)
    res = await asyncio.to_thread(ivr, ["contingency", "set", "2", "--reason", "高峰演练"], env)
    assert res.returncode == 0, res.stderr
    await asyncio.sleep(1.0)
    ahead, wait_s, _ = eng.live.outlook["general-q"][0]
    assert wait_s > 60, "no seat serving: the wait is beyond level 2's admission_wait_s"
    ch = (await run_call("127.0.0.1", eng.agi.port, SimChannel(Caller(number="13912340000", digits=["2"])))).channel
    played = [c.split()[2] for c in ch.commands if c.startswith(("STREAM FILE", "GET DATA"))]
    # the peak path: a short greeting, the wait, the offer (the place is said to whoever waits)
    assert played[0] == "12345/peak-welcome" and played[1].startswith("12345/queue/queue-wait-"), played
    assert played[2].startswith("12345/numbers/") and played[3:5] == ["12345/queue/queue-minutes",
                                                                      "12345/admission-offer"], played
    assert ch.queue_calls == []                    # registered: hung up, the line freed
    assert await eng.redis.get(keys.OUTLOOK)
    await until(lambda: eng.capture is not None and eng.capture.recorded >= 1, 5)


async def test_the_wall_shows_the_wait_a_caller_joining_now_is_told(stack):
    """What staff see is what citizens hear: the wall and `ivr status` read the
    live snapshot's estimated wait, a caller joining at that moment is told the
    outlook published with it. The wall used to show a plain figure of its own
    (the median recent wait times the callers beyond free seats)."""
    from ivr.redisdb import keys

    pbx, server, eng, env = stack
    pbx.action({"Action": "QueuePause", "Interface": "Local/109@ivr-seats/n", "Paused": "true"})
    for i in range(6):                             # two seats take a call each, four callers wait
        pbx.join("general-q", f"1370000000{i}")
    pbx.dispatch()
    server.flush()
    await until(lambda: len(eng.controller.model.waiting) == 4)
    import json

    async def settled() -> dict | None:
        """The wall's figures once nothing changes (two publishes' time apart) and the engine has read them."""
        first = await eng.redis.mget(keys.LIVE, keys.OUTLOOK)
        await asyncio.sleep(0.3)
        if None in first or await eng.redis.mget(keys.LIVE, keys.OUTLOOK) != first:
            return None
        wall, published = json.loads(first[0])["queues"]["general-q"], json.loads(first[1])["queues"]["general-q"]
        engine_read = list(eng.live.outlook.get("general-q", {}).get(0, ()))
        return wall if wall["waiting"] == 4 and engine_read == published["0"] else None
    end = asyncio.get_running_loop().time() + 10
    while (wall := await settled()) is None:
        assert asyncio.get_running_loop().time() < end, "the figures never settled"
    ahead, told_s, _ = eng.live.outlook["general-q"][0]
    ch = (await run_call("127.0.0.1", eng.agi.port, SimChannel(Caller(number="13912340001", digits=["2"])))).channel
    assert eng.live.outlook["general-q"][0] == (ahead, told_s, _)   # the call read this one
    said = [c for c in ch.commands if "IVR_WAIT_EST" in c]
    assert len(said) == 1 and f"{ahead + 1},{told_s:.0f}" in said[0], said
    assert ahead == 4 and told_s > 0                # both seats busy: a wait, not a seat at once
    assert wall["estimated_wait_s"] == told_s      # the wall's "预计 est. s", and `ivr status`'s (the same snapshot)
