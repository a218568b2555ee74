"""Changing the audit key without losing what the old one proves
(``ivr audit key rotate``, docs/deploy.md).

Entries are never re-signed: rewriting a chain under a new key would erase
the very evidence the chain exists for (and no longer match the checkpoints
auditors keep on paper). Instead the old key is *retired*: kept beside the new
one (``<key file>.retired``, ``ivr.audit.signing``) with, for each log, the
number of the last entry it signed. An entry verifies under a retired key only
up to that number, so a retired key that leaks cannot add to the logs.

The rotation, with every engine and console stopped (they hold the key in
memory: an entry one of them wrote with the old key after the rotation would
not verify):

1. every log is verified under the key in force (a tampered log is never
   blessed by a rotation);
2. the new key is written to ``<key file>.next``;
3. the rotation is recorded in the ``keys`` log, signed by the OLD key: the
   new key's fingerprint, the previous one, who and when;
4. the old key and each log's last entry number go to the retired file;
5. Redis's recorded fingerprint becomes the new one (only if it still is the
   old one: one script);
6. ``.next`` replaces the key file.

Stopped between 5 and 6, the next run finishes the rename (``resume``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ivr.audit import keycheck
from ivr.audit.chain import AuditLog
from ivr.audit.signing import (
    AuditConfig,
    RetiredKey,
    append_retired,
    load_or_create_key,
    new_key,
    retired_file,
    write_key,
)
from ivr.errors import AuditKeyMismatch, Conflict
from ivr.redisdb import keys

if TYPE_CHECKING:
    from pathlib import Path

    import redis.asyncio as aioredis

ROTATED = "audit_key_rotated"


@dataclass(frozen=True, slots=True)
class Rotation:
    previous: str            # fingerprints
    new: str
    until: dict[str, int]    # log name -> last entry signed with the previous key
    resumed: bool = False


def next_file(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + ".next")


async def resume(redis: aioredis.Redis, config: AuditConfig) -> Rotation | None:
    """Finish a rotation stopped after Redis took the new fingerprint: the
    ``.next`` key becomes the key file. None when there is nothing to finish."""
    pending = next_file(config.key_file)
    if not pending.exists():
        return None
    recorded = keycheck.fingerprint_of(await redis.get(keys.AUDIT_KEY_FINGERPRINT))
    new = load_or_create_key(pending)
    if recorded != keycheck.fingerprint(new):
        pending.unlink()           # an earlier run stopped before Redis changed: that key was never used
        return None
    write_key(config.key_file, new)
    pending.unlink()
    return Rotation(keycheck.fingerprint(config.key), recorded, {}, resumed=True)


async def rotate(redis: aioredis.Redis, config: AuditConfig, *, by: str, now: float) -> Rotation:
    """Retire ``config``'s key for a new one (the steps above). ``Conflict``
    when a log does not verify; ``AuditKeyMismatch`` when ``config``'s key is
    not the one in force."""
    old = keycheck.fingerprint(config.key)
    raw = await redis.get(keys.AUDIT_KEY_FINGERPRINT)
    recorded = keycheck.fingerprint_of(raw)
    if recorded is not None and recorded != old:
        raise AuditKeyMismatch(keycheck.mismatch_message(config.key_file, old, recorded))
    bad, until = [], {}
    for name, stream in keys.AUDIT_LOGS.items():
        res = await AuditLog(redis, stream, config=config).verify()
        until[name] = res.entries
        if not res.ok:
            bad.append(f"{name}: {res.problem}")
    if bad:
        raise Conflict("审计日志未通过校验，不能更换密钥（先查明原因：ivr audit verify）— the audit logs do not verify, "
                       "the key is not changed (find out why first: ivr audit verify): " + "; ".join(bad))
    key = new_key()
    new = keycheck.fingerprint(key)
    write_key(next_file(config.key_file), key)
    head = await AuditLog(redis, keys.KEYS_AUDIT, config=config).append(
        [{"kind": ROTATED, "key": new, "previous": old, "by": by, "at": now}])
    until["keys"] = int(head.partition(":")[0])      # the rotation record: the old key's last entry there
    append_retired(retired_file(config.key_file), RetiredKey(
        config.key, now, tuple(sorted((keys.AUDIT_LOGS[name], n) for name, n in until.items() if n))))
    await _swap_fingerprint(redis, raw, keycheck.record_text(new, by=by, at=now))
    write_key(config.key_file, key)
    with contextlib.suppress(FileNotFoundError):
        next_file(config.key_file).unlink()
    return Rotation(old, new, until)


# KEYS: the fingerprint record; ARGV: the record expected ('' = none), the new one
_SWAP = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


async def _swap_fingerprint(redis: aioredis.Redis, expected: str | bytes | None, record: str) -> None:
    """The recorded fingerprint becomes ``record``, only if it is still ``expected``
    (one script: a process recording it meanwhile makes this fail, not vanish)."""
    was = expected.decode() if isinstance(expected, bytes) else expected or ""
    if not await redis.register_script(_SWAP)(keys=[keys.AUDIT_KEY_FINGERPRINT], args=[was, record]):
        raise Conflict("另一个进程刚记录了审计密钥指纹，密钥未更换 — another process recorded the audit key's "
                       "fingerprint meanwhile; the key is not changed")
