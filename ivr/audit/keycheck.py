"""One audit key for every process that shares a Redis, checked at start.

Every host holds a copy of the audit key (``ivr.audit.signing``). A process
started with another key would serve calls and write entries that never
verify, and nothing would say so until an auditor ran ``ivr audit verify``.
So the key's *fingerprint* is kept in Redis (``keys.AUDIT_KEY_FINGERPRINT``)
and compared at start by every engine, console and command that writes or
verifies audit entries:

- the fingerprint is ``HMAC-SHA256(key, LABEL)``: keyed and one-way, it names
  the key without revealing it, and being bound to its own label it can never
  equal a value the key computes elsewhere (an entry's HMAC, a checkpoint's
  signature), which a plain hash of the key would not promise;
- the first process to start records it (``SET NX``: two first processes
  racing agree on one); when Redis already holds audit entries but no
  fingerprint (logs written before this check existed), it records it only if
  the newest entry of every log verifies under its key;
- a mismatch raises ``AuditKeyMismatch`` before the process touches a call or
  a log: one line, Chinese first, naming both fingerprints' short forms and
  what to do.

The key is changed only with ``ivr audit key rotate`` (docs/deploy.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ivr.audit.chain import entry_verifies
from ivr.errors import AuditKeyMismatch
from ivr.redisdb import keys
from ivr.redisdb.replies import stream_entries

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ivr.audit.signing import AuditConfig

LABEL = b"ivr audit key fingerprint v1"
SHORT_CHARS = 16
SCHEMA = 1
DOCS = "docs/deploy.md"


def fingerprint(key: bytes) -> str:
    """The key's identifier: HMAC-SHA256 of a fixed label under it, hex."""
    return hmac.new(key, LABEL, hashlib.sha256).hexdigest()


def short(fp: str) -> str:
    """What staff compare by eye: the first 16 hex digits."""
    return fp[:SHORT_CHARS] if fp else "(无 none)"


@dataclass(frozen=True, slots=True)
class KeyCheck:
    fingerprint: str
    recorded: bool       # True: this process was the first and recorded it

    @property
    def short(self) -> str:
        return short(self.fingerprint)


def record_text(fp: str, *, by: str, at: float) -> str:
    return json.dumps({"schema": SCHEMA, "fingerprint": fp, "by": by, "at": at}, sort_keys=True)


def fingerprint_of(raw: str | bytes | None) -> str | None:
    """The fingerprint a record in Redis holds; None for no record, '' for one that cannot be read."""
    if raw is None:
        return None
    try:
        fp = json.loads(raw)["fingerprint"]
    except (ValueError, KeyError, TypeError):
        return ""
    return fp if isinstance(fp, str) else ""


def mismatch_message(key_file: Path, mine: str, recorded: str) -> str:
    return (f"审计密钥不一致，拒绝启动：本机密钥 {key_file} 的指纹是 {short(mine)}，而此 Redis 中的审计日志所用密钥的指纹是 "
            f"{short(recorded)}；请从持有该密钥的主机复制密钥文件到 {key_file}（权限 600，各主机相同）后再启动；"
            f"更换密钥见 {DOCS}（ivr audit key rotate） — audit key mismatch, refusing to start: this host's key "
            f"{key_file} has fingerprint {short(mine)}, the audit logs in this Redis are written with the key of "
            f"fingerprint {short(recorded)}: copy that key file from a host that holds it to {key_file} (mode 600) "
            f"and start again; to change the key, see {DOCS} (ivr audit key rotate)")


def foreign_logs_message(key_file: Path, mine: str, logs: list[str]) -> str:
    names = ", ".join(logs)
    return (f"审计密钥不一致，拒绝启动：此 Redis 中的审计日志（{names}）不是用本机密钥 {key_file}（指纹 {short(mine)}）"
            f"写的，而 Redis 中尚未记录密钥指纹；请从写这些日志的主机复制密钥文件到 {key_file}（权限 600）后再启动 — "
            f"audit key mismatch, refusing to start: the audit logs in this Redis ({names}) were not written with "
            f"this host's key {key_file} (fingerprint {short(mine)}) and no fingerprint is recorded yet: copy the "
            f"key file from the host that wrote them to {key_file} (mode 600) and start again")


async def logs_under_another_key(redis: aioredis.Redis, key: bytes) -> list[str]:
    """The audit logs whose newest entry is keyed but does not verify under ``key``."""
    out = []
    for name, stream in keys.AUDIT_LOGS.items():
        newest = stream_entries(await redis.xrevrange(stream, "+", "-", count=1))
        if newest and newest[0][1].get("k") == "1" and not entry_verifies(key, stream, newest[0][1]):
            out.append(name)
    return out


async def check(redis: aioredis.Redis, config: AuditConfig, *, by: str, at: float) -> KeyCheck:
    """``config``'s key is the one the logs in ``redis`` are written with (recorded
    here by the first process); ``AuditKeyMismatch`` when it is not."""
    mine = fingerprint(config.key)
    raw = await redis.get(keys.AUDIT_KEY_FINGERPRINT)
    if raw is None:
        foreign = await logs_under_another_key(redis, config.key)
        if foreign:
            raise AuditKeyMismatch(foreign_logs_message(config.key_file, mine, foreign))
        if await redis.set(keys.AUDIT_KEY_FINGERPRINT, record_text(mine, by=by, at=at), nx=True):
            return KeyCheck(mine, recorded=True)
        raw = await redis.get(keys.AUDIT_KEY_FINGERPRINT)      # another process was first: compare with its
    recorded = fingerprint_of(raw) or ""
    if not hmac.compare_digest(recorded, mine):
        raise AuditKeyMismatch(mismatch_message(config.key_file, mine, recorded))
    return KeyCheck(mine, recorded=False)
