"""The console on a host of its own: ``ivr console`` serves the console and
the HTTP API with no engine beside it, reading the same Redis, and ``ivr
serve --no-console`` (or IVR_CONSOLE=no) runs an engine without one. The
standalone console shows the engines' status as they publish it (calls,
configuration errors), checks its audit key like every process, and judges a
record's age by Redis's TTL where monotonic clocks of two hosts cannot be
compared."""

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import aiohttp
import pytest

from ivr.accounts.store import Accounts
from ivr.audit import keycheck
from ivr.audit import signing as audit_keys
from ivr.clock import WallClock
from ivr.redisdb import keys
from ivr.rehearsal.sim.agi_peer import Caller, QueueOutcome, SimChannel, run_call
from ivr.runtime.status import FleetStatus, PublishedStatus, boot_id
from tests.conftest import copy_project
from tests.engine_proc import ROOT, EngineProcess, free_port
from tests.test_console_process import _listener_pid, _ppid

PASSWORD = "correct horse battery"
PLAN = "queue/contingency.yaml"


def _get(port: int, path: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())
    except OSError:
        return None


async def _until(pred, timeout_s: float = 20.0):
    async with asyncio.timeout(timeout_s):
        while not (res := await pred()):
            await asyncio.sleep(0.1)
        return res


class ConsoleProcess:
    """``ivr console`` as its own process (in production: on another host)."""

    def __init__(self, redis_url: str, data_dir, **env: str) -> None:
        self.port = free_port()
        self.env = {**os.environ, "IVR_HOME": str(ROOT), "IVR_DATA_DIR": str(data_dir), "IVR_REDIS_URL": redis_url,
                    "IVR_HTTP_LISTEN": f"127.0.0.1:{self.port}", "IVR_LOG_LEVEL": "warning",
                    "IVR_LOG_FORMAT": "json", **env}
        self.proc = subprocess.Popen([sys.executable, "-m", "ivr", "console"], env=self.env, cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    async def health(self, pred=lambda body: True) -> dict:
        async def ready():
            assert self.proc.poll() is None, self.proc.stderr.read()
            body = await asyncio.to_thread(_get, self.port, "/healthz")
            return body if body is not None and pred(body) else None
        return await _until(ready)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def home(project_home, tmp_path):
    return copy_project(project_home, tmp_path / "home")


async def test_a_console_of_its_own_shows_the_engine_and_signs_in(redis, redis_url, tmp_path, home, audit_key):
    engine_http = free_port()
    engine = EngineProcess(redis_url, tmp_path / "engine", serve_args=("--no-console",), IVR_HOME=str(home),
                           IVR_HTTP_LISTEN=f"127.0.0.1:{engine_http}")
    await engine.start()
    console = ConsoleProcess(redis_url, tmp_path / "console", IVR_HOME=str(home))
    try:
        assert _listener_pid(engine_http) is None            # no console beside the engine
        body = await console.health(lambda b: b["engine_responding"] is True)
        assert body["ok"] is True and body["calls_in_progress"] == 0 and body["redis"] is True
        assert body["audit_key_fingerprint"] == keycheck.short(keycheck.fingerprint(audit_key.key))
        assert list(body["engines"]) and all(e["responding"] for e in body["engines"].values())
        pid = _listener_pid(console.port)
        assert pid == console.proc.pid and _ppid(pid) == os.getpid()     # not the engine's child
        assert "控制台已启动 console serving on http://127.0.0.1:" in console.proc.stdout.readline()

        # a call the engine holds shows on the console of its own
        hold = asyncio.Event()

        class Holding(SimChannel):
            async def respond(self, line, decide_queue=None):
                if line.startswith("STREAM FILE"):
                    await hold.wait()
                return await super().respond(line, decide_queue)

        call = asyncio.create_task(run_call("127.0.0.1", engine.agi_port,
                                            Holding(Caller(digits=["2"], queue=QueueOutcome("answered")))))
        try:
            await console.health(lambda b: b["calls_in_progress"] == 1)
        finally:
            hold.set()
            await call
        await console.health(lambda b: b["calls_in_progress"] == 0)

        # the engine's configuration error reaches /healthz and the wall's /api/status
        (home / PLAN).write_text((home / PLAN).read_text(encoding="utf-8") + "\n  bogus: [\n", encoding="utf-8")
        body = await console.health(lambda b: b["config_error"] is not None)
        assert f"{PLAN}:" in body["config_error"] and body["ok"] is False
        await Accounts(redis).add("boss", "seat_manager", PASSWORD)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{console.port}",
                                         cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            r = await s.post("/api/login", json={"user": "boss", "password": PASSWORD})
            assert r.status == 200, await r.text()
            r = await s.get("/api/status")
            assert r.status == 200
            wall = await r.json()
        assert wall["level"] == 0 and PLAN in wall["config"]["error"]
    finally:
        console.stop()
        engine.stop()


async def test_a_console_with_another_key_refuses_to_start(redis_url, tmp_path, audit_key):
    engine = EngineProcess(redis_url, tmp_path / "engine", IVR_CONSOLE="no")
    await engine.start()
    other = tmp_path / "other" / "audit.key"
    audit_keys.load_or_create_key(other)
    console = ConsoleProcess(redis_url, tmp_path / "console", IVR_AUDIT_KEY_FILE=str(other))
    try:
        code = await asyncio.to_thread(console.proc.wait, 60)
        err = console.proc.stderr.read()
        assert code == 2 and err.startswith("ivr: 审计密钥不一致，拒绝启动") and "Traceback" not in err
        assert keycheck.short(keycheck.fingerprint(audit_key.key)) in err
        assert _listener_pid(console.port) is None
    finally:
        console.stop()
        engine.stop()


def test_ivr_console_needs_the_engines_redis(tmp_path):
    env = {**os.environ, "IVR_HOME": str(ROOT), "IVR_DATA_DIR": str(tmp_path), "IVR_REDIS_URL": ""}
    out = subprocess.run([sys.executable, "-m", "ivr", "console"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "IVR_REDIS_URL" in out.stderr and "Traceback" not in out.stderr


def _record(mono: float, boot: str, responding: bool = True, **status) -> str:
    st = {"calls_in_progress": 2, "calls_handled": 5, "leader": False, "ami_connected": False, "parts": {},
          "parts_ok": True, "config_version": 1, "config_error": None, "engine_responding": responding,
          "clock": "wall", **status}
    return json.dumps({"status": st, "mono": mono, "boot": boot})


async def test_the_age_of_another_hosts_record_comes_from_redis_not_its_clock(redis):
    """Monotonic times of another boot mean nothing here: a fresh record from
    another host is current whatever its ``mono``; its key's TTL tells its age."""
    other_boot = "00000000-0000-0000-0000-000000000000"
    await redis.set(keys.engine_status("far:1:aa"), _record(time.monotonic() - 3600, other_boot),
                    px=keys.ENGINE_STATUS_TTL_S * 1000)
    await redis.set(keys.engine_status("far:2:bb"), _record(time.monotonic() + 3600, other_boot),
                    px=(keys.ENGINE_STATUS_TTL_S - 5) * 1000)       # written 5 s ago
    fresh = PublishedStatus(redis, "far:1:aa", WallClock())
    old = PublishedStatus(redis, "far:2:bb", WallClock())
    await fresh.read()
    await old.read()
    assert fresh.as_dict()["engine_responding"] is True and fresh.calls_in_progress == 2
    assert old.as_dict()["engine_responding"] is False and "5 s old" in old.as_dict()["engine_problem"]


async def test_the_fleet_view_sums_the_engines_and_takes_the_leaders_parts(redis):
    now, here = time.monotonic(), boot_id()           # records of engines on this host
    parts = {"ami": {"state": "running", "restarts": 0}}
    await redis.set(keys.engine_status("h1:1:aa"), _record(now, here, leader=True, ami_connected=True, parts=parts),
                    ex=10)
    await redis.set(keys.engine_status("h2:2:bb"), _record(now, here, config_error="queue/x.yaml:1:1: bad"), ex=10)
    fleet = FleetStatus(redis, WallClock(), audit_key="abc")
    await fleet.read()
    st = fleet.as_dict()
    assert st["calls_in_progress"] == 4 and st["calls_handled"] == 10 and fleet.calls_in_progress == 4
    assert st["leader"] is True and st["ami_connected"] is True and st["parts"] == parts and st["parts_ok"] is True
    assert fleet.leader_health()["token"] == "h1:1:aa"
    assert fleet.config_error == "h2:2:bb: queue/x.yaml:1:1: bad"
    assert st["audit_key_fingerprint"] == "abc" and set(st["engines"]) == {"h1:1:aa", "h2:2:bb"}
    await redis.set(keys.engine_status("h3:3:cc"), _record(now - 60, here), ex=10)        # stopped turning
    await fleet.read()
    st = fleet.as_dict()
    assert st["parts_ok"] is False and "h3:3:cc" in st["engine_problem"] and st["calls_in_progress"] == 4
    await redis.delete(*[keys.engine_status(t) for t in ("h1:1:aa", "h2:2:bb", "h3:3:cc")])
    await fleet.read()
    assert fleet.as_dict()["engine_responding"] is False and fleet.calls_in_progress == 0
