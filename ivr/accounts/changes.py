"""Console accounts join the chained audit logs: who added a user, changed a
password or issued an API token, and when (``keys.USERS_AUDIT``, checked by
``ivr audit verify``). Never a password or a token, only that it changed."""

from __future__ import annotations

import getpass
import os
import time

import redis.asyncio as aioredis

from ivr.audit.chain import AuditLog
from ivr.redisdb import keys


def actor() -> str:
    """Who is changing accounts: ``IVR_USER`` if set (as the other CLI commands
    record), else the operating-system user."""
    return os.environ.get("IVR_USER") or f"cli:{getpass.getuser()}"


async def record_user_change(redis: aioredis.Redis, kind: str, user: str, *, by: str | None = None,
                             **fields: str) -> None:
    """``kind``: user_added | password_changed | token_issued | role_changed |
    user_removed. ``by``: who (default: ``actor()``). ``fields``: what else the
    entry says (a role, a token's label)."""
    await AuditLog(redis, keys.USERS_AUDIT).append(
        [{"kind": kind, "user": user, **fields, "by": by or actor(), "at": time.time()}])
