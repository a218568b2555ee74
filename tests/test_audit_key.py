"""One audit key for every process sharing a Redis, checked at start
(ivr/audit/keycheck.py): the first process records the key's fingerprint (an
HMAC of a fixed label, never the key), every engine, console and audit-writing
command compares its own, and a process holding another key refuses to start
with one line naming both fingerprints, before it touches a call or a log."""

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys

import pytest

from ivr.audit import keycheck
from ivr.audit import signing as audit_keys
from ivr.audit.chain import AuditLog
from ivr.errors import AuditKeyMismatch
from ivr.redisdb import keys
from tests.engine_proc import ROOT, EngineProcess, free_port


@pytest.fixture
def other_key(tmp_path):
    """A second host's key file, generated like any (not the one the logs are written with)."""
    path = tmp_path / "other" / "audit.key"
    return audit_keys.AuditConfig(audit_keys.load_or_create_key(path), path, tmp_path / "other" / "checkpoints.jsonl")


def test_the_fingerprint_names_the_key_without_revealing_it(audit_key, other_key):
    fp = keycheck.fingerprint(audit_key.key)
    assert fp == hmac.new(audit_key.key, keycheck.LABEL, hashlib.sha256).hexdigest()
    assert fp == keycheck.fingerprint(audit_key.key)                  # stable
    assert fp != keycheck.fingerprint(other_key.key)
    assert audit_key.key.hex() not in fp and fp != hashlib.sha256(audit_key.key).hexdigest()
    assert keycheck.short(fp) == fp[:16]


async def test_the_first_start_records_it_and_the_same_key_passes(redis, audit_key):
    first = await keycheck.check(redis, audit_key, by="engine:a", at=1.0)
    assert first.recorded is True
    stored = json.loads(await redis.get(keys.AUDIT_KEY_FINGERPRINT))
    assert stored["fingerprint"] == keycheck.fingerprint(audit_key.key) and stored["by"] == "engine:a"
    assert audit_key.key.hex() not in json.dumps(stored)
    again = await keycheck.check(redis, audit_key, by="engine:b", at=2.0)
    assert again.recorded is False and again.fingerprint == first.fingerprint
    assert json.loads(await redis.get(keys.AUDIT_KEY_FINGERPRINT))["by"] == "engine:a"    # not overwritten


async def test_first_starts_racing_record_one_fingerprint(redis, audit_key, other_key):
    results = await asyncio.gather(*(keycheck.check(redis, cfg, by=f"p{i}", at=0.0)
                                     for i, cfg in enumerate([audit_key, other_key] * 5)), return_exceptions=True)
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, AuditKeyMismatch)]
    assert len(won) == 5 and len(lost) == 5 and sum(r.recorded for r in won) == 1
    assert len({r.fingerprint for r in won}) == 1


async def test_another_key_is_refused_naming_both_fingerprints(redis, audit_key, other_key):
    await keycheck.check(redis, audit_key, by="engine:a", at=1.0)
    with pytest.raises(AuditKeyMismatch) as refused:
        await keycheck.check(redis, other_key, by="engine:b", at=2.0)
    text = str(refused.value)
    assert text.startswith("审计密钥不一致，拒绝启动") and "\n" not in text
    assert keycheck.short(keycheck.fingerprint(audit_key.key)) in text
    assert keycheck.short(keycheck.fingerprint(other_key.key)) in text
    assert str(other_key.key_file) in text and "复制" in text and "copy" in text
    assert other_key.key.hex() not in text and audit_key.key.hex() not in text


async def test_logs_written_under_another_key_before_any_record_are_refused(redis, audit_key, other_key):
    """An upgrade: entries in Redis, no fingerprint yet. A process with the
    wrong key must not record its own and start."""
    await AuditLog(redis, keys.CONSOLE_AUDIT, config=audit_key).append([{"what": "sign-in", "user": "ops"}])
    with pytest.raises(AuditKeyMismatch, match="console"):
        await keycheck.check(redis, other_key, by="engine:b", at=1.0)
    assert await redis.get(keys.AUDIT_KEY_FINGERPRINT) is None
    assert (await keycheck.check(redis, audit_key, by="engine:a", at=2.0)).recorded is True


async def test_an_engine_with_another_key_exits_with_the_message_before_serving(redis_url, tmp_path, audit_key,
                                                                                 other_key):
    port = free_port()
    first = EngineProcess(redis_url, tmp_path / "a", IVR_HTTP_LISTEN=f"127.0.0.1:{port}")
    await first.start()
    try:
        import urllib.request
        async with asyncio.timeout(20):
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                        body = json.loads(r.read())
                    break
                except OSError:
                    await asyncio.sleep(0.1)
        assert body["audit_key_fingerprint"] == keycheck.short(keycheck.fingerprint(audit_key.key))

        second = EngineProcess(redis_url, tmp_path / "b", IVR_AUDIT_KEY_FILE=str(other_key.key_file))
        with pytest.raises(RuntimeError) as exited:
            await second.start()
        assert second.proc.returncode == 1
        err = str(exited.value)
        assert "审计密钥不一致，拒绝启动" in err and "Traceback" not in err
        assert keycheck.short(keycheck.fingerprint(audit_key.key)) in err
        assert keycheck.short(keycheck.fingerprint(other_key.key)) in err
        second.stop()
    finally:
        first.stop()


def _ivr(*args, env, stdin=None):
    return subprocess.run([sys.executable, "-m", "ivr", *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=ROOT, input=stdin)


async def test_commands_that_write_or_verify_audit_entries_check_the_key(redis_url, tmp_path, audit_key,
                                                                         other_key):
    import os
    env = {**os.environ, "IVR_HOME": str(ROOT), "IVR_DATA_DIR": str(tmp_path / "cli"), "IVR_REDIS_URL": redis_url}
    ok = await asyncio.to_thread(_ivr, "users", "add", "ops", "--role", "operations", "--password-stdin",
                                 env=env, stdin="correct horse battery\n")
    assert ok.returncode == 0, ok.stderr                 # the first command records the key
    wrong = {**env, "IVR_AUDIT_KEY_FILE": str(other_key.key_file)}
    for command in (("users", "add", "ops2", "--role", "operations", "--password-stdin"), ("audit", "verify")):
        out = await asyncio.to_thread(_ivr, *command, env=wrong, stdin="correct horse battery\n")
        assert out.returncode == 1 and out.stderr.startswith("ivr: 审计密钥不一致，拒绝启动"), (command, out.stderr)
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    listing = await asyncio.to_thread(_ivr, "users", "list", env=wrong)         # reads no audit entry
    assert listing.returncode == 0 and "ops" in listing.stdout and "ops2" not in listing.stdout


# -- rotation: `ivr audit key rotate` -------------------------------------------------

@pytest.fixture
def own_key(tmp_path):
    """A key file of this test's own (a rotation replaces it: never the run's shared one)."""
    return audit_keys.configure(tmp_path / "keys" / "audit.key", tmp_path / "keys" / "checkpoints.jsonl")


async def test_a_rotation_keeps_what_the_old_key_signed_and_nothing_after(redis, own_key):
    from ivr.runtime.audit_key import rotate_audit_key
    from ivr.services import audit as audit_service

    old = own_key
    await keycheck.check(redis, old, by="engine:a", at=1.0)
    await AuditLog(redis, keys.CONSOLE_AUDIT).append([{"what": "sign-in", "user": "ops"}, {"what": "edit"}])
    await AuditLog(redis, keys.USERS_AUDIT).append([{"what": "add", "user": "ops"}])
    await audit_service.checkpoint(redis)                        # lines signed with the old key

    done, lines = await rotate_audit_key(redis, by="cli:root")
    new = audit_keys.current()
    assert new.key != old.key and new.key_file == old.key_file and lines == len(keys.AUDIT_LOGS)
    assert done.previous == keycheck.fingerprint(old.key) and done.new == keycheck.fingerprint(new.key)
    assert audit_keys.load_or_create_key(old.key_file) == new.key
    retired = audit_keys.retired_file(old.key_file)
    assert retired.stat().st_mode & 0o777 == 0o600 and [r.key for r in new.retired] == [old.key]
    assert done.until == {"callbacks": 0, "contingency": 0, "console": 2, "flows": 0, "users": 1, "config": 0,
                          "keys": 1}
    assert json.loads(await redis.get(keys.AUDIT_KEY_FINGERPRINT))["fingerprint"] == done.new
    rotated = (await AuditLog(redis, keys.KEYS_AUDIT).entries())[0][1]
    assert rotated == {"kind": "audit_key_rotated", "key": done.new, "previous": done.previous, "by": "cli:root",
                       "at": rotated["at"]}

    await AuditLog(redis, keys.CONSOLE_AUDIT).append([{"what": "sign-in", "user": "boss"}])      # the new key
    results, problems = await audit_service.verify(redis)
    assert problems == [] and all(r.ok for r in results.values()), (results, problems)
    assert results["console"].entries == 3

    # a process still holding the old key is refused at start, and what it would write does not verify
    with pytest.raises(AuditKeyMismatch):
        await keycheck.check(redis, old, by="engine:stale", at=2.0)
    await AuditLog(redis, keys.CONSOLE_AUDIT, config=old).append([{"what": "forged with the retired key"}])
    results, _ = await audit_service.verify(redis, ["console"])
    assert not results["console"].ok and results["console"].entries == 3


async def test_a_rotation_refuses_while_an_engine_runs_or_a_log_is_tampered(redis, own_key):
    from ivr.errors import Conflict
    from ivr.runtime.audit_key import rotate_audit_key
    from ivr.runtime.status import boot_id

    record = {"status": {"calls_in_progress": 0, "calls_handled": 0, "leader": True, "ami_connected": False,
                         "parts": {}, "parts_ok": True, "config_version": 1, "config_error": None,
                         "engine_responding": True}, "mono": __import__("time").monotonic(), "boot": boot_id()}
    await redis.set(keys.engine_status("host:1:aa"), json.dumps(record), ex=10)
    with pytest.raises(Conflict, match="host:1:aa"):
        await rotate_audit_key(redis, by="cli:root")
    await redis.delete(keys.engine_status("host:1:aa"))

    await AuditLog(redis, keys.USERS_AUDIT).append([{"what": "add", "user": "ops"}])
    rid = (await redis.xrange(keys.USERS_AUDIT))[0][0]
    await redis.xadd(keys.USERS_AUDIT, {"n": "1", "prev": "x", "h": "y", "j": "{}", "k": "1"}, id="9999999999999-0")
    await redis.xdel(keys.USERS_AUDIT, rid)
    with pytest.raises(Conflict, match="users"):
        await rotate_audit_key(redis, by="cli:root")
    assert audit_keys.load_or_create_key(own_key.key_file) == own_key.key          # nothing changed
    assert not audit_keys.retired_file(own_key.key_file).exists()


async def test_a_rotation_stopped_after_redis_changed_is_finished_by_the_next_run(redis, own_key):
    from ivr.audit import rotation
    from ivr.runtime.audit_key import rotate_audit_key

    pending = audit_keys.new_key()
    audit_keys.write_key(rotation.next_file(own_key.key_file), pending)
    await redis.set(keys.AUDIT_KEY_FINGERPRINT, keycheck.record_text(keycheck.fingerprint(pending), by="x", at=1.0))
    done, _ = await rotate_audit_key(redis, by="cli:root")
    assert done.resumed and audit_keys.load_or_create_key(own_key.key_file) == pending
    assert not rotation.next_file(own_key.key_file).exists()


async def test_ivr_audit_key_show_and_rotate(redis_url, tmp_path):
    import os
    key_file = tmp_path / "cli-keys" / "audit.key"
    env = {**os.environ, "IVR_HOME": str(ROOT), "IVR_DATA_DIR": str(tmp_path / "cli"), "IVR_REDIS_URL": redis_url,
           "IVR_AUDIT_KEY_FILE": str(key_file), "IVR_AUDIT_CHECKPOINT_FILE": str(tmp_path / "cli-keys" / "cp.jsonl")}
    add = await asyncio.to_thread(_ivr, "users", "add", "ops", "--role", "operations", "--password-stdin",
                                  env=env, stdin="correct horse battery\n")
    assert add.returncode == 0, add.stderr
    first = keycheck.short(keycheck.fingerprint(audit_keys.load_or_create_key(key_file)))
    show = await asyncio.to_thread(_ivr, "audit", "key", "show", env=env)
    assert show.returncode == 0 and f"指纹 fingerprint {first}" in show.stdout, show.stdout
    assert f"Redis 记录 recorded: {first}" in show.stdout and "一致 match" in show.stdout
    rot = await asyncio.to_thread(_ivr, "audit", "key", "rotate", env=env)
    assert rot.returncode == 0, rot.stderr
    second = keycheck.short(keycheck.fingerprint(audit_keys.load_or_create_key(key_file)))
    assert f"{first} -> {second}" in rot.stdout and second != first
    verify = await asyncio.to_thread(_ivr, "audit", "verify", env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "users: 完整 intact, 1 entries" in verify.stdout and "keys: 完整 intact, 1 entries" in verify.stdout
