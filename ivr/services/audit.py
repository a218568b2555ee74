"""The hash-chained audit logs as auditors check them: every chain verified
against the latest signed checkpoint, checkpoints written outside Redis, the
chains' heads as printed under a monthly report."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Any

from ivr import redis_keys as keys
from ivr.audit import AuditLog, VerifyResult
from ivr.audit_checkpoints import Checkpoint, Checkpointer, read_latest
from ivr.audit_keys import current
from ivr.redis_replies import text_or_none

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from zoneinfo import ZoneInfo


async def verify(redis: aioredis.Redis, names: list[str] | None = None) -> tuple[dict[str, VerifyResult], list[str]]:
    """Each log of ``names`` (default: all, ``keys.AUDIT_LOGS``) verified
    against its latest checkpoint; and what is wrong with the checkpoint file
    itself (an unsigned or altered line)."""
    config = current()
    latest, file_problems = read_latest(config.checkpoint_file, config.key)
    out = {}
    for name in names or list(keys.AUDIT_LOGS):
        stream = keys.AUDIT_LOGS[name]
        out[name] = await AuditLog(redis, stream, config=config).verify(checkpoint=latest.get(stream))
    return out, file_problems


async def checkpoint(redis: aioredis.Redis) -> tuple[dict[str, Checkpoint], dict[str, str]]:
    """A signed checkpoint of every intact log, appended to the file outside
    Redis: (log name -> checkpoint written, log name -> why none was written)."""
    written, failed = await Checkpointer(redis, always=True).checkpoint()
    names = {v: k for k, v in keys.AUDIT_LOGS.items()}
    return {names.get(cp.log, cp.log): cp for cp in written}, failed


async def signed_checkpoint(redis: aioredis.Redis, tz: ZoneInfo) -> dict[str, Any] | None:
    """The latest signed checkpoint of every audit log (``ivr audit
    checkpoint`` and the leader's schedule write them to a file outside Redis,
    each line with its HMAC): printed under the monthly report, so whoever
    keeps the paper can later prove the log was not rewritten since."""
    config = current()
    latest, problems = await asyncio.to_thread(read_latest, config.checkpoint_file, config.key)
    if not latest:
        return None
    names = {stream: name for name, stream in keys.AUDIT_LOGS.items()}
    return {"file": str(config.checkpoint_file), "problems": problems,
            "logs": {names.get(log, log): {"entries": cp.n, "head": cp.head, "entry_id": cp.entry_id,
                                           "at": dt.datetime.fromtimestamp(cp.at, tz).strftime("%Y-%m-%d %H:%M:%S"),
                                           "mac": cp.mac} for log, cp in sorted(latest.items())}}


async def chain_heads(redis: aioredis.Redis, tz: ZoneInfo) -> dict[str, Any]:
    """The head (entry count and hash) of every audit chain, now: printed on
    the monthly report so a later reader can check the log still matches."""
    now = dt.datetime.now(tz)
    heads = {}
    for name, stream in keys.AUDIT_LOGS.items():
        head = text_or_none(await redis.get(AuditLog(redis, stream).head_key)) or ""
        n, _, h = head.partition(":") if ":" in head else ("0", "", head)
        heads[name] = {"head": head, "entries": int(n) if n.isdigit() else None, "hash": h}
    return {"at": now.timestamp(), "time": now.strftime("%Y-%m-%d %H:%M:%S %Z"), "heads": heads}
