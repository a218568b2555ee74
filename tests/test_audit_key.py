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
