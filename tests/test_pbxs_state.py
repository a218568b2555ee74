"""Each PBX of queue/pbxs.yaml and its state on /healthz, /metrics and `ivr
config`: the engine's one AMI link as it is, the others "not connected yet";
an unreachable AMI address is one line at start and stops nothing."""

import asyncio
import socket

from aiohttp.test_utils import TestClient, TestServer

from ivr import logs
from ivr.callback.policy import rank
from ivr.cli.engine import pbx_lines
from ivr.configset.pbxs import parse_pbxs
from ivr.redisdb import keys
from ivr.rehearsal.sim.agi_peer import Caller, SimChannel, run_call
from ivr.rehearsal.sim.ami_server import SimAmiServer
from ivr.runtime.engine import Engine, report_pbxs
from ivr.services import callbacks as callback_service
from ivr.services import pbxs as pbx_service
from ivr.settings import load_settings
from ivr.web.app import make_app
from tests.conftest import copy_project
from tests.engine_proc import EngineProcess
from tests.test_ami_controller import shipped_pbx, until


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def two_pbxs(home, port_b: int) -> None:
    (home / "queue" / "pbxs.yaml").write_text(
        "pbxs:\n"
        "  main:\n    ami: IVR_AMI_URL\n    seats: [Local/101@ivr-seats/n]\n"
        f"  b:\n    ami: ami://ivr@127.0.0.1:{port_b}\n    secret_env: IVR_AMI_SECRET_B\n"
        "    seats: [Local/301@ivr-seats/n]\n", encoding="utf-8")
    (home / "queue" / "lines.yaml").write_text("pbxs:\n  main: {lines: 30}\n  b: {lines: 30}\n", encoding="utf-8")


def test_states_say_what_is_wired() -> None:
    cfg, _ = parse_pbxs("pbxs:\n  main: {ami: IVR_AMI_URL}\n  b: {ami: 'ami://ivr@h', secret_env: S}\n")
    assert cfg is not None
    def got(snap, now=100.0):
        return [(s["name"], s["state"]) for s in pbx_service.states(cfg, snap, now)]
    assert got(None) == [("main", "no_leader"), ("b", "no_leader")]
    # the leader linked to main only (b's secret unset): the single-PBX figures
    assert got({"at": 99.0, "ami_connected": True}) == [("main", "connected"), ("b", "not_linked")]
    assert got({"at": 99.0, "ami_connected": False}) == [("main", "disconnected"), ("b", "not_linked")]
    assert got({"at": 80.0, "ami_connected": True}) == [("main", "no_leader"), ("b", "no_leader")]   # stale
    st = pbx_service.states(cfg, {"at": 0.0, "ami_connected": True}, 0)[1]
    assert st["address"] == "ami://ivr@h:5038" and not st["linked"] and "secret_env" in st["state_text"]
    # several PBXs linked: each one's own link, whatever the others'
    city = {"at": 99.0, "ami_connected": False, "pbxs": {"main": {"connected": False}, "b": {"connected": True}}}
    assert got(city) == [("main", "disconnected"), ("b", "connected")]
    assert [s["linked"] for s in pbx_service.states(cfg, city, 100.0)] == [True, True]
    assert got({"at": 99.0, "pbxs": {"b": {"connected": True}}}) == [("main", "not_linked"), ("b", "connected")]


async def test_an_unreachable_pbx_is_one_line_at_start_and_the_engine_serves(redis, redis_url, project_home,
                                                                          tmp_path):
    home = copy_project(project_home, tmp_path / "home")
    port_b = closed_port()
    two_pbxs(home, port_b)
    server = SimAmiServer(shipped_pbx())
    await server.start()
    env = {"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path / "data"), "IVR_AGI_LISTEN": "127.0.0.1:0",
           "IVR_HTTP_LISTEN": "127.0.0.1:0", "IVR_REDIS_URL": redis_url,
           "IVR_AMI_URL": f"ami://ivr:ivrsecret@127.0.0.1:{server.port}"}
    settings = load_settings(env)
    reach = await report_pbxs(settings, logs.get("test"))
    assert reach["main"] == ""
    assert reach["b"].startswith(f"PBX 'b' 的 AMI 地址 127.0.0.1:{port_b} 无法连接 — ") and "\n" not in reach["b"]
    eng = Engine(settings, redis, logs.get("test"))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(eng.run(stop, ready))
    web = TestClient(TestServer(make_app(redis=redis, settings=settings)))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await until(lambda: eng.controller is not None and eng.controller.ready.is_set(), 10)
        await web.start_server()
        for _ in range(100):
            health = await (await web.get("/healthz")).json()
            if health["pbxs"] and health["pbxs"][0]["state"] == "connected":
                break
            await asyncio.sleep(0.05)
        assert [(p["name"], p["state"], p["linked"]) for p in health["pbxs"]] == [
            ("main", "connected", True), ("b", "not_linked", False)], health
        assert health["pbxs_error"] is None
        assert health["pbxs"][1]["address"] == f"ami://ivr@127.0.0.1:{port_b}"
        text = await (await web.get("/metrics")).text()
        for line in ('ivr_pbx_up{pbx="main"} 1', 'ivr_pbx_up{pbx="b"} 0', 'ivr_pbx_linked{pbx="main"} 1',
                     'ivr_pbx_linked{pbx="b"} 0'):
            assert line in text, text
        res = await run_call("127.0.0.1", eng.agi.port, SimChannel(Caller(digits=["2"])))
        assert res.channel.vars.get("IVR_RESULT") == "DONE"          # the calls carry on
        await server.stop()                                           # the link's PBX goes away
        for _ in range(200):
            health = await (await web.get("/healthz")).json()
            if health["pbxs"][0]["state"] != "connected":
                break
            await asyncio.sleep(0.05)
        assert health["pbxs"][0]["state"] in ("disconnected", "no_leader"), health
        assert 'ivr_pbx_up{pbx="main"} 0' in await (await web.get("/metrics")).text()
    finally:
        await web.close()
        stop.set()
        await asyncio.wait_for(task, 15)
        await server.stop()


async def test_a_wrong_pbx_file_shows_on_healthz(redis, project_home, tmp_path):
    home = copy_project(project_home, tmp_path / "home", ("flows", "queue"))
    (home / "queue" / "pbxs.yaml").write_text("pbxs:\n  a: {ami: 'ami://ivr:pw@h', secret_env: S}\n")
    settings = load_settings({"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path)})
    web = TestClient(TestServer(make_app(redis=redis, settings=settings)))
    await web.start_server()
    try:
        health = await (await web.get("/healthz")).json()
    finally:
        await web.close()
    assert health["pbxs"] == [] and health["pbxs_error"].startswith("queue/pbxs.yaml:2:12: PBX 'a'：AMI 密钥不得")
    assert "pw" not in health["pbxs_error"]


async def test_ivr_config_lists_each_pbx_its_secret_variable_and_reachability(project_home, tmp_path):
    home = copy_project(project_home, tmp_path / "home", ("flows", "queue"))
    port_b = closed_port()
    two_pbxs(home, port_b)
    settings = load_settings({"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path)})
    out = "\n".join(await pbx_lines(settings, {}))
    assert "main: 引擎的 AMI 连接 the engine's link (未配置 unset)" in out
    assert f"b: ami://ivr@127.0.0.1:{port_b}, 密钥 secret IVR_AMI_SECRET_B 未设置 NOT set" in out
    assert f"127.0.0.1:{port_b} 无法连接" in out
    assert "密钥 secret IVR_AMI_SECRET_B 已设置 set" in "\n".join(await pbx_lines(settings, {"IVR_AMI_SECRET_B": "x"}))


async def test_overdue_ready_callbacks_are_counted_by_kind(redis):
    now = 1_800_000_000.0
    await redis.zadd(keys.CALLBACK_READY, {"1": rank("emergency", now - 5), "2": rank("emergency", now + 60),
                                           "3": rank("ordinary", now - 1), "4": rank("courtesy", now - 3600),
                                           "5": rank("ordinary", now + 1)})
    assert await callback_service.overdue_ready(redis, now) == {"emergency": 1, "other": 2}


async def test_ivr_serve_says_one_line_for_an_unreachable_pbx_and_serves_calls(redis_url, project_home, tmp_path):
    home = copy_project(project_home, tmp_path / "home")
    port_b = closed_port()
    two_pbxs(home, port_b)
    eng = EngineProcess(redis_url, tmp_path / "data", serve_args=("--no-console",), IVR_HOME=str(home))
    await eng.start()
    try:
        res = await run_call("127.0.0.1", eng.agi_port, SimChannel(Caller(digits=["2"])))
        assert res.channel.vars.get("IVR_RESULT") == "DONE"           # nothing else stops
        assert eng.proc is not None and eng.proc.poll() is None
        eng.proc.terminate()
        err = (await asyncio.to_thread(eng.proc.communicate, timeout=30))[1].decode()
    finally:
        eng.stop()
    said = [line for line in err.splitlines() if "pbx_unreachable" in line]
    assert len(said) == 1 and f"127.0.0.1:{port_b}" in said[0] and "'b'" in said[0], err
