"""Prompts everywhere (issue 20): prompt versions in the shared Redis, each PBX
host's sync into its sounds folder, publishing refused while a known PBX lacks
a prompt a flow names, and voice messages recorded on one PBX played from the
console of any host. Real Redis throughout; real files in real folders."""

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ivr import logs
from ivr.accounts.store import Accounts
from ivr.callback.capture import MissedCallCapture
from ivr.callback.policy import Policy
from ivr.callback.store import CallbackStore
from ivr.errors import FlowInvalid, InvalidInput
from ivr.prompts.messages import MessageStore
from ivr.prompts.store import MAX_BLOB_BYTES, PromptStore, sha256_of
from ivr.prompts.sync import PromptSync
from ivr.redisdb import keys
from ivr.services import flows as flow_service
from ivr.services import prompts as prompt_service
from ivr.settings import load_settings
from ivr.web.app import make_app
from tests.conftest import ROOT, copy_project

LOG = logs.get("test")
PASSWORD = "correct horse battery"
HEATING_FLOW = ("description: 供暖政策 heating policy\nstart: hello\nsteps:\n  hello:\n    type: play\n"
                "    prompts: [policy/heating]\n    next: end\n")


def _wav(freq: int = 440, ms: int = 600) -> bytes:
    """A short 8 kHz mono tone, as the converter writes prompts."""
    import math
    frames = bytes(b for i in range(8 * ms) for b in
                   int(8000 * math.sin(2 * math.pi * freq * i / 8000)).to_bytes(2, "little", signed=True))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)
    return buf.getvalue()


@pytest.fixture
def home(project_home, tmp_path):
    return copy_project(project_home, tmp_path / "home")


def _sync(redis, tmp_path, pbx, **kw):
    return PromptSync(redis, pbx=pbx, sounds_dir=tmp_path / f"sounds-{pbx}", log=LOG,
                      messages_dir=kw.pop("messages_dir", None), host=f"host-{pbx}", **kw)


async def test_a_prompt_is_stored_once_by_its_content_in_numbered_versions(redis):
    store = PromptStore(redis)
    one, two = _wav(440), _wav(660)
    v1 = await store.put("policy/heating", one, by="ops", at=time.time())
    again = await store.put("policy/heating", one, by="ops", at=time.time())
    v2 = await store.put("policy/heating", two, by="ops", at=time.time())
    assert (v1.version, v1.changed, again.version, again.changed, v2.version, v2.changed) == (1, True, 1, False,
                                                                                               2, True)
    assert await store.current() == {"policy/heating": sha256_of(two)}
    assert await store.blob(v1.sha256) == one and await store.blob(v2.sha256) == two      # bytes, not text
    assert [v["version"] for v in await store.versions("policy/heating")] == [1, 2]
    with pytest.raises(InvalidInput, match="over the shared store's limit"):
        await store.put("huge", b"\0" * (MAX_BLOB_BYTES + 1), by="ops", at=time.time())
    with pytest.raises(InvalidInput):
        await store.put("../etc/passwd", one, by="ops", at=time.time())


async def test_two_uploads_of_one_prompt_at_once_get_two_versions(redis):
    store = PromptStore(redis)
    got = await asyncio.gather(*(store.put("welcome", _wav(300 + 10 * i), by="ops", at=time.time())
                                 for i in range(8)))
    assert sorted(v.version for v in got) == list(range(1, 9))


async def test_pushed_prompts_sync_into_two_pbxs_and_the_flow_publishes(redis, home, tmp_path):
    pushed = await prompt_service.push(redis, home, by="ops")
    assert len(pushed.versions) == len(list((home / "prompts").rglob("*.wav"))) and not pushed.skipped
    await prompt_service.upload(redis, home, "policy/heating", _wav(), "heating.wav", by="ops")
    (home / "flows" / "heating.yaml").write_text(HEATING_FLOW)
    for pbx in ("pbx-a", "pbx-b"):
        res = await _sync(redis, tmp_path, pbx).once()
        assert not res.missing and res.held == len(pushed.versions) + 1
        assert (tmp_path / f"sounds-{pbx}" / "policy" / "heating.wav").read_bytes() == \
            (home / "prompts" / "policy" / "heating.wav").read_bytes()
        assert (tmp_path / f"sounds-{pbx}" / "welcome.wav").read_bytes() == (home / "prompts" / "welcome.wav").read_bytes()
    status = {r["pbx"]: r for r in await prompt_service.pbx_status(redis)}
    assert set(status) == {"pbx-a", "pbx-b"} and status["pbx-b"]["lacking"] == [] and status["pbx-b"]["host"] == "host-pbx-b"
    todo = await flow_service.publishable_now(redis, home, [])
    assert not todo.problems or all(p.warning for p in todo.problems)
    todo.require_valid()
    res, _ = await flow_service.publish_text(redis, home, "heating", HEATING_FLOW, by="ops")
    assert res.version == 1
    again = await _sync(redis, tmp_path, "pbx-a").once()      # nothing changed: nothing written
    assert again.written == [] and again.held == len(pushed.versions) + 1


async def test_a_flow_is_not_published_while_a_pbx_lacks_a_prompt_it_names(redis, redis_url, home, tmp_path):
    await prompt_service.push(redis, home, by="ops")
    for pbx in ("pbx-a", "pbx-b"):
        await _sync(redis, tmp_path, pbx).once()
    # a new recording: PBX A syncs it, PBX B has not yet
    await prompt_service.upload(redis, home, "policy/heating", _wav(), "heating.wav", by="ops")
    await _sync(redis, tmp_path, "pbx-a").once()
    with pytest.raises(FlowInvalid) as exc:
        await flow_service.publish_text(redis, home, "heating", HEATING_FLOW, by="ops")
    errors = [str(p) for p in exc.value.problems if not p.warning]
    assert len(errors) == 1, errors
    assert errors[0].startswith("flows/heating.yaml:6:15: ")          # where the flow names it
    assert errors[0].startswith("flows/heating.yaml:6:15: 播放 'hello'：交换机 'pbx-b' 还没有录音 'policy/heating'（当前版本）")
    assert " — play 'hello': PBX 'pbx-b' lacks prompt 'policy/heating' at the version in force" in errors[0]
    assert await redis.get(keys.flow_current("heating")) is None      # nothing published
    # the command line says the same and publishes nothing
    (home / "flows" / "heating.yaml").write_text(HEATING_FLOW)
    todo = await flow_service.publishable_now(redis, home, ["heating"])
    with pytest.raises(InvalidInput, match="heating"):
        todo.require_valid()
    assert any("pbx-b" in str(p) and str(p).startswith("flows/heating.yaml:6:15") for p in todo.problems)
    env = {**os.environ, "IVR_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT), "IVR_HOME": str(home),
           "IVR_DATA_DIR": str(tmp_path / "var")}
    cli = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "ivr", "flows", "publish", "heating"],
                                  env=env, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1, cli.stderr
    assert "flows/heating.yaml:6:15: 播放 'hello'：交换机 'pbx-b' 还没有录音 'policy/heating'" in cli.stdout
    assert "未发布 heating" in cli.stderr
    assert await redis.get(keys.flow_current("heating")) is None
    # B syncs: published
    await _sync(redis, tmp_path, "pbx-b").once()
    res, _ = await flow_service.publish_text(redis, home, "heating", HEATING_FLOW, by="ops")
    assert res.changed
    # a new version of the prompt is again missing on B until it syncs; a retired PBX can be forgotten
    await prompt_service.upload(redis, home, "policy/heating", _wav(880), "heating2.wav", by="ops")
    await _sync(redis, tmp_path, "pbx-a").once()
    changed = HEATING_FLOW.replace("heating policy", "heating policy, 2027")
    with pytest.raises(FlowInvalid):
        await flow_service.publish_text(redis, home, "heating", changed, by="ops")
    await prompt_service.forget_pbx(redis, "pbx-b", by="ops")
    assert (await flow_service.publish_text(redis, home, "heating", changed, by="ops"))[0].version == 2


async def test_with_no_pbx_synced_publishing_checks_only_the_prompts_folder(redis, home):
    (home / "flows" / "heating.yaml").write_text(HEATING_FLOW)
    (home / "prompts" / "policy").mkdir(exist_ok=True)
    (home / "prompts" / "policy" / "heating.wav").write_bytes(_wav())
    assert await prompt_service.pbx_prompts(redis) == {}
    res, _ = await flow_service.publish_text(redis, home, "heating", HEATING_FLOW, by="ops")
    assert res.version == 1


async def test_a_failed_write_midway_leaves_no_partial_file_and_the_pbx_lacks_the_prompt(redis, tmp_path,
                                                                                       monkeypatch):
    store = PromptStore(redis)
    for i, name in enumerate(("a", "b", "c")):
        await store.put(name, _wav(300 + 100 * i), by="ops", at=time.time())
    real_replace, calls = os.replace, []

    def disk_full_on_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)
    monkeypatch.setattr("ivr.prompts.audio.os.replace", disk_full_on_second)
    res = await _sync(redis, tmp_path, "pbx-a").once()
    folder = tmp_path / "sounds-pbx-a"
    assert res.missing == ["b"] and sorted(res.written) == ["a", "c"]
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".ivr-sync")) == ["a.wav", "c.wav"]
    assert (await prompt_service.pbx_status(redis))[0]["lacking"] == ["b"]


def test_a_sync_killed_between_write_and_rename_leaves_no_partial_prompt(redis_url, tmp_path):
    """A real SIGKILL of ``ivr prompts sync`` after the second file's bytes are
    written and before its rename: no file of that name; the next pass removes
    the leftover and completes."""
    import redis as redis_sync
    r = redis_sync.Redis.from_url(redis_url)
    audio = {n: _wav(300 + 100 * i) for i, n in enumerate(("a", "b", "c"))}

    async def put():
        from ivr.redisdb.server import connect
        c = connect(redis_url)
        for n, data in audio.items():
            await PromptStore(c).put(n, data, by="ops", at=time.time())
        await c.aclose()
    asyncio.run(put())
    folder = tmp_path / "sounds"
    killer = ("import os, signal, ivr.prompts.audio as a\n"
              "real, n = os.replace, []\n"
              "def replace(s, d):\n"
              "    n.append(d)\n"
              "    if len(n) == 2: os.kill(os.getpid(), signal.SIGKILL)\n"
              "    return real(s, d)\n"
              "a.os.replace = replace\n"
              "import sys; from ivr.cli import main; sys.exit(main())\n")
    env = {**os.environ, "IVR_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT), "IVR_HOME": str(ROOT),
           "IVR_DATA_DIR": str(tmp_path / "var")}
    args = ["prompts", "sync", "--pbx", "pbx-a", "--sounds-dir", str(folder), "--no-messages"]
    killed = subprocess.run([sys.executable, "-c", killer, *args], env=env, capture_output=True, timeout=60)
    assert killed.returncode == -9, killed.stderr.decode()
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".wav" and not p.name.startswith(".")) == ["a.wav"]
    assert [p.name for p in folder.glob(".tmp-*")]                 # the killed pass's leftover, under a hidden name
    assert r.hget(keys.PROMPT_SYNC_PBXS, "pbx-a") is None         # it never reported
    done = subprocess.run([sys.executable, "-m", "ivr", *args], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert "holds 3 prompt(s)" in done.stdout.decode()
    assert not list(folder.glob(".tmp-*"))
    assert {p.stem: p.read_bytes() for p in folder.glob("*.wav")} == audio
    assert oct((folder / "b.wav").stat().st_mode & 0o777) == "0o644"     # Asterisk runs as another user


async def test_the_sync_loop_goes_on_while_redis_restarts(tmp_path):
    """Redis stops under a running sync loop: the failed passes are logged and
    retried, and once the server is back (same address) the loop syncs again."""
    import tempfile

    from redis.exceptions import RedisError

    from ivr.redisdb.server import EmbeddedRedis, connect
    from ivr.runtime import prompt_sync
    folder = tempfile.mkdtemp(prefix="ivr-t-", dir="/tmp")      # a short socket path, the same after a restart
    server = EmbeddedRedis(Path(folder), persist=True)
    try:
        url = server.start()
        client = connect(url)
        await PromptStore(client).put("welcome", _wav(), by="ops", at=time.time())
        await client.execute_command("SAVE")
        server.stop()
        sync = _sync(client, tmp_path, "pbx-a")
        real_once, failed, stop = sync.once, [], asyncio.Event()

        async def once():
            try:
                res = await real_once()
            except RedisError:
                failed.append(1)
                if len(failed) == 2:
                    assert await asyncio.to_thread(server.start) == url
                raise
            stop.set()
            return res
        sync.once = once
        await asyncio.wait_for(prompt_sync.loop(sync, every_s=0.05, stop=stop), 60)
        assert len(failed) == 2 and (tmp_path / "sounds-pbx-a" / "welcome.wav").read_bytes() == _wav()
        assert "pbx-a" in await client.hgetall(keys.PROMPT_SYNC_PBXS)
        await client.aclose()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


# -- voice messages --------------------------------------------------------------------------

@pytest.fixture
async def web(redis, home, tmp_path):
    settings = load_settings({"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path / "console")})
    await Accounts(redis).add("audit", "auditor", PASSWORD)
    await Accounts(redis).add("ops", "operations", PASSWORD)
    clients = []

    async def signed_in(user):
        c = TestClient(TestServer(make_app(redis=redis, settings=settings)))
        await c.start_server()
        clients.append(c)
        r = await c.post("/api/login", json={"user": user, "password": PASSWORD})
        assert r.status == 200
        return c
    yield signed_in
    for c in clients:
        await c.close()


async def test_operations_staff_see_what_each_pbx_lacks(redis, web, tmp_path):
    ops = await web("ops")
    assert await (await ops.get("/api/prompts/pbxs")).json() == {"pbxs": []}
    store = PromptStore(redis)
    await store.put("welcome", _wav(), by="ops", at=time.time())
    await _sync(redis, tmp_path, "pbx-a").once()
    await store.put("policy/heating", _wav(880), by="ops", at=time.time())
    [row] = (await (await ops.get("/api/prompts/pbxs")).json())["pbxs"]
    assert (row["pbx"], row["host"], row["prompts"], row["lacking"]) == ("pbx-a", "host-pbx-a", 1, ["policy/heating"])


async def test_a_voice_message_recorded_on_pbx_b_reaches_the_callback_record_and_the_console(redis, web,
                                                                                             tmp_path):
    import datetime as dt
    web = await web("audit")
    from zoneinfo import ZoneInfo
    now = time.time()
    name = "msg-1733456789.42-1"
    # PBX B's Asterisk wrote the message (the record step); the call's summary names it
    messages_b = tmp_path / "messages-b"
    messages_b.mkdir()
    audio = _wav(523, 1500)
    (messages_b / f"{name}.wav").write_bytes(audio)
    os.utime(messages_b / f"{name}.wav", (now - 60, now - 60))
    still_recording = messages_b / "msg-1733456790.7-1.wav"
    still_recording.write_bytes(audio[:4000])
    os.utime(still_recording, (now - 1, now - 1))
    s = {"uniqueid": "1733456789.42", "number": "13812345678", "flow": "main", "started": f"{now - 120:.3f}",
         "ended": f"{now - 60:.3f}", "wanted_person": "1", "queue_status": "", "hold_s": "0", "emergency": "0",
         "callback_accepted": "0", "sent_to_message": "1", "message": name, "last_step": "leave_message"}
    await redis.xadd(keys.CALLS, {"j": json.dumps(s)})
    capture = MissedCallCapture(redis, CallbackStore(redis), Policy(calling_hours=(dt.time(0), dt.time(23, 59, 59))),
                                ZoneInfo("Asia/Shanghai"), LOG)
    await capture.ensure_group()
    await capture.run_once()
    rec = await CallbackStore(redis).open_record("13812345678")
    assert rec["message"] == name                                     # the callback record names it

    shown = await (await web.get(f"/api/callbacks/{rec['id']}")).json()
    url = shown["summary"]["message_url"]
    assert url == f"/api/callbacks/{rec['id']}/message.wav"
    r = await web.get(url)
    assert r.status == 404 and "has not reached the shared store" in (await r.json())["error"]

    # PBX B's sync role sends it up (the one still being written waits)
    res = await _sync(redis, tmp_path, "pbx-b", messages_dir=messages_b, clock=lambda: now).once()
    assert res.messages_sent == [name]
    r = await web.get(url)                                            # the console, any host: from Redis
    assert r.status == 200 and r.headers["Content-Type"] == "audio/wav" and await r.read() == audio
    msg = await MessageStore(redis).get(name)
    assert msg is not None and msg.pbx == "pbx-b" and msg.at == pytest.approx(now - 60)
    assert 6 * 86400 < await redis.ttl(keys.voice_message(name)) <= 7 * 86400
    again = await _sync(redis, tmp_path, "pbx-b", messages_dir=messages_b, clock=lambda: now).once()
    assert again.messages_sent == []                                  # already there: not sent twice
    later = await _sync(redis, tmp_path, "pbx-b", messages_dir=messages_b, clock=lambda: now + 10).once()
    assert later.messages_sent == ["msg-1733456790.7-1"]              # finished since
    played = [e for _, e in await __import__("ivr.audit.chain", fromlist=["AuditLog"]).AuditLog(
        redis, keys.CONSOLE_AUDIT).entries() if e.get("kind") == "voice_message_played"]
    assert played and played[-1]["by"] == "audit" and played[-1]["pbx"] == "pbx-b"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_systemd_unit_of_the_sync_role_verifies():
    unit = ROOT / "deploy" / "systemd" / "ivr-prompt-sync.service"
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                       cwd="/")
    # the one complaint allowed: this machine has no /opt/ivr
    other = [line for line in r.stderr.splitlines() if line.strip() and "/opt/ivr/.venv/bin/ivr is not executable"
             not in line]
    assert other == [], r.stderr


def test_the_systemd_unit_is_hardened():
    text = (ROOT / "deploy" / "systemd" / "ivr-prompt-sync.service").read_text()
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "ReadWritePaths=/var/lib/asterisk/sounds/12345", "UMask=0022", "User=asterisk",
                 "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet=\n",
                 "ExecStart=/opt/ivr/.venv/bin/ivr prompts sync --pbx pbx-a --sounds-dir "
                 "/var/lib/asterisk/sounds/12345 --every 30\n"):
        assert line in text, line
    assert "\nRemoveIPC=" not in text          # it would remove the asterisk user's IPC objects, Asterisk's own


def test_no_sounds_dir_in_settings_means_no_engine_sync(tmp_path):
    s = load_settings({"IVR_HOME": str(ROOT), "IVR_DATA_DIR": str(tmp_path)})
    assert s.sounds_dir is None and s.pbx_name == "main"
    s = load_settings({"IVR_HOME": str(ROOT), "IVR_DATA_DIR": str(tmp_path), "IVR_SOUNDS_DIR": str(tmp_path / "s"),
                       "IVR_PBX_NAME": "pbx-b"})
    assert s.sounds_dir == Path(tmp_path / "s").resolve() and s.pbx_name == "pbx-b"
    with pytest.raises(Exception, match="IVR_PBX_NAME"):
        load_settings({"IVR_HOME": str(ROOT), "IVR_DATA_DIR": str(tmp_path), "IVR_PBX_NAME": "a b"})


async def test_the_engine_on_the_pbx_host_syncs_its_sounds_folder_and_sends_up_messages(redis, tmp_path):
    """IVR_SOUNDS_DIR: the engine runs the same sync as ``ivr prompts sync``, as PBX IVR_PBX_NAME."""
    from ivr.runtime.engine import Engine
    await PromptStore(redis).put("policy/heating", _wav(), by="ops", at=time.time())
    recordings = tmp_path / "messages"
    recordings.mkdir()
    (recordings / "msg-1733456800.1-1.wav").write_bytes(_wav(600, 900))
    os.utime(recordings / "msg-1733456800.1-1.wav", (time.time() - 60, time.time() - 60))
    settings = load_settings({"IVR_HOME": str(ROOT), "IVR_DATA_DIR": str(tmp_path / "var"),
                              "IVR_AGI_LISTEN": "127.0.0.1:0", "IVR_LEADER": "no", "IVR_DRAIN_S": "1",
                              "IVR_SOUNDS_DIR": str(tmp_path / "sounds"), "IVR_PBX_NAME": "pbx-e",
                              "IVR_RECORDINGS_DIR": str(recordings)})
    eng = Engine(settings, redis, LOG)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(eng.run(stop, ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        for _ in range(500):                                    # its first pass starts with the engine
            if await redis.hexists(keys.PROMPT_SYNC_PBXS, "pbx-e"):
                break
            await asyncio.sleep(0.02)
        assert (tmp_path / "sounds" / "policy" / "heating.wav").read_bytes() == _wav()
        assert (await MessageStore(redis).get("msg-1733456800.1-1")).pbx == "pbx-e"
        assert [r["pbx"] for r in await prompt_service.pbx_status(redis)] == ["pbx-e"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_a_console_host_plays_a_prompt_its_own_folder_lacks_from_the_store(redis, web, home):
    """Uploaded on another console host (or pushed from elsewhere): listed and played from Redis."""
    ops = await web("ops")
    audio = _wav(700, 1000)
    await PromptStore(redis).put("policy/elsewhere", audio, by="ops", at=time.time())
    assert not (home / "prompts" / "policy" / "elsewhere.wav").exists()
    listed = {p["name"]: p for p in (await (await ops.get("/api/prompts")).json())["prompts"]}
    assert listed["policy/elsewhere"]["duration_s"] == 1.0 and "welcome" in listed
    r = await ops.get("/api/prompts/policy/elsewhere.wav")
    assert r.status == 200 and r.headers["Content-Type"] == "audio/wav" and await r.read() == audio
    assert (await ops.get("/api/prompts/policy/nowhere.wav")).status == 404
