"""The start-up check every process sharing a Redis makes of its audit key
(``ivr.audit.keycheck``): the engine (``ivr serve``), the console (its process,
``ivr console``) and the commands that write or verify audit entries; and
``ivr audit key show|rotate`` (``ivr.audit.rotation``). Here so that the
adapters reach them without touching the audit store themselves."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ivr.audit import keycheck, rotation
from ivr.audit import signing as audit_keys
from ivr.errors import Conflict
from ivr.redisdb import keys
from ivr.runtime.status import engines
from ivr.services import audit as audit_service

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ivr.logs import Log


async def check_audit_key(redis: aioredis.Redis, *, by: str, log: Log | None = None) -> keycheck.KeyCheck:
    """This process's audit key against the fingerprint recorded in Redis (the
    first process records it); ``AuditKeyMismatch`` on a mismatch."""
    config = audit_keys.current()
    result = await keycheck.check(redis, config, by=by, at=time.time())
    if log is not None:
        log.info("audit_key_recorded" if result.recorded else "audit_key_matches", fingerprint=result.short,
                 key_file=str(config.key_file))
    return result


@dataclass(frozen=True, slots=True)
class KeyState:
    """``ivr audit key show``: this host's key and what Redis records."""

    key_file: str
    mine: str
    recorded: str | None       # None: nothing recorded yet
    retired: int               # retired keys this host holds


async def key_state(redis: aioredis.Redis) -> KeyState:
    config = audit_keys.current()
    recorded = keycheck.fingerprint_of(await redis.get(keys.AUDIT_KEY_FINGERPRINT))
    return KeyState(str(config.key_file), keycheck.fingerprint(config.key), recorded, len(config.retired))


async def rotate_audit_key(redis: aioredis.Redis, *, by: str) -> tuple[rotation.Rotation, int]:
    """``ivr audit key rotate`` (``ivr.audit.rotation``), with every engine
    stopped, then a checkpoint of every log signed with the new key. Returns
    the rotation and how many checkpoint lines were written."""
    running = [t for t, s in (await engines(redis)).items() if s["engine_responding"]]
    if running:
        raise Conflict(f"引擎仍在运行（{', '.join(running)}）：请先停止所有引擎和控制台再更换审计密钥 — engines still "
                       f"running ({', '.join(running)}): stop every engine and console before changing the audit key")
    config = audit_keys.current()
    done = await rotation.resume(redis, config) or await rotation.rotate(redis, config, by=by, now=time.time())
    config = audit_keys.configure(config.key_file, config.checkpoint_file)      # the new key and the retired ones
    if keycheck.fingerprint(config.key) != done.new:
        raise Conflict("密钥文件与 Redis 记录的指纹不符 — the key file does not match the fingerprint Redis records")
    written, failed = await audit_service.checkpoint(redis)
    if failed:
        raise Conflict("更换密钥后校验失败 — after the rotation these logs do not verify: " +
                       "; ".join(f"{n}: {p}" for n, p in failed.items()))
    return done, len(written)
