"""Against a real Asterisk (skipped when no `asterisk` binary is on PATH): the
shipped asterisk/ configuration, with only paths, ports and secrets changed,
sends a citizen's call over FastAGI to the engine, which runs flows/main.yaml
and queues the call; a seat (a Local channel that answers) takes it; the
engine's AMI controller sees it all."""

import asyncio
import json
import time

import pytest

from ivr import logs
from ivr.calls.service import read_summary
from ivr.redisdb import keys
from ivr.runtime.engine import Engine
from ivr.settings import load_settings
from tests.live_pbx import ASTERISK, asterisk_tree, booted, cli, free_port, start_pbx, stop_pbx, until_cli

pytestmark = [pytest.mark.live_asterisk,
              pytest.mark.skipif(ASTERISK is None, reason="no asterisk binary on PATH")]

async def test_a_real_call_through_the_shipped_dialplan(redis, redis_url, project_home, tmp_path):
    agi_port, ami_port = free_port(), free_port()
    conf = asterisk_tree(project_home, tmp_path, agi_port, ami_port)
    daemon = start_pbx(conf)
    settings = load_settings({"IVR_HOME": str(project_home), "IVR_DATA_DIR": str(tmp_path / "ivr"),
                              "IVR_REDIS_URL": redis_url, "IVR_AGI_LISTEN": f"127.0.0.1:{agi_port}",
                              "IVR_HTTP_LISTEN": "127.0.0.1:0",
                              "IVR_AMI_URL": f"ami://ivr:live-test-secret@127.0.0.1:{ami_port}"})
    engine = Engine(settings, redis, logs.get("live"))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(engine.run(stop, ready))
    try:
        await asyncio.wait_for(ready.wait(), 20)
        deadline = time.monotonic() + 60
        while not (engine.controller and engine.controller.ready.is_set()):
            assert time.monotonic() < deadline, "the engine never logged in to the real AMI"
            await asyncio.sleep(0.2)
        assert {"general-q", "emergency-q"} <= engine.controller.model.queue_names
        res = await engine.controller.originate({
            "Channel": "Local/s@test-caller", "Context": "ivr-12345", "Exten": "12345", "Priority": "1",
            "CallerID": '"Citizen" <13800138000>', "ActionID": "live-1"})
        assert res.ok, res.message
        summary = None
        while summary is None:
            assert time.monotonic() < deadline + 120, "no call summary from the real call"
            await engine.summaries.flush()
            for _, fields in await redis.xrange(keys.CALLS):
                summary = read_summary(fields)
            await asyncio.sleep(0.5)
        assert summary["number"] == "13800138000" and summary["flow"] == "main"
        assert summary["queue_status"] == "ANSWERED", json.dumps(summary, ensure_ascii=False)
        assert summary["member"] in ("Local/101@ivr-seats/n", "Local/102@ivr-seats/n")
        snap = engine.controller.model.snapshot(time.time())
        assert snap["queues"]["general-q"]["answered"] == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        stop_pbx(daemon)


async def test_engine_killed_during_the_greeting_the_caller_still_reaches_a_seat(redis_url, project_home, tmp_path):
    """Fact 10: SIGKILL of the engine while the greeting plays ends AGI() with
    AGISTATUS=SUCCESS; the shipped dialplan must still queue the citizen."""
    from tests.engine_proc import EngineProcess

    engine = EngineProcess(redis_url, tmp_path / "ivr")
    ami_port = free_port()
    conf = asterisk_tree(project_home, tmp_path, engine.agi_port, ami_port)
    daemon = start_pbx(conf)
    try:
        await engine.start()
        await until_cli(conf, "core show version", lambda out: "Asterisk" in out, 60)
        await booted(conf)
        out = cli(conf, "channel originate Local/s@test-caller extension 12345@ivr-12345")
        assert "rror" not in out, out
        await asyncio.sleep(3)                     # the 7 s greeting is playing
        assert engine.proc.poll() is None
        engine.kill()
        # the citizen reaches general-q and a seat answers: one completed call
        out = await until_cli(conf, "queue show general-q", lambda out: "C:1," in out, 60)
        assert "A:0" in out, out
    finally:
        engine.stop()
        stop_pbx(daemon)


async def test_engine_killed_while_callers_wait_their_missed_calls_are_still_recorded(redis, redis_url, project_home,
                                                                                     tmp_path):
    """Fact 11: callers inside Queue() when the engine dies stay in the queue;
    when they hang up, AMI still reports it, and the restarted leader records
    both missed calls."""
    from ivr.callback.store import CallbackStore
    from tests.engine_proc import EngineProcess

    ami_port = free_port()
    engine = EngineProcess(redis_url, tmp_path / "ivr", leader=True,
                           IVR_AMI_URL=f"ami://ivr:live-test-secret@127.0.0.1:{ami_port}")
    conf = asterisk_tree(project_home, tmp_path, engine.agi_port, ami_port)
    daemon = start_pbx(conf)
    restarted = None
    try:
        await booted(conf)
        for seat in ("101", "102", "109"):                    # nobody free: the citizens wait
            cli(conf, f"queue pause member Local/{seat}@ivr-seats/n")
        await engine.start()
        for n in ("1", "2"):
            cli(conf, f"channel originate Local/{n}@test-citizen extension s@test-caller")
        await until_cli(conf, "queue show general-q", lambda out: "has 2 calls" in out, 120)
        engine.kill()
        restarted = await EngineProcess(redis_url, tmp_path / "ivr2", leader=True,
                                        IVR_AMI_URL=f"ami://ivr:live-test-secret@127.0.0.1:{ami_port}").start()
        await asyncio.sleep(10)                                # the new leader logs in to AMI (lock lease 6 s)
        out = cli(conf, "queue show general-q")
        assert "has 2 calls" in out, out                       # still waiting although their engine died
        cli(conf, "channel request hangup all")
        store = CallbackStore(redis)
        deadline = time.monotonic() + 60
        while True:
            recs = [await store.open_record(f"139000000{n:02d}") for n in (1, 2)]
            if all(recs):
                break
            assert time.monotonic() < deadline, f"missed calls not recorded: {recs}"
            await asyncio.sleep(0.5)
        assert all(r["reason"] == "abandoned" and r["calls"] == "1" for r in recs), recs
    finally:
        engine.stop()
        if restarted is not None:
            restarted.stop()
        stop_pbx(daemon)


async def test_the_shipped_dialplan_counts_trunk_lines_for_the_engine(tmp_path, project_home):
    """The lines mechanism of docs/drill.md on a real Asterisk: the shipped
    [ivr-12345] puts each citizen's channel in GROUP(ivr)=trunk, Dial's
    b(ivr-trunk-line^s^1) puts a callback's citizen leg there too, and AMI
    Getvar of GROUP_COUNT(trunk@ivr) and of IVR_LINES reads the count and
    the total (tests/capture_line_count.py; its output is the fixture
    ami/session-line-count.json)."""
    from tests.capture_line_count import LINES, capture

    log = await capture(tmp_path, project_home)
    got = [(m["action"].get("Variable"), m["msg"].get("Value")) for m in log[1:]
           if m["action"].get("Action") == "Getvar" and m["msg"]["Response"] == "Success"]
    counts = [v for k, v in got if k == "GROUP_COUNT(trunk@ivr)"]
    assert counts == ["0", "2", "3", "0"], got
    assert ("IVR_LINES", str(LINES)) in got
