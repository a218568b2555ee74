"""The console runs in a process of its own (ivr/web/process.py): nothing its
users do shares the calls' event loop. It shows the engine's status as the
engine publishes it, says so when the engine stops turning, dies with the
engine and is restarted by it on the same port."""

import asyncio
import dataclasses
import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ivr.rehearsal.sim.agi_peer import Caller, QueueOutcome, SimChannel, run_call
from ivr.settings import as_environment, load_settings
from tests.engine_proc import EngineProcess, free_port


def _listener_pid(port: int) -> int | None:
    """The process holding a listening TCP socket on ``port`` (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "0A":      # 0A: LISTEN
                inodes.add(f"socket:[{f[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
                return int(pid)
        except OSError:
            continue
    return None


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def _healthz(port: int, timeout_s: float = 20.0) -> dict:
    """/healthz once it answers."""
    def get() -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                return await asyncio.to_thread(get)
            except OSError:
                await asyncio.sleep(0.1)


async def _until(pred, timeout_s: float = 15.0, every_s: float = 0.1):
    async with asyncio.timeout(timeout_s):
        while not (res := await pred()):
            await asyncio.sleep(every_s)
        return res


@pytest.fixture
async def engine(redis_url, tmp_path):
    port = free_port()
    eng = EngineProcess(redis_url, tmp_path / "ivr", IVR_HTTP_LISTEN=f"127.0.0.1:{port}")
    eng.http_port = port
    await eng.start()
    yield eng
    eng.stop()


async def test_the_console_is_a_child_process_showing_the_engines_status(engine):
    body = await _healthz(engine.http_port)
    assert body["ok"] is True and body["engine_responding"] is True and body["calls_in_progress"] == 0
    console = _listener_pid(engine.http_port)
    assert console is not None and console != engine.proc.pid       # not the calls' event loop
    assert _ppid(console) == engine.proc.pid
    assert _listener_pid(engine.agi_port) == engine.proc.pid

    # a call held in the flow shows in the console within a second or two
    hold = asyncio.Event()

    class Holding(SimChannel):
        async def respond(self, line, decide_queue=None):
            if line.startswith("STREAM FILE"):
                await hold.wait()
            return await super().respond(line, decide_queue)

    call = asyncio.create_task(run_call("127.0.0.1", engine.agi_port,
                                        Holding(Caller(digits=["2"], queue=QueueOutcome("answered")))))
    try:
        await _until(lambda: _calls_in_progress(engine.http_port, 1))
    finally:
        hold.set()
        await call
    await _until(lambda: _calls_in_progress(engine.http_port, 0))


async def _calls_in_progress(port: int, n: int) -> bool:
    return (await _healthz(port))["calls_in_progress"] == n


async def test_a_stalled_engine_is_reported_not_responding(engine):
    await _healthz(engine.http_port)
    os.kill(engine.proc.pid, signal.SIGSTOP)
    try:
        body = await _until(lambda: _not_responding(engine.http_port), timeout_s=10)
        assert body["ok"] is False and "not turning" in body["engine_problem"]
    finally:
        os.kill(engine.proc.pid, signal.SIGCONT)
    await _until(lambda: _responding(engine.http_port))


async def _not_responding(port: int) -> dict | None:
    body = await _healthz(port)
    return body if body["engine_responding"] is False else None


async def _responding(port: int) -> bool:
    return (await _healthz(port))["engine_responding"] is True


async def test_a_killed_console_comes_back_on_the_same_port_and_calls_go_on(engine):
    await _healthz(engine.http_port)
    first = _listener_pid(engine.http_port)
    os.kill(first, signal.SIGKILL)
    res = await run_call("127.0.0.1", engine.agi_port, SimChannel(Caller(digits=["2"], queue=QueueOutcome("answered"))))
    assert ('engine', 'SET VARIABLE IVR_RESULT "DONE"\n') in res.transcript
    await _until(lambda: _responding(engine.http_port))
    second = _listener_pid(engine.http_port)
    assert second not in (None, first) and _ppid(second) == engine.proc.pid


async def test_a_killed_engine_takes_its_console_with_it(engine):
    await _healthz(engine.http_port)
    console = _listener_pid(engine.http_port)
    engine.kill()

    async def gone() -> bool:
        return not Path(f"/proc/{console}").exists() or Path(f"/proc/{console}/stat").read_text().split()[2] == "Z"
    await _until(gone, timeout_s=10)
    assert _listener_pid(engine.http_port) is None       # the port is free for the restarted engine


def test_a_child_gets_the_settings_in_force_but_not_the_ami_link(tmp_path):
    env = {"IVR_HOME": str(Path(__file__).resolve().parent.parent), "IVR_DATA_DIR": str(tmp_path),
           "IVR_REDIS_URL": "redis://127.0.0.1:1/3", "IVR_AMI_URL": "ami://ivr:s3cret@127.0.0.1:5038",
           "IVR_TIMEZONE": "Asia/Urumqi", "IVR_DRAIN_S": "7", "IVR_LEADER": "no", "IVR_CONTINGENCY_MODE": "propose",
           "IVR_AUDIT_CHECKPOINT_S": "60", "IVR_LOG_FORMAT": "json"}
    settings = load_settings(env)
    child = load_settings(as_environment(settings))
    assert child.ami is None and "s3cret" not in json.dumps(as_environment(settings))
    assert dataclasses.replace(child, ami=settings.ami) == settings


async def test_ivr_status_lists_every_engine_and_who_is_not_responding(redis):
    from ivr.redisdb import keys
    from ivr.runtime.status import engine_lines, engines

    fresh = {"status": {"calls_in_progress": 3, "calls_handled": 10, "leader": True, "ami_connected": True,
                        "parts": {}, "parts_ok": True, "config_version": 4, "config_error": None,
                        "engine_responding": True}, "mono": time.monotonic()}
    stale = {**fresh, "mono": time.monotonic() - 60}
    await redis.set(keys.engine_status("host:1:aa"), json.dumps(fresh), ex=10)
    await redis.set(keys.engine_status("host:2:bb"), json.dumps(stale), ex=10)
    found = await engines(redis)
    assert list(found) == ["host:1:aa", "host:2:bb"]
    assert found["host:1:aa"]["calls_in_progress"] == 3 and found["host:2:bb"]["engine_responding"] is False
    lines = engine_lines(found)
    assert lines[0] == "引擎 engines: 1/2 正常响应 responding"
    assert "主控 leader" in lines[1] and "NOT RESPONDING" in lines[2]


async def test_ivr_status_shows_the_running_engine(engine, redis_url):
    import subprocess
    import sys

    await _healthz(engine.http_port)
    out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "ivr", "status"], capture_output=True,
                                  text=True, timeout=60, env={**engine.env, "IVR_REDIS_URL": redis_url})
    assert out.returncode == 0, out.stderr
    assert "引擎 engines: 1/1 正常响应 responding" in out.stdout


@pytest.fixture
def suite_logging():
    """Logs set back to the suite's own once capfd has given the real stderr
    back (torn down after capfd: asked for before it). Configured inside the
    test, structlog kept capfd's stream, closed after the test: every later
    log line raised, and the console's error handler with it (a plain-text
    500 in tests/test_console_security.py)."""
    yield
    from ivr import logs
    logs.configure("warning", "console")


async def test_the_console_logs_at_the_level_of_the_process_that_started_it(redis_url, project_home, tmp_path,
                                                                          suite_logging, capfd):
    """The console writes to its engine's stderr. A drill or the demo logs
    only errors, in words, among its Chinese lines; its console must not add
    an info line in JSON ("console_serving" on the demo's screen) because the
    engine's settings say info. ``ivr serve`` configures its logs from the
    same settings, so in production nothing changes."""
    from ivr import logs
    from ivr.runtime.console import ConsoleProcess

    settings = load_settings({"IVR_HOME": str(project_home), "IVR_DATA_DIR": str(tmp_path),
                              "IVR_HTTP_LISTEN": "127.0.0.1:0", "IVR_LOG_LEVEL": "info", "IVR_LOG_FORMAT": "json"})
    seen = {}
    for level in ("info", "error"):
        logs.configure(level, "json" if level == "info" else "console")
        console = ConsoleProcess(settings, redis_url=redis_url, engine_token="t", clock_spec="wall",
                                 audit_key_file=str(tmp_path / "audit.key"),
                                 audit_checkpoint_file=str(tmp_path / "checkpoints.jsonl"), log=logs.get("test"))
        try:
            await console.start()
        finally:
            await console.stop()           # SIGTERM is handled in the console's loop: after its serving line
            logs.configure("warning", "console")
        seen[level] = capfd.readouterr().err
    assert '"event":"console_serving"' in seen["info"]       # asked for: the line is there
    assert "console_serving" not in seen["error"] and '{"' not in seen["error"], seen["error"]
