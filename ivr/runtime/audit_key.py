"""The start-up check every process sharing a Redis makes of its audit key
(``ivr.audit.keycheck``): the engine (``ivr serve``), the console (its process,
``ivr console``) and the commands that write or verify audit entries. Here so
that the adapters reach it without touching the audit store themselves."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ivr.audit import keycheck
from ivr.audit import signing as audit_keys

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
