"""Nothing staff save can take the hotline down (issue 21): a change is checked
against every file it touches before anything is written, each file has
versions with diffs and rollback, the console reads the configuration in
force, and the engine starts on the last good configuration when the files on
disk are broken."""

import asyncio
import time
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ivr import logs
from ivr.accounts.store import Accounts
from ivr.configset.store import ConfigStore
from ivr.errors import ConfigError, ConfigInvalid
from ivr.runtime.snapshot import LAST_GOOD, open_snapshot
from ivr.services import config as config_service
from ivr.services import contingency
from ivr.settings import load_settings
from ivr.web.app import make_app
from tests.conftest import copy_project

TZ = ZoneInfo("Asia/Shanghai")
PASSWORD = "correct horse battery"
ANN = "prompts/announcements.yaml"
PLAN = "queue/contingency.yaml"


@pytest.fixture
def home(project_home, tmp_path):
    return copy_project(project_home, tmp_path / "home")


@pytest.fixture
async def client(redis, home, tmp_path):
    settings = load_settings({"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path)})
    await Accounts(redis).add("ops", "operations", PASSWORD)
    await Accounts(redis).add("boss", "seat_manager", PASSWORD)
    opened = []

    async def signed_in(user):
        c = TestClient(TestServer(make_app(redis=redis, settings=settings)))
        await c.start_server()
        opened.append(c)
        r = await c.post("/api/login", json={"user": user, "password": PASSWORD})
        return c, {"X-CSRF-Token": (await r.json())["csrf"]}
    yield signed_in
    for c in opened:
        await c.close()


async def test_emptying_the_announcements_a_plan_names_is_refused_and_nothing_is_written(client, redis, home):
    """The fuzzer's three steps: an empty save used to answer 200, empty the file,
    500 every contingency page and stop the next `ivr serve`."""
    before = (home / ANN).read_text(encoding="utf-8")
    c, csrf = await client("ops")
    r = await c.put("/api/announcements", json={"yaml": ""}, headers=csrf)
    assert r.status == 422
    body = await r.json()
    where = [(p["path"], p["message"]) for p in body["problems"]]
    assert any(path == PLAN and "peak" in msg for path, msg in where), where
    assert all(p["line"] >= 1 and p["col"] >= 1 for p in body["problems"])
    assert body["error"].startswith("配置有错误")
    assert (home / ANN).read_text(encoding="utf-8") == before
    assert (await ConfigStore(redis).in_force()).empty       # no version either
    b, bcsrf = await client("boss")
    assert (await b.get("/api/contingency")).status == 200
    src = await open_snapshot(home, TZ, logs.get("test"), ConfigStore(redis), now=time.time())
    assert src.error is None and "peak" in src.current.announcements


async def test_a_broken_file_on_disk_is_a_warning_not_a_500_and_the_plan_in_force_is_shown(client, redis, home):
    await config_service.publish_files(redis, home, TZ, by="test", clock=time.time)
    (home / PLAN).write_text("levels: [\n", encoding="utf-8")        # broken by hand
    b, _ = await client("boss")
    r = await b.get("/api/contingency")
    assert r.status == 200
    assert (await r.json())["levels"], "the plan in force, not the broken file"
    r = await b.get("/api/config")
    assert r.status == 200
    doc = await r.json()
    state = {f["path"]: f["on_disk"] for f in doc["files"]}
    assert state[PLAN] == "differs"
    assert any(p["path"] == PLAN and p["line"] == 2 for p in doc["disk_problems"]), doc["disk_problems"]


async def test_every_save_is_a_version_with_who_and_a_diff_and_rollback_is_one_step(redis, home):
    await config_service.publish_files(redis, home, TZ, by="alice", note="first", clock=time.time)
    text = (home / ANN).read_text(encoding="utf-8")
    changed = text.replace("sets:", "# 供暖季 heating season\nsets:", 1)
    saved = await config_service.save(redis, home, TZ, ANN, changed, by="bob", note="comment", clock=time.time)
    assert saved.versions == {ANN: 2}
    assert (home / ANN).read_text(encoding="utf-8") == changed
    hist = await config_service.history(redis, ANN)
    assert [(v.version, v.by, v.note) for v, _ in hist] == [(2, "bob", "comment"), (1, "alice", "first")]
    assert "+# 供暖季 heating season" in hist[0][1]
    back = await config_service.rollback(redis, home, TZ, ANN, None, by="carol", clock=time.time)
    assert back.versions == {ANN: 3}
    assert (home / ANN).read_text(encoding="utf-8") == text
    entries = [e for _, e in await ConfigStore(redis).audit.entries()]
    assert [(e["action"], e["file"], e["version"], e["by"]) for e in entries if e["file"] == ANN] == [
        ("publish", ANN, 1, "alice"), ("save", ANN, 2, "bob"), ("rollback", ANN, 3, "carol")]
    assert (await ConfigStore(redis).audit.verify()).ok


async def test_a_change_that_breaks_a_flow_in_force_is_refused_with_its_place(redis, home):
    """A queue that a published flow names cannot be removed."""
    from ivr.flow.store import FlowStore
    main = (home / "flows" / "main.yaml").read_text(encoding="utf-8")
    await FlowStore(redis).publish("main", main, by="test")
    queues = (home / "queue" / "queues.yaml").read_text(encoding="utf-8")
    without = "queues:\n  general:\n    asterisk: general-q\nfallback: general\n"
    with pytest.raises(ConfigInvalid) as err:
        await config_service.save(redis, home, TZ, "queue/queues.yaml", without, by="x", clock=time.time)
    assert any("flows/main.yaml" in p.path for p in err.value.problems), [str(p) for p in err.value.problems]
    assert (home / "queue" / "queues.yaml").read_text(encoding="utf-8") == queues


async def test_only_configuration_files_can_be_saved(redis, home):
    from ivr.errors import InvalidInput
    for path in ("../etc/passwd", "config/ivr.toml", "flows/lists/../../x.txt", "asterisk/manager.conf"):
        with pytest.raises(InvalidInput):
            await config_service.save(redis, home, TZ, path, "x", by="x", clock=time.time)


async def test_the_engine_starts_on_the_last_good_configuration_when_a_file_is_broken(redis, home):
    log = logs.get("test")
    first = await open_snapshot(home, TZ, log, ConfigStore(redis), now=1000.0)
    await first.record(ConfigStore(redis), by="engine:a", now=1000.0)
    good_levels = len(first.current.plan.levels)
    (home / PLAN).write_text((home / PLAN).read_text(encoding="utf-8") + "\n  bogus: [\n", encoding="utf-8")
    src = await open_snapshot(home, TZ, log, ConfigStore(redis), now=2000.0)
    assert src.running_on == LAST_GOOD and src.error_since == 2000.0
    assert PLAN in src.error and len(src.current.plan.levels) == good_levels
    plan = await contingency.plan(redis, home, TZ, 2000.0)
    assert len(plan.levels) == good_levels


async def test_a_fresh_install_with_broken_files_still_refuses_to_start(redis, home):
    (home / PLAN).write_text("levels: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=PLAN):
        await open_snapshot(home, TZ, logs.get("test"), ConfigStore(redis), now=0.0)


async def test_two_changes_at_once_never_mix_into_an_unchecked_set(redis, home):
    await config_service.publish_files(redis, home, TZ, by="t", clock=time.time)
    text = (home / ANN).read_text(encoding="utf-8")
    a = text.replace("sets:", "# a\nsets:", 1)
    b = text.replace("sets:", "# b\nsets:", 1)
    results = await asyncio.gather(
        config_service.save(redis, home, TZ, ANN, a, by="a", clock=time.time),
        config_service.save(redis, home, TZ, ANN, b, by="b", clock=time.time), return_exceptions=True)
    assert all(not isinstance(r, Exception) for r in results), results
    versions = await ConfigStore(redis).versions(ANN)
    assert [v.version for v in versions] == [1, 2, 3]
    assert (home / ANN).read_text(encoding="utf-8") == versions[-1].text


async def test_ivr_serve_with_a_plan_broken_on_disk_starts_on_the_last_good_one(redis_url, redis, home, tmp_path):
    """The issue's target: `ivr serve` starts, calls run with the last good plan,
    /healthz names the broken file and line."""
    import json
    import urllib.request

    from ivr.contingency.store import ContingencyStore
    from ivr.rehearsal.sim.agi_peer import Caller, QueueOutcome, SimChannel, run_call
    from tests.engine_proc import EngineProcess, free_port

    async def until(pred, timeout_s=20.0):
        async with asyncio.timeout(timeout_s):
            while not (res := await pred()):
                await asyncio.sleep(0.1)
            return res

    def engine() -> EngineProcess:
        port = free_port()
        eng = EngineProcess(redis_url, tmp_path / "ivr", IVR_HOME=str(home), IVR_HTTP_LISTEN=f"127.0.0.1:{port}")
        eng.http_port = port
        return eng

    first = await engine().start()
    try:
        async def recorded():
            return not (await ConfigStore(redis).in_force()).empty
        await until(recorded)
    finally:
        first.stop()
    (home / PLAN).write_text((home / PLAN).read_text(encoding="utf-8") + "\n  bogus: [\n", encoding="utf-8")
    second = await engine().start()
    try:
        async def health():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{second.http_port}/healthz", timeout=2) as r:
                    return json.loads(r.read())
            except OSError:
                return None
        body = await until(health)
        assert body["config_running_on"] == "last_good" and body["ok"] is False
        assert f"{PLAN}:" in body["config_error"] and body["config_error_since"]
        await ContingencyStore(redis).set_level(2, by="test", reason="drill", how="manual", now=time.time())
        await asyncio.sleep(1.2)        # engines poll the level every 0.5 s
        sim = SimChannel(Caller(number="13800138005", digits=["2"], queue=QueueOutcome(kind="answered")))
        result = await run_call("127.0.0.1", second.agi_port, sim)
        assert any("policy/current" in line for who, line in result.transcript if who == "engine"), \
            "level 2 of the last good plan plays the peak set"
        import aiohttp
        await Accounts(redis).add("boss", "seat_manager", PASSWORD)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{second.http_port}",
                                         cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            r = await s.post("/api/login", json={"user": "boss", "password": PASSWORD})
            assert r.status == 200
            wall = await (await s.get("/api/status")).json()
        assert "config" in wall, wall
        assert wall["config"]["running_on"] == "last_good" and f"{PLAN}:" in wall["config"]["error"]
    finally:
        second.stop()


def test_ivr_files_commands_publish_history_and_rollback(home, redis_url, tmp_path):
    import os
    import subprocess
    import sys
    env = {**os.environ, "IVR_HOME": str(home), "IVR_REDIS_URL": redis_url, "IVR_DATA_DIR": str(tmp_path),
           "IVR_USER": "li"}

    def ivr(*a):
        return subprocess.run([sys.executable, "-m", "ivr", "files", *a], env=env, capture_output=True, text=True,
                              timeout=60)
    first = ivr("publish", "--note", "baseline")
    assert first.returncode == 0 and f"{ANN}: 已发布为 published as v1" in first.stdout, first.stderr
    original = (home / ANN).read_text(encoding="utf-8")
    (home / ANN).write_text("sets: {}\n", encoding="utf-8")       # emptied by hand on disk
    refused = ivr("publish")
    assert refused.returncode == 1 and f"{PLAN}:" in refused.stdout and "peak" in refused.stdout
    assert "未发布" in refused.stderr
    status = ivr("status").stdout
    assert "磁盘上已修改，未发布" in status and "edited on disk" in status
    (home / ANN).write_text(original.replace("sets:", "# 注释\nsets:", 1), encoding="utf-8")
    assert ivr("publish", "--note", "comment").returncode == 0
    hist = ivr("history", ANN, "--diff").stdout
    assert "v2" in hist and "li  — comment" in hist and "+# 注释" in hist
    back = ivr("rollback", ANN)
    assert back.returncode == 0 and "v3" in back.stdout
    assert (home / ANN).read_text(encoding="utf-8") == original
    bad = ivr("history", "../../etc/passwd")
    assert bad.returncode == 1 and "不是可编辑的配置文件" in bad.stderr and "Traceback" not in bad.stderr


async def test_who_may_change_a_file_follows_who_owns_its_folder(client, redis, home):
    c, csrf = await client("ops")
    plan_text = (home / PLAN).read_text(encoding="utf-8")
    r = await c.put("/api/config/file", json={"path": PLAN, "text": plan_text + "\n# x\n"}, headers=csrf)
    assert r.status == 403 and (await r.json())["error"].startswith("这个文件不归")
    assert (home / PLAN).read_text(encoding="utf-8") == plan_text
    r = await c.put("/api/config/file", json={"path": "../x.yaml", "text": "a: 1\n"}, headers=csrf)
    assert r.status == 400
    b, bcsrf = await client("boss")
    r = await b.put("/api/config/file", json={"path": PLAN, "text": plan_text + "\n# x\n", "note": "n"},
                    headers=bcsrf)
    assert r.status == 200 and (await r.json())["versions"] == {PLAN: 2}
    r = await b.get(f"/api/config/file?path={PLAN}")
    assert (await r.json())["text"].endswith("# x\n")
