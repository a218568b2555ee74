"""The engine's leader with lines: it reads the trunk lines of the simulated
Asterisk (over a real socket), shows them on ``ivr status``, ``/healthz``
and ``/metrics``, records an attempt the dialplan refused as a missed call
visible in ``ivr callbacks list``; a PBX whose lines cannot be read leaves
calls as they were and says so on ``/healthz``."""

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ivr import logs
from ivr.rehearsal.sim.agi_peer import Caller, SimChannel, run_call
from ivr.rehearsal.sim.ami_server import SimAmiServer
from ivr.runtime.engine import Engine
from ivr.services import status as status_service
from ivr.settings import load_settings
from ivr.web.app import make_app
from tests.lines_pbx import lines_pbx
from tests.test_ami_controller import shipped_pbx, until
from tests.test_engine_ami import ivr


async def _engine(redis, redis_url, project_home, tmp_path, pbx):
    server = SimAmiServer(pbx)
    await server.start()
    env = {"IVR_HOME": str(project_home), "IVR_DATA_DIR": str(tmp_path), "IVR_AGI_LISTEN": "127.0.0.1:0",
           "IVR_HTTP_LISTEN": "127.0.0.1:0",
           "IVR_REDIS_URL": redis_url, "IVR_AMI_URL": f"ami://ivr:ivrsecret@127.0.0.1:{server.port}"}
    settings = load_settings(env)
    eng = Engine(settings, redis, logs.get("test"))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(eng.run(stop, ready))
    await asyncio.wait_for(ready.wait(), 10)
    await until(lambda: eng.controller is not None and eng.controller.ready.is_set(), 10)
    web = TestClient(TestServer(make_app(redis=redis, settings=settings)))
    await web.start_server()

    async def close():
        await web.close()
        stop.set()
        await asyncio.wait_for(task, 15)
        await server.stop()
    return server, eng, env, web, close


async def _lines(redis):
    return status_service.lines(await status_service.live(redis))


async def test_the_leader_reads_shows_and_records_lines(redis, redis_url, project_home, tmp_path):
    pbx = lines_pbx(limit="28")
    server, eng, env, web, close = await _engine(redis, redis_url, project_home, tmp_path, pbx)
    try:
        pbx.in_use = 9
        for _ in range(50):
            ln = await _lines(redis)
            if ln["known"] and ln["in_use"] == 9:
                break
            await asyncio.sleep(0.1)
        assert (ln["in_use"], ln["total"], ln["limit"], ln["free"]) == (9, 30, 28, 19), ln
        pbx.refuse("13500000001")                              # the dialplan's lines_full branch
        server.flush()
        await until(lambda: eng.capture is not None and eng.capture.recorded == 1, 10)
        health = await (await web.get("/healthz")).json()
        assert health["lines_known"] is True and health["lines_reason"] == ""
        assert (health["lines_in_use"], health["lines_total"]) == (9, 30)
        text = await (await web.get("/metrics")).text()
        for line in ('ivr_lines_in_use{pbx="main"} 9', 'ivr_lines_total{pbx="main"} 30',
                     'ivr_lines_free{pbx="main"} 19', 'ivr_lines_blocked_total{pbx="main"} 1',
                     '# TYPE ivr_lines_blocked_total counter', 'ivr_lines_known{pbx="main"} 1',
                     'ivr_lines_by_use{pbx="main",use="in_flows"} 9'):
            assert line in text, text
        status = await asyncio.to_thread(ivr, ["status"], env)
        assert status.returncode == 0, status.stderr
        assert "线路 lines (main): 在用 in use 9 / 共 30, 拨号方案上限 IVR_LINES 28; 空闲 free 19" in status.stdout
        assert "线路忙已记录 blocked and recorded 1" in status.stdout
        listed = await asyncio.to_thread(ivr, ["callbacks", "list"], env)
        assert "135******01" in listed.stdout and "lines_full 线路忙未接通" in listed.stdout, listed.stdout
    finally:
        await close()


async def test_a_pbx_whose_lines_cannot_be_read_falls_back_and_says_so(redis, redis_url, project_home, tmp_path):
    pbx = shipped_pbx()          # answers no line count: GROUP_COUNT unknown, or IVR_LINES not in its dialplan
    server, eng, env, web, close = await _engine(redis, redis_url, project_home, tmp_path, pbx)
    try:
        for _ in range(50):
            ln = await _lines(redis)
            if ln["read_at"] is not None:
                break
            await asyncio.sleep(0.1)
        assert not ln["known"] and ln["reason"], ln
        health = await (await web.get("/healthz")).json()
        assert health["lines_known"] is False and health["lines_reason"] == ln["reason"]
        assert "ivr_lines_known{pbx=\"main\"} 0" in await (await web.get("/metrics")).text()
        assert {"lines", "blocked"} <= {p.name for p in eng.leader.parts}
        assert all(p.state == "running" for p in eng.leader.parts)
        # calls go on as before
        res = await run_call("127.0.0.1", eng.agi.port, SimChannel(Caller(digits=["2"])))
        assert res.channel.vars.get("IVR_RESULT") == "DONE"
    finally:
        await close()


@pytest.mark.parametrize("text", ["pbxs:\n  east: {lines: 10}\n  west: {lines: 10}\n"])
def test_lines_for_another_pbx_only_leave_this_one_unknown(text):
    from ivr.admission.lines import figures, parse_lines

    config, _ = parse_lines(text)
    assert config is not None and config.for_link() is None
    f = figures(config.for_link(), None, now=0, connected=True, waiting=0, talking=0, callbacks=0)
    assert "no lines configured for PBX 'main'" in f["reason"]
