"""Whoever can write Redis cannot rewrite the audit trail: entries carry an
HMAC under a key kept outside Redis, and signed checkpoints of each chain's head
are kept outside Redis too. Each way of tampering below verified "intact"
before keys and checkpoints existed."""

import asyncio
import json
import os
import stat
import subprocess
import sys

import pytest

from ivr.audit.chain import AuditLog, chain_hash
from ivr.audit.checkpoints import read_latest
from ivr.audit.signing import AuditConfig, load_or_create_key
from ivr.errors import ConfigError
from ivr.redisdb import keys
from ivr.services.audit import Checkpointer

LOG = "ivr:audit:test"


@pytest.fixture
def cfg(audit_key, tmp_path):
    """The run's key, with a checkpoint file of this test's own."""
    return AuditConfig(audit_key.key, audit_key.key_file, tmp_path / "checkpoints.jsonl")


async def written(redis, cfg, count=10):
    log = AuditLog(redis, LOG, config=cfg)
    await log.append([{"i": i, "outcome": "no_answer", "by": "seat:101"} for i in range(count)])
    return log


async def checkpoint(redis, cfg):
    written_, failed = await Checkpointer(redis, logs={"test": LOG}, config=cfg).checkpoint()
    assert not failed
    return written_[0]


async def rebuild(redis, rows, edit, *, keep_key_marker=True, from_n=3):
    """What an attacker with Redis access can do: rewrite the stream with entry
    3 edited and every hash from it on recomputed (they have no key: plain
    SHA-256, as before keys existed). ``from_n=1`` recomputes all of them."""
    await redis.delete(LOG)
    prev = "0" * 64
    for rid, f in rows:
        if int(f["n"]) < from_n:
            await redis.xadd(LOG, f, id=rid)
            prev = f["h"]
            continue
        j = edit(f["j"]) if f["n"] == "3" else f["j"]
        h = chain_hash(prev, int(f["n"]), j)
        fields = {"n": f["n"], "prev": prev, "h": h, "j": j}
        if keep_key_marker:
            fields["k"] = "1"
        await redis.xadd(LOG, fields, id=rid)
        prev = h
    await redis.set(f"{LOG}:head", f"{rows[-1][1]['n']}:{prev}")


@pytest.mark.parametrize("keep_key_marker", [True, False], ids=["keyed", "as-unkeyed"])
async def test_rebuilt_chain_with_an_edited_entry_is_found(redis, cfg, keep_key_marker):
    log = await written(redis, cfg)
    rows = await redis.xrange(LOG)
    await rebuild(redis, rows, lambda j: j.replace("no_answer", "reached"), keep_key_marker=keep_key_marker)
    res = await log.verify()
    assert not res.ok
    assert res.entries == 2 and res.entry_id == rows[2][0]
    if keep_key_marker:
        assert res.problem.endswith("(entry 3 was changed after it was written)")
    else:                       # passed off as written before audit keys: not after a keyed entry
        assert "entry 3 is not authenticated" in res.problem


async def test_whole_log_rebuilt_as_old_entries_is_refused(redis, cfg):
    log = await written(redis, cfg)
    rows = await redis.xrange(LOG)
    await rebuild(redis, rows, lambda j: j.replace("no_answer", "reached"), keep_key_marker=False, from_n=1)
    res = await log.verify()
    assert not res.ok and res.entries == 0 and "entry 1 is not authenticated" in res.problem


async def test_rebuilt_as_old_entries_after_a_checkpoint_is_found(redis, cfg):
    log = await written(redis, cfg)
    await checkpoint(redis, cfg)
    rows = await redis.xrange(LOG)
    await rebuild(redis, rows, lambda j: j.replace("no_answer", "reached"), keep_key_marker=False, from_n=1)
    res = await log.verify()
    assert not res.ok and "entry 1 is not authenticated" in res.problem


async def test_deleted_newest_entries_with_the_head_rewritten_are_found(redis, cfg):
    log = await written(redis, cfg)
    cp = await checkpoint(redis, cfg)
    assert cp.n == 10
    rows = await redis.xrange(LOG)
    await redis.xdel(LOG, *[rid for rid, _ in rows[7:]])          # entries 8, 9, 10
    await redis.set(f"{LOG}:head", f"7:{rows[6][1]['h']}")       # and the head made to agree
    res = await log.verify()
    assert not res.ok and res.entries == 7
    assert "entries 8-10 are missing" in res.problem and res.problem.startswith("日志在第 7 条结束")


async def test_deleted_whole_log_is_found(redis, cfg):
    log = await written(redis, cfg, 5)
    await checkpoint(redis, cfg)
    await redis.delete(LOG, f"{LOG}:head")
    res = await log.verify()
    assert not res.ok and "the whole log was deleted" in res.problem and "entries 1-5 are missing" in res.problem


async def test_entries_added_after_a_checkpoint_verify_and_are_checkpointed_incrementally(redis, cfg):
    log = await written(redis, cfg, 5)
    await checkpoint(redis, cfg)
    await log.append([{"i": 99}])
    assert (await log.verify()).ok
    cp = await checkpoint(redis, cfg)
    assert cp.n == 6 and cp.entry_id == (await redis.xrevrange(LOG, count=1))[0][0]


async def test_checkpointer_refuses_to_bless_a_tampered_log(redis, cfg):
    log = await written(redis, cfg, 5)
    rows = await redis.xrange(LOG)
    await rebuild(redis, rows, lambda j: j.replace("no_answer", "reached"))
    _, failed = await Checkpointer(redis, logs={"test": LOG}, config=cfg).checkpoint()
    assert "entry 3 was changed" in failed["test"]
    assert not cfg.checkpoint_file.exists() or read_latest(cfg.checkpoint_file, cfg.key)[0] == {}
    assert not (await log.verify()).ok


async def test_checkpoint_file_is_private_and_an_edited_line_is_refused(redis, cfg):
    await written(redis, cfg, 3)
    await checkpoint(redis, cfg)
    assert stat.S_IMODE(cfg.checkpoint_file.stat().st_mode) == 0o600
    line = json.loads(cfg.checkpoint_file.read_text())
    cfg.checkpoint_file.write_text(json.dumps({**line, "n": 2}) + "\n")
    latest, problems = read_latest(cfg.checkpoint_file, cfg.key)
    assert latest == {} and "checkpoint signature does not verify" in problems[0]


def test_key_file_is_created_private_and_a_readable_one_is_refused(tmp_path):
    path = tmp_path / "data" / "audit.key"
    key = load_or_create_key(path)
    assert len(key) == 32 and load_or_create_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_or_create_key(path)


async def test_cli_checkpoint_then_verify_names_the_missing_range(redis, redis_url, project_home, tmp_path, audit_key):
    log = AuditLog(redis, keys.CONTINGENCY_AUDIT)
    await log.append([{"kind": "level_set", "to": i % 3, "by": "cli:wang"} for i in range(6)])
    env = {**os.environ, "IVR_HOME": str(project_home), "IVR_REDIS_URL": redis_url, "IVR_DATA_DIR": str(tmp_path),
           "IVR_AUDIT_CHECKPOINT_FILE": str(tmp_path / "checkpoints.jsonl")}

    def ivr(*args):
        return subprocess.run([sys.executable, "-m", "ivr", "audit", *args], env=env, capture_output=True,
                              text=True, timeout=60)
    out = await asyncio.to_thread(ivr, "checkpoint")
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("contingency:"))
    assert "6 entries, head " in line and "signature " in line
    rows = await redis.xrange(keys.CONTINGENCY_AUDIT)
    await redis.xdel(keys.CONTINGENCY_AUDIT, rows[-1][0])
    await redis.set(f"{keys.CONTINGENCY_AUDIT}:head", f"5:{rows[-2][1]['h']}")
    ver = await asyncio.to_thread(ivr, "verify")
    assert ver.returncode == 1
    assert "contingency: 被篡改 TAMPERED after 5 good entries" in ver.stdout and "entries 6-6 are missing" in ver.stdout


async def test_a_log_from_before_audit_keys_is_sealed_by_its_first_checkpoint(redis, cfg):
    prev = "0" * 64
    for n in range(1, 4):                       # written by the previous version: plain SHA-256
        j = json.dumps({"i": n}, separators=(",", ":"))
        h = chain_hash(prev, n, j)
        await redis.xadd(LOG, {"n": str(n), "prev": prev, "h": h, "j": j})
        prev = h
    await redis.set(f"{LOG}:head", f"3:{prev}")
    log = AuditLog(redis, LOG, config=cfg)
    assert "entry 1 is not authenticated" in (await log.verify()).problem     # not sealed yet
    cp = await checkpoint(redis, cfg)
    assert (cp.n, cp.unkeyed) == (3, 3)
    await log.append([{"i": 4}])
    res = await log.verify()
    assert res.ok and res.entries == 4 and res.legacy == 3


async def test_an_unchanged_log_gets_no_new_line_unless_asked(redis, cfg):
    await written(redis, cfg, 2)
    await checkpoint(redis, cfg)
    lines = cfg.checkpoint_file.read_text().count("\n")
    assert (await Checkpointer(redis, logs={"test": LOG}, config=cfg).checkpoint())[0] == []
    assert len((await Checkpointer(redis, logs={"test": LOG}, config=cfg, always=True).checkpoint())[0]) == 1
    assert cfg.checkpoint_file.read_text().count("\n") == lines + 1


async def test_checkpointer_runs_until_stopped(redis, cfg):
    await written(redis, cfg, 2)
    stop = asyncio.Event()
    task = asyncio.create_task(Checkpointer(redis, logs={"test": LOG}, config=cfg).run(stop, every_s=0.05))
    for _ in range(100):
        if cfg.checkpoint_file.exists():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert read_latest(cfg.checkpoint_file, cfg.key)[0][LOG].n == 2


async def test_verify_while_the_engine_keeps_appending_is_not_a_false_alarm(redis, cfg):
    """The head key is read before the walk: entries appended during a walk
    (callbacks arrive at thousands a second) must not look like a truncation."""
    log = await written(redis, cfg, 3)
    writer = AuditLog(redis, LOG, config=cfg)
    done = asyncio.Event()

    async def keep_writing():
        for i in range(300):
            await writer.append([{"i": i}])
        done.set()

    task = asyncio.create_task(keep_writing())
    results = []
    while not done.is_set():
        results.append(await log.verify(batch=7))
    await task
    assert results and all(r.ok for r in results), [r.problem for r in results if not r.ok][:1]


async def test_a_rewritten_head_key_is_found(redis, cfg):
    log = await written(redis, cfg, 4)
    await redis.set(f"{LOG}:head", "4:" + "f" * 64)
    res = await log.verify()
    assert not res.ok and "the head key does not match entry 4" in res.problem
