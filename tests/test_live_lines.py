"""The line limit on a real Asterisk 22 (skipped when no `asterisk` binary is
on PATH): the shipped asterisk/ files, with only paths, ports, secrets and
``IVR_LINES = 2`` changed. Two citizens hold the two lines; the third hears
busy (Originate fails with reason 5, busy) and is recorded as a missed call
with their number; the engine's leader reads the same two lines in use over
AMI. Then, with no engine on the AMI link, a fourth is refused: the PBX keeps
the record (AstDB) and the next engine records it when it logs in."""

import asyncio
import time
from pathlib import Path

import pytest

from ivr import logs
from ivr.callback.store import CallbackStore
from ivr.redisdb import keys
from ivr.runtime.engine import Engine
from ivr.services import status as status_service
from ivr.settings import load_settings
from tests.live_pbx import ASTERISK, asterisk_tree, booted, cli, free_port, start_pbx, stop_pbx, until_cli

pytestmark = [pytest.mark.live_asterisk,
              pytest.mark.skipif(ASTERISK is None, reason="no asterisk binary on PATH")]


async def _start_engine(redis, redis_url, project_home, data: Path, agi_port: int, ami_port: int):
    settings = load_settings({"IVR_HOME": str(project_home), "IVR_DATA_DIR": str(data), "IVR_REDIS_URL": redis_url,
                              "IVR_AGI_LISTEN": f"127.0.0.1:{agi_port}", "IVR_HTTP_LISTEN": "127.0.0.1:0",
                              "IVR_DRAIN_S": "1",     # stopped with citizens in its flows: they go to the queue
                              "IVR_AMI_URL": f"ami://ivr:live-test-secret@127.0.0.1:{ami_port}"})
    engine = Engine(settings, redis, logs.get("live"))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(engine.run(stop, ready))
    await asyncio.wait_for(ready.wait(), 20)
    deadline = time.monotonic() + 60
    while not (engine.controller and engine.controller.ready.is_set()):
        assert time.monotonic() < deadline, "the engine never logged in to the real AMI"
        await asyncio.sleep(0.2)

    async def stop_engine():
        stop.set()
        await asyncio.wait_for(task, 30)
    return engine, stop_engine


async def _until(cond, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        got = await cond()
        if got:
            return got
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.3)


async def test_the_third_caller_hears_busy_and_is_called_back(redis, redis_url, project_home, tmp_path):
    agi_port, ami_port = free_port(), free_port()
    conf = asterisk_tree(project_home, tmp_path, agi_port, ami_port)
    ext = tmp_path / "etc" / "extensions.conf"
    text = ext.read_text()
    assert "IVR_LINES = 0 " in text
    ext.write_text(text.replace("IVR_LINES = 0 ", "IVR_LINES = 2 ", 1))          # only [globals] changed
    daemon = start_pbx(conf)
    stop_engine = None
    try:
        await booted(conf)
        for seat in ("101", "102", "109"):                    # nobody free: the admitted citizens wait
            cli(conf, f"queue pause member Local/{seat}@ivr-seats/n")
        engine, stop_engine = await _start_engine(redis, redis_url, project_home, tmp_path / "ivr", agi_port,
                                                  ami_port)
        model = engine.controller.model

        def lines():
            return model.lines(time.time())

        async def in_use(n):
            ln = lines()
            return ln if ln["known"] and ln["in_use"] == n else None

        assert (await _until(lambda: in_use(0), 30, f"lines never read as 0: {lines()}"))["limit"] == 2
        for n in ("1", "2"):
            res = await engine.controller.originate({
                "Channel": f"Local/{n}@test-citizen", "Context": "test-caller", "Exten": "s", "Priority": "1",
                "ActionID": f"lines-{n}"})
            assert res.ok, res.message
        got = await _until(lambda: in_use(2), 30, f"the engine never read 2 lines in use: {lines()}")
        assert (got["total"], got["free"]) == (30, 0)         # queue/lines.yaml says 30; the dialplan holds 2
        assert got["in_flows"] + got["waiting"] == 2

        async def published():                                # what `ivr status`, the wall and /metrics read
            ln = status_service.lines(await status_service.live(redis))
            return ln if ln["in_use"] == 2 else None
        await _until(published, 10, "the live snapshot never showed 2 lines in use")

        responses: list[dict] = []

        def on_event(event):
            if event.get("Event") == "OriginateResponse" and event.get("ActionID") == "lines-3":
                responses.append(dict(event))
        engine.controller.listeners.append(on_event)
        res = await engine.controller.originate({
            "Channel": "Local/3@test-citizen", "Context": "test-caller", "Exten": "s", "Priority": "1",
            "ActionID": "lines-3"})
        assert res.ok, res.message

        async def busy():
            return responses[0] if responses else None
        answer = await _until(busy, 20, "no OriginateResponse for the third caller")
        assert (answer["Response"], answer["Reason"]) == ("Failure", "5")     # 5: AST_CONTROL_BUSY
        store = CallbackStore(redis)

        async def recorded(number):
            return await store.open_record(number)
        rec = await _until(lambda: recorded("13900000003"), 30, "the busy caller was not recorded")
        assert (rec["reason"], rec["kind"], rec["calls"]) == ("lines_full", "ordinary", "1")
        assert await store.open_record("13900000001") is None   # still waiting: nothing missed yet
        assert await redis.get(keys.lines_blocked("main")) == "1"
        assert "0 results found" in await until_cli(conf, "database show ivr_blocked",
                                                     lambda out: "0 results found" in out, 20)
        got = await _until(lambda: in_use(2), 10, f"lines in use changed: {lines()}")   # the busy one left

        # no engine on the AMI link: the dialplan still records a refused caller, in AstDB
        await stop_engine()
        stop_engine = None
        cli(conf, "channel originate Local/4@test-citizen extension s@test-caller")
        out = await until_cli(conf, "database show ivr_blocked", lambda out: "1 results found" in out, 20)
        assert "|13900000004" in out
        engine, stop_engine = await _start_engine(redis, redis_url, project_home, tmp_path / "ivr2", agi_port,
                                                  ami_port)
        rec = await _until(lambda: recorded("13900000004"), 30, "the refused caller's record was not read")
        assert rec["reason"] == "lines_full"
        await until_cli(conf, "database show ivr_blocked", lambda out: "0 results found" in out, 20)
        assert await redis.get(keys.lines_blocked("main")) == "2"

        cli(conf, "channel request hangup all")
        model = engine.controller.model
        await _until(lambda: in_use(0), 30, f"the lines were never given back: {lines()}")
    finally:
        if stop_engine is not None:
            await stop_engine()
        stop_pbx(daemon)
